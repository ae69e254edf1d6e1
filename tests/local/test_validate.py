"""Lenient where the real API is lenient, strict on request (`FLYK_LOCAL_STRICT`).

The real API decodes JSON into Go structs: a field it does not know is ignored, and older field
names that clients in the wild still send are accepted. The backend does the same by default;
in strict mode (flyk's own suite, tests/conftest.py) an unknown field is a 400 naming it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flyk.local import LocalBackend, Timing
from flyk.local.knobs import STRICT_ENV_VAR, strict_from_env
from tests.local.conftest import make_app, make_machine
from tests.spec_check import SpecCheckingTransport


def _client(backend: LocalBackend, *, check_requests: bool = True) -> httpx.Client:
    """Responses checked against the spec; requests may carry fields the spec does not name."""
    transport = SpecCheckingTransport(
        backend.transport(),
        strict_errors=True,
        strict_request_fields=False,
        check_requests=check_requests,
    )
    return httpx.Client(transport=transport, base_url="http://local/v1")


@pytest.fixture(params=[False, True], ids=["lenient", "strict"])
def mode(request: pytest.FixtureRequest) -> bool:
    strict: bool = request.param
    return strict


@pytest.fixture
def api(tmp_path: Path, mode: bool) -> Iterator[httpx.Client]:
    with _client(LocalBackend(tmp_path / "local.db", Timing.instant(), strict=mode)) as client:
        yield client


MACHINE = {"config": {"image": "nginx"}}
# (case, method, path after the machine's URL or absolute, body, the field named when strict)
UNKNOWN_FIELD_CASES: list[tuple[str, str, str, dict[str, Any], str]] = [
    ("app", "POST", "/apps", {"name": "other", "org_slug": "personal", "colour": "red"}, "colour"),
    ("machine", "POST", "/apps/demo/machines", {**MACHINE, "regoin": "iad"}, "regoin"),
    ("config", "POST", "/apps/demo/machines", {"config": {"image": "x", "imagee": "y"}}, "imagee"),
    ("guest", "POST", "/apps/demo/machines",
     {"config": {"image": "x", "guest": {"cpus": 1, "gpu_count": 2}}}, "gpu_count"),
    ("update", "POST", "", {**MACHINE, "skip_health_checks": True}, "skip_health_checks"),
    ("stop", "POST", "/stop", {"signal": "SIGTERM", "force": True}, "force"),
    ("lease", "POST", "/lease", {"ttl": 30, "owner": "me"}, "owner"),
    ("metadata", "POST", "/metadata/role", {"value": "db", "kind": "x"}, "kind"),
    ("volume", "POST", "/apps/demo/volumes",
     {"name": "data", "region": "iad", "size_gb": 1, "zone": "a"}, "zone"),
    ("secrets", "POST", "/apps/demo/secrets", {"values": {"A": "b"}, "stage": True}, "stage"),
    ("exec", "POST", "/exec", {"command": ["true"], "tty": True}, "tty"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [c[1:] for c in UNKNOWN_FIELD_CASES],
    ids=[c[0] for c in UNKNOWN_FIELD_CASES],
)
def test_unknown_fields_are_ignored_unless_strict(
    api: httpx.Client, mode: bool, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    make_app(api)
    machine = make_machine(api)["id"]
    url = path if path.startswith("/apps") else f"/apps/demo/machines/{machine}{path}"
    response = api.request(method, url, json=body)
    if mode:
        assert response.status_code == 400, response.text
        assert f"unknown field {field!r}" in response.json()["error"]
    else:
        assert response.status_code < 300, response.text


def test_a_config_keeps_only_the_fields_the_spec_names(tmp_path: Path) -> None:
    """What the real API keeps of a config once decoded: unknown fields at any depth are gone,
    not echoed back, so a client never reads back a field as if the API had taken it."""
    backend = LocalBackend(tmp_path / "local.db", Timing.instant(), strict=False)
    with _client(backend) as api:
        make_app(api)
        config = {
            "image": "nginx",
            "colour": "red",
            "guest": {"cpus": 1, "memory_mb": 256, "cpu_kind": "shared", "turbo": True},
            "services": [{"internal_port": 80, "protocol": "tcp", "magic": 1, "ports": [
                {"port": 443, "handlers": ["tls"], "sparkle": "yes"}]}],
            "env": {"KEPT": "yes"},
        }  # fmt: skip
        created = make_machine(api, config=config)
        shown = api.get(f"/apps/demo/machines/{created['id']}").json()
    for machine in (created, shown):
        kept = machine["config"]
        assert "colour" not in kept and "turbo" not in kept["guest"]
        assert kept["services"] == [
            {"internal_port": 80, "protocol": "tcp", "ports": [{"port": 443, "handlers": ["tls"]}]}
        ]
        assert kept["env"] == {"KEPT": "yes"}  # a map's keys are data, not fields


def test_a_wrong_type_is_refused_in_both_modes(tmp_path: Path, mode: bool) -> None:
    backend = LocalBackend(tmp_path / "local.db", Timing.instant(), strict=mode)
    with _client(backend, check_requests=False) as api:
        response = api.post("/apps", json={"name": 5, "org_slug": "personal"})
    assert response.status_code == 400
    assert "field 'name' must be a string" in response.json()["error"]


def test_the_old_app_name_field_creates_the_app(api: httpx.Client) -> None:
    """`app_name`: the API docs' field for the app's name, still sent by clients in the wild."""
    response = api.post("/apps", json={"app_name": "older", "org_slug": "personal"})
    assert response.status_code == 201, response.text
    assert api.get("/apps/older").json()["name"] == "older"
    both = api.post("/apps", json={"name": "newer", "app_name": "ignored", "org_slug": "personal"})
    assert both.status_code == 201
    assert api.get("/apps/ignored").status_code == 404


def test_a_signal_by_number_is_that_signal(tmp_path: Path, mode: bool) -> None:
    """fly-go's Kill sends `{"signal": 9}`: the machine is killed as by SIGKILL."""
    backend = LocalBackend(tmp_path / "local.db", Timing.instant(), strict=mode)
    with _client(backend, check_requests=False) as api:
        make_app(api)
        machine = make_machine(api, config={"image": "x", "restart": {"policy": "no"}})["id"]
        assert api.post(f"/apps/demo/machines/{machine}/signal", json={"signal": 9}).is_success
        shown = api.get(f"/apps/demo/machines/{machine}").json()
    assert shown["state"] == "stopped"
    exit_event = next(e for e in shown["events"] if e["type"] == "exit")["request"]["exit_event"]
    assert (exit_event["exit_code"], exit_event["signal"]) == (137, 9)


