"""Objects the control plane creates at every start, idempotently, as the supervisor (a
`system:masters` client certificate that never leaves the machine).

- ClusterRoleBinding `kube-apiserver-kubelet-admin`: the API server's kubelet-client
  certificate (user `kube-apiserver`) may reach the kubelet's API (`nodes/proxy`, `nodes/log`,
  …) through `system:kubelet-api-admin`, for `kubectl logs` and `exec` (K3s ships the same).
- ClusterRole `flyk:kubelet` and its binding to group `system:nodes`: what the virtual kubelet
  needs beyond a node's rights (the Node authorizer's), and nothing else: `get` and `list` of
  namespaces (at start it finds the namespaces deleted while it was away, whose machines it
  destroys; later, whether a namespace with no pod left still exists); `get`/`list`/`watch`
  of services and endpointslices and `patch` of services/status (the Service controller:
  which machines each Service routes to, a LoadBalancer's addresses). docs/kubernetes.md
  ("Permissions") lists every permission the kubelet uses, with its reason.
- ClusterRole `flyk:coredns` and its binding to CoreDNS's user: `list` and `watch` of Services
  (the names it answers), EndpointSlices (headless Services' addresses, SRV targets) and
  namespaces (a name in a namespace that does not exist is NXDOMAIN), all that CoreDNS's
  kubernetes plugin reads with `pods insecure` (docs/kubernetes.md, "DNS").
- The storage objects of storage.py: the Fly volume StorageClasses, the CSIDriver and the
  volume provisioner's ClusterRole.

Each object is applied (server-side apply, forced, field manager `flyk-control-plane`): made
when missing, brought back to flyk's version when a flyk upgrade or a user changed it.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import httpx

from flyk.k8s import bootstrap, storage

KUBELET_ROLE = "flyk:kubelet"
COREDNS_ROLE = "flyk:coredns"
_RBAC = "rbac.authorization.k8s.io"
_CLUSTER_ROLES = "/apis/rbac.authorization.k8s.io/v1/clusterroles"
_CLUSTER_ROLE_BINDINGS = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"

BOOTSTRAP_OBJECTS: list[tuple[str, dict[str, Any]]] = [
    (
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        {
            "apiVersion": f"{_RBAC}/v1",
            "kind": "ClusterRole",
            "metadata": {"name": KUBELET_ROLE},
            "rules": [
                {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list"]},
                # The Service controller (flyk/kubelet/services.py): the Services and their
                # EndpointSlices it routes, and a LoadBalancer's status (its public addresses).
                {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]},
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["get", "list", "watch"],
                },
                {"apiGroups": [""], "resources": ["services/status"], "verbs": ["patch"]},
            ],
        },
    ),
    (
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "apiVersion": f"{_RBAC}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": KUBELET_ROLE},
            "roleRef": {"apiGroup": _RBAC, "kind": "ClusterRole", "name": KUBELET_ROLE},
            "subjects": [{"apiGroup": _RBAC, "kind": "Group", "name": bootstrap.NODES_GROUP}],
        },
    ),
    (
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "kube-apiserver-kubelet-admin"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:kubelet-api-admin",
            },
            "subjects": [
                {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "User",
                    "name": bootstrap.KUBELET_CLIENT_USER,
                }
            ],
        },
    ),
    (
        _CLUSTER_ROLES,
        {
            "apiVersion": f"{_RBAC}/v1",
            "kind": "ClusterRole",
            "metadata": {"name": COREDNS_ROLE},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["services", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
    ),
    (
        _CLUSTER_ROLE_BINDINGS,
        {
            "apiVersion": f"{_RBAC}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": COREDNS_ROLE},
            "roleRef": {"apiGroup": _RBAC, "kind": "ClusterRole", "name": COREDNS_ROLE},
            "subjects": [{"apiGroup": _RBAC, "kind": "User", "name": bootstrap.COREDNS_USER}],
        },
    ),
]


def supervisor_client(server: str, ca_file: Path, cert_file: Path, key_file: Path) -> httpx.Client:
    """An API client with the supervisor's certificate."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.load_cert_chain(str(cert_file), str(key_file))
    return httpx.Client(base_url=server, verify=context, timeout=10)


FIELD_MANAGER = "flyk-control-plane"


def ensure(server: str, ca_file: Path, cert_file: Path, key_file: Path) -> None:
    """Apply each bootstrap object: created when missing, updated when it differs."""
    with supervisor_client(server, ca_file, cert_file, key_file) as client:
        for path, body in [*BOOTSTRAP_OBJECTS, *storage.STORAGE_OBJECTS]:
            apply(client, path, body)


def apply(client: httpx.Client, collection: str, body: dict[str, Any]) -> None:
    """Server-side apply of one object. One whose immutable fields changed (a StorageClass's
    reclaim policy, a CSIDriver's spec) is refused (422): it is deleted and applied again."""
    where = f"{collection}/{body['metadata']['name']}"
    params = {"fieldManager": FIELD_MANAGER, "force": "true"}
    headers = {"Content-Type": "application/apply-patch+yaml"}
    content = json.dumps(body)  # JSON is YAML
    response = client.patch(where, params=params, content=content, headers=headers)
    if response.status_code == 422 and body["kind"] in storage.IMMUTABLE_KINDS:
        client.delete(where).raise_for_status()
        response = client.patch(where, params=params, content=content, headers=headers)
    response.raise_for_status()
