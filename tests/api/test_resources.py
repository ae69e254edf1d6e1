"""Each operation sends the request the spec describes and parses the answer."""

from __future__ import annotations

import httpx
import pytest

from flyk.api import FlyClient, GuestConfig, MachineConfig
from flyk.errors import FlykError, NotFoundError

from .helpers import Script, machine_json, reply


def test_apps_list_get_delete(client: FlyClient, script: Script) -> None:
    script.on(
        "GET /apps", reply(200, {"apps": [{"name": "a", "machine_count": 2}], "total_apps": 1})
    )
    script.on("GET /apps/a", reply(200, {"name": "a", "organization": {"slug": "personal"}}))
    script.on("DELETE /apps/a", reply(202))
    assert [app.name for app in client.apps.list("personal")] == ["a"]
    assert client.apps.get("a").org_slug == "personal"
    client.apps.delete("a")
    assert script.sent("GET /apps")[0].url.params["org_slug"] == "personal"


def test_apps_create_posts_and_returns_the_app_once_visible(
    client: FlyClient, script: Script
) -> None:
    script.on("POST /apps", reply(201))
    script.on("GET /apps/a", reply(404, {"error": "not found"}), reply(200, {"name": "a"}))
    app = client.apps.create("a", "personal", network="net1")
    assert app.name == "a"
    assert script.bodies("POST /apps") == [{"name": "a", "org_slug": "personal", "network": "net1"}]


def test_machines_list_passes_filters_and_filters_metadata(
    client: FlyClient, script: Script
) -> None:
    mine = machine_json("m1", config={"image": "x", "metadata": {"flyk_pod": "p1", "k": "v"}})
    other = machine_json("m2", config={"image": "x", "metadata": {"flyk_pod": "p2"}})
    script.on("GET /apps/a/machines", reply(200, [mine, other]))
    found = client.machines.list(
        "a", region="ord", state=["started", "stopped"], metadata={"flyk_pod": "p1"}
    )
    assert [m.id for m in found] == ["m1"]
    params = script.sent("GET /apps/a/machines")[0].url.params
    assert params["region"] == "ord" and params["state"] == "started,stopped"
    assert "include_deleted" not in params


def test_machines_list_filters_states_the_api_does_not_itself(
    client: FlyClient, script: Script
) -> None:
    # the spec's filter takes created, started, stopped, suspended: not failed
    machines = [machine_json("m1", state="failed"), machine_json("m2", state="started")]
    script.on("GET /apps/a/machines", reply(200, machines))
    assert [m.id for m in client.machines.list("a", state="failed")] == ["m1"]
    assert "state" not in script.sent("GET /apps/a/machines")[0].url.params


def test_machine_create_body_and_launch_id(client: FlyClient, script: Script) -> None:
    script.on("POST /apps/a/machines", reply(200, machine_json("m1", state="created")))
    config = MachineConfig(
        image="nginx", guest=GuestConfig(cpu_kind="shared", cpus=1, memory_mb=256)
    )
    machine = client.machines.create(
        "a", config, name="web", region="ord", skip_launch=True, lease_ttl=30, min_secrets_version=4
    )
    assert machine.id == "m1"
    (body,) = script.bodies("POST /apps/a/machines")
    launch_id = body["config"]["metadata"].pop("flyk_launch_id")
    assert len(launch_id) == 32
    assert body == {
        "config": {
            "image": "nginx",
            "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
            "metadata": {},
        },
        "name": "web",
        "region": "ord",
        "skip_launch": True,
        "lease_ttl": 30,
        "min_secrets_version": 4,
    } | {"config": body["config"]}


def test_machine_update_sends_nonce_and_current_version(client: FlyClient, script: Script) -> None:
    script.on("POST /apps/a/machines/m1", reply(200, machine_json()))
    client.machines.update(
        "a", "m1", MachineConfig(image="x"), nonce="n1", current_version="v1", min_secrets_version=2
    )
    (request,) = script.sent("POST /apps/a/machines/m1")
    assert request.headers["fly-machine-lease-nonce"] == "n1"
    assert script.bodies("POST /apps/a/machines/m1") == [
        {"config": {"image": "x"}, "min_secrets_version": 2, "current_version": "v1"}
    ]


@pytest.mark.parametrize("action", ["start", "suspend", "cordon", "uncordon"])
def test_simple_actions_post_with_nonce(client: FlyClient, script: Script, action: str) -> None:
    script.on(f"POST /apps/a/machines/m1/{action}", reply(200, {"ok": True}))
    getattr(client.machines, action)("a", "m1", nonce="n1")
    (request,) = script.sent(f"POST /apps/a/machines/m1/{action}")
    assert request.headers["fly-machine-lease-nonce"] == "n1"


