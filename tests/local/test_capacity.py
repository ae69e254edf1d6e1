"""Regions and capacity: fail fast with the API's body and create nothing; placement."""

from __future__ import annotations

import httpx

from flyk.local import LocalBackend
from tests.local.conftest import make_app, make_machine

SMALL = {"image": "x", "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 512}}


def test_full_region_fails_fast_and_creates_nothing(
    backend: LocalBackend, client: httpx.Client
) -> None:
    make_app(client)
    backend.capacity.set("iad", 512)
    make_machine(client, config=SMALL, region="iad")
    response = client.post("/apps/demo/machines", json={"config": SMALL, "region": "iad"})
    assert response.status_code == 412
    body = response.json()
    assert body["status"] == "insufficient_capacity"
    assert "insufficient" in body["error"]
    assert len(client.get("/apps/demo/machines").json()) == 1


def test_region_expression_falls_back(backend: LocalBackend, client: httpx.Client) -> None:
    make_app(client)
    backend.capacity.set("lhr", 0)
    machine = make_machine(client, config=SMALL, region="lhr,ams")
    assert machine["region"] == "ams"
    in_eu = make_machine(client, config=SMALL, region="lhr,eu")
    assert in_eu["region"] in {"ams", "arn", "cdg", "fra"}


def test_destroyed_machines_free_capacity(backend: LocalBackend, client: httpx.Client) -> None:
    make_app(client)
    backend.capacity.set("iad", 512)
    machine = make_machine(client, config=SMALL, region="iad")
    client.delete(f"/apps/demo/machines/{machine['id']}", params={"force": "true"})
    make_machine(client, config=SMALL, region="iad")


def test_unknown_region_is_400(client: httpx.Client) -> None:
    make_app(client)
    response = client.post("/apps/demo/machines", json={"config": SMALL, "region": "mars"})
    assert response.status_code == 400
    assert "mars" in response.json()["error"]


def test_default_region_is_nearest(client: httpx.Client) -> None:
    make_app(client)
    assert make_machine(client)["region"] == client.get("/platform/regions").json()["nearest"]


def test_growing_a_machine_beyond_capacity_is_409(
    backend: LocalBackend, client: httpx.Client
) -> None:
    make_app(client)
    backend.capacity.set("iad", 1024)
    machine = make_machine(client, config=SMALL, region="iad")
    bigger = {"image": "x", "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 2048}}
    response = client.post(f"/apps/demo/machines/{machine['id']}", json={"config": bigger})
    assert response.status_code == 409
    assert "could not reserve resource" in response.json()["error"]


def test_regions_report_capacity(backend: LocalBackend, client: httpx.Client) -> None:
    backend.capacity.set("syd", 1024)
    regions = client.get("/platform/regions").json()["regions"]
    codes = [r["code"] for r in regions]
    assert len(codes) == 18 and "syd" in codes and "gru" in codes
    syd = next(r for r in regions if r["code"] == "syd")
    assert syd["capacity"] == 4  # shared-cpu-1x: 256 MB each
    assert syd["name"] == "Sydney, Australia" and syd["latitude"] < 0
    sized = client.get("/platform/regions", params={"size": "shared-cpu-4x"}).json()
    assert next(r for r in sized["regions"] if r["code"] == "syd")["capacity"] == 1


def test_placements(backend: LocalBackend, client: httpx.Client) -> None:
    backend.capacity.set("lhr", 4096)
    body = {"org_slug": "personal", "region": "lhr,ams", "count": 3, "compute": SMALL["guest"]}
    placed = client.post("/platform/placements", json=body).json()["regions"]
    assert [(p["region"], p["count"]) for p in placed] == [("lhr", 3), ("ams", 3)]
    unknown = client.post("/platform/placements", json={**body, "org_slug": "nope"})
    assert unknown.status_code == 404


def test_placements_weigh_the_volume_budget(backend: LocalBackend, client: httpx.Client) -> None:
    """A region with machine room but no volume room is no placement for a machine with a
    volume: the volume create would be refused there."""
    backend.capacity.set_volumes("lhr", 5)
    gib = 1024**3
    body = {
        "org_slug": "personal",
        "region": "lhr,ams",
        "count": 3,
        "compute": SMALL["guest"],
        "volume_size_bytes": 2 * gib,
    }
    placed = client.post("/platform/placements", json=body).json()["regions"]
    assert [(p["region"], p["count"]) for p in placed] == [("lhr", 2), ("ams", 3)]
    bigger = client.post("/platform/placements", json={**body, "volume_size_bytes": 6 * gib})
    assert [p["region"] for p in bigger.json()["regions"]] == ["ams"]


def test_volume_pins_the_machine_region(client: httpx.Client) -> None:
    make_app(client)
    volume = client.post(
        "/apps/demo/volumes", json={"name": "data", "region": "fra", "size_gb": 1}
    ).json()
    config = {"image": "x", "mounts": [{"volume": volume["id"], "path": "/data"}]}
    machine = make_machine(client, config=config)
    assert machine["region"] == "fra"
    attached = client.get(f"/apps/demo/volumes/{volume['id']}").json()
    assert attached["attached_machine_id"] == machine["id"]
    in_use = client.post("/apps/demo/machines", json={"config": config})
    assert in_use.status_code == 412
    assert machine["id"] in in_use.json()["error"]
    other = client.post(
        "/apps/demo/volumes", json={"name": "more", "region": "fra", "size_gb": 1}
    ).json()
    config = {"image": "x", "mounts": [{"volume": other["id"], "path": "/data"}]}
    elsewhere = client.post("/apps/demo/machines", json={"config": config, "region": "iad"})
    assert elsewhere.status_code == 400
    assert "fra" in elsewhere.json()["error"]


def test_full_volume_host_is_capacity_error(backend: LocalBackend, client: httpx.Client) -> None:
    make_app(client)
    volume = client.post(
        "/apps/demo/volumes", json={"name": "data", "region": "fra", "size_gb": 1}
    ).json()
    backend.capacity.set("fra", 0)
    config = {"image": "x", "mounts": [{"volume": volume["id"], "path": "/data"}]}
    response = client.post("/apps/demo/machines", json={"config": config})
    assert response.status_code == 412
    assert response.json()["status"] == "insufficient_capacity"
    assert volume["id"] in response.json()["error"]


def test_a_volume_that_does_not_fit_its_region_is_400_no_capacity(
    backend: LocalBackend, client: httpx.Client
) -> None:
    make_app(client)
    backend.capacity.set_volumes("fra", 10)
    first = {"name": "data", "region": "fra", "size_gb": 6}
    assert client.post("/apps/demo/volumes", json=first).status_code == 200
    response = client.post("/apps/demo/volumes", json={**first, "size_gb": 5})
    assert response.status_code == 400
    assert response.json()["error"].startswith("no capacity")  # reference §9's body
    assert "fra" in response.json()["error"]
    assert len(client.get("/apps/demo/volumes").json()) == 1  # nothing was created
    # other regions keep the default budget; a fork counts in its region too
    assert client.post("/apps/demo/volumes", json={**first, "region": "ams"}).status_code == 200
    source = client.get("/apps/demo/volumes").json()[0]["id"]
    fork = {"name": "copy", "source_volume_id": source}
    assert client.post("/apps/demo/volumes", json=fork).status_code == 400


def test_destroyed_volumes_free_their_budget_and_extends_count(
    backend: LocalBackend, client: httpx.Client
) -> None:
    make_app(client)
    backend.capacity.set_volumes("fra", 4)
    volume = client.post(
        "/apps/demo/volumes", json={"name": "data", "region": "fra", "size_gb": 3}
    ).json()
    extend = f"/apps/demo/volumes/{volume['id']}/extend"
    assert client.put(extend, json={"size_gb": 5}).status_code == 400
    assert client.put(extend, json={"size_gb": 4}).status_code == 200
    assert client.delete(f"/apps/demo/volumes/{volume['id']}").status_code == 200
    again = client.post("/apps/demo/volumes", json={"name": "data", "region": "fra", "size_gb": 4})
    assert again.status_code == 200
