"""Metadata: read, replace, merge, one key; 412 on a stale machine_version."""

from __future__ import annotations

import httpx

from tests.local.conftest import make_app, make_machine


def test_metadata_round_trip(any_client: httpx.Client) -> None:
    make_app(any_client)
    machine = make_machine(any_client, config={"image": "x", "metadata": {"role": "web"}})
    base = f"/apps/demo/machines/{machine['id']}/metadata"
    assert any_client.get(base).json() == {"role": "web"}
    assert any_client.post(f"{base}/tier", json={"value": "gold"}).status_code == 204
    assert any_client.get(f"{base}/tier").json() == {"value": "gold"}
    assert any_client.patch(base, json={"metadata": {"zone": "a", "role": None}}).status_code == 204
    assert any_client.get(base).json() == {"tier": "gold", "zone": "a"}
    assert any_client.put(base, json={"metadata": {"only": "this"}}).status_code == 204
    assert any_client.get(base).json() == {"only": "this"}
    assert any_client.delete(f"{base}/only").status_code == 204
    assert any_client.get(f"{base}/only").status_code == 404
    machine_now = any_client.get(f"/apps/demo/machines/{machine['id']}").json()
    assert machine_now["instance_id"] == machine["instance_id"]  # live edit, no new version


def test_stale_machine_version_is_412(client: httpx.Client) -> None:
    make_app(client)
    machine = make_machine(client)
    base = f"/apps/demo/machines/{machine['id']}"
    current = {"metadata": {"a": "1"}, "machine_version": machine["instance_id"]}
    assert client.patch(f"{base}/metadata", json=current).status_code == 204
    client.post(base, json={"config": {"image": "y"}})
    stale = client.patch(f"{base}/metadata", json=current)
    assert stale.status_code == 412
    assert "stale" in stale.json()["error"]


def test_list_filters_by_metadata(client: httpx.Client) -> None:
    make_app(client)
    web = make_machine(client, config={"image": "x", "metadata": {"role": "web"}})
    make_machine(client, config={"image": "x", "metadata": {"role": "db"}})
    listed = client.get("/apps/demo/machines", params={"metadata.role": "web"}).json()
    assert [m["id"] for m in listed] == [web["id"]]
