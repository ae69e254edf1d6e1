"""The `k3s server` arguments of the control-plane machine."""

from __future__ import annotations

from flyk.api import GuestConfig
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
