"""Which machines an address and port route to, from the records alone (flyk/local/routing.py),
as the library (`LocalBackend.routes`) and the admin API (`GET /_flyk/routes`) answer it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from flyk.local import LocalBackend
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


def service(port: int, internal: int, protocol: str = "tcp") -> dict[str, Any]:
    return {"protocol": protocol, "internal_port": internal, "ports": [{"port": port}]}


def machine(api: httpx.Client, *services: dict[str, Any], **metadata: str) -> str:
    config = {"image": "nginx:1.27", "services": list(services), "metadata": metadata}
    return str(make_machine(api, "demo", config=config)["id"])


def assign(api: httpx.Client, kind: str, service_name: str = "") -> str:
    body = {"type": kind, **({"service_name": service_name} if service_name else {})}
    response = api.post("/apps/demo/ip_assignments", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["ip"])


def routed(admin: httpx.Client, address: str, port: int, protocol: str = "tcp") -> dict[str, int]:
    answer = admin.get(
        "/_flyk/routes", params={"address": address, "port": port, "protocol": protocol}
    )
    assert answer.status_code == 200, answer.text
    return {m["machine_id"]: m["internal_port"] for m in answer.json()["machines"]}


def test_a_service_name_routes_only_to_the_machines_that_joined_it(
    served: tuple[httpx.Client, httpx.Client], backend: LocalBackend
) -> None:
    admin, api = served
    make_app(api)
    web = assign(api, "private_v6", "web")
    other = assign(api, "private_v6", "other")
    a = machine(api, service(80, 8080), flyk_service_web="80/tcp=8080")
    b = machine(api, service(80, 8080), service(80, 9090), flyk_service_web="80/tcp=8080",
                flyk_service_other="80/tcp=9090")  # fmt: skip
    machine(api, service(80, 8080))  # serves port 80 but joined no service

    assert routed(admin, web, 80) == {a: 8080, b: 8080}
    assert routed(admin, other, 80) == {b: 9090}  # same port, its own machines and port
    assert routed(admin, web, 8080) == {}
    assert routed(admin, web, 80, "udp") == {}
    library = backend.routes(web, 80)
    assert (library["app"], library["service_name"]) == ("demo", "web")
    assert {m["machine_id"] for m in library["machines"]} == {a, b}


def test_an_address_without_a_service_name_routes_to_every_machine_serving_the_port(
    served: tuple[httpx.Client, httpx.Client],
) -> None:
    admin, api = served
    make_app(api)
    address = assign(api, "v6")
    a = machine(api, service(443, 8443))
    machine(api, service(80, 8080))
    assert routed(admin, address, 443) == {a: 8443}
    assert routed(admin, "fdaa:0:1::99", 443) == {}  # nobody's address


def test_stopped_machines_take_no_traffic(served: tuple[httpx.Client, httpx.Client]) -> None:
    admin, api = served
    make_app(api)
    address = assign(api, "private_v6", "web")
    a = machine(api, service(80, 8080), flyk_service_web="80/tcp=8080")
    api.post(f"/apps/demo/machines/{a}/stop").raise_for_status()
    assert routed(admin, address, 80) == {}


def test_shared_v4_is_one_per_service_name(served: tuple[httpx.Client, httpx.Client]) -> None:
    _, api = served
    make_app(api)
    first = assign(api, "shared_v4", "web")
    assert assign(api, "shared_v4", "web") == first
    assign(api, "shared_v4", "api")
    listed = api.get("/apps/demo/ip_assignments").json()["ips"]
    assert sorted(ip["service_name"] for ip in listed) == ["api", "web"]


def test_bad_route_queries_are_400(served: tuple[httpx.Client, httpx.Client]) -> None:
    admin, _ = served
    assert admin.get("/_flyk/routes", params={"port": 80}).status_code == 400
    assert admin.get("/_flyk/routes", params={"address": "x", "port": "http"}).status_code == 400
    query = {"address": "x", "port": 80, "protocol": "sctp"}
    assert admin.get("/_flyk/routes", params=query).status_code == 400
