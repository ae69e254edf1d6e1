"""Models: round trips keep unknown fields; every §12 disagreement parses."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from flyk.api import (
    App,
    CheckConfig,
    GuestConfig,
    Lease,
    Machine,
    MachineConfig,
    MachineEvent,
    Regions,
    StopConfig,
    TokenInfo,
    Volume,
    go_duration,
)

FULL_CONFIG: dict[str, Any] = {
    "image": "registry.fly.io/k3s:1",
    "env": {"A": "1"},
    "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256, "future_guest_knob": 7},
    "init": {"entrypoint": ["/bin/k3s"], "cmd": ["server"], "tty": False},
    "services": [
        {
            "protocol": "tcp",
            "internal_port": 6443,
            "ports": [{"port": 6443, "handlers": [], "tls_options": {"alpn": ["h2"]}}],
            "concurrency": {"type": "connections", "hard_limit": 25},
        }
    ],
    "checks": {"api": {"type": "tcp", "port": 6443, "interval": "15s", "timeout": "2s"}},
    "mounts": [{"volume": "vol_1", "path": "/data"}],
    "files": [{"guest_path": "/etc/ca.crt", "raw_value": "Y2E="}],
    "containers": [{"name": "side", "image": "busybox", "depends_on": [{"name": "x"}]}],
    "restart": {"policy": "always"},
    "stop_config": {"signal": "SIGTERM", "timeout": "30s"},
    "dns": {"nameservers": ["10.43.0.10"], "searches": ["svc.cluster.local"]},
    "metadata": {"flyk_cluster": "c1"},
    "auto_destroy": False,
    # fields flyk does not model at all
    "processes": [{"cmd": ["x"]}],
    "metrics": {"port": 9090, "path": "/metrics"},
    "rootfs": {"persist": "always", "size_gb": 4},
}


def test_machine_config_round_trip_is_lossless() -> None:
    config = MachineConfig.from_api(copy.deepcopy(FULL_CONFIG))
    assert config.to_api() == FULL_CONFIG


def test_read_modify_write_keeps_unknown_fields() -> None:
    config = MachineConfig.from_api(copy.deepcopy(FULL_CONFIG))
    assert config.guest is not None
    changed = replace(config, image="registry.fly.io/k3s:2", guest=replace(config.guest, cpus=2))
    wire = changed.to_api()
    assert wire["image"] == "registry.fly.io/k3s:2"
    assert wire["guest"] == {**FULL_CONFIG["guest"], "cpus": 2}
    assert wire["processes"] == FULL_CONFIG["processes"]
    assert wire["rootfs"] == FULL_CONFIG["rootfs"]
    assert wire["services"][0]["ports"][0]["tls_options"] == {"alpn": ["h2"]}


def test_machine_parses_and_exposes_its_version_and_metadata() -> None:
    machine = Machine.from_api(
        {
            "id": "m1",
            "state": "started",
            "instance_id": "01HV",
            "config": {"image": "x", "metadata": {"k": "v"}},
            "events": [
                {"type": "exit", "request": {"exit_event": {"exit_code": 137, "oom_killed": True}}}
            ],
            "checks": [{"name": "api", "status": "passing"}],
            "brand_new_field": {"x": 1},
        }
    )
    assert machine.version == "01HV"
    assert machine.metadata == {"k": "v"}
    assert machine.events[0].exit_code == 137 and machine.events[0].oom_killed
    assert machine.checks[0].status == "passing"
    assert machine.to_api()["brand_new_field"] == {"x": 1}


def test_machine_with_host_down_uses_incomplete_config() -> None:
    machine = Machine.from_api(
        {"id": "m1", "host_status": "unreachable", "incomplete_config": {"metadata": {"a": "b"}}}
    )
    assert machine.config is None
    assert machine.metadata == {"a": "b"}


def test_nulls_and_missing_fields_parse_to_defaults() -> None:
    machine = Machine.from_api({"id": "m1", "events": None, "config": None, "checks": None})
    assert machine.events == () and machine.config is None and machine.checks == ()
    assert MachineConfig.from_api({}).to_api() == {}


# -- §12 disagreements ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"nonce": "n1", "expires_at": 1700000000, "owner": "me", "version": "v1"},
        {
            "status": "success",
            "data": {"nonce": "n1", "expires_at": 1700000000, "owner": "me", "version": "v1"},
        },
    ],
    ids=["bare (spec)", "wrapped (docs, fly-go)"],
)
def test_lease_bodies_bare_or_wrapped(body: dict[str, Any]) -> None:
    lease = Lease.from_api(body)
    assert (lease.nonce, lease.expires_at, lease.owner, lease.version) == (
        "n1",
        1700000000,
        "me",
        "v1",
    )


@pytest.mark.parametrize(
    "body",
    [
        {
            "regions": [{"code": "ord", "name": "Chicago", "gateway_available": True}],
            "nearest": "ord",
        },
        {
            "Regions": [
                {"Code": "ord", "Name": "Chicago", "GatewayAvailable": True, "Capacity": 30}
            ],
            "Nearest": "ord",
        },
    ],
    ids=["lowercase (spec)", "capitalised (fly-go, live API)"],
)
def test_regions_keys_in_either_case(body: dict[str, Any]) -> None:
    regions = Regions.from_api(body)
    assert regions.nearest == "ord"
    assert regions.codes() == ["ord"]
    assert regions.regions[0].name == "Chicago"


def test_regions_capacity_is_read() -> None:
    regions = Regions.from_api({"Regions": [{"code": "ord", "capacity": 30}]})
    assert regions.regions[0].capacity == 30


@pytest.mark.parametrize(
    ("wire", "parsed"),
    [("10s", "10s"), (10_000_000_000, "10s"), (500_000_000, "500ms"), (1_500_000_000, "1500ms")],
)
def test_durations_accept_strings_and_nanoseconds(wire: Any, parsed: str) -> None:
    assert StopConfig.from_api({"timeout": wire}).timeout == parsed
    assert CheckConfig.from_api({"interval": wire}).to_api()["interval"] == parsed


@pytest.mark.parametrize(
    ("seconds", "text"), [(10, "10s"), (0.5, "500ms"), (90, "90s"), (1.0001, "1.0001s")]
)
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_app_and_volume_and_token_parse() -> None:
    app = App.from_api(
        {"name": "a", "organization": {"slug": "personal", "name": "P"}, "status": "deployed"}
    )
    assert app.org_slug == "personal"
    volume = Volume.from_api({"id": "vol_1", "size_gb": 3, "region": "ord", "bytes_used": 5})
    assert volume.size_gb == 3 and volume.to_api()["bytes_used"] == 5
    token = TokenInfo.from_api(
        {"tokens": [{"org_slug": "personal", "apps": ["a"]}, {"org_slug": "acme"}]}
    )
    assert token.org_slugs == ["acme", "personal"]
    assert token.tokens[0].apps == ("a",)


def test_event_without_exit_has_no_exit_code() -> None:
    event = MachineEvent.from_api({"type": "start", "status": "started", "timestamp": 1})
    assert event.exit_code is None and not event.oom_killed


def test_models_are_frozen() -> None:
    guest = GuestConfig(cpu_kind="shared", cpus=1, memory_mb=256)
    with pytest.raises(AttributeError):
        guest.cpus = 2  # type: ignore[misc]


# Values of the wrong type, as a lenient or hand-edited server may hold them: reading them
# must not crash later code that trusts the field types.
WRONGLY_TYPED_CONFIG: dict[str, Any] = {
    "image": "nginx",
    "init": {"entrypoint": 5, "cmd": "notalist", "exec": ["sh", 1], "tty": "yes"},
    "services": [{"internal_port": "x", "ports": "443"}, "not-a-service"],
    "stop_config": {"timeout": {"seconds": 3}, "signal": 15},
    "containers": [{"name": "c", "cmd": "str", "env": {"A": 1}}],
    "checks": {"up": "tcp"},
    "guest": {"cpus": "two", "memory_mb": 256, "kernel_args": "quiet"},
    "env": {"A": 1},
    "schedule": 7,
    "restart": "always",
}


def test_wrongly_typed_values_fall_back_to_defaults() -> None:
    config = MachineConfig.from_api(WRONGLY_TYPED_CONFIG)
    assert config.image == "nginx"
    assert config.init is not None
    assert config.init.entrypoint == () and config.init.cmd == () and config.init.exec == ()
    assert config.init.tty is None
    assert config.services == () and config.checks == {} and config.restart is None
    assert config.stop_config is not None
    assert config.stop_config.timeout is None and config.stop_config.signal is None
    assert config.containers[0].cmd == () and config.containers[0].env == {}
    assert config.guest is not None and config.guest.cpus is None and config.guest.memory_mb == 256
    assert config.guest.kernel_args == ()
    assert config.env == {} and config.schedule is None


def test_wrongly_typed_values_survive_a_write_back_as_sent() -> None:
    assert MachineConfig.from_api(WRONGLY_TYPED_CONFIG).to_api() == WRONGLY_TYPED_CONFIG


def test_a_machine_with_a_wrongly_typed_config_parses() -> None:
    machine = Machine.from_api(
        {"id": "m1", "state": "started", "config": WRONGLY_TYPED_CONFIG, "events": 5}
    )
    assert machine.config is not None and machine.config.image == "nginx"
    assert machine.events == ()
