"""PersistentVolumeClaims on Fly volumes: the real control plane (its persistentvolume-binder,
StatefulSet controller and scheduler), the kubelet's provisioner and pods, the local backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flyk.k8s import rbac
from flyk.k8s.records import claim_volume_name as volume_name
from flyk.local import LocalBackend

from .conftest import eventually
from .harness import Harness
from .realkube import ControlPlane, Kube

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


def pod_with_claim(
    harness: Harness, name: str, claim_name: str, *, path: str = "/data", **meta: Any
) -> JSON:
    containers = [
        {"name": "app", "image": "redis", "volumeMounts": [{"name": "data", "mountPath": path}]}
    ]
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}]
    return harness.create_pod(name, containers=containers, volumes=volumes, **meta)


def provisioned(harness: Harness, name: str, body: JSON, namespace: str = "default") -> JSON:
    """Create the claim; its Fly volume once it is bound."""
    harness.kube.create("persistentvolumeclaims", body, harness.ns(namespace))
    pvc = eventually(lambda: bound(harness, name, namespace), what=f"claim {name} Bound")
    pv = harness.kube.get("persistentvolumes", pvc["spec"]["volumeName"])
    assert pv is not None
    (volume,) = [
        v for v in volumes(harness, namespace) if v["id"] == pv["spec"]["csi"]["volumeHandle"]
    ]
    return volume


def test_a_pod_mounts_its_claims_volume_in_the_volumes_region(harness: Harness) -> None:
    harness.start()
    volume = provisioned(harness, "data", claim("data", region="ams"))
    pod_with_claim(harness, "db", "data", path="/var/lib/redis")
    harness.wait_phase("db", "Running")
    machine = harness.machine_of("db")
    assert machine is not None
    assert machine["region"] == "ams"  # the pod follows its volume
    (mount,) = machine["config"]["mounts"]
    assert (mount["volume"], mount["path"]) == (volume["id"], "/var/lib/redis")
    assert (
        harness.fly.volumes.get(harness.app(), volume["id"]).attached_machine_id == (machine["id"])
    )
    assert not [e for e in harness.events("db", "UnsupportedField") if "(data)" in e["message"]]
    # Nothing waits on an attach step: no VolumeAttachment (the driver says attachRequired
    # false; the controller-manager runs without its attach/detach controller).
    attachments = harness.kube.http.get("/apis/storage.k8s.io/v1/volumeattachments")
    assert attachments.json()["items"] == []
    driver = harness.kube.http.get("/apis/storage.k8s.io/v1/csidrivers/volume.csi.fly.io")
    assert driver.json()["spec"]["attachRequired"] is False


def test_a_region_annotation_contradicting_the_volume_keeps_the_pod_pending(
    harness: Harness,
) -> None:
    harness.start()
    provisioned(harness, "data", claim("data", region="ams"))
    pod_with_claim(harness, "db", "data", annotations={"fly.io/region": "lhr"})
    (event,) = eventually(lambda: harness.events("db", "VolumeRegionConflict"), what="an Event")
    assert "ams" in event["message"] and "lhr" in event["message"]
    pod = harness.pod("db")
    assert pod is not None and pod["status"]["phase"] == "Pending"
    assert harness.machine_of("db") is None


def test_a_second_persistent_volume_in_one_pod_is_refused(harness: Harness) -> None:
    harness.start()
    provisioned(harness, "one", claim("one"))
    provisioned(harness, "two", claim("two"))
    containers = [{"name": "app", "image": "redis"}]
    volumes_ = [
        {"name": "a", "persistentVolumeClaim": {"claimName": "one"}},
        {"name": "b", "persistentVolumeClaim": {"claimName": "two"}},
    ]
    harness.create_pod("db", containers=containers, volumes=volumes_)
    (event,) = eventually(lambda: harness.events("db", "TooManyVolumes"), what="an Event")
    assert "2 persistent volumes" in event["message"]
    assert harness.machine_of("db") is None
    assert all(v.get("attached_machine_id") is None for v in volumes(harness))


def test_a_volume_mounted_by_a_running_machine_is_refused_to_a_second_pod(
    harness: Harness,
) -> None:
    harness.start()
    provisioned(harness, "data", claim("data", modes=("ReadWriteOnce",)))
    pod_with_claim(harness, "first", "data")
    harness.wait_phase("first", "Running")
    pod_with_claim(harness, "second", "data")
    (event,) = eventually(lambda: harness.events("second", "FailedAttachVolume"), what="Event")
    assert "in use" in event["message"]
    assert harness.machine_of("second") is None
    harness.delete_pod("first")
    harness.wait_phase("second", "Running")  # retried once the first machine is gone


def test_an_access_mode_a_fly_volume_cannot_give_is_refused(harness: Harness) -> None:
    harness.start()
    harness.kube.create(
        "persistentvolumeclaims", claim("shared", modes=("ReadWriteMany",)), harness.ns()
    )
    (event,) = eventually(
        lambda: [e for e in claim_events(harness, "shared") if e["reason"] == "ProvisioningFailed"],
        what="ProvisioningFailed",
    )
    assert "ReadWriteMany" in event["message"]
    assert volumes(harness) == []


def test_claims_deleted_destroy_their_volume_or_keep_it_by_class(harness: Harness) -> None:
    harness.start()
    gone = provisioned(harness, "gone", claim("gone"))
    kept = provisioned(harness, "kept", claim("kept", storage_class="flyio-volume-retain"))
    gone_pv = harness.kube.get("persistentvolumeclaims", "gone", "default")["spec"]["volumeName"]  # type: ignore[index]
    kept_pv = harness.kube.get("persistentvolumeclaims", "kept", "default")["spec"]["volumeName"]  # type: ignore[index]
    harness.kube.delete("persistentvolumeclaims", "gone", "default")
    harness.kube.delete("persistentvolumeclaims", "kept", "default")
    eventually(
        lambda: [v["id"] for v in volumes(harness)] == [kept["id"]], what="only the kept volume"
    )
    eventually(lambda: harness.kube.get("persistentvolumes", gone_pv) is None, what="PV gone")
    assert gone["id"] != kept["id"]

    def released() -> bool:
        pv = harness.kube.get("persistentvolumes", kept_pv)
        return pv is not None and pv["status"]["phase"] == "Released"

    eventually(released, what="the kept PV Released, not deleted")

    def retained_events() -> list[JSON]:  # a PV's are in `default`, as a Node's
        return [
            e
            for e in harness.kube.list("events", "")
            if e["reason"] == "VolumeRetained" and e["involvedObject"]["name"] == kept_pv
        ]

    (retained,) = eventually(retained_events, what="VolumeRetained")
    assert kept["id"] in retained["message"] and "flyk volumes destroy" in retained["message"]


def test_a_claim_grown_extends_its_volume(harness: Harness) -> None:
    harness.start()
    volume = provisioned(harness, "data", claim("data", "1Gi"))
    pod_with_claim(harness, "db", "data")
    harness.wait_phase("db", "Running")
    response = harness.kube.patch(
        "persistentvolumeclaims",
        "data",
        {"spec": {"resources": {"requests": {"storage": "3Gi"}}}},
        "default",
    )
    response.raise_for_status()

    def grown() -> bool:
        pvc = harness.kube.get("persistentvolumeclaims", "data", "default") or {}
        return (pvc.get("status") or {}).get("capacity", {}).get("storage") == "3Gi"

    eventually(grown, what="the claim's capacity 3Gi")
    assert harness.fly.volumes.get(harness.app(), volume["id"]).size_gb == 3
    pvc = harness.kube.get("persistentvolumeclaims", "data", "default")
    pv = harness.kube.get("persistentvolumes", pvc["spec"]["volumeName"])  # type: ignore[index]
    assert pv is not None and pv["spec"]["capacity"]["storage"] == "3Gi"
    (event,) = [e for e in claim_events(harness, "data") if e["reason"] == "VolumeResizeSuccessful"]
    assert "must restart" in event["message"]  # its machine is running


def test_a_region_without_room_leaves_the_claim_pending_naming_regions_that_have_it(
    harness: Harness, backend: LocalBackend
) -> None:
    backend.capacity.set_volumes("ams", 0)
    harness.start()
    harness.kube.create("persistentvolumeclaims", claim("data", region="ams"), harness.ns())

    def failed() -> list[JSON]:
        return [e for e in claim_events(harness, "data") if e["reason"] == "ProvisioningFailed"]

    (event,) = eventually(failed, what="ProvisioningFailed")
    assert "no capacity" in event["message"] and "ams" in event["message"]
    assert "Regions that could take it: " in event["message"]
    others = event["message"].split("Regions that could take it: ")[1].split(".")[0]
    assert others and "ams" not in others and "none" not in others
    pvc = harness.kube.get("persistentvolumeclaims", "data", "default")
    assert pvc is not None and pvc["status"]["phase"] == "Pending"
    assert volumes(harness) == []
    backend.capacity.set_volumes("ams", 100)  # room again: the retry provisions it
    eventually(lambda: bound(harness, "data"), timeout=60, what="Bound once there is room")


def test_a_provisioner_restarted_between_volume_and_pv_makes_one_volume(
    harness: Harness,
) -> None:
    harness.traffic.fail("POST", r"/api/v1/persistentvolumes(\?|$)", 500, times=None)
    harness.start()
    made = harness.kube.create("persistentvolumeclaims", claim("data"), harness.ns())
    eventually(lambda: volumes(harness), what="the volume made")
    eventually(lambda: harness.traffic.count("POST", "/api/v1/persistentvolumes") >= 2)
    harness.stop()
    harness.traffic.faults.clear()
    harness.start()
    pvc = eventually(lambda: bound(harness, "data"), what="Bound after the restart")
    (volume,) = volumes(harness)
    assert volume["name"] == volume_name(made["metadata"]["uid"])
    pv = harness.kube.get("persistentvolumes", pvc["spec"]["volumeName"])
    assert pv is not None and pv["spec"]["csi"]["volumeHandle"] == volume["id"]
    assert len(harness.calls.matching("POST", "/volumes")) == 1


def statefulset(harness: Harness, name: str, replicas: int) -> JSON:
    template = {
        "metadata": {"labels": {"app": name}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": harness.node},
            "containers": [
                {
                    "name": "db",
                    "image": "redis",
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
        },
    }
    claim_template = {
        "metadata": {"name": "data"},
        "spec": {
            "accessModes": ["ReadWriteOncePod"],
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    body = {
        "metadata": {"name": name},
        "spec": {
            "serviceName": name,
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": template,
            "volumeClaimTemplates": [claim_template],
        },
    }
    return harness.kube.create("statefulsets", body, harness.ns())


def running_with_volume(harness: Harness, pod: str) -> str | None:
    """The volume the pod's machine mounts, once the pod runs."""
    if harness.phase(pod) != "Running":
        return None
    machine = harness.machine_of(pod)
    if machine is None or machine["state"] != "started":
        return None
    mounts = machine["config"].get("mounts") or []
    return str(mounts[0]["volume"]) if mounts else None


