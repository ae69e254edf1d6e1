"""A work queue in client-go's manner: keys, not events.

A key added while queued is queued once; a key added while a worker holds it is queued again
when the worker is done, so no two workers ever reconcile the same pod at once and no change
is lost. `add_after` delays a key (backoff); `failures` counts a key's consecutive failures.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._cond = threading.Condition()
        self._queue: deque[K] = deque()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._redo: set[K] = set()
        self._delayed: list[tuple[float, int, K]] = []
        self._sequence = 0
        self._failures: dict[K, int] = {}
        self._closed = False

    def add(self, key: K) -> None:
        with self._cond:
            self._add_locked(key)

    def _add_locked(self, key: K) -> None:
        if self._closed:
            return
        if key in self._processing:
            self._redo.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.append(key)
            self._cond.notify()

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            self._sequence += 1
            heapq.heappush(self._delayed, (self._monotonic() + delay, self._sequence, key))
            self._cond.notify()

    def get(self, stop: threading.Event) -> K | None:
        """The next key, waiting for one; None once `stop` is set or the queue is closed."""
        with self._cond:
            while not stop.is_set() and not self._closed:
                self._promote_due()
                if self._queue:
                    key = self._queue.popleft()
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key
                timeout = 0.5
                if self._delayed:
                    timeout = min(timeout, max(0.0, self._delayed[0][0] - self._monotonic()))
                self._cond.wait(timeout)
            return None

    def _promote_due(self) -> None:
        now = self._monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            self._add_locked(key)

    def done(self, key: K) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._redo:
                self._redo.discard(key)
                self._add_locked(key)

    def failed(self, key: K) -> int:
        """Count a failure of `key` and return how many in a row."""
        with self._cond:
            self._failures[key] = self._failures.get(key, 0) + 1
            return self._failures[key]

    def forget(self, key: K) -> None:
        with self._cond:
            self._failures.pop(key, None)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._delayed)


def backoff(failures: int, initial: float, maximum: float) -> float:
    """`initial` doubled per failure after the first, up to `maximum`. The exponent stops at
    63 (by then any initial delay is past any ceiling): uncapped, 2 ** 1100 overflows a float
    and the OverflowError would end the thread that asked, a reflector whose API server was
    down for an hour and a half (1,025 tries, 5 s apart) or a worker whose resync failed all
    night."""
    exponent = min(max(0, failures - 1), 63)
    return float(min(maximum, initial * 2**exponent))
