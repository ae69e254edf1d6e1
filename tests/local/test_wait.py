"""`/wait`: long-polls without spinning, wakes on due transitions and on writes, 408 at timeout."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from flyk.local import LocalBackend, Timing
from tests.local.conftest import checked_client, make_app, make_machine


def test_wait_returns_at_once_when_reached(any_client: httpx.Client) -> None:
    make_app(any_client)
    machine = make_machine(any_client)
    response = any_client.get(
        f"/apps/demo/machines/{machine['id']}/wait", params={"state": "started", "timeout": 1}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["state"] == "started"
    assert body["version"] == machine["instance_id"]


def test_wait_times_out_with_408(any_client: httpx.Client) -> None:
    make_app(any_client)
    machine = make_machine(any_client, skip_launch=True)
    response = any_client.get(
        f"/apps/demo/machines/{machine['id']}/wait", params={"state": "started", "timeout": 1}
    )
    assert response.status_code == 408
    assert "started" in response.json()["error"]


def test_wait_zero_timeout_checks_once(client: httpx.Client) -> None:
    make_app(client)
    machine = make_machine(client, skip_launch=True)
    base = f"/apps/demo/machines/{machine['id']}/wait"
    assert client.get(base, params={"state": "created", "timeout": 0}).status_code == 200
    assert client.get(base, params={"state": "stopped", "timeout": 0}).status_code == 408


def test_wait_sleeps_until_a_due_transition(db_path: Path) -> None:
    backend = LocalBackend(db_path, Timing(boot=0.3))
    with checked_client(backend.transport()) as client:
        make_app(client)
        machine = make_machine(client)
        assert machine["state"] == "starting"
        response = client.get(
            f"/apps/demo/machines/{machine['id']}/wait", params={"state": "started", "timeout": 30}
        )
        assert response.status_code == 200 and response.json()["state"] == "started"


def test_wait_is_woken_by_a_write(backend: LocalBackend) -> None:
    with checked_client(backend.transport()) as client:
        make_app(client)
        machine = make_machine(client)
        base = f"/apps/demo/machines/{machine['id']}"
        stopper = threading.Timer(0.2, lambda: client.post(f"{base}/stop"))
        stopper.start()
        try:
            response = client.get(f"{base}/wait", params={"state": "stopped", "timeout": 30})
        finally:
            stopper.join()
        assert response.status_code == 200 and response.json()["state"] == "stopped"


def test_wait_for_any_of_several_states_and_settled(client: httpx.Client) -> None:
    make_app(client)
    machine = make_machine(client, skip_launch=True)
    base = f"/apps/demo/machines/{machine['id']}/wait"
    repeated = client.get(f"{base}?state=started&state=created&timeout=1")
    assert repeated.json()["state"] == "created"
    comma = client.get(base, params={"state": "stopped,created", "timeout": 1})
    assert comma.json()["state"] == "created"
    assert client.get(base, params={"state": "settled", "timeout": 1}).status_code == 200


def test_wait_for_destroyed(client: httpx.Client) -> None:
    make_app(client)
    machine = make_machine(client, skip_launch=True)
    base = f"/apps/demo/machines/{machine['id']}"
    client.delete(base)
    assert client.get(f"{base}/wait", params={"state": "destroyed"}).json()["state"] == "destroyed"


@pytest.mark.parametrize(
    "params",
    [{"timeout": 61}, {"timeout": -1}, {"timeout": "soon"}, {"state": "exploded"}],
    ids=["over-60", "negative", "not-an-int", "unknown-state"],
)
def test_wait_bad_arguments_are_400(backend: LocalBackend, params: dict[str, object]) -> None:
    # "not-an-int" violates the spec's integer type, so this goes around the spec checker.
    with httpx.Client(transport=backend.transport(), base_url="http://local/v1") as client:
        make_app(client)
        machine = make_machine(client)
        response = client.get(f"/apps/demo/machines/{machine['id']}/wait", params=params)
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)


def test_wait_pinned_to_an_old_version_does_not_match(client: httpx.Client) -> None:
    make_app(client)
    machine = make_machine(client)
    base = f"/apps/demo/machines/{machine['id']}"
    client.post(base, json={"config": {"image": "nginx:2"}})
    old = client.get(
        f"{base}/wait", params={"state": "started", "version": machine["instance_id"], "timeout": 0}
    )
    assert old.status_code == 408
    unknown = client.get(f"{base}/wait", params={"state": "started", "version": "nope"})
    assert unknown.status_code == 400


def test_wait_from_event_id_needs_a_later_event(client: httpx.Client) -> None:
    make_app(client)
    machine = make_machine(client)
    base = f"/apps/demo/machines/{machine['id']}"
    latest = client.get(f"{base}/events", params={"limit": 1}).json()[0]["id"]
    params = {"state": "started", "from_event_id": latest, "timeout": 0}
    assert client.get(f"{base}/wait", params=params).status_code == 408
    client.post(f"{base}/restart")
    assert client.get(f"{base}/wait", params=params).status_code == 200


def test_wait_does_not_spin(backend: LocalBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wait with nothing due re-reads the database only on its bounded re-check interval."""
    with checked_client(backend.transport()) as client:
        make_app(client)
        machine = make_machine(client, skip_launch=True)
        store = backend.core.settings.store
        reads = 0
        original = store.transaction

        def counting(*args: object, **kwargs: bool) -> object:
            nonlocal reads
            reads += 1
            return original(**kwargs)

        monkeypatch.setattr(store, "transaction", counting)
        response = client.get(
            f"/apps/demo/machines/{machine['id']}/wait", params={"state": "started", "timeout": 1}
        )
    assert response.status_code == 408
    assert 2 <= reads <= 4  # 1 s of waiting, a re-check every 0.5 s
