"""Fixtures: the real control plane (once per test session), each test's view of it, and the
local backend."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from flyk.api import FlyClient, RateLimiter, RetryPolicy
from flyk.local import LocalBackend, Timing

from .realkube import ControlPlane, Kube

T = TypeVar("T")


@pytest.fixture(scope="session")
def control_plane(
    controlplane_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """kine, kube-apiserver, kube-controller-manager and kube-scheduler with production's
    flags, run by flyk's supervisor; stopped at the end of the session, leaving nothing."""
    plane = ControlPlane(controlplane_binary, tmp_path_factory.mktemp("control-plane")).start()
    yield plane
    left = plane.stop()
    assert left == [], f"control-plane processes left running: {left}"


@pytest.fixture
def kube(control_plane: ControlPlane, tmp_path: Path) -> Iterator[Kube]:
    view = Kube(control_plane, tmp_path)
    yield view
    view.close()


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
