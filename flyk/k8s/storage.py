"""Storage objects the control plane applies at every start (rbac.py applies them): the two
StorageClasses of Fly volumes, the CSIDriver that says no attach step exists, and the
provisioner's ClusterRole. The provisioner itself runs in the kubelet
(flyk/kubelet/provisioner.py); docs/kubernetes.md ("Storage") says why each choice.

- `flyio-volume` (the default class, reclaim Delete) and `flyio-volume-retain` (Retain), as
  FKS names them, provisioner `volume.csi.fly.io`, `allowVolumeExpansion: true`.
  **volumeBindingMode: Immediate**: the region of a new volume comes from the claim
  (`selector.matchLabels.region`, else the cluster's region), as FKS does, and the pod follows
  its volume. WaitForFirstConsumer would only tell the provisioner the node the scheduler
  chose, and the cluster has one virtual node for every region: it carries no placement to
  wait for, while it would keep every claim Pending (and a capacity problem unseen) until a
  pod comes.
- CSIDriver `volume.csi.fly.io` with `attachRequired: false`: nothing attaches a Fly volume
  but the Machines API's `mounts` at machine create, so no VolumeAttachment is ever waited
  for (the controller-manager runs without its attach/detach controller too, components.py).
- ClusterRole `flyk:volume-provisioner`, bound to `system:nodes` like `flyk:kubelet`: what the
  provisioner needs beyond a node's own rights, nothing else.
"""

from __future__ import annotations

from typing import Any

from flyk.k8s import bootstrap

DRIVER = "volume.csi.fly.io"
DEFAULT_CLASS = "flyio-volume"
RETAIN_CLASS = "flyio-volume-retain"
BINDING_MODE = "Immediate"
PROVISIONER_ROLE = "flyk:volume-provisioner"
_RBAC = "rbac.authorization.k8s.io"
_DEFAULT_ANNOTATION = "storageclass.kubernetes.io/is-default-class"

# StorageClass fields the API server refuses to change (422): a class whose fields changed
# between flyk versions is deleted and made again (the PVs of the class keep its name).
IMMUTABLE_KINDS = frozenset({"StorageClass", "CSIDriver"})


def _storage_class(name: str, reclaim: str, *, default: bool) -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": name,
            "annotations": {_DEFAULT_ANNOTATION: "true" if default else "false"},
            "labels": {"app.kubernetes.io/managed-by": "flyk"},
        },
        "provisioner": DRIVER,
        "reclaimPolicy": reclaim,
        "volumeBindingMode": BINDING_MODE,
        "allowVolumeExpansion": True,
        "parameters": {"fsType": "ext4"},
    }


# (collection path, object); each is applied at every start of the control plane.
STORAGE_OBJECTS: list[tuple[str, dict[str, Any]]] = [
    (
        "/apis/storage.k8s.io/v1/storageclasses",
        _storage_class(DEFAULT_CLASS, "Delete", default=True),
    ),
    (
        "/apis/storage.k8s.io/v1/storageclasses",
        _storage_class(RETAIN_CLASS, "Retain", default=False),
    ),
    (
        "/apis/storage.k8s.io/v1/csidrivers",
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "CSIDriver",
            "metadata": {"name": DRIVER, "labels": {"app.kubernetes.io/managed-by": "flyk"}},
            "spec": {
                "attachRequired": False,
                "podInfoOnMount": False,
                "volumeLifecycleModes": ["Persistent"],
                "fsGroupPolicy": "None",
            },
        },
    ),
    (
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        {
            "apiVersion": f"{_RBAC}/v1",
            "kind": "ClusterRole",
            "metadata": {"name": PROVISIONER_ROLE},
            "rules": [
                # Claims to provision and to expand; their status carries a finished expansion
                # (NodeRestriction lets a node write only its capacity and conditions).
                {
                    "apiGroups": [""],
                    "resources": ["persistentvolumeclaims"],
                    "verbs": ["get", "list", "watch"],
                },
                {
                    "apiGroups": [""],
                    "resources": ["persistentvolumeclaims/status"],
                    "verbs": ["patch"],
                },
                # The PV of each volume: made bound to its claim, its capacity raised on
                # expansion, deleted after its volume when released with reclaim Delete.
                {
                    "apiGroups": [""],
                    "resources": ["persistentvolumes"],
                    "verbs": ["get", "list", "watch", "create", "patch", "delete"],
                },
                # A claim's class: provisioner, reclaim policy, whether it may grow.
                {
                    "apiGroups": ["storage.k8s.io"],
                    "resources": ["storageclasses"],
                    "verbs": ["get", "list", "watch"],
                },
            ],
        },
    ),
    (
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "apiVersion": f"{_RBAC}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": PROVISIONER_ROLE},
            "roleRef": {"apiGroup": _RBAC, "kind": "ClusterRole", "name": PROVISIONER_ROLE},
            "subjects": [{"apiGroup": _RBAC, "kind": "Group", "name": bootstrap.NODES_GROUP}],
        },
    ),
]
