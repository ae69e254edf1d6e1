"""The volume provisioner: PersistentVolumeClaims of class `volume.csi.fly.io` become Fly
volumes, following the external-provisioner contract (reference k8s-next-capabilities.md §3.2).

- **Provision.** The controller-manager's persistentvolume-binder annotates a claim of such a
  class `volume.kubernetes.io/storage-provisioner: volume.csi.fly.io`. The provisioner makes a
  Fly volume in the namespace's app (size rounded up to whole GB; region from the claim's
  `selector.matchLabels.region`, else the cluster's), then the PV `pvc-<claim uid>`, bound to
  the claim (`claimRef`), with FKS's labels and annotations and a `csi` source whose
  `volumeHandle` is the volume id; the binder completes the binding.
- **Never twice.** A volume has no metadata, so its name carries the claim: `pvc_` and the
  first 26 hex digits of the claim's uid. Before creating, the app's volumes are listed and a
  volume of that name is taken as the claim's (a retry, a kubelet restarted between the volume
  and its PV); the PV's name, from the uid too, is refused as existing (409) the second time.
- **Reclaim.** A PV of ours `Released` with reclaim `Delete`: its volume is destroyed, then
  the PV deleted. `Retain`: both are kept, with an Event saying how to delete them.
- **Expand.** A bound claim asking for more than its PV holds: the volume is extended
  (`PUT …/extend`), then the PV's capacity and the claim's status follow; an Event says when
  the pod's machine must restart to see the new size.

State lives in the API server and on Fly: a restarted provisioner lists both and goes on.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from flyk.api import FlyClient
from flyk.errors import (
    CapacityError,
    FlykError,
    InvalidRequestError,
    NotFoundError,
    PreconditionFailedError,
)
from flyk.k8s import records, storage
from flyk.kubelet.config import KubeletConfig
from flyk.kubelet.events import Recorder
from flyk.kubelet.kube import KubeApi, KubeError

JSON = dict[str, Any]
log = logging.getLogger("flyk.kubelet.volumes")

DRIVER = storage.DRIVER
PROVISIONER_KEYS = (
    "volume.kubernetes.io/storage-provisioner",
    "volume.beta.kubernetes.io/storage-provisioner",
)
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
# FKS's PV label and annotations (docs `kubernetes/using-volumes`).
REGION_LABEL = "region"
APP_ANNOTATION = "fly.io/app"
REGION_ANNOTATION = "fly.io/region"
VOLUME_ID_ANNOTATION = "volume.fly.io/id"
ACCESS_MODES = frozenset({"ReadWriteOncePod", "ReadWriteOnce"})
MAX_SIZE_GB = 500
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([a-zA-Z]*)$")
_SUFFIX = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
_SUFFIX |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}


class Refused(Exception):
    """A claim the provisioner will not serve as written (said in an Event, not retried until
    the claim changes)."""


def size_gb(quantity: str) -> int:
    """A storage quantity in whole GB (Fly's GB are GiB), rounded up, at least 1."""
    match = _QUANTITY.match(str(quantity).strip())
    if not match or match.group(2) not in _SUFFIX:
        raise Refused(f"storage request {quantity!r} is not understood")
    size = float(match.group(1)) * _SUFFIX[match.group(2)]
    return max(1, math.ceil(size / 2**30 - 1e-9))


def claim_class(claim: JSON) -> str:
    return str((claim.get("spec") or {}).get("storageClassName") or "")


def claim_region(claim: JSON, default: str) -> str:
    selector = (claim.get("spec") or {}).get("selector") or {}
    return str((selector.get("matchLabels") or {}).get(REGION_LABEL) or default)


def is_ours(pv: JSON) -> bool:
    csi = (pv.get("spec") or {}).get("csi") or {}
    return csi.get("driver") == DRIVER


def pv_volume(pv: JSON) -> tuple[str, str]:
    """(app, volume id) of one of our PVs."""
    annotations = pv["metadata"].get("annotations") or {}
    return str(annotations.get(APP_ANNOTATION, "")), str(pv["spec"]["csi"]["volumeHandle"])


def _storage(obj: JSON, *path: str) -> str | None:
    node: Any = obj
    for key in path:
        node = (node or {}).get(key)
    return None if node is None else str(node)


class VolumeProvisioner:
    """`start(stop)` runs it in threads: two watches (claims, PVs) that wake one worker,
    which lists both and reconciles every claim and PV (also every `resync` seconds)."""

    def __init__(
        self,
        kube: KubeApi,
        fly: FlyClient,
        config: KubeletConfig,
        *,
        ensure_app: Callable[[str], str],
        watch_kube: Callable[[], KubeApi] | None = None,
    ) -> None:
        self._kube = kube
        self._fly = fly
        self._config = config
        self._ensure_app = ensure_app
        self._watch_kube = watch_kube
        self._event = Recorder(kube, "flyk-volume-provisioner", config.node_name)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._backoff: dict[str, tuple[int, float]] = {}  # uid -> (failures, not before)
        self._refused: dict[str, str] = {}  # claim uid -> resourceVersion refused
        self._lock = threading.Lock()

    # threads ----------------------------------------------------------------------------
    def start(self, stop: threading.Event) -> None:
        self._stop = stop
        self._spawn("flyk-volumes", self._run)
        if self._watch_kube is not None:
            for kind in ("claims", "volumes"):
                self._spawn(f"flyk-volumes-watch-{kind}", functools.partial(self._watch, kind))

    def join(self, timeout: float) -> None:
        """Waits for the worker. A watch ends when the API server closes it (at most
        `watch_timeout`) and its thread then closes its own client: closing a TLS client
        under a thread blocked reading it could let that read land on a reused descriptor."""
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            wait = 0.1 if "watch" in thread.name else max(0.0, deadline - time.monotonic())
            thread.join(wait)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _run(self) -> None:
        intervals = self._config.intervals
        failures = 0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.sync()
                failures = 0
                wait = self._next_due(intervals.volume_resync)
            except (KubeError, FlykError) as error:
                failures += 1
                wait = min(intervals.backoff_max, intervals.backoff_initial * 2 ** (failures - 1))
                log.warning("volumes: %s; again in %.1fs", error, wait)
            except Exception:  # a bug must not end the thread: said, and tried again later
                log.exception("volumes: unexpected error")
                wait = intervals.backoff_max
            if self._stop.is_set():
                return
            self._wake.wait(wait)

    def _watch(self, kind: str) -> None:
        assert self._watch_kube is not None
        api = self._watch_kube()
        try:
            self._watch_with(kind, api)
        finally:
            api.close()

    def _watch_with(self, kind: str, api: KubeApi) -> None:
        intervals = self._config.intervals
        failures = 0
        while not self._stop.is_set():
            try:
                listed = api.list_claims() if kind == "claims" else api.list_volumes()
                self._wake.set()
                for _event in api.watch_storage(
                    kind,
                    listed[1],
                    server_timeout=intervals.watch_timeout,
                    read_timeout=intervals.watch_timeout + intervals.watch_read_grace,
                ):
                    failures = 0
                    self._wake.set()
                    if self._stop.is_set():
                        return
            except Exception as error:  # a KubeError; anything else is retried the same way
                if self._stop.is_set():
                    return
                failures += 1
                delay = min(intervals.backoff_max, intervals.backoff_initial * 2 ** (failures - 1))
                log.info("volumes: %s watch: %s", kind, error)
                if self._stop.wait(delay):
                    return

    def _next_due(self, resync: float) -> float:
        now = time.monotonic()
        with self._lock:
            due = [when - now for _, when in self._backoff.values()]
        return max(0.0, min([resync, *due]))

    def _due(self, uid: str) -> bool:
        with self._lock:
            entry = self._backoff.get(uid)
        return entry is None or entry[1] <= time.monotonic()

    def _failed(self, uid: str) -> None:
        intervals = self._config.intervals
        with self._lock:
            failures = self._backoff.get(uid, (0, 0.0))[0] + 1
            delay = min(intervals.backoff_max, intervals.backoff_initial * 2 ** (failures - 1))
            self._backoff[uid] = (failures, time.monotonic() + delay)

    def _done(self, uid: str) -> None:
        with self._lock:
            self._backoff.pop(uid, None)

    # one pass -----------------------------------------------------------------------------
    def sync(self) -> None:
        """Reconcile every claim and every PV once (what the worker does when woken)."""
        classes = {c["metadata"]["name"]: c for c in self._kube.list_storage_classes()}
        claims, _ = self._kube.list_claims()
        volumes, _ = self._kube.list_volumes()
        by_name = {pv["metadata"]["name"]: pv for pv in volumes}
        for claim in claims:
            self._guarded(claim, functools.partial(self._sync_claim, claim, classes, by_name))
        for pv in volumes:
            if is_ours(pv):
                self._guarded(pv, functools.partial(self._sync_volume, pv))
        alive = {obj["metadata"]["uid"] for obj in [*claims, *volumes]}
        with self._lock:  # what is remembered of objects gone is forgotten
            for uid in set(self._backoff) - alive:
                del self._backoff[uid]
            for uid in set(self._refused) - alive:
                del self._refused[uid]
        self._event.keep_only(alive)

    def _guarded(self, obj: JSON, work: Callable[[], None]) -> None:
        uid = obj["metadata"]["uid"]
        if not self._due(uid):
            return
        try:
            work()
        except (KubeError, FlykError) as error:
            log.warning("volumes: %s: %s", obj["metadata"]["name"], error)
            self._failed(uid)
        else:
            self._done(uid)

    def _sync_claim(self, claim: JSON, classes: dict[str, JSON], volumes: dict[str, JSON]) -> None:
        meta, spec = claim["metadata"], claim.get("spec") or {}
        if meta.get("deletionTimestamp"):
            return
        bound_to = spec.get("volumeName")
        if bound_to:
            pv = volumes.get(bound_to)
            if pv is not None and is_ours(pv):
                self._expand(claim, pv)
            return
        annotations = meta.get("annotations") or {}
        if DRIVER not in (annotations.get(key) for key in PROVISIONER_KEYS):
            return
        cls = classes.get(claim_class(claim))
        if cls is None or cls.get("provisioner") != DRIVER:
            return
        if f"pvc-{meta['uid']}" in volumes:
            return  # made; the binder is completing the binding
        if self._refused.get(meta["uid"]) == meta.get("resourceVersion"):
            return
        try:
            self._provision(claim, cls)
        except Refused as refused:
            self._refused[meta["uid"]] = str(meta.get("resourceVersion"))
            self._warn(claim, "ProvisioningFailed", str(refused))

    def _warn(self, claim: JSON, reason: str, message: str) -> None:
        self._event(claim, "PersistentVolumeClaim", "Warning", reason, message)

    # provisioning -------------------------------------------------------------------------
    def _provision(self, claim: JSON, cls: JSON) -> None:
        meta, spec = claim["metadata"], claim.get("spec") or {}
        modes = list(spec.get("accessModes") or [])
        wrong = [mode for mode in modes if mode not in ACCESS_MODES]
        if wrong or not modes:
            raise Refused(
                f"access mode {', '.join(wrong) or '(none)'} is not supported: a Fly volume is "
                "mounted by one machine at a time; use ReadWriteOncePod (or ReadWriteOnce)"
            )
        if spec.get("volumeMode", "Filesystem") != "Filesystem":
            raise Refused("volumeMode Block is not supported: Fly volumes are filesystems")
        request = _storage(claim, "spec", "resources", "requests", "storage")
        if request is None:
            raise Refused("the claim requests no storage (spec.resources.requests.storage)")
        size = size_gb(request)
        if size > MAX_SIZE_GB:
            raise Refused(f"{request} is more than a Fly volume holds ({MAX_SIZE_GB} GB)")
        region = claim_region(claim, self._config.region)
        app = self._ensure_app(meta["namespace"])
        name = records.claim_volume_name(meta["uid"])
        volume = self._create_volume(claim, app, name, region, size)
        pv = self._pv(claim, cls, app, volume["id"], volume["region"], volume["size_gb"])
        try:
            self._kube.create_volume(pv)
        except KubeError as error:
            if error.code != 409:
                raise
        self._event(
            claim,
            "PersistentVolumeClaim",
            "Normal",
            "ProvisioningSucceeded",
            f"Successfully provisioned volume {pv['metadata']['name']}: Fly volume "
            f"{volume['id']} ({volume['size_gb']} GB) in {volume['region']}, app {app}",
        )
        log.info("claim %s/%s: volume %s in %s", meta["namespace"], meta["name"], volume["id"], app)

    def _create_volume(self, claim: JSON, app: str, name: str, region: str, size: int) -> JSON:
        try:
            # The claim's volume made by an earlier try or run is found by its name, in the
            # list the create makes anyway: never a second volume for one claim.
            made = self._fly.volumes.create(
                app, name, region, size, fstype="ext4", reuse_named=True
            )
        except CapacityError as error:
            others = self._fly.platform.regions_with_room(
                self._config.org, volume_size_gb=size, exclude={region}
            )
            where = ", ".join(others) if others else "none found" if others == [] else "unknown"
            message = (
                f"no capacity for a {size} GB volume in {region}: {error.message}. Regions "
                f"that could take it: {where}. flyk never moves a volume to another region: "
                f"create the claim again with spec.selector.matchLabels.region set to one of them"
            )
            self._warn(claim, "ProvisioningFailed", message)
            raise
        except InvalidRequestError as error:
            message = f"the Machines API refused the volume: {error.message}"
            self._warn(claim, "ProvisioningFailed", message)
            raise
        return {"id": made.id, "region": made.region or region, "size_gb": made.size_gb or size}

    def _pv(self, claim: JSON, cls: JSON, app: str, volume_id: str, region: str, size: int) -> JSON:
        meta, spec = claim["metadata"], claim.get("spec") or {}
        selector = spec.get("selector") or {}
        labels = {**(selector.get("matchLabels") or {}), REGION_LABEL: region}
        pv_spec: JSON = {
            "capacity": {"storage": f"{size}Gi"},
            "accessModes": list(spec.get("accessModes") or ["ReadWriteOncePod"]),
            "persistentVolumeReclaimPolicy": cls.get("reclaimPolicy") or "Delete",
            "storageClassName": cls["metadata"]["name"],
            "volumeMode": "Filesystem",
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
            "csi": {
                "driver": DRIVER,
                "volumeHandle": volume_id,
                "fsType": (cls.get("parameters") or {}).get("fsType", "ext4"),
                "volumeAttributes": {"app": app, "region": region},
            },
        }
        if cls.get("mountOptions"):
            pv_spec["mountOptions"] = list(cls["mountOptions"])
        return {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": f"pvc-{meta['uid']}",
                "labels": labels,
                "annotations": {
                    PROVISIONED_BY: DRIVER,
                    APP_ANNOTATION: app,
                    REGION_ANNOTATION: region,
                    VOLUME_ID_ANNOTATION: volume_id,
                },
            },
            "spec": pv_spec,
        }

    # expansion ----------------------------------------------------------------------------
    def _expand(self, claim: JSON, pv: JSON) -> None:
        request = _storage(claim, "spec", "resources", "requests", "storage")
        have = _storage(pv, "spec", "capacity", "storage")
        if request is None or have is None:
            return
        try:
            wanted, held = size_gb(request), size_gb(have)
        except Refused:
            return
        meta = claim["metadata"]
        if wanted > held:
            if wanted > MAX_SIZE_GB:
                message = f"{request} is more than a Fly volume holds ({MAX_SIZE_GB} GB)"
                self._warn(claim, "VolumeResizeFailed", message)
                return
            app, volume_id = pv_volume(pv)
            try:
                extended = self._fly.volumes.extend(app, volume_id, wanted)
            except (CapacityError, InvalidRequestError) as error:
                message = f"volume {volume_id} not extended to {wanted} GB: {error.message}"
                self._warn(claim, "VolumeResizeFailed", message)
                raise
            self._kube.patch_volume(
                pv["metadata"]["name"], {"spec": {"capacity": {"storage": f"{wanted}Gi"}}}
            )
            restart = (
                " The pod's machine must restart to see the new size (kubectl delete pod, or "
                "flyk machine restart)."
                if extended.needs_restart
                else ""
            )
            self._event(
                claim,
                "PersistentVolumeClaim",
                "Normal",
                "VolumeResizeSuccessful",
                f"Fly volume {volume_id} extended to {wanted} GB.{restart}",
            )
            held = wanted
        current = _storage(claim, "status", "capacity", "storage")
        if current is None or size_gb(current) < held:
            capacity = {"storage": f"{held}Gi"}
            status: JSON = {"capacity": capacity}
            if (claim.get("status") or {}).get("allocatedResources") is not None:
                status["allocatedResources"] = capacity
                status["allocatedResourceStatuses"] = None
            self._kube.patch_claim_status(meta["namespace"], meta["name"], status)

    # reclaim ------------------------------------------------------------------------------
    def _pv_event(self, pv: JSON, event_type: str, reason: str, message: str) -> None:
        self._event(pv, "PersistentVolume", event_type, reason, message)

    def _sync_volume(self, pv: JSON) -> None:
        if (pv.get("status") or {}).get("phase") != "Released":
            return
        if pv["metadata"].get("deletionTimestamp"):
            return  # deleted, waiting for its pv-protection finalizer: its volume went first
        policy = pv["spec"].get("persistentVolumeReclaimPolicy", "Delete")
        app, volume_id = pv_volume(pv)
        if policy != "Delete":
            message = (
                f"reclaim policy {policy}: Fly volume {volume_id} (app {app}) is kept. Delete "
                f"it with: flyk volumes destroy {volume_id} -a {app}; kubectl delete pv "
                f"{pv['metadata']['name']}"
            )
            self._pv_event(pv, "Normal", "VolumeRetained", message)
            log.info("PV %s released: %s", pv["metadata"]["name"], message)
            return
        try:
            self._fly.volumes.delete(app, volume_id)
        except NotFoundError:
            pass  # gone already (an earlier try, or someone): the PV goes too
        except PreconditionFailedError as error:
            message = f"Fly volume {volume_id} not destroyed yet: {error.message}"
            self._pv_event(pv, "Warning", "VolumeFailedDelete", message)
            raise
        try:
            self._kube.delete_volume(pv["metadata"]["name"], pv["metadata"]["uid"])
        except KubeError as error:
            if error.code not in (404, 409):
                raise
        self._event.forget(pv["metadata"]["uid"])
        log.info("PV %s released: Fly volume %s destroyed", pv["metadata"]["name"], volume_id)
