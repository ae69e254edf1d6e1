"""Machines booting: each new machine is waited on until it has started (the Machines API's
`/wait` long-poll), and its namespace is then listed at once, so the pod turns Running as soon
as its machine runs rather than at the namespace's next fast resync (up to 2 s later).

One `/wait` per machine made, on a few threads of their own (the namespace workers go on
creating meanwhile). Fly does not rate-limit waits (flyk/api/_ratelimit.py). Whatever the
wait's outcome (started, failed, timed out, an error) the namespace is listed: the list, not
the wait, is what the pod's status is written from, so a wait that goes wrong costs only the
latency it was meant to save.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from flyk.api import FlyClient

log = logging.getLogger("flyk.kubelet.boots")

# Threads waiting on boots at once. More boots than this queue up: their pods are then seen
# Running at the latest by the namespace's fast resync, as without these waits.
WAITERS = 16
# One long-poll: a boot longer than this is left to the resyncs.
WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class _Boot:
    app: str
    machine_id: str
    then: Callable[[], None]


class BootWaiter:
    def __init__(self, fly: FlyClient, *, waiters: int = WAITERS) -> None:
        self._fly = fly
        self._waiters = waiters
        self._queue: queue.SimpleQueue[_Boot | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stopped = False

    def watch(self, app: str, machine_id: str, then: Callable[[], None]) -> None:
        """Wait for the machine to start (or come to rest otherwise), then call `then`."""
        with self._lock:
            if self._stopped:
                return
            if len(self._threads) < self._waiters:
                # Daemon threads, never joined: a long-poll under way must not hold up a stop.
                thread = threading.Thread(target=self._run, name="flyk-boots", daemon=True)
                self._threads.append(thread)
                thread.start()
        self._queue.put(_Boot(app, machine_id, then))

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            for _ in self._threads:
                self._queue.put(None)

    def _run(self) -> None:
        while (boot := self._queue.get()) is not None:
            try:
                self._fly.machines.wait(boot.app, boot.machine_id, "started", timeout=WAIT_SECONDS)
            except Exception as error:  # failed, timed out, the API away: the list tells
                log.debug("waiting for machine %s to start: %s", boot.machine_id, error)
            with self._lock:
                if self._stopped:
                    return
            try:
                boot.then()
            except Exception:
                log.exception("after machine %s started", boot.machine_id)
