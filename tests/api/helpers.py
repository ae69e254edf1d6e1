"""Helpers for the client tests: a fake clock and a scripted MockTransport (the only seam)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from flyk.api import FlyClient, RateLimiter, RetryPolicy

BASE = "https://api.test/v1"


class FakeClock:
    """Monotonic time that only moves when someone sleeps; records every sleep."""

    def __init__(self, start: float = 1000.0, epoch: float = 1_700_000_000.0) -> None:
        self.now = start
        self.epoch = epoch
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.epoch + self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def policy(clock: FakeClock, **overrides: Any) -> RetryPolicy:
    return RetryPolicy(
        clock=clock, wall_clock=clock.wall, sleep=clock.sleep, rng=random.Random(7), **overrides
    )


Responder = Callable[[httpx.Request], httpx.Response]


def reply(status: int = 200, body: Any = None, headers: dict[str, str] | None = None) -> Responder:
    def respond(request: httpx.Request) -> httpx.Response:
        if body is None:
            return httpx.Response(status, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return respond


@dataclass
class Script:
    """Answers requests from per-route queues of responders; records every request.

    A route is "METHOD /path" (without /v1). The last responder of a queue repeats.
    """

    routes: dict[str, list[Responder]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def on(self, route: str, *responders: Responder) -> Script:
        self.routes.setdefault(route, []).extend(responders)
        return self

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route = f"{request.method} {request.url.path.removeprefix('/v1')}"
        queue = self.routes.get(route)
        if not queue:
            return httpx.Response(404, json={"error": f"no route {route} in the test script"})
        responder = queue.pop(0) if len(queue) > 1 else queue[0]
        return responder(request)

    def sent(self, route: str) -> list[httpx.Request]:
        method, _, route_path = route.partition(" ")
        return [
            r
            for r in self.requests
            if r.method == method and r.url.path.removeprefix("/v1") == route_path
        ]

    def bodies(self, route: str) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.sent(route)]


def make_client(
    handler: Callable[[httpx.Request], httpx.Response],
    clock: FakeClock | None = None,
    *,
    token: str | None = "fo1_testtoken",
    limiter: RateLimiter | None = None,
    **retry: Any,
) -> FlyClient:
    clock = clock or FakeClock()
    return FlyClient(
        base_url="https://api.test",
        token=token,
        transport=httpx.MockTransport(handler),
        retry=policy(clock, **retry),
        rate_limiter=limiter or RateLimiter.unlimited(),
    )


def machine_json(machine_id: str = "m1", state: str = "started", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": machine_id,
        "name": f"name-{machine_id}",
        "state": state,
        "region": "ord",
        "instance_id": "01V1",
        "config": {"image": "nginx", "metadata": {}},
    }
    body.update(extra)
    return body
