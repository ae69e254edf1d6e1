"""The first slice end to end: apps, machines, volumes, secrets, IPs, regions, token."""

from __future__ import annotations

import httpx

from tests.local.conftest import make_app, make_machine


def test_app_lifecycle(any_client: httpx.Client) -> None:
    make_app(any_client, "demo")
    listed = any_client.get("/apps", params={"org_slug": "personal"}).json()
    assert [a["name"] for a in listed["apps"]] == ["demo"]
    assert listed["total_apps"] == 1
    app = any_client.get("/apps/demo").json()
    assert app["organization"]["slug"] == "personal"
    assert any_client.delete("/apps/demo").status_code == 202
    assert any_client.get("/apps/demo").status_code == 404


def test_machine_create_start_stop_destroy(any_client: httpx.Client) -> None:
    make_app(any_client)
    machine = make_machine(any_client)
    assert machine["state"] == "started"
    assert len(machine["id"]) == 14
    int(machine["id"], 16)
    assert machine["private_ip"].startswith("fdaa:")
    base = f"/apps/demo/machines/{machine['id']}"
    assert any_client.post(f"{base}/stop").status_code == 200
    assert any_client.get(base).json()["state"] == "stopped"
    assert any_client.post(f"{base}/start").status_code == 200
    waited = any_client.get(f"{base}/wait", params={"state": "started", "timeout": 5})
    assert waited.json()["state"] == "started"
    assert any_client.delete(base).status_code == 412  # running: needs force
    assert any_client.delete(base, params={"force": "true"}).status_code == 200
    assert any_client.get(base).json()["state"] == "destroyed"
    assert any_client.get("/apps/demo/machines").json() == []
    deleted = any_client.get("/apps/demo/machines", params={"include_deleted": "true"}).json()
    assert [m["id"] for m in deleted] == [machine["id"]]


def test_volumes_secrets_ips_regions_token(any_client: httpx.Client) -> None:
    make_app(any_client)
    volume = any_client.post(
        "/apps/demo/volumes", json={"name": "data", "region": "lhr", "size_gb": 1}
    ).json()
    assert volume["id"].startswith("vol_") and volume["region"] == "lhr"
    secrets = any_client.post("/apps/demo/secrets", json={"values": {"A": "1", "B": "2"}}).json()
    assert secrets["version"] == 1
    assert {s["name"] for s in secrets["secrets"]} == {"A", "B"}
    ip = any_client.post("/apps/demo/ip_assignments", json={"type": "v6"}).json()
    assert ip["shared"] is False
    regions = any_client.get("/platform/regions").json()
    assert len(regions["regions"]) == 18
    token = any_client.get("/tokens/current").json()
    assert token["tokens"][0]["org_slug"] == "personal"
