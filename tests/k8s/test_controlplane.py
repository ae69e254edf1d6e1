"""The `k3s server` arguments of the control-plane machine."""

from __future__ import annotations

import pytest

from flyk.api import GuestConfig
from flyk.errors import UsageError
from flyk.k8s import controlplane as cp


def api_server_args(args: list[str]) -> dict[str, str]:
    prefix = "--kube-apiserver-arg="
    pairs = (a.removeprefix(prefix).partition("=") for a in args if a.startswith(prefix))
    return {key: value for key, _, value in pairs}


def test_pods_outlast_a_machines_api_outage_before_eviction() -> None:
    """The virtual node turns NotReady while the Machines API is down; K3s's default 300 s
    toleration would then evict every pod. The control plane gives pods a day instead."""
    config = cp.machine_config(
        image="img",
        guest=GuestConfig(cpu_kind="shared", cpus=2, memory_mb=2048),
        volume_id="vol_1",
        tls_sans=("demo.fly.dev",),
        metadata={},
        env={},
    ).to_api()
    flags = api_server_args(config["init"]["cmd"])
    assert flags["default-not-ready-toleration-seconds"] == "86400"
    assert flags["default-unreachable-toleration-seconds"] == "86400"
    assert cp.EVICTION_TOLERATION_SECONDS >= 3600  # far beyond the 300 s default


def test_memory_defaults_to_the_size_own_at_least_the_control_plane_minimum() -> None:
    assert cp.guest_for() == GuestConfig(cpu_kind="shared", cpus=2, memory_mb=2048)
    assert cp.guest_for("shared-cpu-1x").memory_mb == 2048  # its own 256 MB would not run K3s
    assert cp.guest_for("performance-2x") == GuestConfig(
        cpu_kind="performance", cpus=2, memory_mb=4096
    )
    assert cp.guest_for("performance-16x").memory_mb == 32768
    assert cp.guest_for("performance-2x", "8gb").memory_mb == 8192


def test_a_size_that_cannot_take_the_memory_names_the_flag_create_has() -> None:
    with pytest.raises(UsageError, match=r"change --vm-memory or pick another size"):
        cp.guest_for("performance-2x", "2048")
