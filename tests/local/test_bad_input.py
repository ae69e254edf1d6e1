"""Bad input gets a 4xx with `{"error": "..."}`: never a 500, never a traceback.

These requests break the spec on purpose, so they go around the spec checker.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from flyk.local import LocalBackend
from tests.local.conftest import TARGETS, make_app, make_machine
from tests.spec_check import SpecCheckingTransport

MiB = 1024 * 1024


@pytest.fixture(params=TARGETS)
def raw(request: pytest.FixtureRequest, backend: LocalBackend) -> Iterator[httpx.Client]:
    """Requests are not checked (they are bad on purpose); responses are."""
    if request.param == "in-process":
        inner: httpx.BaseTransport = backend.transport()
        with responses_checked(inner, "http://local") as c:
            yield c
        return
    with backend.serve() as served, responses_checked(httpx.HTTPTransport(), served.url) as c:
        yield c


def responses_checked(inner: httpx.BaseTransport, base_url: str) -> httpx.Client:
    transport = SpecCheckingTransport(inner, strict_errors=True, check_requests=False)
    return httpx.Client(transport=transport, base_url=f"{base_url}/v1")


@pytest.fixture
def machine_base(raw: httpx.Client) -> str:
    make_app(raw)
    return f"/apps/demo/machines/{make_machine(raw)['id']}"


def assert_error(response: httpx.Response, status: int | None = None) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if status is not None:
        assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body, dict) and isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in response.text
    return body


JSON = {"content-type": "application/json"}

APP_CASES: list[tuple[str, bytes | dict[str, Any], int]] = [
    ("malformed-json", b'{"name": "x", ', 400),
    ("not-an-object", b'["x"]', 400),
    ("not-utf8", b"\xff\xfe{}", 400),
    ("empty", b"", 400),
    ("unknown-field", {"name": "x", "org_slug": "personal", "colour": "red"}, 400),
    ("wrong-type", {"name": 7, "org_slug": "personal"}, 400),
    ("uppercase-name", {"name": "MyApp", "org_slug": "personal"}, 400),
    ("leading-dash", {"name": "-app", "org_slug": "personal"}, 400),
    ("underscore", {"name": "my_app", "org_slug": "personal"}, 400),
    ("trailing-dash", {"name": "app-", "org_slug": "personal"}, 400),
    ("too-long", {"name": "a" * 64, "org_slug": "personal"}, 400),
    ("missing-org", {"name": "app"}, 400),
    ("unknown-org", {"name": "app", "org_slug": "nope"}, 404),
]


@pytest.mark.parametrize(
    ("body", "status"), [c[1:] for c in APP_CASES], ids=[c[0] for c in APP_CASES]
)
def test_bad_app_create(raw: httpx.Client, body: bytes | dict[str, Any], status: int) -> None:
    if isinstance(body, bytes):
        response = raw.post("/apps", content=body, headers=JSON)
    else:
        response = raw.post("/apps", json=body)
    assert_error(response, status)


GUEST = {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256}
MACHINE_CASES: list[tuple[str, dict[str, Any], int]] = [
    ("no-config", {}, 400),
    ("config-not-object", {"config": "nginx"}, 400),
    ("no-image", {"config": {}}, 400),
    ("unknown-config-field", {"config": {"image": "x", "imagee": "y"}}, 400),
    ("unknown-top-field", {"config": {"image": "x"}, "regoin": "iad"}, 400),
    ("bad-name", {"config": {"image": "x"}, "name": "Has Spaces"}, 400),
    ("unknown-region", {"config": {"image": "x"}, "region": "xyz"}, 400),
    ("empty-region-part", {"config": {"image": "x"}, "region": "iad,"}, 400),
    (
        "memory-not-256-multiple",
        {"config": {"image": "x", "guest": {**GUEST, "memory_mb": 300}}},
        400,
    ),
    ("too-little-memory", {"config": {"image": "x", "guest": {**GUEST, "cpus": 4}}}, 400),
    ("bad-cpu-kind", {"config": {"image": "x", "guest": {**GUEST, "cpu_kind": "gpu"}}}, 400),
    ("bad-cpus", {"config": {"image": "x", "guest": {**GUEST, "cpus": 3}}}, 400),
    (
        "shared-cpus-beyond-8x",
        {"config": {"image": "x", "guest": {"cpu_kind": "shared", "cpus": 16, "memory_mb": 4096}}},
        400,
    ),
    ("bad-policy", {"config": {"image": "x", "restart": {"policy": "sometimes"}}}, 400),
    ("env-not-strings", {"config": {"image": "x", "env": {"A": 1}}}, 400),
    ("two-mounts", {"config": {"image": "x", "mounts": [{"volume": "a", "path": "/a"}] * 2}}, 400),
    ("relative-mount", {"config": {"image": "x", "mounts": [{"volume": "a", "path": "a"}]}}, 400),
    (
        "unknown-volume",
        {"config": {"image": "x", "mounts": [{"volume": "vol_x", "path": "/a"}]}},
        404,
    ),
    # nested config of the wrong type (the spec's fly.MachineConfig), refused before it is
    # stored: a stored one would break every later read of the app's machines
    ("init-entrypoint-number", {"config": {"image": "x", "init": {"entrypoint": 5}}}, 400),
    ("init-cmd-string", {"config": {"image": "x", "init": {"cmd": "notalist"}}}, 400),
    ("init-cmd-numbers", {"config": {"image": "x", "init": {"cmd": [1, 2]}}}, 400),
    ("init-not-object", {"config": {"image": "x", "init": ["sh"]}}, 400),
    ("port-string", {"config": {"image": "x", "services": [{"internal_port": "x"}]}}, 400),
    ("service-not-object", {"config": {"image": "x", "services": ["web"]}}, 400),
    (
        "ports-handlers-string",
        {"config": {"image": "x", "services": [{"ports": [{"handlers": "http"}]}]}},
        400,
    ),
    ("autostop-unknown", {"config": {"image": "x", "services": [{"autostop": "nap"}]}}, 400),
    ("stop-timeout-not-duration", {"config": {"image": "x", "stop_config": {"timeout": "x"}}}, 400),
    ("stop-signal-unknown", {"config": {"image": "x", "stop_config": {"signal": "HUP"}}}, 400),
    ("container-cmd-string", {"config": {"image": "x", "containers": [{"cmd": "str"}]}}, 400),
    ("container-env-numbers", {"config": {"image": "x", "containers": [{"env": {"A": 1}}]}}, 400),
    ("check-port-string", {"config": {"image": "x", "checks": {"c": {"port": "80"}}}}, 400),
    ("check-interval-bad", {"config": {"image": "x", "checks": {"c": {"interval": "often"}}}}, 400),
    ("schedule-unknown", {"config": {"image": "x", "schedule": "sometimes"}}, 400),
    ("auto-destroy-string", {"config": {"image": "x", "auto_destroy": "yes"}}, 400),
    ("dns-nameservers-string", {"config": {"image": "x", "dns": {"nameservers": "1.1.1.1"}}}, 400),
    ("bool-as-int", {"config": {"image": "x"}, "lease_ttl": True}, 400),
    ("negative-lease", {"config": {"image": "x"}, "lease_ttl": -1}, 400),
]


@pytest.mark.parametrize(
    ("body", "status"), [c[1:] for c in MACHINE_CASES], ids=[c[0] for c in MACHINE_CASES]
)
def test_bad_machine_create(raw: httpx.Client, body: dict[str, Any], status: int) -> None:
    make_app(raw)
    assert_error(raw.post("/apps/demo/machines", json=body), status)
    assert raw.get("/apps/demo/machines").json() == []


@pytest.mark.parametrize(
    ("kind", "cpus", "memory_mb"),
    [("shared", 6, 1536), ("performance", 6, 12288), ("performance", 10, 20480)],
)
def test_every_fly_preset_cpu_count_is_accepted(
    raw: httpx.Client, kind: str, cpus: int, memory_mb: int
) -> None:
    """Fly's presets include shared-cpu-6x and performance-6x…14x (fly-go machine_types.go)."""
    make_app(raw)
    guest = {"cpu_kind": kind, "cpus": cpus, "memory_mb": memory_mb}
    response = raw.post("/apps/demo/machines", json={"config": {"image": "x", "guest": guest}})
    assert response.status_code == 200, response.text
    assert response.json()["config"]["guest"]["cpus"] == cpus


