"""The plan: names, the control-plane machine config, and what --dry-run shows."""

from __future__ import annotations

import json

import pytest

from flyk.api import GuestConfig, machine_sizes
from flyk.errors import UsageError
from flyk.k8s import controlplane as cp
from flyk.k8s import records
from flyk.k8s.pki import TLS_FILES
from flyk.k8s.plan import (
    APP_NAME_LIMIT,
    REDACTED,
    ClusterSpec,
    app_name_for,
    plan_cluster,
)


def spec(**overrides: object) -> ClusterSpec:
    values: dict[str, object] = {"name": "demo", "org": "personal", "region": "iad"}
    values.update(overrides)
    return ClusterSpec(**values)  # type: ignore[arg-type]


def test_app_name_is_derived_from_org_and_name() -> None:
    assert app_name_for("demo", "personal") == "flyk-demo-personal"
    assert app_name_for("demo", "personal") == app_name_for("demo", "personal")


def test_long_app_names_are_hashed_to_fly_limit_without_collisions() -> None:
    long_name, org = "a" * 40, "some-very-long-organization-slug-x"
    first = app_name_for(long_name, org)
    second = app_name_for(long_name, org + "y")
    assert len(first) <= APP_NAME_LIMIT and len(second) <= APP_NAME_LIMIT
    assert first != second and first.startswith("flyk-aaaa")
    assert not first.endswith("-") and "--" not in first.replace(first[-11:], "")


@pytest.mark.parametrize(
    "name", ["", "Demo", "1demo", "demo-", "de_mo", "a" * 41, "démo", "demo.x"]
)
def test_invalid_cluster_names_are_refused(name: str) -> None:
    with pytest.raises(UsageError):
        spec(name=name)


@pytest.mark.parametrize(
    ("field", "value"), [("org", "Bad Org"), ("org", ""), ("region", "IAD"), ("region", "iad1")]
)
def test_invalid_org_or_region_syntax_is_refused(field: str, value: str) -> None:
    with pytest.raises(UsageError):
        spec(**{field: value})


def test_public_plan_has_tcp_passthrough_and_tls_sans_for_every_name() -> None:
    plan = plan_cluster(spec())
    assert plan.ip_types == ("v6",)  # shared IPv4 cannot carry raw TCP on 6443
    assert plan_cluster(spec(dedicated_ipv4=True)).ip_types == ("v6", "v4")
    assert plan.api_endpoint == "https://flyk-demo-personal.fly.dev:6443"
    config = plan.machine_config("vol_123", extra_sans=("2a09::1",)).to_api()
    (service,) = config["services"]
    assert service["internal_port"] == 6443 and service["protocol"] == "tcp"
    assert all("handlers" not in port for port in service["ports"])  # the API server does TLS
    args = config["init"]["cmd"]  # the supervisor's flags (the image's entrypoint)
    for name in ("flyk-demo-personal.fly.dev", "flyk-demo-personal.flycast", "2a09::1"):
        assert f"--tls-san={name}" in args
    assert all(a.startswith("--tls-san=") for a in args)
    assert config["mounts"] == [{"volume": "vol_123", "path": "/var/lib/flyk"}]
    assert config["restart"]["policy"] == "always"
    assert config["checks"][cp.CHECK_NAME]["port"] == 6443
    assert config["guest"] == {"cpu_kind": "shared", "cpus": 2, "memory_mb": 2048}


def test_private_plan_uses_flycast_only() -> None:
    with pytest.raises(UsageError):
        spec(private=True, dedicated_ipv4=True)
    plan = plan_cluster(spec(private=True))
    assert plan.ip_types == ("private_v6",)
    assert plan.api_endpoint == "https://flyk-demo-personal.flycast:6443"


def test_metadata_records_org_and_name_separately() -> None:
    meta = plan_cluster(spec()).machine_config().metadata
    assert meta[records.META_CLUSTER] == "demo" and meta[records.META_ORG] == "personal"
    assert meta[records.META_ROLE] == "control-plane" and meta[records.META_VERSION]


def test_pki_files_come_from_secrets_and_are_private() -> None:
    files = plan_cluster(spec()).machine_config().to_api()["files"]
    assert {f["secret_name"] for f in files} == set(TLS_FILES.values())
    assert all(f["mode"] == 0o600 and "raw_value" not in f for f in files)


def test_dry_run_description_redacts_every_secret() -> None:
    secrets = dict.fromkeys(TLS_FILES.values(), "TOP-SECRET-VALUE")
    described = plan_cluster(spec()).describe(secrets)
    text = json.dumps(described)
    assert "TOP-SECRET-VALUE" not in text
    kinds = [r["kind"] for r in described["resources"]]
    assert kinds == ["app", "volume", "secrets", "ip", "machine"]
    secret_resource = described["resources"][2]
    assert set(secret_resource["values"].values()) == {REDACTED}


def test_kubelet_token_secret_only_when_there_is_a_token() -> None:
    assert cp.KUBELET_TOKEN_SECRET in plan_cluster(spec()).secret_names
    assert (
        cp.KUBELET_TOKEN_SECRET not in plan_cluster(spec(), with_kubelet_token=False).secret_names
    )


def test_image_reference_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cp.image_reference("my/img:1") == "my/img:1"
    assert ":v1.30.0-k3s1-flyk" in cp.image_reference(None, "v1.30.0+k3s1")
    monkeypatch.setenv(cp.IMAGE_ENV_VAR, "registry.fly.io/cp:dev")
    assert cp.image_reference() == "registry.fly.io/cp:dev"
    assert plan_cluster(spec(image="x/y:z")).image == "x/y:z"


def test_guest_is_overridable_and_validated() -> None:
    big = spec(guest=machine_sizes.guest_for("performance-2x"))
    assert plan_cluster(big).machine_config().guest == machine_sizes.guest_for("performance-2x")
    with pytest.raises(UsageError):
        spec(guest=GuestConfig(cpu_kind="shared", cpus=1, memory_mb=100))
