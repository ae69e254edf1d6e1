"""A pod's persistent volume as its machine's mount.

A Fly machine mounts at most one volume, chosen when the machine is created, and runs on the
volume's host, in its region (reference k8s-next-capabilities.md §3.1). So a pod may use one
persistentVolumeClaim or generic ephemeral volume, bound to a PV of `volume.csi.fly.io`; its
machine gets `mounts: [{volume, path, name}]` at the mount path its containers name, and runs
in the volume's region. Anything else is refused before the machine is made, with an Event,
and the pod stays Pending: never a machine without the volume it asked for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flyk.kubelet import translate
from flyk.kubelet.provisioner import REGION_ANNOTATION, is_ours, pv_volume

JSON = dict[str, Any]


class MountError(translate.TranslationError):
    """The pod cannot have its volume as written: told in an Event, the pod Pending."""

    def __init__(self, message: str, *, reason: str = "FailedMount") -> None:
        super().__init__(message, reason=reason)


@dataclass(frozen=True)
class PodVolume:
    """The Fly volume a pod mounts."""

    name: str  # the pod's volume entry
    claim: str
    volume_id: str
    region: str
    app: str


def persistent_claims(pod: JSON) -> list[tuple[str, str, bool]]:
    """(volume name, claim name, ephemeral) for each persistentVolumeClaim or generic
    ephemeral volume; an ephemeral volume's claim is `<pod>-<volume>`, made by the
    controller-manager and owned by the pod."""
    out = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        if "persistentVolumeClaim" in volume:
            claim = str(volume["persistentVolumeClaim"].get("claimName"))
            out.append((volume["name"], claim, False))
        elif "ephemeral" in volume:
            out.append((volume["name"], f"{pod['metadata']['name']}-{volume['name']}", True))
    return out


def resolve(
    pod: JSON,
    app: str,
    get_claim: Callable[[str, str], JSON | None],
    get_pv: Callable[[str], JSON | None],
) -> PodVolume | None:
    """The pod's Fly volume (None: it has no persistent volume); MountError when it cannot
    have one: two of them, a claim not bound yet, a PV that is not a Fly volume of its app."""
    claims = persistent_claims(pod)
    if not claims:
        return None
    if len(claims) > 1:
        names = ", ".join(name for name, _, _ in claims)
        raise MountError(
            f"the pod has {len(claims)} persistent volumes ({names}); a Fly machine mounts "
            "one volume: use one claim per pod",
            reason="TooManyVolumes",
        )
    (volume_entry, claim_name, ephemeral), namespace = claims[0], pod["metadata"]["namespace"]
    found = get_claim(namespace, claim_name)
    if found is None:
        raise MountError(f"persistentvolumeclaim {claim_name!r} not found")
    if ephemeral and not _owned_by(found, pod):
        raise MountError(f"persistentvolumeclaim {claim_name!r} was not made for this pod")
    pv_name = (found.get("spec") or {}).get("volumeName")
    if not pv_name or (found.get("status") or {}).get("phase") != "Bound":
        raise MountError(f"persistentvolumeclaim {claim_name!r} is not bound yet")
    pv = get_pv(pv_name)
    if pv is None or not is_ours(pv):
        raise MountError(
            f"persistentvolumeclaim {claim_name!r} is bound to {pv_name}, which is not a Fly "
            "volume (driver volume.csi.fly.io): flyk mounts Fly volumes only"
        )
    volume_app, volume_id = pv_volume(pv)
    if volume_app != app:
        raise MountError(
            f"{pv_name} is Fly volume {volume_id} of app {volume_app}, while this namespace's "
            f"machines run in app {app}: a machine mounts volumes of its own app only"
        )
    region = str((pv["metadata"].get("annotations") or {}).get(REGION_ANNOTATION, ""))
    return PodVolume(volume_entry, claim_name, volume_id, region, volume_app)


def _owned_by(claim: JSON, pod: JSON) -> bool:
    owners = claim["metadata"].get("ownerReferences") or []
    return any(o.get("uid") == pod["metadata"]["uid"] for o in owners)


def mount_path(pod: JSON, volume_entry: str) -> str | None:
    """The first path a container (app containers first) mounts the volume at."""
    spec = pod.get("spec") or {}
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        for mount in container.get("volumeMounts") or []:
            if mount.get("name") == volume_entry and mount.get("mountPath"):
                return str(mount["mountPath"])
    return None


def with_volume(plan: translate.MachinePlan, pod: JSON, volume: PodVolume) -> translate.MachinePlan:
    """The plan with the volume in `mounts` and the machine in the volume's region. A
    `fly.io/region` that leaves the volume's region out is refused: the pod follows its
    volume, never the other way round."""
    annotations = pod["metadata"].get("annotations") or {}
    asked = str(annotations.get(translate.REGION_ANNOTATION, "")).replace(" ", "")
    if asked and volume.region not in translate.allowed_regions(asked):
        raise MountError(
            f"annotation {translate.REGION_ANNOTATION}={asked} contradicts the pod's volume "
            f"{volume.volume_id} (claim {volume.claim}), which is in {volume.region}: a machine "
            f"runs where its volume is; remove the annotation or include {volume.region}",
            reason="VolumeRegionConflict",
        )
    path = mount_path(pod, volume.name)
    config = dict(plan.config)
    if path is not None:
        config["mounts"] = [{"volume": volume.volume_id, "path": path, "name": volume.name}]
    return dataclasses.replace(plan, config=config, region=volume.region)
