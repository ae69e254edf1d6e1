"""A client-side rate limiter that mirrors Fly's documented limits (reference §10).

Limits apply per action and per machine (or app): most actions 1 req/s with bursts of 3, get
machine 5 req/s with bursts of 10, app deletions 100 per minute. Token buckets are keyed by
(action, machine-or-app) and shared by every client in the process, so parallel workers wait
their turn instead of collecting 429s.

A wait carries a small margin (`SAFETY_MARGIN`): the server's bucket started counting when our
first request *arrived*, a little after we sent it, so a request sent exactly on our schedule
could reach a bucket still a hair short of a token.

`/wait` long-polls are not throttled: each one occupies the server for up to 60 s, is repeated
only after the server answered (408 "not yet") or after a backoff sleep, and a throttle on top
would only delay noticing a state change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens per second
    burst: int  # bucket size


ACTION_LIMIT = Limit(rate=1.0, burst=3)
GET_MACHINE_LIMIT = Limit(rate=5.0, burst=10)
APP_DELETE_LIMIT = Limit(rate=100 / 60, burst=100)
SAFETY_MARGIN = 0.05  # seconds added to every non-zero wait

# Actions with their own documented limit; every other action gets ACTION_LIMIT.
LIMITS: dict[str, Limit] = {
    "machine_get": GET_MACHINE_LIMIT,
    "app_delete": APP_DELETE_LIMIT,
}


class _Bucket:
    __slots__ = ("limit", "tokens", "updated")

    def __init__(self, limit: Limit, now: float) -> None:
        self.limit = limit
        self.tokens = float(limit.burst)
        self.updated = now

    def reserve(self, now: float) -> float:
        """Take one token (possibly on credit); return how long the caller must wait for it."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.limit.burst), self.tokens + elapsed * self.limit.rate)
        self.updated = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.limit.rate


class RateLimiter:
    """Token buckets keyed by (action, key). Thread-safe; the wait happens outside the lock."""

    def __init__(
        self,
        limits: dict[str, Limit] | None = None,
        *,
        default: Limit | None = ACTION_LIMIT,
        margin: float = SAFETY_MARGIN,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._limits = dict(LIMITS if limits is None else limits)
        self._default = default
        self._margin = margin
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    @classmethod
    def unlimited(cls) -> RateLimiter:
        """A limiter that never waits (tests against local backends with limits off)."""
        return cls({}, default=None)

    def limit_for(self, action: str) -> Limit | None:
        return self._limits.get(action, self._default)

    def reserve(self, action: str, key: str) -> float:
        """Reserve a slot and return the seconds to wait before using it (0 when free)."""
        limit = self.limit_for(action)
        if limit is None:
            return 0.0
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get((action, key))
            if bucket is None:
                bucket = self._buckets[(action, key)] = _Bucket(limit, now)
            delay = bucket.reserve(now)
        return delay + self._margin if delay > 0 else 0.0

    def acquire(self, action: str, key: str) -> float:
        """Wait for a slot; returns how long we waited."""
        delay = self.reserve(action, key)
        if delay > 0:
            self._sleep(delay)
        return delay


_default_limiter: RateLimiter | None = None
_default_lock = threading.Lock()


def default_rate_limiter() -> RateLimiter:
    """The process-wide limiter every FlyClient shares unless given its own."""
    global _default_limiter
    with _default_lock:
        if _default_limiter is None:
            _default_limiter = RateLimiter()
        return _default_limiter
