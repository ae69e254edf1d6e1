"""The retry policy: pure data and pure functions. The send loop in `_http` only calls them.

What is retried (reference §10): 408, 429, 5xx and transport errors, but only for calls that
are safe to repeat. Two exceptions apply to every call, idempotent or not: a connection that
was never established (nothing was sent), and 429 (Fly's proxy refuses the call before it
reaches flaps, so nothing was done). Machine create is never repeated blindly; it has its own
launch-id loop in `machines.py`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

# Every 5xx is retried (a server, proxy or host in trouble, however it numbers it), except
# those that say the request can never succeed as sent: 501 Not Implemented (the server does
# not do this operation; the local backend answers it for unserved operations), 505 HTTP
# Version Not Supported and 511 Network Authentication Required (a captive portal wants a
# login), and 507 Insufficient Storage (the server's disk refused the write; `flyk local serve`
# answers it on a full disk, and no retry within seconds frees space). Repeating those only
# delays the error until the deadline.
_PERMANENT_5XX = frozenset({501, 505, 507, 511})


def is_retryable_status(status: int) -> bool:
    """408, 429 and the 5xx that may succeed when repeated (for calls safe to repeat)."""
    if status in (408, 429):
        return True
    return 500 <= status <= 599 and status not in _PERMANENT_5XX


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often to retry; clock, wall clock, sleep and randomness are injectable.

    `deadline` bounds the whole call, sleeps included: no retry starts after it.
    `max_retry_after` caps how long a server's Retry-After may make us wait per attempt.
    """

    deadline: float = 60.0
    max_attempts: int = 8
    initial_delay: float = 0.25
    max_delay: float = 4.0
    max_retry_after: float = 60.0
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def never(cls) -> RetryPolicy:
        """One attempt only (scripts that handle failures themselves, and some tests)."""
        return cls(max_attempts=1)


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the server asked us to wait, or None when it did not say (or said nonsense).

    Reads `retry-after-ms`, then `retry-after` as seconds or as an HTTP date; `now` is the
    wall-clock time (epoch seconds) the date is compared with. A date in the past means 0.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000
        except ValueError:
            value = -1.0
        if value >= 0:
            return value
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        # an HTTP date is rare (Fly sends seconds): its parser is imported only for one
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, float(when.timestamp()) - now)
    return seconds if seconds >= 0 else None


def backoff(
    attempt: int, rng: random.Random, *, initial: float = 0.25, maximum: float = 4.0
) -> float:
    """Exponential backoff with jitter for retry number `attempt` (1 for the first retry).

    Half the delay is fixed and half random, so concurrent clients spread out but none retries
    immediately.
    """
    base = min(maximum, initial * 2.0 ** max(0, attempt - 1))
    return base / 2 + rng.random() * base / 2


def should_retry(status: int | None, *, idempotent: bool, sent: bool = True) -> bool:
    """Whether a failed attempt may be repeated.

    `status` is None for a transport error; `sent` is False when the connection was never
    made, so the server cannot have acted on the request.
    """
    if status is None:
        return idempotent or not sent
    if status == 429:
        return True
    return idempotent and is_retryable_status(status)


def retry_delay(
    policy: RetryPolicy,
    attempt: int,
    headers: Mapping[str, str] | None = None,
) -> float | None:
    """Seconds to sleep before retry number `attempt`, or None when we must not retry.

    A Retry-After from the server wins over backoff, unless it exceeds `max_retry_after`:
    then we give up rather than hang.
    """
    if attempt >= policy.max_attempts:
        return None
    requested = parse_retry_after(headers, policy.wall_clock()) if headers else None
    if requested is not None:
        return requested if requested <= policy.max_retry_after else None
    return backoff(attempt, policy.rng, initial=policy.initial_delay, maximum=policy.max_delay)


def fits_deadline(policy: RetryPolicy, deadline: float, delay: float) -> bool:
    """True when sleeping `delay` still leaves the call inside its deadline."""
    return policy.clock() + delay < deadline
