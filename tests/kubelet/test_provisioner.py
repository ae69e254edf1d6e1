"""The volume provisioner's rules and the pod's mount, without an API server: sizes, regions,
names, the PV it makes, and the plan of a pod with a volume (the local backend for Fly)."""

from __future__ import annotations

from typing import Any

import pytest

from flyk.api import FlyClient, RateLimiter
from flyk.k8s import records
from flyk.kubelet import mounts, translate
from flyk.kubelet.config import KubeletConfig
from flyk.kubelet.provisioner import Refused, VolumeProvisioner, claim_region, size_gb
from flyk.local import LocalBackend

JSON = dict[str, Any]
UID = "5f0c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f"


@pytest.mark.parametrize(
    ("quantity", "gb"),
    [("1Gi", 1), ("1500Mi", 2), ("1G", 1), ("10Gi", 10), ("100Mi", 1), ("1.5Gi", 2), ("2Ti", 2048)],
)
def test_sizes_round_up_to_whole_gb(quantity: str, gb: int) -> None:
    assert size_gb(quantity) == gb


def test_a_size_not_understood_is_refused() -> None:
    with pytest.raises(Refused, match="not understood"):
        size_gb("lots")


def test_the_region_comes_from_the_selector_else_the_cluster() -> None:
    assert claim_region({"spec": {}}, "iad") == "iad"
    assert claim_region({"spec": {"selector": {"matchLabels": {"region": "ams"}}}}, "iad") == "ams"


def test_the_volume_name_carries_the_claim_and_fits_fly() -> None:
    name = records.claim_volume_name(UID)
    assert name == "pvc_5f0c1d2e3a4b4c5d8e9f0a1b2c"
    assert len(name) <= 30 and records.is_claim_volume(name)
    assert not records.is_claim_volume("flyk_data") and not records.is_claim_volume(None)


def _claim(**spec: Any) -> JSON:
    body = {
        "accessModes": ["ReadWriteOncePod"],
        "resources": {"requests": {"storage": "1Gi"}},
        "storageClassName": "flyio-volume",
        **spec,
    }
    return {"metadata": {"name": "data", "namespace": "shop", "uid": UID}, "spec": body}


def _provisioner(backend: LocalBackend) -> tuple[VolumeProvisioner, FlyClient]:
    fly = FlyClient(transport=backend.transport(), rate_limiter=RateLimiter.unlimited())
    config = KubeletConfig(cluster="demo", org="personal", region="iad")

    def ensure_app(namespace: str) -> str:
        fly.apps.create(f"flyk-demo-{namespace}", "personal")
        return f"flyk-demo-{namespace}"

    kube: Any = None  # the rules below make no Kubernetes call
    return VolumeProvisioner(kube, fly, config, ensure_app=ensure_app), fly


def test_the_pv_is_bound_to_its_claim_with_fks_labels_and_annotations(
    backend: LocalBackend,
) -> None:
    provisioner, _ = _provisioner(backend)
    cls = {"metadata": {"name": "flyio-volume"}, "reclaimPolicy": "Retain"}
    claim = _claim(selector={"matchLabels": {"region": "ams", "tier": "db"}})
    pv = provisioner._pv(claim, cls, "flyk-demo-shop", "vol_123", "ams", 2)
    assert pv["metadata"]["name"] == f"pvc-{UID}"
    assert pv["metadata"]["labels"] == {"region": "ams", "tier": "db"}  # the selector holds
    assert pv["metadata"]["annotations"] == {
        "pv.kubernetes.io/provisioned-by": "volume.csi.fly.io",
        "fly.io/app": "flyk-demo-shop",
        "fly.io/region": "ams",
        "volume.fly.io/id": "vol_123",
    }
    spec = pv["spec"]
    assert spec["claimRef"]["uid"] == UID and spec["claimRef"]["namespace"] == "shop"
    assert spec["csi"]["driver"] == "volume.csi.fly.io"
    assert spec["csi"]["volumeHandle"] == "vol_123"
    assert spec["capacity"] == {"storage": "2Gi"}
    assert spec["persistentVolumeReclaimPolicy"] == "Retain"
    assert "nodeAffinity" not in spec  # one virtual node for every region


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ({"accessModes": ["ReadWriteMany"]}, "ReadWriteMany"),
        ({"accessModes": ["ReadOnlyMany"]}, "ReadOnlyMany"),
        ({"volumeMode": "Block"}, "Block"),
        ({"resources": {"requests": {"storage": "600Gi"}}}, "500 GB"),
    ],
)
def test_claims_a_fly_volume_cannot_serve_are_refused_before_any_call(
    backend: LocalBackend, spec: JSON, why: str
) -> None:
    provisioner, fly = _provisioner(backend)
    with pytest.raises(Refused, match=why):
        provisioner._provision(_claim(**spec), {"metadata": {"name": "flyio-volume"}})
    assert fly.apps.list("personal") == []