def test_a_statefulset_keeps_one_volume_per_replica_across_machine_loss_and_scale_down(
    harness: Harness,
) -> None:
    harness.start()
    statefulset(harness, "db", 2)
    first = eventually(lambda: running_with_volume(harness, "db-0"), timeout=60, what="db-0")
    second = eventually(lambda: running_with_volume(harness, "db-1"), timeout=60, what="db-1")
    assert first != second
    assert sorted(v["id"] for v in volumes(harness)) == sorted([first, second])

    lost = harness.machine_of("db-0")
    assert lost is not None
    harness.fly.machines.destroy(harness.app(), lost["id"], force=True)

    def replaced() -> str | None:
        machine = harness.machine_of("db-0")
        if machine is None or machine["id"] == lost["id"]:
            return None
        return running_with_volume(harness, "db-0")

    assert eventually(replaced, timeout=60, what="db-0 on a new machine") == first

    harness.kube.delete("pods", "db-1", "default")  # a pod restart: a new pod, same claim
    eventually(lambda: harness.machine_of("db-1") is None, what="db-1's old machine gone")
    assert eventually(lambda: running_with_volume(harness, "db-1"), timeout=60) == second

    response = harness.kube.patch("statefulsets", "db", {"spec": {"replicas": 0}}, "default")
    response.raise_for_status()
    eventually(lambda: harness.machines() == [], timeout=60, what="no machines")
    claims = harness.kube.list("persistentvolumeclaims", "default")
    assert sorted(c["metadata"]["name"] for c in claims) == ["data-db-0", "data-db-1"]
    assert sorted(v["id"] for v in volumes(harness)) == sorted([first, second])