def test_the_error_names_the_nested_field(raw: httpx.Client) -> None:
    make_app(raw)
    config = {"image": "x", "services": [{"internal_port": 80}, {"internal_port": "x"}]}
    body = assert_error(raw.post("/apps/demo/machines", json={"config": config}), 400)
    assert "config.services[1].internal_port" in body["error"]


def test_well_typed_nested_config_is_accepted(raw: httpx.Client) -> None:
    make_app(raw)
    config = {
        "image": "x",
        "init": {"cmd": ["nginx", "-g", "daemon off;"], "tty": False},
        "services": [{"internal_port": 80, "autostop": "off", "ports": [{"port": 443}]}],
        "stop_config": {"signal": "SIGTERM", "timeout": "30s"},
        "checks": {"up": {"type": "tcp", "port": 80, "interval": "15s", "timeout": "1m2s"}},
        "containers": [{"name": "app", "cmd": ["run"], "env": {"A": "1"}}],
        "schedule": "daily",
    }
    response = raw.post("/apps/demo/machines", json={"config": config})
    assert response.status_code == 200, response.text
    assert response.json()["config"]["init"]["cmd"] == ["nginx", "-g", "daemon off;"]


def test_a_bad_nested_update_is_refused_and_the_machine_kept(
    raw: httpx.Client, machine_base: str
) -> None:
    before = raw.get(machine_base).json()
    config = {**before["config"], "init": {"entrypoint": 5}}
    assert_error(raw.post(machine_base, json={"config": config}), 400)
    assert raw.get(machine_base).json()["config"] == before["config"]


