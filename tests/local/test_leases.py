"""Leases: acquire, refresh with the same nonce, 409 without it, TTL expiry, release."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from flyk.local import LocalBackend
from tests.local.conftest import FakeClock, checked_client, make_app, make_machine

NONCE = "fly-machine-lease-nonce"


@pytest.fixture
def leased(clocked: Callable[..., LocalBackend]) -> Iterator[tuple[httpx.Client, str]]:
    with checked_client(clocked().transport()) as client:
        make_app(client)
        machine = make_machine(client)
        yield client, f"/apps/demo/machines/{machine['id']}"


def test_acquire_and_show(leased: tuple[httpx.Client, str], clock: FakeClock) -> None:
    client, base = leased
    assert client.get(f"{base}/lease").status_code == 404
    acquired = client.post(f"{base}/lease", json={"ttl": 30, "description": "deploy"})
    assert acquired.status_code == 201
    lease = acquired.json()
    assert lease["expires_at"] == int(clock.now) + 30
    assert lease["description"] == "deploy" and lease["nonce"]
    assert client.get(f"{base}/lease").json()["nonce"] == lease["nonce"]


def test_second_acquire_without_nonce_is_409(leased: tuple[httpx.Client, str]) -> None:
    client, base = leased
    client.post(f"{base}/lease", json={"ttl": 30})
    response = client.post(f"{base}/lease", json={"ttl": 30})
    assert response.status_code == 409
    assert "leased" in response.json()["error"]


def test_refresh_keeps_the_nonce(leased: tuple[httpx.Client, str], clock: FakeClock) -> None:
    client, base = leased
    nonce = client.post(f"{base}/lease", json={"ttl": 10}).json()["nonce"]
    clock.advance(8)
    refreshed = client.post(f"{base}/lease", json={"ttl": 10}, headers={NONCE: nonce})
    assert refreshed.status_code == 201
    assert refreshed.json()["nonce"] == nonce
    assert refreshed.json()["expires_at"] == int(clock.now) + 10


def test_ttl_in_the_query(leased: tuple[httpx.Client, str], clock: FakeClock) -> None:
    client, base = leased
    lease = client.post(f"{base}/lease", params={"ttl": 13}).json()
    assert lease["expires_at"] == int(clock.now) + 13


def test_mutations_need_the_nonce(leased: tuple[httpx.Client, str]) -> None:
    client, base = leased
    nonce = client.post(f"{base}/lease", json={"ttl": 30}).json()["nonce"]
    assert client.post(f"{base}/stop").status_code == 409
    assert client.post(f"{base}/stop", headers={NONCE: "wrong"}).status_code == 409
    assert client.post(f"{base}/cordon").status_code == 409
    assert client.post(f"{base}/stop", headers={NONCE: nonce}).status_code == 200
    assert client.post(base, json={"config": {"image": "x"}}).status_code == 409
    assert client.delete(base).status_code == 409
    assert client.delete(base, headers={NONCE: nonce}).status_code == 200


def test_lease_expires_by_ttl(leased: tuple[httpx.Client, str], clock: FakeClock) -> None:
    client, base = leased
    client.post(f"{base}/lease", json={"ttl": 5})
    clock.advance(4.9)
    assert client.post(f"{base}/stop").status_code == 409
    clock.advance(0.2)
    assert client.get(f"{base}/lease").status_code == 404
    assert client.post(f"{base}/stop").status_code == 200
    assert client.post(f"{base}/lease", json={"ttl": 5}).status_code == 201


def test_release(leased: tuple[httpx.Client, str]) -> None:
    client, base = leased
    nonce = client.post(f"{base}/lease", json={"ttl": 30}).json()["nonce"]
    assert client.delete(f"{base}/lease", headers={NONCE: "wrong"}).status_code == 409
    assert client.delete(f"{base}/lease", headers={NONCE: nonce}).status_code == 200
    assert client.get(f"{base}/lease").status_code == 404
    assert client.delete(f"{base}/lease", headers={NONCE: nonce}).status_code == 404


def test_release_without_nonce_is_409(backend: LocalBackend) -> None:
    # The spec requires the header, so this request goes around the spec checker.
    with httpx.Client(transport=backend.transport(), base_url="http://local/v1") as client:
        make_app(client)
        base = f"/apps/demo/machines/{make_machine(client)['id']}"
        client.post(f"{base}/lease", json={"ttl": 30})
        assert client.delete(f"{base}/lease").status_code == 409


def test_create_with_lease_ttl_returns_the_nonce(client: httpx.Client) -> None:
    make_app(client)
    machine = make_machine(client, lease_ttl=60)
    base = f"/apps/demo/machines/{machine['id']}"
    assert machine["nonce"]
    assert client.get(f"{base}/lease").json()["nonce"] == machine["nonce"]
    assert client.post(f"{base}/stop").status_code == 409
    assert client.post(f"{base}/stop", headers={NONCE: machine["nonce"]}).status_code == 200
    assert "nonce" not in client.get(base).json()


def test_bad_ttl_is_400(leased: tuple[httpx.Client, str]) -> None:
    client, base = leased
    assert client.post(f"{base}/lease", json={"ttl": 0}).status_code == 400
