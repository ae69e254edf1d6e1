"""The retry policy (pure functions, table tests) and the send loop's attempt counts."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from flyk.api import FlyClient, RateLimiter, RetryPolicy
from flyk.api._retry import backoff, parse_retry_after, retry_delay, should_retry
from flyk.errors import NetworkError, RateLimitedError, ServerError, WaitTimeoutError

from .helpers import FakeClock, Script, make_client, policy, reply

NOW = 1_700_000_000.0


def _http_date(offset: float) -> str:
    return format_datetime(datetime.fromtimestamp(NOW + offset, UTC), usegmt=True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "0"}, 0.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"Retry-After": "-2"}, None),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": _http_date(20)}, 20.0),
        ({"Retry-After": _http_date(-20)}, 0.0),  # a date in the past: go now
        ({"Retry-After": _http_date(0)}, 0.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"retry-after-ms": "x", "Retry-After": "9"}, 9.0),
        ({"Retry-After": "Wed, 99 Foo 2026 00:00:00 GMT"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, NOW) == expected


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(1, 0.125, 0.25), (2, 0.25, 0.5), (3, 0.5, 1.0), (4, 1.0, 2.0), (5, 2.0, 4.0), (9, 2.0, 4.0)],
)
def test_backoff_grows_exponentially_with_jitter_and_a_cap(
    attempt: int, low: float, high: float
) -> None:
    rng = random.Random(1)
    delays = [backoff(attempt, rng, initial=0.25, maximum=4.0) for _ in range(50)]
    assert all(low <= d <= high for d in delays)
    assert len(set(delays)) > 1  # jittered


@pytest.mark.parametrize(
    ("status", "idempotent", "sent", "retry"),
    [
        (None, True, True, True),  # connection dropped on an idempotent call
        (None, False, True, False),  # dropped after sending a create: ambiguous
        (None, False, False, True),  # never connected: nothing was sent
        (408, True, True, True),
        (408, False, True, False),
        (429, True, True, True),
        (429, False, True, True),  # refused before it was processed
        (500, True, True, True),
        (503, False, True, False),
        (520, True, True, True),  # every 5xx that may pass when repeated
        (599, True, True, True),
        (501, True, True, False),  # Not Implemented: the server never will
        (505, True, True, False),
        (511, True, True, False),
        (507, True, True, False),  # Insufficient Storage: a write the disk refused
        (600, True, True, False),
        (400, True, True, False),
        (404, True, True, False),
        (409, True, True, False),  # never retry a lease conflict blindly
    ],
)
def test_should_retry(status: int | None, idempotent: bool, sent: bool, retry: bool) -> None:
    assert should_retry(status, idempotent=idempotent, sent=sent) is retry


def test_a_501_is_not_retried(script: Script, clock: FakeClock) -> None:
    script.on("GET /apps/a", reply(501, {"error": "not implemented"}))
    with make_client(script, clock) as fly, pytest.raises(ServerError):
        fly.apps.get("a")
    assert len(script.requests) == 1 and clock.sleeps == []


def test_retry_delay_prefers_retry_after_and_refuses_huge_ones() -> None:
    clock = FakeClock()
    rp = policy(clock, max_retry_after=30)
    assert retry_delay(rp, 1, {"Retry-After": "7"}) == 7
    assert retry_delay(rp, 1, {"Retry-After": "31"}) is None
    assert retry_delay(rp, rp.max_attempts, {}) is None


def test_http_date_retry_after_uses_the_injected_wall_clock() -> None:
    clock = FakeClock(start=0.0, epoch=NOW)
    rp = policy(clock)
    assert retry_delay(rp, 1, {"Retry-After": _http_date(12)}) == 12.0


# -- the send loop --------------------------------------------------------------------------


def test_idempotent_get_retries_5xx_then_succeeds(script: Script, clock: FakeClock) -> None:
    script.on("GET /apps/a", reply(502), reply(503), reply(200, {"name": "a"}))
    with make_client(script, clock) as fly:
        assert fly.apps.get("a").name == "a"
    assert len(script.requests) == 3
    assert len(clock.sleeps) == 2 and clock.sleeps[0] < clock.sleeps[1] * 2


def test_429_honours_retry_after_seconds(script: Script, clock: FakeClock) -> None:
    script.on(
        "GET /apps/a",
        reply(429, {"error": "slow down"}, {"Retry-After": "2"}),
        reply(200, {"name": "a"}),
    )
    with make_client(script, clock) as fly:
        fly.apps.get("a")
    assert clock.sleeps == [2.0]


def test_429_honours_retry_after_http_date(script: Script) -> None:
    clock = FakeClock(start=0.0, epoch=NOW)
    script.on(
        "GET /apps/a", reply(429, None, {"Retry-After": _http_date(5)}), reply(200, {"name": "a"})
    )
    with make_client(script, clock) as fly:
        fly.apps.get("a")
    assert clock.sleeps == [5.0]


def test_retries_stop_at_max_attempts(script: Script, clock: FakeClock) -> None:
    script.on("GET /apps/a", reply(500, {"error": "down"}))
    with (
        make_client(script, clock, max_attempts=4) as fly,
        pytest.raises(ServerError, match="down"),
    ):
        fly.apps.get("a")
    assert len(script.requests) == 4


def test_retries_stop_at_the_deadline(script: Script, clock: FakeClock) -> None:
    script.on("GET /apps/a", reply(429, None, {"Retry-After": "4"}))
    with make_client(script, clock, deadline=10, max_attempts=100) as fly:
        with pytest.raises(RateLimitedError):
            fly.apps.get("a")
    # 0 → 4 → 8 → (12 would pass the 10 s deadline)
    assert len(script.requests) == 3
    assert clock.sleeps == [4.0, 4.0]


def test_non_idempotent_calls_do_not_retry_5xx(script: Script, clock: FakeClock) -> None:
    script.on("POST /apps/a/machines/m1", reply(500, {"error": "boom"}))
    from flyk.api import MachineConfig

    with make_client(script, clock) as fly, pytest.raises(ServerError):
        fly.machines.update("a", "m1", MachineConfig(image="x"))
    assert len(script.requests) == 1


def test_non_idempotent_calls_retry_429(script: Script, clock: FakeClock) -> None:
    from flyk.api import MachineConfig

    script.on("POST /apps/a/machines/m1", reply(429), reply(200, {"id": "m1"}))
    with make_client(script, clock) as fly:
        fly.machines.update("a", "m1", MachineConfig(image="x"))
    assert len(script.requests) == 2


def test_connection_errors_retry_for_idempotent_calls(clock: FakeClock) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            raise httpx.ReadError("connection reset", request=request)
        return httpx.Response(200, json={"name": "a"})

    with make_client(handler, clock) as fly:
        fly.apps.get("a")
    assert len(calls) == 3


def test_read_error_after_sending_a_non_idempotent_call_is_not_repeated(clock: FakeClock) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ReadError("connection reset", request=request)

    with make_client(handler, clock) as fly, pytest.raises(NetworkError):
        fly.machines.signal("a", "m1", "SIGTERM")
    assert len(calls) == 1


def test_connect_error_is_retried_even_for_non_idempotent_calls(clock: FakeClock) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={})

    with make_client(handler, clock) as fly:
        fly.machines.signal("a", "m1", "SIGTERM")
    assert len(calls) == 2


def test_408_on_an_idempotent_call_is_retried_then_raised(script: Script, clock: FakeClock) -> None:
    script.on("POST /apps/a/machines/m1/stop", reply(408, {"error": "timeout"}))
    with make_client(script, clock, max_attempts=3) as fly, pytest.raises(WaitTimeoutError):
        fly.machines.stop("a", "m1")
    assert len(script.requests) == 3


def test_never_policy_makes_one_attempt(script: Script) -> None:
    script.on("GET /apps/a", reply(503))
    with make_client(script, FakeClock(), max_attempts=1) as fly, pytest.raises(ServerError):
        fly.apps.get("a")
    assert RetryPolicy.never().max_attempts == 1
    assert len(script.requests) == 1


def _client_reporting_retries(
    handler: Callable[[httpx.Request], httpx.Response],
    clock: FakeClock,
    retries: list[tuple[int, str, float]],
) -> FlyClient:
    return FlyClient(
        base_url="https://api.test",
        transport=httpx.MockTransport(handler),
        retry=policy(clock),
        rate_limiter=RateLimiter.unlimited(),
        on_retry=lambda attempt, reason, delay: retries.append((attempt, reason, delay)),
    )


def test_on_retry_reports_each_retry_before_sleeping(clock: FakeClock) -> None:
    retries: list[tuple[int, str, float]] = []
    statuses = iter([503, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        if not retries:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return httpx.Response(next(statuses), json={"name": "a"})

    with _client_reporting_retries(handler, clock, retries) as fly:
        fly.apps.get("a")
    assert [(attempt, reason) for attempt, reason, _ in retries] == [
        (2, "connection refused"),
        (3, "HTTP 503"),
    ]
    assert [delay for _, _, delay in retries] == clock.sleeps


def test_on_retry_is_not_called_without_retries_and_never_breaks_a_call(
    clock: FakeClock,
) -> None:
    def failing_hook(attempt: int, reason: str, delay: float) -> None:
        raise RuntimeError("hook failed")

    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503 if len(calls) == 1 else 200, json={"name": "a"})

    with FlyClient(
        base_url="https://api.test",
        transport=httpx.MockTransport(handler),
        retry=policy(clock),
        rate_limiter=RateLimiter.unlimited(),
        on_retry=failing_hook,
    ) as fly:
        assert fly.apps.get("a").name == "a"
    assert len(calls) == 2
    quiet: list[tuple[int, str, float]] = []
    with _client_reporting_retries(
        lambda r: httpx.Response(200, json={"name": "a"}), clock, quiet
    ) as fly:
        fly.apps.get("a")
    assert quiet == []
