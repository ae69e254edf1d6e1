"""The virtual Node: registration, its Lease in kube-node-lease, and its status.

Cadence (as the Go virtual-kubelet): the Lease is renewed every `intervals.lease` (10 s, a
quarter of its 40 s duration); node status is written every `intervals.node_status` (60 s)
and at once when the Machines API's reachability changes.

The Lease is renewed by a thread of its own, which never calls the Machines API: a ping that
hangs (its retries and read timeout can take a minute) must not let the Lease lapse. It keeps
being renewed while the Machines API is down: the kubelet itself is alive, so the node is not
`Unknown` (taint `node.kubernetes.io/unreachable`). The Ready condition carries the bad news
instead (reason `MachinesAPIUnreachable`); Ready=False makes the node lifecycle controller taint
the node `node.kubernetes.io/not-ready:NoExecute`, and pods without a toleration of their own
are evicted once the API server's default toleration runs out. The control plane raises that
default (flyk/k8s/controlplane.py, docs/kubernetes.md "The node") so that an outage of the
Machines API does not end in every pod being evicted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flyk._version import __version__
from flyk.k8s.controlplane import KUBERNETES_VERSION
from flyk.kubelet.config import KubeletConfig
from flyk.kubelet.kube import NODE_LEASE_NAMESPACE, KubeApi, KubeError

JSON = dict[str, Any]
log = logging.getLogger("flyk.kubelet.node")

KUBELET_PORT = 10250
# What the node declares it supports (`status.declaredFeatures`, sorted): with it the API server
# proxies `kubectl exec`'s WebSocket straight to the kubelet instead of translating it to SPDY,
# the only protocol flyk's kubelet speaks (exec.py).
DECLARED_FEATURES = ["ExtendWebSocketsToKubelet"]
# The control plane's Kubernetes version, as kubelets report theirs (`kubectl get nodes`),
# with flyk's own after it.
KUBELET_VERSION = f"{KUBERNETES_VERSION}-flyk.{__version__}"


@dataclass(frozen=True)
class Health:
    """Whether the Machines API answered the last time the kubelet asked."""

    reachable: bool
    reason: str = "KubeletReady"
    message: str = "flyk kubelet is ready; the Machines API answers"


def _now() -> datetime:
    return datetime.now(tz=UTC)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_labels(config: KubeletConfig) -> dict[str, str]:
    return {
        "type": "virtual-kubelet",
        "kubernetes.io/hostname": config.node_name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/exclude-from-external-load-balancers": "true",
        "topology.kubernetes.io/region": config.region,
        "fly.io/region": config.region,
    }


def node_status(
    config: KubeletConfig, health: Health, now: datetime, port: int = KUBELET_PORT
) -> JSON:
    """Capacity is what the platform lets the cluster ask for, not one host's size: the
    Machines API places each pod on its own machine, so the node only caps the pod count.
    Every resource a machine has is listed: the scheduler leaves Pending a pod requesting one
    the node does not advertise (`ephemeral-storage`, common in charts: a machine's root
    filesystem)."""
    capacity = {
        "cpu": "10000",
        "memory": "4Ti",
        "ephemeral-storage": "100Ti",
        "pods": str(config.max_pods),
    }
    stamp = _stamp(now)

    def condition(kind: str, status: str, reason: str, message: str) -> JSON:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }

    ready = "True" if health.reachable else "False"
    return {
        "capacity": capacity,
        "allocatable": capacity,
        "phase": "Running",
        "conditions": [
            condition("Ready", ready, health.reason, health.message),
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "no pressure"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "no pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "no pressure"),
            condition("NetworkUnavailable", "False", "RouteCreated", "Fly 6PN network"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": config.node_ip},
            {"type": "Hostname", "address": config.node_name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "declaredFeatures": DECLARED_FEATURES,
        "nodeInfo": {
            "machineID": config.node_name,
            "systemUUID": config.node_name,
            "bootID": "",
            "kernelVersion": "",
            "osImage": "Fly.io Machines",
            "containerRuntimeVersion": "fly-machines://v1",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }


def with_kept_transitions(new: JSON, old: JSON | None) -> JSON:
    """Keep lastTransitionTime of conditions whose status did not change."""
    before = {c.get("type"): c for c in (old or {}).get("conditions") or []}
    for condition in new["conditions"]:
        previous = before.get(condition["type"])
        if previous and previous.get("status") == condition["status"]:
            condition["lastTransitionTime"] = previous.get(
                "lastTransitionTime", condition["lastTransitionTime"]
            )
    return new


class NodeController:
    """Runs in its own thread: `run(stop)` registers the node, then keeps its status (pinging
    the Machines API) while a second thread keeps its Lease."""

    def __init__(
        self,
        kube: KubeApi,
        config: KubeletConfig,
        ping: Callable[[], Health],
        *,
        now: Callable[[], datetime] = _now,
        monotonic: Callable[[], float] = time.monotonic,
        port: int = KUBELET_PORT,
    ) -> None:
        self._kube = kube
        self._port = port
        self._config = config
        self._ping = ping
        self._now = now
        self._monotonic = monotonic
        self._wake = threading.Event()
        self._node_uid: str | None = None
        self._lease: JSON | None = None
        # The node thread (registration) and the lease thread both write the Lease and read
        # the node's uid; one at a time.
        self._lease_lock = threading.RLock()
        self._last_status: JSON | None = None
        self.health = Health(reachable=True)
        self.registered = threading.Event()

    def notify(self) -> None:
        """Something changed: write node status now rather than at the next interval."""
        self._wake.set()

    # registration -----------------------------------------------------------------------
    def register(self) -> None:
        """Create the Node, or take over one left by a previous run (labels, taints, status).

        With the last known health, without pinging: the node thread pings right after, and a
        Machines API that hangs must not keep the node from registering and renewing its Lease.
        """
        config = self._config
        status = node_status(config, self.health, self._now(), self._port)
        existing = self._kube.get_node(config.node_name)
        if existing is None:
            body = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": config.node_name, "labels": node_labels(config)},
                "spec": {"taints": [t.to_api() for t in config.taints]},
                "status": status,
            }
            created = self._kube.create_node(body)
            uid = created["metadata"]["uid"]
        else:
            uid = existing["metadata"]["uid"]
            # Labels only: the taints are the node's own once registered (`kubectl taint`,
            # the node lifecycle controller's), and NodeRestriction refuses a node changing
            # them. `--taint` applies when the node is registered.
            self._kube.patch_node(config.node_name, {"metadata": {"labels": node_labels(config)}})
            status = with_kept_transitions(status, existing.get("status"))
        # The status subresource is authoritative: a create may drop .status.
        self._kube.patch_node_status(config.node_name, status)
        self._last_status = status
        with self._lease_lock:
            if uid != self._node_uid:
                self._lease = None  # re-read: its ownerReference must name this Node
            self._node_uid = uid
            self.renew_lease()
        self.registered.set()

    # lease ------------------------------------------------------------------------------
    def _lease_body(self) -> JSON:
        name = self._config.node_name
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": name,
                "namespace": NODE_LEASE_NAMESPACE,
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": name, "uid": self._node_uid}
                ],
            },
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": self._config.intervals.lease_duration,
                "renewTime": _micro_stamp(self._now()),
            },
        }

    def renew_lease(self) -> None:
        """Update the cached Lease; on a conflict re-read it, when missing create it.

        A missing Lease may mean a missing Node (`kubectl delete node` takes the Lease along,
        by its ownerReference): the node thread is woken to write status at once, and a 404
        there registers the Node again (`_tick`)."""
        with self._lease_lock:
            body = self._lease_body()
            for _ in range(3):
                try:
                    if self._lease is None:
                        self._lease = self._kube.get_lease(self._config.node_name)
                    if self._lease is None:
                        self._lease = self._kube.create_lease(body)
                        self._wake.set()
                        return
                    self._lease = self._kube.replace_lease(self._renewed(self._lease, body))
                    return
                except KubeError as error:
                    if error.code not in (404, 409):
                        raise
                    self._lease = None  # someone else wrote it, or it was deleted: start over

    @staticmethod
    def _renewed(lease: JSON, body: JSON) -> JSON:
        """The cached Lease with our spec and owner (a Node registered again has a new uid)."""
        metadata = {
            **lease.get("metadata", {}),
            "ownerReferences": body["metadata"]["ownerReferences"],
        }
        return {**lease, "metadata": metadata, "spec": {**lease.get("spec", {}), **body["spec"]}}

    # status -----------------------------------------------------------------------------
    def write_status(self) -> None:
        status = node_status(self._config, self.health, self._now(), self._port)
        status = with_kept_transitions(status, self._last_status)
        self._kube.patch_node_status(self._config.node_name, status)
        self._last_status = status

    def check_health(self) -> bool:
        """Ping the Machines API; True when the answer differs from the last one."""
        health = self._ping()
        changed = health != self.health
        if changed:
            log.warning("Machines API reachable: %s (%s)", health.reachable, health.message)
        self.health = health
        return changed

    # the loop ---------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        intervals = self._config.intervals
        while not stop.is_set():
            try:
                self.register()
                break
            except KubeError as error:
                log.warning("registering node %s failed: %s", self._config.node_name, error)
                stop.wait(intervals.backoff_initial)
            except Exception:  # the node must not stay unregistered for a surprise
                log.exception("registering node %s failed", self._config.node_name)
                stop.wait(intervals.backoff_initial)
        if stop.is_set():
            return
        lease = threading.Thread(
            target=self.keep_lease, args=(stop,), name="flyk-node-lease", daemon=True
        )
        lease.start()
        start = self._monotonic()
        # Ping at once: registration wrote the last known health, not a fresh answer.
        due = {"status": start + intervals.node_status, "ping": start}
        while not stop.is_set():
            self._tick(due)
            wait = max(0.0, min(due.values()) - self._monotonic())
            self._wake.wait(wait)
        lease.join(intervals.lease)

    def keep_lease(self, stop: threading.Event) -> None:
        """Renew the Lease every `intervals.lease` until `stop`, in a thread of its own: the
        node thread waits on Machines API pings, and no wait of theirs may delay a renewal."""
        failing = False
        while not stop.wait(self._config.intervals.lease):
            try:
                self.renew_lease()
                if failing:
                    # The Lease may have lapsed meanwhile: the node lifecycle controller then
                    # wrote Ready=Unknown and tainted the node unreachable, and only a status
                    # write of ours clears that. Now, not at the next one a minute later.
                    self._wake.set()
                failing = False
            except KubeError as error:
                failing = True
                log.warning("node %s: lease not renewed: %s", self._config.node_name, error)
            except Exception:  # an ended lease thread would let the node go Unknown
                failing = True
                log.exception("node %s: lease not renewed", self._config.node_name)
                with self._lease_lock:
                    self._lease = None  # read it afresh next time

    def _tick(self, due: dict[str, float]) -> None:
        intervals = self._config.intervals
        now = self._monotonic()
        try:
            if now >= due["ping"] or self._wake.is_set():
                due["ping"] = now + intervals.ping
                if self.check_health():
                    self._wake.set()
            if self._wake.is_set() or now >= due["status"]:
                self._wake.clear()
                # Until written, the status is due again at the Lease's pace, not a minute
                # later: a Node to register again must be back before the pod GC acts (40 s).
                due["status"] = now + intervals.lease
                self._write_or_register()
                due["status"] = now + intervals.node_status
        except KubeError as error:
            log.warning("node %s: %s", self._config.node_name, error)
        except Exception:  # an ended node thread would leave Ready as it was, for good
            log.exception("node %s: status not written", self._config.node_name)

    def _write_or_register(self) -> None:
        """Write node status; a Node deleted under us (`kubectl delete node`) is registered
        again, Lease included, as the Go virtual-kubelet does on NotFound: left missing, the
        pod garbage collector would delete every pod bound to it and nothing could be
        scheduled until the kubelet restarted."""
        try:
            self.write_status()
        except KubeError as error:
            if error.code != 404:
                raise
            log.warning("node %s was deleted; registering it again", self._config.node_name)
            self.register()