def test_stop_restart_signal_destroy(client: FlyClient, script: Script) -> None:
    for route in (
        "POST /apps/a/machines/m1/stop",
        "POST /apps/a/machines/m1/restart",
        "POST /apps/a/machines/m1/signal",
    ):
        script.on(route, reply(200, {"ok": True}))
    script.on("DELETE /apps/a/machines/m1", reply(200, {"ok": True}))
    client.machines.stop("a", "m1", signal="SIGTERM", timeout=30)
    client.machines.restart("a", "m1", timeout=5)
    client.machines.signal("a", "m1", "SIGUSR1")
    client.machines.destroy("a", "m1", force=True)
    assert script.bodies("POST /apps/a/machines/m1/stop") == [
        {"signal": "SIGTERM", "timeout": "30s"}
    ]
    assert script.sent("POST /apps/a/machines/m1/restart")[0].url.params["timeout"] == "5s"
    assert script.bodies("POST /apps/a/machines/m1/signal") == [{"signal": "SIGUSR1"}]
    assert script.sent("DELETE /apps/a/machines/m1")[0].url.params["force"] == "true"


def test_events_versions_exec_metadata(client: FlyClient, script: Script) -> None:
    script.on("GET /apps/a/machines/m1/events", reply(200, [{"type": "start", "timestamp": 5}]))
    script.on(
        "GET /apps/a/machines/m1/versions",
        reply(200, [{"version": "v1", "user_config": {"image": "x"}}]),
    )
    script.on("POST /apps/a/machines/m1/exec", reply(200, {"stdout": "hi\n", "exit_code": 0}))
    script.on("GET /apps/a/machines/m1/metadata", reply(200, {"a": "b"}))
    script.on("POST /apps/a/machines/m1/metadata/k", reply(204))
    script.on("DELETE /apps/a/machines/m1/metadata/k", reply(204))
    assert client.machines.events("a", "m1", limit=5)[0].type == "start"
    version = client.machines.versions("a", "m1")[0]
    assert version.user_config is not None and version.user_config.image == "x"
    result = client.machines.exec("a", "m1", ["echo", "hi"], timeout=10)
    assert (result.stdout, result.exit_code) == ("hi\n", 0)
    assert client.machines.metadata("a", "m1") == {"a": "b"}
    client.machines.set_metadata("a", "m1", "k", "v")
    client.machines.delete_metadata("a", "m1", "k")
    assert script.bodies("POST /apps/a/machines/m1/exec") == [
        {"command": ["echo", "hi"], "timeout": 10}
    ]
    assert script.bodies("POST /apps/a/machines/m1/metadata/k") == [{"value": "v"}]


def test_volumes(client: FlyClient, script: Script) -> None:
    vol = {"id": "vol_1", "name": "data", "region": "ord", "size_gb": 1}
    script.on("GET /apps/a/volumes", reply(200, [vol]))
    script.on("GET /apps/a/volumes/vol_1", reply(200, vol))
    script.on("POST /apps/a/volumes", reply(200, vol))
    script.on(
        "PUT /apps/a/volumes/vol_1/extend",
        reply(200, {"volume": {**vol, "size_gb": 2}, "needs_restart": True}),
    )
    script.on("DELETE /apps/a/volumes/vol_1", reply(200, vol))
    assert client.volumes.list("a")[0].id == "vol_1"
    assert client.volumes.get("a", "vol_1").size_gb == 1
    client.volumes.create(
        "a", "data", "ord", 1, compute=GuestConfig(cpu_kind="shared", cpus=1, memory_mb=256)
    )
    extended = client.volumes.extend("a", "vol_1", 2)
    assert extended.needs_restart and extended.volume is not None and extended.volume.size_gb == 2
    client.volumes.delete("a", "vol_1")
    assert script.bodies("POST /apps/a/volumes") == [
        {
            "name": "data",
            "region": "ord",
            "size_gb": 1,
            "compute": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
        }
    ]


@pytest.mark.parametrize("key", ["version", "Version"])
def test_secrets_return_the_version(client: FlyClient, script: Script, key: str) -> None:
    script.on("GET /apps/a/secrets", reply(200, {"secrets": [{"name": "DB", "digest": "d"}]}))
    script.on("POST /apps/a/secrets", reply(200, {key: 7, "secrets": []}))
    script.on("DELETE /apps/a/secrets/DB", reply(200, {key: 8}))
    assert [s.name for s in client.secrets.list("a")] == ["DB"]
    assert client.secrets.set("a", {"DB": "x", "OLD": None}) == 7
    assert client.secrets.delete("a", "DB") == 8
    assert script.bodies("POST /apps/a/secrets") == [{"values": {"DB": "x", "OLD": None}}]


