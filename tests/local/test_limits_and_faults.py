"""Rate limits (429 + Retry-After) and injected faults: latency, 429, 5xx, dropped connections."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from flyk.local import LocalBackend, Timing
from tests.local.conftest import FakeClock, checked_client, make_app, make_machine


def test_actions_are_limited_per_machine(
    clocked: Callable[..., LocalBackend], clock: FakeClock
) -> None:
    backend = clocked()
    with checked_client(backend.transport()) as client:
        make_app(client)
        first = make_machine(client)["id"]
        second = make_machine(client)["id"]
        backend.rate_limits.enable()
        for _ in range(3):  # burst 3
            assert client.post(f"/apps/demo/machines/{first}/cordon").status_code == 200
        limited = client.post(f"/apps/demo/machines/{first}/cordon")
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert "rate limit" in limited.json()["error"]
        assert client.post(f"/apps/demo/machines/{second}/cordon").status_code == 200
        assert client.post(f"/apps/demo/machines/{first}/uncordon").status_code == 200
        clock.advance(1.0)  # 1 token per second
        assert client.post(f"/apps/demo/machines/{first}/cordon").status_code == 200
        assert client.post(f"/apps/demo/machines/{first}/cordon").status_code == 429


def test_get_machine_has_the_higher_limit(
    clocked: Callable[..., LocalBackend], clock: FakeClock
) -> None:
    backend = clocked()
    with checked_client(backend.transport()) as client:
        make_app(client)
        machine = make_machine(client)["id"]
        backend.rate_limits.enable()
        statuses = [client.get(f"/apps/demo/machines/{machine}").status_code for _ in range(11)]
        assert statuses == [200] * 10 + [429]
        clock.advance(0.2)  # 5 per second
        assert client.get(f"/apps/demo/machines/{machine}").status_code == 200
        assert client.get("/apps/demo/machines").status_code == 200  # lists are not limited


def test_rate_limits_are_off_by_default(client: httpx.Client) -> None:
    make_app(client)
    machine = make_machine(client)["id"]
    for _ in range(10):
        assert client.post(f"/apps/demo/machines/{machine}/cordon").status_code == 200


def test_latency_fault(db_path: Path) -> None:
    slept: list[float] = []
    backend = LocalBackend(db_path, Timing.instant(), sleep=slept.append)
    backend.faults.add("latency", seconds=2.5, times=2, path="/apps$")
    with checked_client(backend.transport()) as client:
        make_app(client)
        assert client.get("/apps", params={"org_slug": "personal"}).status_code == 200
        make_app(client, "other")
    assert slept == [2.5, 2.5]


def test_rate_limit_fault(backend: LocalBackend, client: httpx.Client) -> None:
    backend.faults.add("rate_limit", method="POST", retry_after=7)
    response = client.post("/apps", json={"name": "demo", "org_slug": "personal"})
    assert response.status_code == 429 and response.headers["retry-after"] == "7"
    assert client.get("/apps/demo").status_code == 404  # nothing was done
    make_app(client)  # the fault fired once


def test_server_error_fault(backend: LocalBackend, client: httpx.Client) -> None:
    make_app(client)
    backend.faults.add("server_error", status=502, path="/machines$", times=None)
    for _ in range(3):
        response = client.post("/apps/demo/machines", json={"config": {"image": "x"}})
        assert response.status_code == 502 and "injected" in response.json()["error"]
    backend.faults.clear()
    assert client.get("/apps/demo/machines").json() == []


def test_dropped_connection_after_commit_in_process(
    backend: LocalBackend, client: httpx.Client
) -> None:
    make_app(client)
    backend.faults.add("drop_after_commit", method="POST", path="/machines$")
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/apps/demo/machines", json={"config": {"image": "x"}})
    assert len(client.get("/apps/demo/machines").json()) == 1  # it was created


def test_dropped_connection_after_commit_over_http(backend: LocalBackend) -> None:
    with backend.serve() as served, checked_client(httpx.HTTPTransport(), served.url) as client:
        make_app(client)
        backend.faults.add("drop_after_commit", method="POST", path="/machines$")
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.post("/apps/demo/machines", json={"config": {"image": "x"}})
        assert len(client.get("/apps/demo/machines").json()) == 1


def test_faults_match_method_and_path(backend: LocalBackend, client: httpx.Client) -> None:
    backend.faults.add("server_error", method="DELETE", status=500)
    make_app(client)
    assert client.get("/apps/demo").status_code == 200
    assert client.delete("/apps/demo").status_code == 500
    assert client.delete("/apps/demo").status_code == 202


def test_invalid_fault_is_refused(backend: LocalBackend) -> None:
    with pytest.raises(ValueError):
        backend.faults.add("server_error", status=404)
