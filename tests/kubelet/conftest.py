"""Fixtures: the kubelet's kubeconfig on the real control plane (tests/conftest.py has the
control plane and each test's view of it), and the local backend."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from flyk.api import FlyClient, RateLimiter, RetryPolicy
from flyk.local import LocalBackend, Timing

from .realkube import Kube

T = TypeVar("T")


@pytest.fixture
def kubeconfig(kube: Kube) -> str:
    return kube.kubeconfig()


def eventually(check: Callable[[], T], *, timeout: float = 30.0, what: str = "") -> T:
    """Poll until `check()` returns something truthy (no wall-clock assertion: the timeout
    only keeps a broken test from hanging)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.02)


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalBackend]:
    yield LocalBackend(tmp_path / "local.db", Timing.instant(), orgs=["personal"])


@pytest.fixture
def fly(backend: LocalBackend) -> Iterator[FlyClient]:
    # Fast retries and no client-side throttle: the tests that exercise rate limits set them.
    retry = RetryPolicy(deadline=20.0, initial_delay=0.01, max_delay=0.05)
    client = FlyClient(
        transport=backend.transport(), retry=retry, rate_limiter=RateLimiter.unlimited()
    )
    yield client
    client.close()
