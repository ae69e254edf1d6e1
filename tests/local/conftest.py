"""Fixtures for the local backend's tests: every exchange is checked against the spec."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from flyk.local import LocalBackend, Timing
from tests.spec_check import SpecCheckingTransport


class FakeClock:
    """Unix seconds that move only when a test says so."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "local.db"


@pytest.fixture
def backend(db_path: Path) -> LocalBackend:
    return LocalBackend(db_path, Timing.instant())


def checked_client(transport: httpx.BaseTransport, base_url: str = "http://local") -> httpx.Client:
    return httpx.Client(
        transport=SpecCheckingTransport(transport, strict_errors=True),
        base_url=f"{base_url}/v1",
        timeout=90,
    )


@pytest.fixture
def client(backend: LocalBackend) -> Iterator[httpx.Client]:
    with checked_client(backend.transport()) as c:
        yield c


TARGETS = ["in-process", pytest.param("served", marks=pytest.mark.served)]


@pytest.fixture(params=TARGETS)
def any_client(request: pytest.FixtureRequest, backend: LocalBackend) -> Iterator[httpx.Client]:
    """The same client over the in-process transport and over real HTTP."""
    if request.param == "in-process":
        with checked_client(backend.transport()) as c:
            yield c
        return
    with backend.serve() as served, checked_client(httpx.HTTPTransport(), served.url) as c:
        yield c


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def clocked(db_path: Path, clock: FakeClock) -> Callable[..., LocalBackend]:
    def make(timing: Timing | None = None) -> LocalBackend:
        return LocalBackend(db_path, timing or Timing.instant(), clock=clock)

    return make


def make_app(client: httpx.Client, name: str = "demo", org: str = "personal") -> str:
    response = client.post("/apps", json={"name": name, "org_slug": org})
    assert response.status_code == 201, response.text
    return name


def make_machine(client: httpx.Client, app: str = "demo", **fields: Any) -> dict[str, Any]:
    config = fields.pop("config", {"image": "nginx:1.27"})
    response = client.post(f"/apps/{app}/machines", json={"config": config, **fields})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@dataclass
class Served:
    url: str
    stderr: str = ""  # what the server printed, once it has stopped


@contextmanager
def flyk_local_serve(tmp_path: Path, timing: str = "instant") -> Iterator[Served]:
    """`flyk local serve` in a process of its own, as another tool meets it: lenient (the
    default a user gets), its state in `tmp_path`; stopped (SIGTERM) on the way out."""
    env = {**os.environ, "FLYK_LOCAL_DB": str(tmp_path / "served.db"), "FLYK_LOCAL_STRICT": "0"}
    server = subprocess.Popen(
        [sys.executable, "-m", "flyk", "local", "serve", "--port", "0", "--timing", timing],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served("")
    try:
        assert server.stdout is not None
        served.url = server.stdout.readline().strip()
        assert served.url.startswith("http://127.0.0.1:"), server.communicate(timeout=10)
        yield served
    finally:
        server.terminate()
        try:
            served.stderr = server.communicate(timeout=30)[1]
        finally:
            if server.poll() is None:
                server.kill()
                server.communicate()