def test_a_volume_made_earlier_for_the_claim_is_found_not_made_again(
    backend: LocalBackend,
) -> None:
    provisioner, fly = _provisioner(backend)
    fly.apps.create("flyk-demo-shop", "personal")
    made = fly.volumes.create("flyk-demo-shop", records.claim_volume_name(UID), "ams", 3)
    claim = _claim()
    found = provisioner._create_volume(
        claim, "flyk-demo-shop", records.claim_volume_name(UID), "iad", 1
    )
    assert found == {"id": made.id, "region": "ams", "size_gb": 3}
    assert [v.id for v in fly.volumes.list("flyk-demo-shop")] == [made.id]


def _pod(**annotations: str) -> JSON:
    return {
        "metadata": {"name": "db", "namespace": "shop", "uid": "u1", "annotations": annotations},
        "spec": {
            "containers": [
                {"name": "db", "image": "redis", "volumeMounts": [{"name": "d", "mountPath": "/x"}]}
            ],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
        },
    }


def _plan(pod: JSON) -> translate.MachinePlan:
    node = translate.NodeFacts(cluster="demo", node_name="flyk", node_ip="::1", region="iad")
    return translate.build_plan(pod, translate.Sources(), node)


VOLUME = mounts.PodVolume("d", "data", "vol_1", "ams", "flyk-demo-shop")


def test_the_machine_mounts_the_volume_in_its_region() -> None:
    pod = _pod()
    plan = mounts.with_volume(_plan(pod), pod, VOLUME)
    assert plan.region == "ams"
    assert plan.config["mounts"] == [{"volume": "vol_1", "path": "/x", "name": "d"}]
    assert not [w for w in plan.warnings if "persistentVolumeClaim" in w]


def test_a_region_list_that_includes_the_volumes_region_is_fine() -> None:
    pod = _pod(**{"fly.io/region": "lhr,ams"})
    assert mounts.with_volume(_plan(pod), pod, VOLUME).region == "ams"


def test_a_region_that_contradicts_the_volume_is_refused() -> None:
    pod = _pod(**{"fly.io/region": "lhr"})
    with pytest.raises(mounts.MountError, match="contradicts") as refused:
        mounts.with_volume(_plan(pod), pod, VOLUME)
    assert refused.value.reason == "VolumeRegionConflict"


def _bound_pv(app: str = "flyk-demo-shop", driver: str = "volume.csi.fly.io") -> JSON:
    return {
        "metadata": {"name": "pvc-1", "annotations": {"fly.io/app": app, "fly.io/region": "ams"}},
        "spec": {"csi": {"driver": driver, "volumeHandle": "vol_1"}},
    }


def _bound_claim(**extra: Any) -> JSON:
    return {
        "metadata": {"name": "data", **extra},
        "spec": {"volumeName": "pvc-1"},
        "status": {"phase": "Bound"},
    }


def test_a_bound_claim_resolves_to_its_volume() -> None:
    found = mounts.resolve(
        _pod(), "flyk-demo-shop", lambda ns, name: _bound_claim(), lambda name: _bound_pv()
    )
    assert found == VOLUME


@pytest.mark.parametrize(
    ("claim", "pv", "message"),
    [
        (None, _bound_pv(), "not found"),
        (
            {"metadata": {"name": "data"}, "spec": {}, "status": {"phase": "Pending"}},
            None,
            "not bound",
        ),
        (_bound_claim(), _bound_pv(driver="ebs.csi.aws.com"), "not a Fly volume"),
        (_bound_claim(), _bound_pv(app="flyk-demo-other"), "of its own app"),
    ],
)
def test_a_claim_that_cannot_be_mounted_is_refused(
    claim: JSON | None, pv: JSON | None, message: str
) -> None:
    with pytest.raises(mounts.MountError, match=message):
        mounts.resolve(_pod(), "flyk-demo-shop", lambda ns, name: claim, lambda name: pv)