def test_a_generic_ephemeral_volume_comes_and_goes_with_its_pod(harness: Harness) -> None:
    harness.start()
    template = {
        "spec": {
            "accessModes": ["ReadWriteOncePod"],
            "storageClassName": "flyio-volume",
            "resources": {"requests": {"storage": "1Gi"}},
        }
    }
    containers = [
        {"name": "app", "image": "redis", "volumeMounts": [{"name": "scratch", "mountPath": "/s"}]}
    ]
    volumes_ = [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": template}}]
    harness.create_pod("web", containers=containers, volumes=volumes_)
    mounted = eventually(lambda: running_with_volume(harness, "web"), timeout=60, what="mounted")
    (volume,) = volumes(harness)
    assert volume["id"] == mounted
    harness.delete_pod("web")
    eventually(lambda: volumes(harness) == [], timeout=60, what="the volume gone with its pod")


def test_the_classes_are_applied_again_at_each_start_whatever_changed_them(
    control_plane: ControlPlane,
) -> None:
    """rbac.ensure (the supervisor runs it at each start of the API server) brings changed or
    deleted objects back, including a StorageClass whose immutable fields changed."""
    with control_plane.admin() as http:
        path = "/apis/storage.k8s.io/v1/storageclasses"
        http.delete(f"{path}/flyio-volume-retain").raise_for_status()
        other = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": "flyio-volume-retain"},
            "provisioner": "volume.csi.fly.io",
            "reclaimPolicy": "Delete",
        }
        http.post(path, json=other).raise_for_status()
        http.delete(f"{path}/flyio-volume").raise_for_status()
        rbac.ensure(
            control_plane.url,
            control_plane.ca_file,
            control_plane._admin_cert,
            control_plane._admin_key,
        )
        assert http.get(f"{path}/flyio-volume-retain").json()["reclaimPolicy"] == "Retain"
        assert http.get(f"{path}/flyio-volume").json()["reclaimPolicy"] == "Delete"
