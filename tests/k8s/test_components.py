"""The components' flags, checked against the real flyk-controlplane binary's own --help."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from flyk.k8s import components
from flyk.k8s.components import Layout

LAYOUT = Layout(root=Path("/machine"), api_port=6443)
ARGS = {
    "kine": components.kine_args(LAYOUT),
    "kube-apiserver": components.apiserver_args(LAYOUT),
    "kube-controller-manager": components.controller_manager_args(LAYOUT, 10257),
    "kube-scheduler": components.scheduler_args(LAYOUT, 10259),
}


def _flags_of(binary: Path, component: str) -> set[str]:
    shown = subprocess.run(
        [str(binary), component, "--help"], capture_output=True, text=True, timeout=60
    )
    return set(re.findall(r"^\s+(--[a-z0-9-]+)", shown.stdout + shown.stderr, re.M))


@pytest.mark.parametrize("component", components.COMPONENTS)
def test_every_flag_is_one_the_component_takes(controlplane_binary: Path, component: str) -> None:
    known = _flags_of(controlplane_binary, component)
    assert len(known) > 5, f"{component} --help listed no flags"
    given = {arg.partition("=")[0] for arg in ARGS[component]}
    assert given <= known, f"{component} does not take {sorted(given - known)}"


def test_the_binary_reports_the_pinned_versions(controlplane_binary: Path) -> None:
    go_mod = (Path(__file__).resolve().parents[2] / "controlplane" / "go.mod").read_text()
    kubernetes = re.search(r"k8s\.io/kubernetes (v[\d.]+)", go_mod)
    kine = re.search(r"github\.com/k3s-io/kine (v[\d.]+)", go_mod)
    assert kubernetes and kine
    shown = subprocess.run(
        [str(controlplane_binary), "version"], capture_output=True, text=True, timeout=30
    )
    assert shown.stdout.split() == [
        "flyk-controlplane", "kubernetes", kubernetes.group(1), "kine", kine.group(1)
    ]  # fmt: skip


def test_an_unknown_component_is_a_usage_error(controlplane_binary: Path) -> None:
    ran = subprocess.run(
        [str(controlplane_binary), "etcd"], capture_output=True, text=True, timeout=30
    )
    assert ran.returncode == 2 and 'unknown component "etcd"' in ran.stderr


def test_the_controllers_a_nodeless_cluster_cannot_use_are_off(controlplane_binary: Path) -> None:
    shown = subprocess.run(
        [str(controlplane_binary), "kube-controller-manager", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    (flag,) = [a for a in ARGS["kube-controller-manager"] if a.startswith("--controllers=")]
    disabled = [name.removeprefix("-") for name in flag.split("=")[1].split(",")[1:]]
    assert disabled == list(components.DISABLED_CONTROLLERS)
    for name in disabled:  # names the binary knows: a typo would fail its start
        assert name in shown
    for kept in ("garbage-collector-controller", "job-controller", "node-lifecycle-controller"):
        assert f"-{kept}" not in flag and kept in shown


def test_the_api_server_is_secured_as_in_production() -> None:
    flags = dict(a.removeprefix("--").partition("=")[::2] for a in ARGS["kube-apiserver"])
    assert flags["authorization-mode"] == "Node,RBAC"
    assert flags["enable-admission-plugins"] == "NodeRestriction"
    assert "anonymous-auth" not in flags  # anonymous only on health paths (authentication.yaml)
    assert "/readyz" in components.AUTHENTICATION_CONFIG
    assert flags["etcd-servers"] == components.KINE_SOCKET
    assert flags["client-ca-file"] == "/machine/etc/flyk/pki/client-ca.crt"
    for name in ("kube-controller-manager", "kube-scheduler"):
        assert "--leader-elect=false" in ARGS[name]  # one writer on SQLite


def test_go_sources_are_formatted_and_vetted() -> None:
    """gofmt on the module (go vet runs in .ci/run: it compiles every dependency)."""
    module = Path(__file__).resolve().parents[2] / "controlplane"
    gofmt = subprocess.run(["gofmt", "-l", str(module)], capture_output=True, text=True)
    if gofmt.returncode != 0 and "not found" in gofmt.stderr:
        pytest.skip("gofmt is not installed")
    assert gofmt.stdout == ""
