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
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx

from flyk.k8s import bootstrap

KUBELET_ROLE = "flyk:kubelet"
_RBAC = "rbac.authorization.k8s.io"

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
]


def ensure(server: str, ca_file: Path, cert_file: Path, key_file: Path) -> None:
    """Create each bootstrap object, or bring the one there up to date (the kubelet's role
    gains rules as flyk does)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.load_cert_chain(str(cert_file), str(key_file))
    with httpx.Client(base_url=server, verify=context, timeout=10) as client:
        for path, body in BOOTSTRAP_OBJECTS:
            response = client.post(path, json=body)
            if response.status_code == 409:
                where = f"{path}/{body['metadata']['name']}"
                current = client.get(where)
                current.raise_for_status()
                version = current.json()["metadata"]["resourceVersion"]
                meta = {**body["metadata"], "resourceVersion": version}
                response = client.put(where, json={**body, "metadata": meta})
            response.raise_for_status()