def test_oversized_body_is_413(raw: httpx.Client) -> None:
    make_app(raw)
    huge = {"config": {"image": "x", "env": {"BIG": "x" * (MiB + 10)}}}
    assert_error(raw.post("/apps/demo/machines", json=huge), 413)
    assert raw.get("/apps/demo/machines").json() == []


ACTION_CASES: list[tuple[str, str, str, dict[str, Any] | None, int]] = [
    ("stop-bad-signal", "POST", "/stop", {"signal": "SIGFOO"}, 400),
    ("stop-bad-timeout", "POST", "/stop", {"timeout": "soon"}, 400),
    ("stop-unknown-field", "POST", "/stop", {"signal": "SIGTERM", "force": True}, 400),
    ("signal-missing", "POST", "/signal", {}, 400),
    ("signal-number-unknown", "POST", "/signal", {"signal": 99}, 400),
    ("signal-number-bool", "POST", "/signal", {"signal": True}, 400),
    ("exec-empty", "POST", "/exec", {"command": []}, 400),
    ("exec-not-strings", "POST", "/exec", {"command": ["ls", 1]}, 400),
    ("lease-ttl-string", "POST", "/lease", {"ttl": "30"}, 400),
    ("metadata-not-object", "PATCH", "/metadata", {"metadata": ["a"]}, 400),
    ("metadata-value-int", "PATCH", "/metadata", {"metadata": {"a": 1}}, 400),
    ("metadata-bad-key", "POST", "/metadata/bad%20key", {"value": "x"}, 400),
    ("update-no-config", "POST", "", {"name": "other"}, 400),
]


@pytest.mark.parametrize(
    ("method", "suffix", "body", "status"),
    [c[1:] for c in ACTION_CASES],
    ids=[c[0] for c in ACTION_CASES],
)
def test_bad_machine_requests(
    raw: httpx.Client,
    machine_base: str,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
    status: int,
) -> None:
    assert_error(raw.request(method, machine_base + suffix, json=body), status)


QUERY_CASES: list[tuple[str, str, int]] = [
    ("list-bad-bool", "/apps/demo/machines?include_deleted=maybe", 400),
    ("list-bad-state", "/apps/demo/machines?state=sleeping", 400),
    ("events-bad-limit", "/apps/demo/machines/{id}/events?limit=ten", 400),
    ("apps-no-org", "/apps", 400),
    ("regions-bad-size", "/platform/regions?size=huge", 400),
    ("unknown-app", "/apps/nope/machines", 404),
    ("unknown-machine", "/apps/demo/machines/00000000000000", 404),
    ("unknown-route", "/apps/demo/bananas", 404),
    ("outside-v1", "/../nope", 404),
]


@pytest.mark.parametrize(
    ("url", "status"), [c[1:] for c in QUERY_CASES], ids=[c[0] for c in QUERY_CASES]
)
def test_bad_queries(raw: httpx.Client, machine_base: str, url: str, status: int) -> None:
    machine_id = machine_base.rsplit("/", 1)[-1]
    assert_error(raw.get(url.replace("{id}", machine_id)), status)