def test_secret_values_are_sent_only_when_asked_for(client: FlyClient, script: Script) -> None:
    listed = {"secrets": [{"name": "DB", "digest": "d", "value": "hunter2"}]}
    script.on("GET /apps/a/secrets", reply(200, {"secrets": [{"name": "DB"}]}), reply(200, listed))
    script.on("GET /apps/a/secrets/DB", reply(200, {"name": "DB", "value": "hunter2"}))
    assert client.secrets.list("a")[0].value is None
    assert client.secrets.list("a", show_secrets=True, min_version=7)[0].value == "hunter2"
    one = client.secrets.get("a", "DB", show_secrets=True)
    assert (one.name, one.value) == ("DB", "hunter2")
    plain, shown = script.sent("GET /apps/a/secrets")
    assert dict(plain.url.params) == {}
    assert dict(shown.url.params) == {"show_secrets": "true", "min_version": "7"}
    (get,) = script.sent("GET /apps/a/secrets/DB")
    assert dict(get.url.params) == {"show_secrets": "true"}


def test_a_missing_secret_is_not_found(client: FlyClient, script: Script) -> None:
    script.on("GET /apps/a/secrets/NOPE", reply(404, {"error": "secret not found"}))
    with pytest.raises(NotFoundError):
        client.secrets.get("a", "NOPE")


def test_secrets_write_without_version_is_an_error(client: FlyClient, script: Script) -> None:
    script.on("POST /apps/a/secrets", reply(200, {"secrets": []}))
    with pytest.raises(FlykError, match="secrets version"):
        client.secrets.set("a", {"A": "b"})


def test_ips(client: FlyClient, script: Script) -> None:
    script.on(
        "GET /apps/a/ip_assignments", reply(200, {"ips": [{"ip": "2a09::1", "shared": False}]})
    )
    script.on("POST /apps/a/ip_assignments", reply(200, {"ip": "1.2.3.4", "shared": True}))
    script.on("DELETE /apps/a/ip_assignments/2a09::1", reply(204))
    assert client.ips.list("a")[0].ip == "2a09::1"
    assert client.ips.create("a", "shared_v4").shared
    client.ips.delete("a", "2a09::1")
    assert script.bodies("POST /apps/a/ip_assignments") == [{"type": "shared_v4"}]


def test_platform_and_tokens(client: FlyClient, script: Script) -> None:
    script.on("GET /platform/regions", reply(200, {"Regions": [{"code": "ord"}], "Nearest": "ord"}))
    script.on("POST /platform/placements", reply(200, {"regions": [{"region": "ord", "count": 2}]}))
    script.on("GET /tokens/current", reply(200, {"tokens": [{"org_slug": "personal"}]}))
    assert client.platform.regions().nearest == "ord"
    guest = GuestConfig(cpu_kind="shared", cpus=1, memory_mb=256)
    placements = client.platform.placements("personal", region="ord,us", compute=guest, count=2)
    assert placements[0].count == 2
    assert client.tokens.current().org_slugs == ["personal"]
    assert script.bodies("POST /platform/placements") == [
        {"org_slug": "personal", "region": "ord,us", "compute": guest.to_api(), "count": 2}
    ]


@pytest.mark.parametrize(("hint", "asked"), [(False, 3), (True, 1)])
def test_placements_asked_as_a_hint_are_asked_once(
    client: FlyClient, script: Script, hint: bool, asked: int
) -> None:
    failing = [reply(503, {"error": "busy"})] * 2
    script.on("POST /platform/placements", *failing, reply(200, {"regions": [{"region": "ord"}]}))
    guest = GuestConfig(cpu_kind="shared", cpus=1, memory_mb=256)
    try:
        found = client.platform.placements("personal", region="ord", compute=guest, hint=hint)
    except FlykError:
        found = []
    assert len(script.sent("POST /platform/placements")) == asked
    assert [p.region for p in found] == ([] if hint else ["ord"])


def test_non_json_success_body_is_a_clear_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>proxy</html>")

    from .helpers import make_client

    with make_client(handler) as fly, pytest.raises(FlykError, match="not JSON"):
        fly.apps.get("a")


def test_get_missing_machine_is_not_found(client: FlyClient, script: Script) -> None:
    script.on("GET /apps/a/machines/m9", reply(404, {"error": "not_found: machine not found"}))
    with pytest.raises(NotFoundError, match="machine not found"):
        client.machines.get("a", "m9")
