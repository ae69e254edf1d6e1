"""The kube-dns Service in kube-system: where the cluster's resolver is, as Kubernetes shows it.

The supervisor applies it at every start, beside CoreDNS (components.corefile). It is headless
(`clusterIP: None`) and selects nothing; its one EndpointSlice, written here, holds the address
pods' machines are given as their nameserver: the control-plane machine's 6PN address, port 53.
So `kubectl get svc,endpointslices -n kube-system` shows where DNS is, and
`kube-dns.kube-system.svc.cluster.local` answers that address (and its SRV records `_dns._udp…`,
`_dns-tcp._tcp…` name `coredns.kube-dns.kube-system.svc.cluster.local`, port 53).

Why not a cluster IP, as kubeadm and K3s give kube-dns (10.43.0.10): a cluster IP is only an
address where something routes it. flyk has no kube-proxy; its Services get Flycast addresses
routed by Fly Proxy to the selected pods' machines, and CoreDNS is no pod's machine but a process
of the control-plane machine, in another app; and DNS is UDP first, which Flycast is not known to
carry. Pods reach CoreDNS directly over 6PN, so that is the address the Service names. The
address is written again at every start: a machine moved to another host has a new 6PN address.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import httpx

from flyk.k8s.components import DNS_PORT, ClusterDNS

JSON = dict[str, Any]

NAMESPACE = "kube-system"
SERVICE_NAME = "kube-dns"
FIELD_MANAGER = "flyk-supervisor"
# The EndpointSlice controller leaves alone a slice another manager owns.
MANAGED_BY = "flyk-supervisor"
LABELS = {
    "k8s-app": "kube-dns",
    "kubernetes.io/cluster-service": "true",
    "kubernetes.io/name": "CoreDNS",
}
PORTS = (("dns", "UDP"), ("dns-tcp", "TCP"))

_SERVICE_PATH = f"/api/v1/namespaces/{NAMESPACE}/services/{SERVICE_NAME}"
_SLICE_PATH = f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices/{SERVICE_NAME}"


def service() -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE_NAME, "namespace": NAMESPACE, "labels": LABELS},
        "spec": {
            "clusterIP": "None",
            "ports": [
                {"name": name, "port": DNS_PORT, "targetPort": DNS_PORT, "protocol": protocol}
                for name, protocol in PORTS
            ],
        },
    }


def endpoint_slice(dns: ClusterDNS) -> JSON:
    """The Service's one endpoint: the nameserver pods are given (never loopback: the API
    server refuses that, and no pod could use it)."""
    family = "IPv6" if ipaddress.ip_address(dns.nameserver).version == 6 else "IPv4"
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": SERVICE_NAME,
            "namespace": NAMESPACE,
            "labels": {
                **LABELS,
                "kubernetes.io/service-name": SERVICE_NAME,
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
            },
        },
        "addressType": family,
        # The hostname names it in SRV answers: coredns.kube-dns.kube-system.svc.<domain>.
        "endpoints": [
            {"addresses": [dns.nameserver], "hostname": "coredns", "conditions": {"ready": True}}
        ],
        "ports": [
            {"name": name, "port": DNS_PORT, "protocol": protocol} for name, protocol in PORTS
        ],
    }


def _apply(client: httpx.Client, path: str, body: JSON) -> httpx.Response:
    """Server-side apply: creates the object, or makes it match `body` (one call either way)."""
    return client.patch(
        path,
        params={"fieldManager": FIELD_MANAGER, "force": "true"},
        content=json.dumps(body),
        headers={"Content-Type": "application/apply-patch+yaml"},
    )


def ensure(client: httpx.Client, dns: ClusterDNS) -> None:
    """Apply the kube-dns Service and its EndpointSlice (the supervisor's client)."""
    _apply(client, _SERVICE_PATH, service()).raise_for_status()
    body = endpoint_slice(dns)
    found = client.get(_SLICE_PATH)
    if found.status_code == 200 and found.json().get("addressType") != body["addressType"]:
        # addressType is immutable: an address of the other family needs a new slice.
        client.delete(_SLICE_PATH).raise_for_status()
    _apply(client, _SLICE_PATH, body).raise_for_status()
