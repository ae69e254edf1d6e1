"""PersistentVolumeClaims on Fly volumes: the real control plane (its persistentvolume-binder,
StatefulSet controller and scheduler), the kubelet's provisioner and pods, the local backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flyk.kubelet.provisioner import volume_name
from flyk.local import LocalBackend

from .conftest import eventually
from .harness import Harness
from .realkube import Kube

JSON = dict[str, Any]


@pytest.fixture
def harness(kube: Kube, kubeconfig: str, backend: LocalBackend) -> Iterator[Harness]:
    h = Harness(kube, kubeconfig, backend)
    yield h
    h.close()
    _forget_volumes(kube)


def _forget_volumes(kube: Kube) -> None:
    """The PVs of the test's claims (cluster-scoped: deleting its namespaces leaves them)."""
    for pv in kube.list("persistentvolumes"):
        ref = pv["spec"].get("claimRef") or {}
        if str(ref.get("namespace", "")).endswith(kube.suffix):
            kube.delete("persistentvolumes", pv["metadata"]["name"])


def claim(
    name: str,
    size: str = "1Gi",
    *,
    region: str | None = None,
    storage_class: str | None = None,
    modes: tuple[str, ...] = ("ReadWriteOncePod",),
) -> JSON:
    spec: JSON = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if region:
        spec["selector"] = {"matchLabels": {"region": region}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"metadata": {"name": name}, "spec": spec}


def volumes(harness: Harness, namespace: str = "default") -> list[JSON]:
    try:
        return [v.to_api() for v in harness.fly.volumes.list(harness.app(namespace))]
    except Exception:  # the app does not exist yet
        return []


def bound(harness: Harness, name: str, namespace: str = "default") -> JSON | None:
    found = harness.kube.get("persistentvolumeclaims", name, namespace)
    if found and (found.get("status") or {}).get("phase") == "Bound":
        return found
    return None


def claim_events(harness: Harness, name: str, namespace: str = "default") -> list[JSON]:
    return [
        e
        for e in harness.kube.list("events", namespace)
        if e["involvedObject"]["name"] == name
        and e["involvedObject"]["kind"] == "PersistentVolumeClaim"
    ]


def test_the_default_classes_are_there(harness: Harness) -> None:
    classes = {c["metadata"]["name"]: c for c in harness.kube.list("storageclasses")}
    default, retain = classes["flyio-volume"], classes["flyio-volume-retain"]
    assert default["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == (
        "true"
    )
    assert (default["reclaimPolicy"], retain["reclaimPolicy"]) == ("Delete", "Retain")
    for cls in (default, retain):
        assert cls["provisioner"] == "volume.csi.fly.io"
        assert cls["allowVolumeExpansion"] is True
        assert cls["volumeBindingMode"] == "Immediate"


def test_a_claim_becomes_a_fly_volume_and_a_bound_pv_in_its_region(harness: Harness) -> None:
    harness.start()
    made = harness.kube.create(
        "persistentvolumeclaims", claim("data", "1500Mi", region="ams"), harness.ns()
    )
    pvc = eventually(lambda: bound(harness, "data"), what="the claim Bound")
    uid = made["metadata"]["uid"]
    assert pvc["spec"]["volumeName"] == f"pvc-{uid}"
    (volume,) = volumes(harness)
    assert volume["name"] == volume_name(uid)
    assert (volume["region"], volume["size_gb"]) == ("ams", 2)  # 1500Mi, rounded up
    pv = harness.kube.get("persistentvolumes", f"pvc-{uid}")
    assert pv is not None
    assert pv["metadata"]["labels"]["region"] == "ams"
    annotations = pv["metadata"]["annotations"]
    assert annotations["pv.kubernetes.io/provisioned-by"] == "volume.csi.fly.io"
    assert annotations["volume.fly.io/id"] == volume["id"]
    assert annotations["fly.io/app"] == harness.app()
    assert annotations["fly.io/region"] == "ams"
    assert pv["spec"]["csi"]["driver"] == "volume.csi.fly.io"
    assert pv["spec"]["csi"]["volumeHandle"] == volume["id"]
    assert pv["spec"]["capacity"]["storage"] == "2Gi"
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert pvc["status"]["capacity"]["storage"] == "2Gi"
