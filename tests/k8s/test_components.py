"""The components' flags, checked against the real flyk-controlplane binary's own --help."""

from __future__ import annotations

import re
import subprocess
import time
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
    coredns = re.search(r"github\.com/coredns/coredns (v[\d.]+)", go_mod)
    assert coredns
    assert shown.stdout.split() == [
        "flyk-controlplane", "kubernetes", kubernetes.group(1), "kine", kine.group(1),
        "coredns", coredns.group(1),
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


# CoreDNS's plugins: the six cluster DNS needs, and `bind` (controlplane/coredns.go). `-plugins`
# lists five more, registered by packages those import (forward imports debug and dnstap, cache
# the metrics plugin, `prometheus`, kubernetes transfer and metadata); no Corefile names them.
COREDNS_PLUGINS = {"bind", "cache", "errors", "forward", "health", "kubernetes", "ready"}
IMPORTED_BY_THEM = {"debug", "dnstap", "metadata", "prometheus", "transfer"}


def test_coredns_has_exactly_its_plugins(controlplane_binary: Path) -> None:
    shown = subprocess.run(
        [str(controlplane_binary), "coredns", "-plugins"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert shown.returncode == 0, shown.stderr
    listed = set(shown.stdout.split())
    assert listed == COREDNS_PLUGINS | IMPORTED_BY_THEM


def test_a_corefile_naming_another_plugin_fails_to_load(
    controlplane_binary: Path, tmp_path: Path
) -> None:
    """Nothing but those plugins is compiled in: `log` (in every CoreDNS) is unknown here."""
    corefile = tmp_path / "Corefile"
    corefile.write_text(".:0 {\n    bind 127.0.0.1\n    log\n}\n")
    ran = subprocess.run(
        [str(controlplane_binary), "coredns", "-conf", str(corefile)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ran.returncode != 0 and "log" in ran.stdout + ran.stderr


FLY_DNS = components.ClusterDNS(
    listen="fdaa:0:1:a7b:1:2:3:2", nameserver="fdaa:0:1:a7b:1:2:3:2", health_port=8080,
    ready_port=8181,
)  # fmt: skip


def test_the_corefile_serves_the_cluster_zone_on_the_6pn_address_and_forwards_to_fly() -> None:
    corefile = components.corefile(LAYOUT, FLY_DNS)
    assert corefile.startswith(".:53 {\n    bind fdaa:0:1:a7b:1:2:3:2\n")
    assert "    forward . fdaa::3\n" in corefile
    assert "    kubernetes cluster.local in-addr.arpa ip6.arpa {\n" in corefile
    assert "        kubeconfig /machine/var/lib/flyk/tls/coredns.kubeconfig\n" in corefile
    assert "    health 127.0.0.1:8080\n    ready 127.0.0.1:8181\n" in corefile
    top = [line for line in corefile.splitlines()[1:-1] if not line.startswith(" " * 8)]
    assert {line.split()[0] for line in top} - {"}"} == COREDNS_PLUGINS
    assert components.coredns_args(LAYOUT) == ["-conf", "/machine/var/lib/flyk/Corefile"]


def test_the_corefile_loads_in_the_real_coredns(controlplane_binary: Path, tmp_path: Path) -> None:
    """Every directive and option is one the built CoreDNS takes: it starts and serves (its
    kubernetes plugin has no API server to reach here, so it is not ready; the forwarder is)."""
    import dns.exception
    import dns.message
    import dns.query

    from flyk.k8s import supervisor
    from tests.dns_upstream import UpstreamDNS

    layout = Layout(root=tmp_path)
    layout.tls.mkdir(parents=True)
    layout.kubeconfig("coredns").write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: x, cluster: {server: https://127.0.0.1:1}}]\n"
        "users: [{name: x, user: {}}]\ncontexts: [{name: x, context: {cluster: x, user: x}}]\n"
        "current-context: x\n"
    )
    upstream = UpstreamDNS().start()
    dns_config = components.ClusterDNS(
        listen="127.0.0.1", nameserver="127.0.0.1", port=supervisor.free_port(),
        upstreams=(upstream.address,), health_port=supervisor.free_port(),
        ready_port=supervisor.free_port(),
    )  # fmt: skip
    layout.corefile.write_text(components.corefile(layout, dns_config))
    process = subprocess.Popen(
        [str(controlplane_binary), "coredns", *components.coredns_args(layout)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        query = dns.message.make_query("outside.flyk.test", "A")
        # It serves once its kubernetes plugin gave up waiting for an API server (5 s).
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "CoreDNS exited"
            try:
                reply = dns.query.udp(query, "127.0.0.1", port=dns_config.port, timeout=1)
                break
            except dns.exception.Timeout:
                assert time.monotonic() < deadline, "CoreDNS did not answer"
        assert [r.to_text() for rrset in reply.answer for r in rrset] == ["192.0.2.7"]
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
        upstream.stop()
    assert "CoreDNS-1.15.0" in output