def test_wrong_method_is_405_with_the_methods_the_path_takes(raw: httpx.Client) -> None:
    make_app(raw)
    response = raw.patch("/apps/demo")
    assert_error(response, 405)
    assert response.headers["allow"] == "GET, HEAD, DELETE"
    assert "allowed: GET, HEAD, DELETE" in response.json()["error"]
    metadata = raw.request("TRACE", "/apps/demo/machines/x/metadata")
    assert metadata.headers["allow"] == "GET, HEAD, PUT, PATCH"


def test_unserved_operation_is_501(raw: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from flyk.local import routes

    monkeypatch.delitem(routes.HANDLERS, "App_Certificates_list")
    make_app(raw)
    response = raw.get("/apps/demo/certificates")
    assert response.status_code == 501
    assert "App_Certificates_list" in response.json()["error"]


def test_volume_bad_input(raw: httpx.Client) -> None:
    make_app(raw)
    assert_error(raw.post("/apps/demo/volumes", json={"name": "Bad-Name", "region": "iad"}), 400)
    assert_error(raw.post("/apps/demo/volumes", json={"name": "ok", "region": "mars"}), 400)
    assert_error(raw.post("/apps/demo/volumes", json={"name": "ok"}), 400)
    assert_error(
        raw.post("/apps/demo/volumes", json={"name": "ok", "region": "iad", "size_gb": 0}), 400
    )
    assert_error(raw.get("/apps/demo/volumes/vol_nope"), 404)


def test_secret_bad_input(raw: httpx.Client) -> None:
    make_app(raw)
    assert_error(raw.post("/apps/demo/secrets", json={"values": {"1BAD": "x"}}), 400)
    assert_error(raw.post("/apps/demo/secrets", json={"values": {"A": 5}}), 400)
    assert_error(raw.post("/apps/demo/secrets", json={"values": "A=1"}), 400)
    assert_error(raw.post("/apps/demo/secrets/A", json={}), 400)


LONE = "\ud800"  # a lone surrogate: valid JSON escape, not valid Unicode
SURROGATE_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("app-org", "/apps", {"name": "x", "org_slug": LONE}),
    ("app-network", "/apps", {"name": "x", "org_slug": "personal", "network": LONE}),
    ("placements-org", "/platform/placements", {"org_slug": LONE, "compute": {}}),
    ("machine-image", "/apps/demo/machines", {"config": {"image": LONE}}),
    ("secrets-set", "/apps/demo/secrets", {"values": {"A": LONE}}),
    ("secret-set", "/apps/demo/secrets/A", {"value": LONE}),
    ("in-a-key", "/apps/demo/machines", {"config": {"image": "x", "env": {LONE: "1"}}}),
]


@pytest.mark.parametrize(
    ("url", "body"), [c[1:] for c in SURROGATE_CASES], ids=[c[0] for c in SURROGATE_CASES]
)
def test_lone_surrogates_are_400(raw: httpx.Client, url: str, body: dict[str, Any]) -> None:
    make_app(raw)
    # json.dumps escapes it as \ud800 (ASCII), which is how a client can send one at all
    response = raw.post(url, content=json.dumps(body).encode(), headers=JSON)
    assert "surrogate" in assert_error(response, 400)["error"]


def test_deeply_nested_json_is_400(raw: httpx.Client) -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    assert_error(raw.post("/apps", content=deep, headers=JSON), 400)


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/apps/demo/machines", {"config": {"image": "x"}, "lease_ttl": 10**30}),
        ("/apps/demo/machines", {"config": {"image": "x"}, "lease_ttl": 10**9}),
        ("/apps/demo/volumes", {"name": "d", "region": "iad", "snapshot_retention": 10**20}),
        ("/apps/demo/machines", {"config": {"image": "x", "restart": {"max_retries": 10**40}}}),
    ],
    ids=["lease-ttl-overflow", "lease-ttl-too-long", "retention-overflow", "retries-overflow"],
)
def test_huge_numbers_are_400(raw: httpx.Client, url: str, body: dict[str, Any]) -> None:
    make_app(raw)
    assert_error(raw.post(url, json=body), 400)


def test_huge_query_numbers_are_400(raw: httpx.Client, machine_base: str) -> None:
    assert_error(raw.get(f"{machine_base}/events", params={"limit": 10**30}), 400)


def test_chunked_body_over_http(backend: LocalBackend) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "demo", '
        yield b'"org_slug": "personal"}'

    with backend.serve() as served, httpx.Client(base_url=f"{served.url}/v1") as client:
        assert client.post("/apps", content=chunks(), headers=JSON).status_code == 201
        assert client.get("/apps/demo").status_code == 200  # the connection is still sane
