"""The control-plane machine's config and the API server flags it gets."""

from __future__ import annotations

import pytest

from flyk.api import GuestConfig
from flyk.errors import UsageError
from flyk.k8s import controlplane as cp
from flyk.k8s.components import Layout, apiserver_args


def test_pods_outlast_a_machines_api_outage_before_eviction() -> None:
    """The virtual node turns NotReady while the Machines API is down; the API server's default
    300 s toleration would then evict every pod. The control plane gives pods a day instead."""
    flags = dict(a.removeprefix("--").partition("=")[::2] for a in apiserver_args(Layout()))
    assert flags["default-not-ready-toleration-seconds"] == "86400"
    assert flags["default-unreachable-toleration-seconds"] == "86400"
    assert cp.EVICTION_TOLERATION_SECONDS >= 3600  # far beyond the 300 s default


def test_memory_defaults_to_the_size_own_at_least_the_control_plane_minimum() -> None:
    assert cp.guest_for() == GuestConfig(cpu_kind="shared", cpus=2, memory_mb=2048)
    assert cp.guest_for("shared-cpu-1x").memory_mb == 2048  # its own 256 MB: too little
    assert cp.guest_for("performance-2x") == GuestConfig(
        cpu_kind="performance", cpus=2, memory_mb=4096
    )
    assert cp.guest_for("performance-16x").memory_mb == 32768
    assert cp.guest_for("performance-2x", "8gb").memory_mb == 8192


def test_a_size_that_cannot_take_the_memory_names_the_flag_create_has() -> None:
    with pytest.raises(UsageError, match=r"change --vm-memory or pick another size"):
        cp.guest_for("performance-2x", "2048")