def test_the_other_older_forms_are_accepted(api: httpx.Client) -> None:
    """`?ttl=` on lease create and `?kill=` on destroy (fly-go), `?instance_id=` on wait (the
    docs' deprecated name), `cmd` on exec (the spec's deprecated string form)."""
    make_app(api)
    machine = make_machine(api)
    url = f"/apps/demo/machines/{machine['id']}"
    waited = api.get(f"{url}/wait", params={"instance_id": machine["instance_id"], "timeout": 1})
    assert waited.json()["state"] == "started"
    assert api.post(f"{url}/exec", json={"cmd": "echo hi"}).json()["stdout"] == "hi\n"
    lease = api.post(f"{url}/lease", params={"ttl": 5})
    assert lease.status_code == 201
    nonce = {"fly-machine-lease-nonce": lease.json()["nonce"]}
    assert api.delete(url, params={"kill": "true"}, headers=nonce).is_success
    assert api.get(url).json()["state"] == "destroyed"


@pytest.mark.parametrize(
    ("value", "strict"),
    [("1", True), ("true", True), ("YES", True), (" on ", True), ("0", False), ("", False),
     ("no", False), (None, False)],
)  # fmt: skip
def test_the_strict_knob_reads_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None, strict: bool
) -> None:
    env = {} if value is None else {STRICT_ENV_VAR: value}
    assert strict_from_env(env) is strict
    if value is None:
        monkeypatch.delenv(STRICT_ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(STRICT_ENV_VAR, value)
    backend = LocalBackend(tmp_path / "local.db")
    assert backend.strict is strict
    assert LocalBackend(tmp_path / "local.db", strict=not strict).strict is not strict


def test_flyks_own_suite_runs_strict(tmp_path: Path) -> None:
    """tests/conftest.py sets the knob: a typo in flyk's client fails its test."""
    assert LocalBackend(tmp_path / "db").strict is True


def test_strictness_can_change_on_a_running_backend(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "local.db", Timing.instant(), strict=True)
    body = {"name": "x", "org_slug": "personal", "colour": "red"}
    with _client(backend) as api:
        assert api.post("/apps", json=body).status_code == 400
        backend.strict = False
        assert api.post("/apps", json=body).status_code == 201
