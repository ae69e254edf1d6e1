"""The kubelet's identity on the real control plane: a node, `system:node:<node>` in
`system:nodes`, under the Node authorizer and NodeRestriction, with the one ClusterRole
`flyk:kubelet` (flyk/k8s/rbac.py) for what a node may not do and the kubelet needs. Rows 1 and
2 of the audit: what such a node may not do, and that the kubelet never needs it."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from flyk.k8s import bootstrap

from .conftest import eventually
from .harness import Harness, make_pod
from .realkube import Kube


@pytest.fixture
def node(kube: Kube) -> Iterator[httpx.Client]:
    """An HTTP client with the kubelet's own certificate."""
    pair = kube.plane.pki.client_ca.sign_client(
        bootstrap.node_user(kube.node), [bootstrap.NODES_GROUP]
    )
    cert, key = kube.tmp / "node.crt", kube.tmp / "node.key"
    cert.write_bytes(pair.cert_pem)
    key.write_bytes(pair.key_pem)
    client = httpx.Client(base_url=kube.url, verify=kube.plane.ssl_context(cert, key), timeout=30)
    yield client
    client.close()


def whoami(client: httpx.Client) -> dict[str, Any]:
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    response = client.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json=review)
    response.raise_for_status()
    info: dict[str, Any] = response.json()["status"]["userInfo"]
    return info


def merge(client: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response:
    return client.patch(
        path,
        content=json.dumps(body),
        headers={"Content-Type": "application/merge-patch+json"},
    )


def test_the_kubelet_is_a_node_and_not_an_administrator(kube: Kube, node: httpx.Client) -> None:
    """Row 1: the kubelet's certificate makes it the node, nothing more."""
    info = whoami(node)
    assert info["username"] == f"system:node:{kube.node}"
    assert bootstrap.NODES_GROUP in info["groups"]
    assert bootstrap.MASTERS not in info["groups"]
    assert node.get("/api/v1/secrets").status_code == 403
    assert node.get("/api/v1/namespaces/kube-system/configmaps").status_code == 403
    other = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"{kube.node}-other"}}
    assert node.post("/api/v1/nodes", json=other).status_code == 403


def test_what_a_node_may_not_do_the_kubelet_does_not_need(kube: Kube, node: httpx.Client) -> None:
    """Row 2: NodeRestriction refuses a node writing a pod's metadata (the kubelet keeps the
    machine id in the pod's status instead), a `kubernetes.io/role` label and a change of its
    taints (the kubelet sets neither after registration); the namespaces it reads come from
    `flyk:kubelet`, the only permission added to a node's."""
    harness_pod = make_pod("web", namespace=kube.ns("default"), node=kube.node)
    kube.create("pods", harness_pod)
    pod_path = kube.path("pods", "default", "web")
    annotation = {"metadata": {"annotations": {"fly.io/machine-id": "x"}}}
    assert merge(node, pod_path, annotation).status_code == 403
    assert merge(node, f"{pod_path}/status", {"status": {"phase": "Running"}}).status_code == 200
    registered = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": kube.node, "labels": {"kubernetes.io/role": "agent"}},
    }
    assert node.post("/api/v1/nodes", json=registered).status_code == 403
    registered["metadata"]["labels"] = {"type": "virtual-kubelet"}  # type: ignore[index]
    assert node.post("/api/v1/nodes", json=registered).status_code == 201
    taints = {"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}
    assert merge(node, f"/api/v1/nodes/{kube.node}", taints).status_code == 403
    assert node.get("/api/v1/namespaces").status_code == 200  # flyk:kubelet
    assert node.get(f"/api/v1/namespaces/{kube.ns('default')}").status_code == 200
    assert node.delete(f"/api/v1/namespaces/{kube.ns('default')}").status_code == 403


def test_a_node_reads_only_the_secrets_and_config_maps_of_its_pods(
    kube: Kube, node: httpx.Client
) -> None:
    """The Node authorizer: a Secret or ConfigMap is readable by the node only while a pod
    bound to it references it."""
    data = {"k": base64.b64encode(b"v").decode()}
    for name in ("used", "unused"):
        kube.create("secrets", {"metadata": {"name": name}, "data": data}, "default")
        kube.create("configmaps", {"metadata": {"name": name}, "data": {"k": "v"}}, "default")
    env = [
        {"name": "A", "valueFrom": {"secretKeyRef": {"name": "used", "key": "k"}}},
        {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "used", "key": "k"}}},
    ]
    containers = [{"name": "app", "image": "app:1", "env": env}]
    kube.create(
        "pods", make_pod("web", namespace=kube.ns("default"), node=kube.node, containers=containers)
    )
    for plural in ("secrets", "configmaps"):
        used, unused = kube.path(plural, "default", "used"), kube.path(plural, "default", "unused")
        eventually(lambda p=used: node.get(p).status_code == 200, what=f"{plural} used readable")
        assert node.get(unused).status_code == 403
        assert node.get(kube.path(plural, "default")).status_code == 403  # no listing


def test_the_whole_flow_runs_as_the_node(harness: Harness) -> None:
    """A pod with a Secret, run, then deleted, by a kubelet whose every request is the
    node's: none refused."""
    data = {"k": base64.b64encode(b"v").decode()}
    harness.kube.create("secrets", {"metadata": {"name": "s"}, "data": data}, "default")
    harness.start()
    env = [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
    harness.create_pod("web", containers=[{"name": "app", "image": "app:1", "env": env}])
    harness.wait_phase("web", "Running")
    harness.delete_pod("web", grace=1)
    eventually(lambda: harness.pod("web") is None, what="web removed")
    eventually(lambda: harness.machines() == [], what="its machine destroyed")
    assert harness.kube.get("leases", harness.node, "kube-node-lease") is not None
    assert harness.traffic.refused(403) == []


@pytest.fixture
def harness(kube: Kube, kubeconfig: str, backend: Any) -> Iterator[Harness]:
    h = Harness(kube, kubeconfig, backend)
    yield h
    h.close()
