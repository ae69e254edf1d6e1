"""The work queue: a key is queued once, never held by two workers, delayed keys wait."""

from __future__ import annotations

import threading

from flyk.kubelet.workqueue import WorkQueue, backoff


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_key_added_twice_is_queued_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    stop = threading.Event()
    for key in ("a", "b", "a"):
        queue.add(key)
    assert [queue.get(stop), queue.get(stop)] == ["a", "b"]
    assert len(queue) == 0


def test_a_key_added_while_held_comes_back_after_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    stop = threading.Event()
    queue.add("a")
    held = queue.get(stop)
    queue.add("a")  # changed while a worker reconciles it
    assert len(queue) == 0  # not handed to a second worker
    queue.done(held)  # type: ignore[arg-type]
    assert queue.get(stop) == "a"


def test_delayed_keys_wait_for_their_time() -> None:
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(monotonic=clock)
    stop = threading.Event()
    queue.add_after("later", 5.0)
    queue.add("now")
    assert queue.get(stop) == "now"
    clock.now = 5.0
    assert queue.get(stop) == "later"


def test_get_returns_none_once_stopped_or_closed() -> None:
    queue: WorkQueue[str] = WorkQueue()
    stop = threading.Event()
    stop.set()
    assert queue.get(stop) is None
    queue.close()
    assert queue.get(threading.Event()) is None


def test_failures_count_and_backoff_doubles_to_a_ceiling() -> None:
    queue: WorkQueue[str] = WorkQueue()
    assert [queue.failed("a") for _ in range(3)] == [1, 2, 3]
    queue.forget("a")
    assert queue.failed("a") == 1
    assert [backoff(n, 1.0, 5.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]


def test_backoff_stays_at_its_ceiling_however_many_failures() -> None:
    """A day of failures (an API server down) must not overflow: the caller is a thread
    that an exception would end for good (the reflector, a namespace's worker)."""
    assert backoff(1_100, 0.05, 5.0) == 5.0
    assert backoff(10**9, 1.0, 300.0) == 300.0
