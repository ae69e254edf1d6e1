"""The rest of what is served: processes, memory, snapshots, org-wide lists, deploy tokens."""

from __future__ import annotations

import httpx

from tests.local.conftest import make_app, make_machine


def test_processes(any_client: httpx.Client) -> None:
    make_app(any_client)
    config = {"image": "x", "init": {"entrypoint": ["/bin/app"], "cmd": ["--port", "80"]}}
    machine = make_machine(any_client, config=config)
    base = f"/apps/demo/machines/{machine['id']}"
    processes = any_client.get(f"{base}/ps", params={"sort_by": "cpu", "order": "desc"}).json()
    assert [(p["pid"], p["command"]) for p in processes] == [(1, "/bin/app --port 80")]
    any_client.post(f"{base}/stop")
    assert any_client.get(f"{base}/ps").status_code == 412
    assert any_client.get(f"{base}/ps", params={"sort_by": "colour"}).status_code == 400


def test_memory_balloon(client: httpx.Client) -> None:
    make_app(client)
    guest = {"cpu_kind": "shared", "cpus": 1, "memory_mb": 1024}
    machine = make_machine(client, config={"image": "x", "guest": guest})
    base = f"/apps/demo/machines/{machine['id']}/memory"
    assert client.get(base).json()["limit_mb"] == 1024
    assert client.put(base, json={"limit_mb": 512}).json()["limit_mb"] == 512
    assert client.get(base).json()["limit_mb"] == 512
    assert client.put(base, json={"limit_mb": 4096}).status_code == 400
    reclaimed = client.post(f"{base}/reclaim", json={"amount_mb": 10_000}).json()["actual_mb"]
    assert reclaimed == client.get(base).json()["available_mb"]


def test_snapshots(client: httpx.Client) -> None:
    make_app(client)
    volume = client.post(
        "/apps/demo/volumes", json={"name": "d", "region": "iad", "size_gb": 2}
    ).json()
    base = f"/apps/demo/volumes/{volume['id']}/snapshots"
    assert client.get(base).json() == []
    assert client.post(base).status_code == 200
    snapshots = client.get(base).json()
    assert len(snapshots) == 1 and snapshots[0]["volume_size"] == 2 * 1024**3


def test_org_lists_page_by_cursor(client: httpx.Client) -> None:
    make_app(client, "one")
    make_app(client, "two")
    ids = {make_machine(client, "one")["id"], make_machine(client, "two")["id"]}
    ids.add(make_machine(client, "two")["id"])
    first = client.get("/orgs/personal/machines", params={"limit": 2}).json()
    assert len(first["machines"]) == 2 and first["next_cursor"]
    rest = client.get(
        "/orgs/personal/machines", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert "next_cursor" not in rest
    assert {m["id"] for m in first["machines"] + rest["machines"]} == ids
    assert {m["app_name"] for m in first["machines"] + rest["machines"]} == {"one", "two"}
    client.post("/apps/one/volumes", json={"name": "d", "region": "iad", "size_gb": 1})
    volumes = client.get("/orgs/personal/volumes").json()["volumes"]
    assert [v["app_name"] for v in volumes] == ["one"]
    assert client.get("/orgs/nope/machines").status_code == 404


def test_deploy_token(client: httpx.Client) -> None:
    make_app(client)
    token = client.post("/apps/demo/deploy_token", json={"expiry": "720h"}).json()["token"]
    assert token.startswith("FlyV1 fm2_")
    assert client.post("/apps/demo/deploy_token", json={"expiry": "soon"}).status_code == 400
