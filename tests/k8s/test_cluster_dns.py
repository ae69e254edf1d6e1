"""Cluster DNS against the real control plane: CoreDNS from the flyk-controlplane binary, started
by flyk's supervisor with the Corefile and identity it writes at boot, asked by a real resolver
(dnspython) over UDP and TCP. Names outside the cluster go to a DNS server of the test's own
(tests/dns_upstream.py), so forwarding is proven with no network."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from flyk.k8s import bootstrap, clusterdns, rbac
from tests.k8s.test_real_cluster import eventually
from tests.kubelet.realkube import NAMESERVER, ControlPlane, Kube

DOMAIN = "cluster.local"


def ask(plane: ControlPlane, name: str, kind: str, *, tcp: bool = False) -> dns.message.Message:
    """One question, asked again after a timeout as resolvers do (a loaded machine can be slow
    to answer a UDP query, and UDP may drop it)."""
    query = dns.message.make_query(name, kind)
    send = dns.query.tcp if tcp else dns.query.udp
    for _ in range(4):
        try:
            return send(query, "127.0.0.1", port=plane.dns.port, timeout=5)
        except dns.exception.Timeout:
            continue
    raise AssertionError(f"CoreDNS did not answer {kind} {name}")


def rcode(plane: ControlPlane, name: str, kind: str = "A") -> int:
    return int(ask(plane, name, kind).rcode())


def answers(plane: ControlPlane, name: str, kind: str, *, tcp: bool = False) -> list[str]:
    response = ask(plane, name, kind, tcp=tcp)
    wanted = dns.rdatatype.from_text(kind)
    return sorted(
        item.to_text() for rrset in response.answer if rrset.rdtype == wanted for item in rrset
    )


def record_type(address: str) -> str:
    return "AAAA" if ":" in address else "A"


@pytest.fixture
def kubectl(control_plane: ControlPlane, tmp_path: Path) -> Callable[..., Any]:
    config = control_plane.kubeconfig(tmp_path / "admin.kubeconfig", "admin", (bootstrap.MASTERS,))

    def run(*args: str, check: bool = True) -> Any:
        ran = subprocess.run(
            ["kubectl", f"--kubeconfig={config}", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ran.returncode == 0 or not check, f"kubectl {' '.join(args)}: {ran.stderr}"
        return json.loads(ran.stdout) if "-ojson" in args else ran.stdout

    return run


def test_the_kubernetes_service_answers(control_plane: ControlPlane, kube: Kube) -> None:
    service = kube.http.get("/api/v1/namespaces/default/services/kubernetes").json()
    address = service["spec"]["clusterIP"]
    name = f"kubernetes.default.svc.{DOMAIN}"
    assert answers(control_plane, name, record_type(address)) == [address]
    assert answers(control_plane, name, record_type(address), tcp=True) == [address]
    # The HTTPS port, named by the API server: an SRV record.
    srv = answers(control_plane, f"_https._tcp.{name}", "SRV")
    assert srv == [f"0 100 443 {name}."]


def test_a_service_made_with_kubectl_resolves_with_srv_for_its_named_port(
    control_plane: ControlPlane, kube: Kube, kubectl: Callable[..., Any]
) -> None:
    namespace = kube.ns("web")
    kubectl("-n", namespace, "create", "service", "clusterip", "web", "--tcp=80:8080")
    service = kubectl("-n", namespace, "get", "service", "web", "-ojson")
    address = service["spec"]["clusterIP"]
    name = f"web.{namespace}.svc.{DOMAIN}"
    eventually(lambda: answers(control_plane, name, record_type(address)) == [address], what=name)
    (port,) = service["spec"]["ports"]
    srv = answers(control_plane, f"_{port['name']}._tcp.{name}", "SRV")
    assert srv == [f"0 100 80 {name}."]
    # A name in the namespace that no Service has, and a namespace that does not exist.
    assert rcode(control_plane, f"nothing.{namespace}.svc.{DOMAIN}") == dns.rcode.NXDOMAIN
    assert rcode(control_plane, f"web.no-such-ns.svc.{DOMAIN}") == dns.rcode.NXDOMAIN
    kubectl("-n", namespace, "delete", "service", "web")
    eventually(
        lambda: rcode(control_plane, name, record_type(address)) == dns.rcode.NXDOMAIN,
        what=f"{name} gone",
    )


def test_a_headless_service_answers_its_endpoints(control_plane: ControlPlane, kube: Kube) -> None:
    namespace = kube.ns("db")
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "db"},
        "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]},
    }
    kube.http.post(f"/api/v1/namespaces/{namespace}/services", json=service).raise_for_status()
    addresses = ["fdaa:0:1:a7b:1:10:0:2", "fdaa:0:1:a7b:1:11:0:2"]
    endpoints = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv6",
        "endpoints": [
            {"addresses": [address], "hostname": f"db-{index}", "conditions": {"ready": True}}
            for index, address in enumerate(addresses)
        ],
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
    }
    kube.http.post(
        f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices", json=endpoints
    ).raise_for_status()
    name = f"db.{namespace}.svc.{DOMAIN}"
    eventually(lambda: answers(control_plane, name, "AAAA") == addresses, what=name)
    assert answers(control_plane, f"db-1.{name}", "AAAA") == [addresses[1]]
    srv = answers(control_plane, f"_pg._tcp.{name}", "SRV")
    assert srv == [f"0 50 5432 db-0.{name}.", f"0 50 5432 db-1.{name}."]


def test_names_outside_the_cluster_are_forwarded(control_plane: ControlPlane) -> None:
    upstream = control_plane.upstream
    assert answers(control_plane, "outside.flyk.test", "A") == ["192.0.2.7"]
    assert answers(control_plane, "outside.flyk.test", "AAAA", tcp=True) == ["2001:db8::7"]
    assert {"A", "AAAA"} <= set(upstream.asked("outside.flyk.test."))
    assert rcode(control_plane, "missing.flyk.test") == dns.rcode.NXDOMAIN
    assert upstream.asked("missing.flyk.test.")
    # The cluster's own names never leave CoreDNS.
    answers(control_plane, f"kubernetes.default.svc.{DOMAIN}", "A")
    assert not upstream.asked(f"kubernetes.default.svc.{DOMAIN}.")


def test_the_kube_dns_service_names_the_pods_nameserver(
    control_plane: ControlPlane, kubectl: Callable[..., Any]
) -> None:
    service = kubectl("-n", "kube-system", "get", "service", "kube-dns", "-ojson")
    assert service["spec"]["clusterIP"] == "None"
    assert {p["name"]: p["protocol"] for p in service["spec"]["ports"]} == {
        "dns": "UDP",
        "dns-tcp": "TCP",
    }
    assert service["metadata"]["labels"]["k8s-app"] == "kube-dns"
    slices = kubectl(
        "-n", "kube-system", "get", "endpointslices",
        "-l", "kubernetes.io/service-name=kube-dns", "-ojson",
    )["items"]  # fmt: skip
    assert [e["addresses"] for s in slices for e in s["endpoints"]] == [[NAMESERVER]]
    name = f"kube-dns.kube-system.svc.{DOMAIN}"
    assert answers(control_plane, name, "AAAA") == [NAMESERVER]
    assert answers(control_plane, f"_dns._udp.{name}", "SRV") == [f"0 100 53 coredns.{name}."]
    assert answers(control_plane, f"coredns.{name}", "AAAA") == [NAMESERVER]


def test_the_kube_dns_endpoint_follows_the_machines_address(control_plane: ControlPlane) -> None:
    """Applied at every start: a machine moved to a new 6PN address (or family) updates it."""
    moved = type(control_plane.dns)(listen="127.0.0.1", nameserver="10.0.0.53")
    credentials = (
        control_plane.url,
        control_plane.ca_file,
        control_plane.layout.leaf("supervisor.crt"),
        control_plane.layout.leaf("supervisor.key"),
    )
    path = "/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices/kube-dns"
    with rbac.supervisor_client(*credentials) as client:
        try:
            clusterdns.ensure(client, moved)
            found = client.get(path).json()
            assert found["addressType"] == "IPv4"
            assert found["endpoints"][0]["addresses"] == ["10.0.0.53"]
        finally:
            clusterdns.ensure(client, control_plane.dns)
        assert client.get(path).json()["endpoints"][0]["addresses"] == [NAMESERVER]


def test_corednss_identity_reads_what_dns_needs_and_nothing_else(
    kubectl: Callable[..., Any],
) -> None:
    def can(verb: str, resource: str) -> str:
        return str(kubectl("auth", "can-i", verb, resource, "-A", user, check=False)).strip()

    user = f"--as={bootstrap.COREDNS_USER}"
    for resource in ("services", "endpointslices.discovery.k8s.io", "namespaces"):
        assert can("list", resource) == can("watch", resource) == "yes"
    for verb, resource in (
        ("get", "secrets"),
        ("list", "pods"),
        ("get", "services"),
        ("create", "services"),
        ("delete", "endpointslices.discovery.k8s.io"),
        ("list", "configmaps"),
        ("list", "nodes"),
    ):
        assert can(verb, resource) == "no", (verb, resource)
