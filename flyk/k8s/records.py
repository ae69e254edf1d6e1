"""The names flyk records on Fly, so that the platform stays the source of truth (DESIGN.md).

Which clusters exist, which apps are a cluster's namespaces and which machine runs which pod
are read back from these keys, never from a local file or parsed out of an app name. The
cluster workflows (`flyk.k8s`) and the kubelet (`flyk.kubelet`) both use this one list.
"""

from __future__ import annotations

import re

# Machine metadata of the control plane.
META_CLUSTER = "flyk_cluster"  # also on every pod machine
META_ORG = "flyk_org"
META_REGION = "flyk_region"
META_ROLE = "flyk_role"
META_VERSION = "flyk_version"
META_ENDPOINT = "flyk_api_endpoint"
META_PRIVATE = "flyk_private"
ROLE_CONTROL_PLANE = "control-plane"

# Machine metadata that ties a pod's machine to its pod.
META_NAMESPACE = "flyk_namespace"
META_POD = "flyk_pod"
META_POD_UID = "flyk_pod_uid"
META_SPEC_HASH = "flyk_spec_hash"  # hash of the pod's inputs: a change means "update the machine"

# App secrets that mark an app as a namespace of a cluster, set by the kubelet when it creates
# the app; cluster delete finds namespace apps by them even when no machine is left.
# The cluster's own app carries FLYK_CLUSTER and FLYK_ORG too (no FLYK_NAMESPACE), set by the
# first call of create after the app exists: a create that stopped before its control-plane
# machine is still known by them (`list`, `status`, `delete`).
MARKER_CLUSTER = "FLYK_CLUSTER"
MARKER_NAMESPACE = "FLYK_NAMESPACE"
MARKER_ORG = "FLYK_ORG"

# Until when (ISO 8601, UTC) the create working on a cluster's app may still be running: set
# with its first secrets, cleared when it stops and keeps an incomplete cluster. Another
# create of the same name meanwhile is refused instead of "resuming" a half-built cluster.
MARKER_CREATING = "FLYK_CREATING"

# The Fly volumes of PersistentVolumeClaims (the kubelet's volume provisioner makes them in the
# claim's namespace app). A volume has no metadata: its name carries the claim, `pvc_` and the
# first 26 hex digits of the claim's uid (Fly allows 30 of [a-z0-9_]). Status counts them and
# delete says which it kept, by this name, found on the platform.
CLAIM_VOLUME_PREFIX = "pvc_"
_CLAIM_VOLUME = re.compile(r"^pvc_[0-9a-f]{26}$")


def claim_volume_name(claim_uid: str) -> str:
    return CLAIM_VOLUME_PREFIX + claim_uid.replace("-", "")[:26]


def is_claim_volume(name: str | None) -> bool:
    return bool(name and _CLAIM_VOLUME.match(name))
