"""The admin API under /_flyk/, over real HTTP: reset and every knob."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from flyk.local import LocalBackend, Timing
from tests.local.conftest import checked_client, make_app, make_machine


@pytest.fixture
def served(backend: LocalBackend) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """(admin client at the root, API client under /v1)."""
    with (
        backend.serve() as server,
        httpx.Client(base_url=server.url) as admin,
        checked_client(httpx.HTTPTransport(), server.url) as api,
    ):
        yield admin, api


def test_serve_binds_loopback(backend: LocalBackend) -> None:
    with backend.serve() as server:
        assert server.url.startswith("http://127.0.0.1:")


def test_reset(served: tuple[httpx.Client, httpx.Client]) -> None:
    admin, api = served
    make_app(api)
    assert admin.post("/_flyk/reset").json() == {"ok": True}
    assert api.get("/apps/demo").status_code == 404


def test_timing(backend: LocalBackend, served: tuple[httpx.Client, httpx.Client]) -> None:
    admin, _ = served
    assert admin.put("/_flyk/timing", json={"preset": "realistic"}).json()["boot"] == 1.0
    assert backend.timing == Timing.realistic()
    assert admin.put("/_flyk/timing", json={"boot": 0.25}).json()["boot"] == 0.25
    assert admin.get("/_flyk/timing").json()["stop"] == Timing.realistic().stop
    assert admin.put("/_flyk/timing", json={"boot": -1}).status_code == 400
    assert admin.put("/_flyk/timing", json={"warp": 1}).status_code == 400


def test_capacity(served: tuple[httpx.Client, httpx.Client]) -> None:
    admin, api = served
    make_app(api)
    set_ = admin.put("/_flyk/capacity", json={"regions": {"iad": 0}}).json()
    assert set_["regions"] == {"iad": 0}
    full = api.post("/apps/demo/machines", json={"config": {"image": "x"}, "region": "iad"})
    assert full.json()["status"] == "insufficient_capacity"
    assert admin.put("/_flyk/capacity", json={"regions": {"mars": 1}}).status_code == 400


def test_volume_capacity(served: tuple[httpx.Client, httpx.Client]) -> None:
    admin, api = served
    make_app(api)
    set_ = admin.put("/_flyk/capacity", json={"volume_regions": {"fra": 2}}).json()
    assert set_["volume_regions"] == {"fra": 2}
    volume = {"name": "data", "region": "fra", "size_gb": 3}
    assert api.post("/apps/demo/volumes", json=volume).status_code == 400
    assert admin.put("/_flyk/capacity", json={"default_volume_gb": 0}).status_code == 200
    assert api.post("/apps/demo/volumes", json={**volume, "region": "iad"}).status_code == 400
    assert admin.put("/_flyk/capacity", json={"volume_regions": {"fra": -1}}).status_code == 400
    assert admin.put("/_flyk/capacity", json={"volume_regions": {"mars": 1}}).status_code == 400


def test_rate_limits(served: tuple[httpx.Client, httpx.Client]) -> None:
    admin, api = served
    make_app(api)
    machine = make_machine(api)["id"]
    assert admin.put("/_flyk/rate_limits", json={"enabled": True}).json()["enabled"] is True
    statuses = [api.post(f"/apps/demo/machines/{machine}/cordon").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert admin.put("/_flyk/rate_limits", json={"enabled": "yes"}).status_code == 400


def test_faults(served: tuple[httpx.Client, httpx.Client]) -> None:
    admin, api = served
    added = admin.post("/_flyk/faults", json={"kind": "server_error", "status": 503, "times": 1})
    assert added.status_code == 201
    assert len(admin.get("/_flyk/faults").json()["faults"]) == 1
    assert api.get("/apps", params={"org_slug": "personal"}).status_code == 503
    assert admin.get("/_flyk/faults").json()["faults"] == []
    admin.post("/_flyk/faults", json={"kind": "rate_limit", "times": None})
    assert admin.delete("/_flyk/faults").json() == {"faults": []}
    assert admin.post("/_flyk/faults", json={"kind": "meteor"}).status_code == 400
    assert admin.post("/_flyk/faults", json={"kind": "latency", "bogus": 1}).status_code == 400


def test_orgs(served: tuple[httpx.Client, httpx.Client]) -> None:
    admin, api = served
    assert admin.post("/_flyk/orgs", json={"slug": "acme", "name": "Acme"}).status_code == 201
    assert {o["slug"] for o in admin.get("/_flyk/orgs").json()["orgs"]} == {"acme", "personal"}
    make_app(api, "web", org="acme")
    assert admin.post("/_flyk/orgs", json={"slug": "Bad Slug"}).status_code == 400


def test_coverage_and_unknown_admin_routes(served: tuple[httpx.Client, httpx.Client]) -> None:
    admin, _ = served
    operations = admin.get("/_flyk/coverage").json()["operations"]
    assert len(operations) == 76
    assert all(op["served"] for op in operations)
    assert admin.get("/_flyk/nope").status_code == 404
    assert admin.get("/_flyk/reset").status_code == 405
    assert admin.get("/elsewhere").status_code == 404


def test_serve_on_ipv6_loopback(backend: LocalBackend) -> None:
    try:
        server = backend.serve(host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with server, httpx.Client(base_url=f"{server.url}/v1") as client:
        assert server.url.startswith("http://[::1]:")
        assert client.get("/platform/regions").status_code == 200


def test_import_is_light() -> None:
    """`import flyk.local` loads neither httpx nor the HTTP server nor platformdirs."""
    import subprocess
    import sys

    code = (
        "import sys, flyk.local; "
        "print(sorted(m for m in ('httpx', 'http.server', 'platformdirs') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
