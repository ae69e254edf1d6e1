"""Volumes, secrets, IP assignments, orgs and the current token."""

from __future__ import annotations

from pathlib import Path

import httpx

from flyk.local import LocalBackend
from tests.local.conftest import checked_client, make_app, make_machine


def test_volume_crud_and_extend(any_client: httpx.Client) -> None:
    make_app(any_client)
    volume = any_client.post(
        "/apps/demo/volumes", json={"name": "pgdata", "region": "ams", "size_gb": 3}
    ).json()
    base = f"/apps/demo/volumes/{volume['id']}"
    assert [v["id"] for v in any_client.get("/apps/demo/volumes").json()] == [volume["id"]]
    updated = any_client.put(base, json={"snapshot_retention": 10, "auto_backup_enabled": False})
    assert updated.json()["snapshot_retention"] == 10
    assert updated.json()["auto_backup_enabled"] is False
    extended = any_client.put(f"{base}/extend", json={"size_gb": 5}).json()
    assert extended["volume"]["size_gb"] == 5 and extended["needs_restart"] is False
    assert any_client.put(f"{base}/extend", json={"size_gb": 4}).status_code == 400
    assert any_client.delete(base).json()["state"] == "destroyed"
    assert any_client.get(base).status_code == 404
    assert any_client.get("/apps/demo/volumes").json() == []


def test_attached_volume(client: httpx.Client) -> None:
    make_app(client)
    volume = client.post(
        "/apps/demo/volumes", json={"name": "data", "region": "iad", "size_gb": 1}
    ).json()
    config = {"image": "x", "mounts": [{"volume": volume["id"], "path": "/data"}]}
    machine = make_machine(client, config=config)
    base = f"/apps/demo/volumes/{volume['id']}"
    assert client.put(f"{base}/extend", json={"size_gb": 2}).json()["needs_restart"] is True
    assert client.delete(base).status_code == 412
    client.delete(f"/apps/demo/machines/{machine['id']}", params={"force": "true"})
    assert "attached_machine_id" not in client.get(base).json()
    assert client.delete(base).status_code == 200


def test_volume_fork(client: httpx.Client) -> None:
    make_app(client)
    source = client.post(
        "/apps/demo/volumes", json={"name": "data", "region": "sin", "size_gb": 7}
    ).json()
    fork = client.post(
        "/apps/demo/volumes", json={"name": "data", "source_volume_id": source["id"]}
    ).json()
    assert (fork["region"], fork["size_gb"]) == ("sin", 7)


def test_secrets(any_client: httpx.Client) -> None:
    make_app(any_client)
    bulk = any_client.post("/apps/demo/secrets", json={"values": {"A": "1", "B": "2"}}).json()
    assert bulk["version"] == 1
    one = any_client.post("/apps/demo/secrets/C", json={"value": "3"})
    assert one.status_code == 201 and one.json()["version"] == 2
    listed = any_client.get("/apps/demo/secrets").json()["secrets"]
    assert [s["name"] for s in listed] == ["A", "B", "C"]
    assert all("value" not in s for s in listed)
    shown = any_client.get("/apps/demo/secrets/A", params={"show_secrets": "true"}).json()
    assert shown["value"] == "1"
    removed = any_client.post("/apps/demo/secrets", json={"values": {"A": None}}).json()
    assert removed["version"] == 3 and [s["name"] for s in removed["secrets"]] == ["B", "C"]
    assert any_client.delete("/apps/demo/secrets/B").json()["version"] == 4
    assert any_client.delete("/apps/demo/secrets/B").status_code == 404
    assert any_client.get("/apps/demo/secrets/B").status_code == 404


def test_min_secrets_version(client: httpx.Client) -> None:
    make_app(client)
    version = client.post("/apps/demo/secrets", json={"values": {"A": "1"}}).json()["version"]
    make_machine(client, min_secrets_version=version)
    ahead = client.post(
        "/apps/demo/machines", json={"config": {"image": "x"}, "min_secrets_version": version + 1}
    )
    assert ahead.status_code == 400


def test_ip_assignments(any_client: httpx.Client) -> None:
    make_app(any_client)
    v6 = any_client.post("/apps/demo/ip_assignments", json={"type": "v6"}).json()
    v4 = any_client.post("/apps/demo/ip_assignments", json={"type": "v4", "region": "iad"}).json()
    shared = any_client.post("/apps/demo/ip_assignments", json={"type": "shared_v4"}).json()
    again = any_client.post("/apps/demo/ip_assignments", json={"type": "shared_v4"}).json()
    private = any_client.post(
        "/apps/demo/ip_assignments", json={"type": "private_v6", "service_name": "api"}
    ).json()
    assert shared["shared"] is True and again["ip"] == shared["ip"]
    assert private["ip"].startswith("fdaa:") and private["service_name"] == "api"
    assert v4["region"] == "iad" and ":" in v6["ip"]
    listed = any_client.get("/apps/demo/ip_assignments").json()["ips"]
    assert len(listed) == 4
    assert any_client.delete(f"/apps/demo/ip_assignments/{v6['ip']}").status_code == 204
    assert any_client.delete(f"/apps/demo/ip_assignments/{v6['ip']}").status_code == 404
    bad = any_client.post("/apps/demo/ip_assignments", json={"type": "v5"})
    assert bad.status_code == 400


def test_orgs_and_token(db_path: Path) -> None:
    backend = LocalBackend(db_path, orgs={"acme": "Acme Corp"})
    with checked_client(backend.transport()) as client:
        make_app(client, "web", org="acme")
        tokens = client.get("/tokens/current").json()["tokens"]
        assert {t["org_slug"] for t in tokens} == {"personal", "acme"}
        acme = next(t for t in tokens if t["org_slug"] == "acme")
        assert acme["organization"] == "Acme Corp" and acme["apps"] == ["web"]
        assert client.get("/apps", params={"org_slug": "acme"}).json()["total_apps"] == 1
        unknown = client.get("/apps", params={"org_slug": "nope"})
        assert unknown.status_code == 404 and "nope" in unknown.json()["error"]
        create = client.post("/apps", json={"name": "x", "org_slug": "nope"})
        assert create.status_code == 404


def test_app_name_taken(client: httpx.Client) -> None:
    make_app(client)
    taken = client.post("/apps", json={"name": "demo", "org_slug": "personal"})
    assert taken.status_code == 422 and taken.json()["status"] == "name_taken"


def test_app_counts_and_delete_cascade(client: httpx.Client) -> None:
    make_app(client)
    make_machine(client)
    client.post("/apps/demo/volumes", json={"name": "d", "region": "iad", "size_gb": 1})
    app = client.get("/apps/demo").json()
    assert (app["machine_count"], app["volume_count"], app["status"]) == (1, 1, "deployed")
    client.delete("/apps/demo")
    make_app(client)
    assert client.get("/apps/demo/machines").json() == []
    assert client.get("/apps/demo/volumes").json() == []
