"""The client-side limiter keeps bursts under Fly's documented limits (fake clock)."""

from __future__ import annotations

import threading

import httpx
import pytest

from flyk.api import RateLimiter, default_rate_limiter
from flyk.api._ratelimit import ACTION_LIMIT, GET_MACHINE_LIMIT, SAFETY_MARGIN

from .helpers import FakeClock, make_client


def _max_in_window(times: list[float], window: float) -> int:
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


def test_bucket_allows_the_burst_then_paces_at_the_rate() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    waits = [limiter.acquire("machine_start", "a/m1") for _ in range(6)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    # one second per token, plus the safety margin once (later waits are paced from it)
    assert waits[3:] == pytest.approx([1.0 + SAFETY_MARGIN, 1.0, 1.0])
    assert clock.now == pytest.approx(3.0 + SAFETY_MARGIN)


def test_without_margin_the_pace_is_exactly_the_rate() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter(margin=0.0, clock=clock, sleep=clock.sleep)
    waits = [limiter.acquire("machine_start", "a/m1") for _ in range(6)]
    assert waits == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]


def test_get_machine_has_its_own_limit() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    for _ in range(10):
        assert limiter.acquire("machine_get", "a/m1") == 0.0
    assert limiter.acquire("machine_get", "a/m1") == pytest.approx(
        1 / GET_MACHINE_LIMIT.rate + SAFETY_MARGIN
    )


def test_buckets_are_per_action_and_per_machine() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    for key in ("a/m1", "a/m2", "b/m1"):
        for _ in range(3):
            assert limiter.acquire("machine_stop", key) == 0.0
    for _ in range(3):
        assert limiter.acquire("machine_start", "a/m1") == 0.0
    assert clock.sleeps == []


def test_a_burst_of_client_calls_stays_under_the_documented_limits() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    sent: dict[str, list[float]] = {"start": [], "get": []}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            sent["get"].append(clock.now)
            return httpx.Response(200, json={"id": "m1"})
        sent["start"].append(clock.now)
        return httpx.Response(200, json={})

    with make_client(handler, clock, limiter=limiter) as fly:
        for _ in range(20):
            fly.machines.start("a", "m1")
        for _ in range(50):
            fly.machines.get("a", "m1")
    # any 1 s window holds at most burst + rate requests
    assert _max_in_window(sent["start"], 1.0) <= ACTION_LIMIT.burst + ACTION_LIMIT.rate
    assert _max_in_window(sent["get"], 1.0) <= GET_MACHINE_LIMIT.burst + GET_MACHINE_LIMIT.rate
    # and over the long run, the rate
    assert sent["start"][-1] - sent["start"][0] >= (20 - ACTION_LIMIT.burst) / ACTION_LIMIT.rate


def test_waits_are_not_throttled() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"state": "started"})

    with make_client(handler, clock, limiter=limiter) as fly:
        for _ in range(10):
            fly.machines.wait("a", "m1")
    assert clock.sleeps == []


def test_limiter_is_thread_safe_and_shared() -> None:
    clock = FakeClock(start=0.0)
    lock = threading.Lock()
    total: list[float] = []

    def sleep(seconds: float) -> None:  # record instead of advancing: the reservations matter
        with lock:
            total.append(seconds)

    limiter = RateLimiter(clock=clock, sleep=sleep)
    threads = [
        threading.Thread(target=lambda: limiter.acquire("machine_update", "a/m1"))
        for _ in range(13)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 3 free, then each later one reserved one more second than the one before
    assert sorted(total) == pytest.approx([n + SAFETY_MARGIN for n in range(1, 11)])
    assert default_rate_limiter() is default_rate_limiter()


def test_unlimited_never_waits() -> None:
    limiter = RateLimiter.unlimited()
    assert all(limiter.acquire("machine_start", "a/m1") == 0.0 for _ in range(100))
