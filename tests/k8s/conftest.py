"""Fixtures for the cluster workflows: an in-process local backend and a client on it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from flyk.api import FlyClient, RateLimiter, RetryPolicy
from flyk.local import LocalBackend, Timing


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalBackend]:
    local = LocalBackend(tmp_path / "db", timing=Timing.instant())
    yield local
    close = getattr(local, "close", None)
    if callable(close):
        close()


def make_client(transport: httpx.BaseTransport, retry: RetryPolicy | None = None) -> FlyClient:
    # Fly's per-app limits are the backend's business here; the tests do not wait for them.
    return FlyClient(
        base_url="http://local.flyk",
        transport=transport,
        rate_limiter=RateLimiter.unlimited(),
        retry=retry,
    )


@pytest.fixture
def client(backend: LocalBackend) -> Iterator[FlyClient]:
    fly = make_client(backend.transport())
    yield fly
    fly.close()


class InterruptingTransport(httpx.BaseTransport):
    """Passes requests through until one matches, then raises KeyboardInterrupt (Ctrl-C)."""

    def __init__(self, inner: httpx.BaseTransport, method: str, path_pattern: str) -> None:
        self.inner = inner
        self.method = method
        self.pattern = re.compile(path_pattern)
        self.armed = True

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.armed and request.method == self.method and self.pattern.search(request.url.path):
            self.armed = False
            raise KeyboardInterrupt
        return self.inner.handle_request(request)


class CountingTransport(httpx.BaseTransport):
    """Counts requests by (method, path shape)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path))
        return self.inner.handle_request(request)

    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] in ("POST", "PUT", "PATCH", "DELETE")]


@pytest.fixture
def counting(backend: LocalBackend) -> Callable[[], tuple[FlyClient, CountingTransport]]:
    def build() -> tuple[FlyClient, CountingTransport]:
        transport = CountingTransport(backend.transport())
        return make_client(transport), transport

    return build
