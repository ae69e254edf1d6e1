"""The pod controller: every Pod bound to the virtual node runs as a Fly Machine.

Threads: one reflector (list, then watch from the list's resourceVersion; re-list on 410),
one resync timer, and `workers_per_namespace` workers per namespace sharing that namespace's
work queue. Keys are pod names; a key is never held by two workers at once.

Manners toward the Machines API: every call goes through `FlyClient` (its shared rate
limiter, retries and idempotent create). Machine state is learnt from ONE list per namespace
app per resync interval (fast while a pod there is changing, slow when all are settled,
at the pace of its liveness probes when it has some),
never from one GET per pod, so the steady-state call rate grows with the number of
namespaces, not with the number of pods. A reconcile whose pod and machine agree makes no
Machines call at all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flyk.api import LAUNCH_ID_KEY, App, FlyClient, GuestConfig, MachineConfig
from flyk.errors import (
    AuthError,
    CapacityError,
    FlykError,
    InvalidRequestError,
    NetworkError,
    NotFoundError,
    PreconditionFailedError,
    ServerError,
)
from flyk.k8s import records
from flyk.k8s.cluster import find_namespace_apps  # the rule `flyk ext k8s delete` follows
from flyk.k8s.plan import app_name_for
from flyk.kubelet import dns as pod_dns
from flyk.kubelet import mounts, translate
from flyk.kubelet import status as pod_status
from flyk.kubelet.boots import BootWaiter
from flyk.kubelet.config import Intervals, KubeletConfig, namespace_app_name
from flyk.kubelet.events import event_body
from flyk.kubelet.kube import KubeApi, KubeError
from flyk.kubelet.node import Health
from flyk.kubelet.service_config import carry_routing
from flyk.kubelet.workqueue import WorkQueue, backoff

JSON = dict[str, Any]
log = logging.getLogger("flyk.kubelet.pods")

# Where flyk before 0.x kept the pod's machine id; read still, never written (a node may not
# write pod metadata: NodeRestriction). The machine id is now in the pod's status.
MACHINE_ID_ANNOTATION = "fly.io/machine-id"
RESYNC = "\0resync"  # the queue key of "list this namespace's machines"
SETTLED_PHASES = ("Running", "Succeeded", "Failed")
RECENT_CREATE_GRACE = 60.0  # seconds a created machine counts as existing without a list
DISCOVER_CLEANUP_ATTEMPTS = 8  # tries at start-up to clear the apps of deleted namespaces


def stale_uid(error: KubeError) -> bool:
    """A status patch refused because its `metadata.uid` is not the pod's: the pod of that
    name is a new one. The API server says 422 (the uid is immutable; a PATCH has no
    preconditions); 409 is kept for servers that check it as one."""
    return error.code == 409 or (error.code == 422 and "metadata.uid" in error.message)


class Retry(Exception):
    """Reconcile again after `delay` seconds (None: the queue's backoff)."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


@dataclass
class Namespace:
    """One namespace: its app, its queue, and what the last list said about its machines."""

    name: str
    app: str
    queue: WorkQueue[str] = field(default_factory=WorkQueue)
    machines: dict[str, JSON] = field(default_factory=dict)  # pod uid -> machine JSON
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Held by a list and by a create with its bookkeeping, so that a list that began
    # before a create cannot overwrite the record of the machine the create made.
    create_lock: threading.Lock = field(default_factory=threading.Lock)
    # Machines this kubelet created lately, by pod uid: a list may not show a new machine yet
    # (the API is eventually consistent), and taking it for lost would make a second one.
    recent: dict[str, tuple[float, JSON]] = field(default_factory=dict)
    app_ready: bool = False
    marked: bool = False  # the app carries the marker secrets (checked once per kubelet run)
    listed: bool = False
    resync_pending: bool = False
    next_resync: float = 0.0
    # pod uid -> (consecutive failures, not before): a pod whose refresh keeps failing (its
    # status write refused) is backed off alone; the namespace's other pods go on.
    refresh_backoff: dict[str, tuple[int, float]] = field(default_factory=dict)


class MachinesHealth:
    """Reachability of the Machines API, learnt from the kubelet's own calls; the node's
    Ready condition reads it, and pings only when nothing was called recently.

    A ping that gets no answer within `timeout` seconds counts as unreachable at once: the
    client's own retries and read timeout could hold it for a minute, and the Ready
    condition would say "reachable" all that while. The call goes on in a thread of its own
    (one at a time, never piled up), and its answer, whenever it comes, is recorded."""

    def __init__(self, fly: FlyClient, org: str, freshness: float, timeout: float = 5.0) -> None:
        self._fly = fly
        self._org = org
        self._freshness = freshness
        self._timeout = timeout
        self._lock = threading.Lock()
        self._last: tuple[float, Health] | None = None
        self._answered: threading.Event | None = None  # set when the ping under way ends
        self.on_change: Callable[[], None] = lambda: None  # the node writes its status at once

    def record(self, error: Exception | None) -> None:
        if error is None:
            health = Health(reachable=True)
        elif isinstance(error, NetworkError | ServerError):
            health = Health(False, "MachinesAPIUnreachable", f"Machines API: {error}")
        elif isinstance(error, AuthError):
            health = Health(False, "MachinesAPIUnauthorized", f"Machines API: {error}")
        else:
            health = Health(reachable=True)  # the API answered, it just said no
        self._set(health)

    def _set(self, health: Health) -> None:
        with self._lock:
            changed = self._last is not None and self._last[1] != health
            self._last = (time.monotonic(), health)
        if changed:
            self.on_change()

    def __call__(self) -> Health:
        with self._lock:
            last = self._last
            if last is not None and time.monotonic() - last[0] < self._freshness:
                return last[1]
            answered = self._answered
            if answered is None:  # no ping under way: start one
                answered = self._answered = threading.Event()
                threading.Thread(
                    target=self._ping, args=(answered,), name="flyk-ping", daemon=True
                ).start()
        if not answered.wait(self._timeout):
            self._set(
                Health(
                    False,
                    "MachinesAPIUnreachable",
                    f"Machines API: no answer to a ping within {self._timeout:g}s",
                )
            )
        with self._lock:
            assert self._last is not None
            return self._last[1]

    def _ping(self, answered: threading.Event) -> None:
        try:
            self._fly.apps.list(self._org)
            self.record(None)
        except FlykError as error:
            self.record(error)
        except Exception as error:  # never leave the ping "under way" for good
            log.exception("pinging the Machines API failed")
            self._set(Health(False, "MachinesAPIUnreachable", f"Machines API: {error}"))
        finally:
            with self._lock:
                self._answered = None
            answered.set()


def settled_interval(
    pods: Iterable[JSON], machines: Mapping[str, JSON], intervals: Intervals
) -> float:
    """Seconds until a namespace whose pods are all settled is listed again.

    `resync`, unless a running pod there has a liveness probe that became a check: then the
    probe's own pace, period × failureThreshold (how long Kubernetes takes to act on a failing
    probe), or the period alone while the check is already `warning` or `critical`; never
    below `liveness_floor`. One list per namespace still carries every pod's checks."""
    interval = intervals.resync
    for pod in pods:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        if meta.get("deletionTimestamp") or pod_status.is_terminal(pod.get("status")):
            continue
        machine = machines.get(str(meta.get("uid")))
        if machine is None or machine.get("state") != "started":
            continue
        failing = any(
            str(check.get("name", "")).startswith("liveness-")
            and check.get("status") in ("warning", "critical")
            for check in machine.get("checks") or []
        )
        for container in spec.get("containers") or []:
            probe = container.get("livenessProbe") or {}
            if not pod_status.probe_is_check(probe):
                continue  # not a check (exec and gRPC probes are reported unsupported)
            period = float(probe.get("periodSeconds", translate.DEFAULT_PROBE_PERIOD))
            threshold = 1 if failing else int(probe.get("failureThreshold", 3))
            interval = min(interval, max(intervals.liveness_floor, period * threshold))
    return interval


def launch_id(pod_uid: str, replaces: str | None) -> str:
    """The launch id of the machine made for a pod: the same for every try of one create,
    reconcile retries and kubelet restarts included (so a try after an ambiguous failure is
    deduplicated by the client, as its own retries are), and a new one only once the machine
    it replaces is known lost (`replaces`: that machine's id)."""
    return f"{pod_uid}-{replaces or 'first'}"


def _now_iso() -> str:
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec_view(pod: JSON) -> tuple[Any, ...]:
    """The parts of a pod whose change needs a reconcile (not status, not resourceVersion)."""
    meta = pod.get("metadata") or {}
    return (
        pod.get("spec"),
        meta.get("annotations"),
        meta.get("labels"),
        meta.get("deletionTimestamp"),
        meta.get("deletionGracePeriodSeconds"),
        meta.get("uid"),
    )


class PodController:
    def __init__(
        self,
        kube: KubeApi,
        fly: FlyClient,
        config: KubeletConfig,
        *,
        watch_kube: KubeApi,
    ) -> None:
        self._kube = kube
        self._watch_kube = watch_kube
        self._fly = fly
        self._config = config
        # Fresh enough while the slowest resync still lists every namespace's machines.
        freshness = config.intervals.resync + config.intervals.ping
        self.health = MachinesHealth(
            fly, config.org, freshness, timeout=config.intervals.ping_timeout
        )
        self._node = translate.NodeFacts(
            cluster=config.cluster,
            node_name=config.node_name,
            node_ip=config.node_ip,
            region=config.region,
            dns=pod_dns.ClusterDNS(config.cluster_dns, config.cluster_domain),
        )
        self._lock = threading.Lock()
        self._pods: dict[tuple[str, str], JSON] = {}
        self._namespaces: dict[str, Namespace] = {}
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        # What the kubelet remembers per pod uid (the tables below `_memory_lock` guards): the
        # reflector forgets a pod while workers of every namespace write, and `tracked()` reads.
        self._memory_lock = threading.Lock()
        self._written: dict[str, JSON] = {}  # pod uid -> the status last written
        # pod uid -> (reason, message) of the events sent
        self._told: dict[str, set[tuple[str, str]]] = {}
        # The Services of a namespace, for the pods' Service link variables (the runner wires
        # the Service controller's cache here; none without it).
        self.service_links: Callable[[str], list[JSON]] = lambda _namespace: []
        # (region, size) -> (when asked, regions that had room): asked again once stale
        self._placements: dict[tuple[str, str], tuple[float, tuple[str, ...]]] = {}
        # Held across the query too: workers waiting on capacity together ask once, not each.
        self._placements_lock = threading.Lock()
        # pod uid -> (when to stop waiting for the stop, the grace it was asked with)
        self._stopping: dict[str, tuple[float, int]] = {}
        self._liveness: dict[str, tuple[int, float]] = {}  # pod uid -> (restarts, next allowed)
        # pod uid -> the id of the machine this kubelet saw for it (made or listed): with the
        # `fly.io/machine-id` annotation, what tells a lost machine from one never made.
        self._had: dict[str, str] = {}
        self._restarts: dict[str, tuple[int, float]] = {}  # uid -> (starts again, next allowed)
        self.synced = threading.Event()  # the first list has filled the cache
        self._boots = BootWaiter(fly)  # a new machine's namespace is listed once it runs

    # lifecycle --------------------------------------------------------------------------
    def start(self, stop: threading.Event) -> None:
        self._stop = stop
        self._spawn("flyk-reflector", self._reflect)
        self._spawn("flyk-resync", self._resync_timer)
        self._spawn("flyk-discover", self._discover)

    def _discover(self) -> None:
        """Start-up: visit the app of every namespace that has one, even with no pod left
        there, so that machines whose pods vanished while the kubelet was away are found
        (the first resync destroys them); and destroy the machines left in the apps of
        namespaces deleted while it was away (`_clear_deleted_namespaces`). Retried until
        both APIs answer."""
        failures = 0
        cluster, org = self._config.cluster, self._config.org
        initial = self._config.intervals.backoff_initial
        listed: list[App] = []
        namespaces: list[str] = []
        while not self._stop.is_set():
            try:
                listed = self._fly.apps.list(org)
                apps = {app.name for app in listed}
                namespaces = self._kube.list_namespaces()
            except (KubeError, FlykError) as error:
                failures += 1
                log.warning("discovering namespace apps: %s", error)
                self._stop.wait(backoff(failures, initial, 30.0))
                continue
            for namespace in namespaces:
                if namespace_app_name(cluster, namespace, org) in apps:
                    self._space(namespace).app_ready = True
            break
        failures = 0
        while not self._stop.is_set() and not self.synced.wait(0.1):
            pass  # the pods first: a namespace with pods is never taken for a deleted one
        while not self._stop.is_set():
            try:
                self._clear_deleted_namespaces(namespaces, listed)
                return
            except (KubeError, FlykError) as error:
                failures += 1
                if isinstance(error, AuthError) or failures >= DISCOVER_CLEANUP_ATTEMPTS:
                    log.warning("machines of deleted namespaces left (giving up): %s", error)
                    return
                log.warning("looking for machines of deleted namespaces: %s", error)
                self._stop.wait(backoff(failures, initial, 30.0))

    def _clear_deleted_namespaces(self, namespaces: Iterable[str], apps: list[App]) -> None:
        """The cluster's namespace apps (found as `flyk ext k8s delete` finds them: machines
        carrying `flyk_cluster`, or the marker secrets) whose namespace no longer exists get
        their machines destroyed. The app itself stays, empty, as it does when a namespace is
        deleted while the kubelet runs: it is reused if the namespace comes back, and removed
        with the cluster."""
        cluster, org = self._config.cluster, self._config.org
        live = {namespace_app_name(cluster, namespace, org) for namespace in namespaces}
        cluster_app = app_name_for(cluster, org)
        for found in find_namespace_apps(self._fly, cluster_app, cluster, org, apps):
            with self._lock:
                known = {space.app for space in self._namespaces.values()}
            if found.app in live or found.app in known or not found.machines:
                continue  # (known: a namespace with pods, or one the watch saw after the list)
            machines = self._fly.machines.list(found.app, metadata={records.META_CLUSTER: cluster})
            with self._lock:
                pod_uids = {pod["metadata"]["uid"] for pod in self._pods.values()}
            for machine in machines:
                if machine.state in pod_status.GONE_STATES:
                    continue
                if machine.metadata.get(records.META_POD_UID) in pod_uids:
                    continue  # a pod has it: never ours to clear here
                log.info(
                    "destroying machine %s of %s: its namespace no longer exists",
                    machine.id,
                    found.app,
                )
                try:
                    self._fly.machines.destroy(found.app, machine.id, force=True)
                except NotFoundError:
                    pass

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def join(self, timeout: float) -> None:
        with self._lock:
            spaces = list(self._namespaces.values())
        for space in spaces:
            space.queue.close()
        self._boots.stop()
        self._watch_kube.close()
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            if thread.name == "flyk-reflector":
                # A watch blocked on a quiet stream ends when the API server closes it (at
                # most `watch_timeout`); the thread is a daemon and touches nothing after stop.
                thread.join(0.1)
                continue
            thread.join(max(0.0, deadline - time.monotonic()))

    # the reflector ----------------------------------------------------------------------
    def _reflect(self) -> None:
        version: str | None = None
        intervals = self._config.intervals
        failures = 0
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._relist()
                for kind, pod in self._watch_kube.watch_pods(
                    self._config.node_name,
                    version,
                    server_timeout=intervals.watch_timeout,
                    read_timeout=intervals.watch_timeout + intervals.watch_read_grace,
                ):
                    if self._stop.is_set():
                        return
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        self._apply(kind, pod)
                    # Only once applied: an event whose handling failed is watched again.
                    version = pod["metadata"].get("resourceVersion") or version
                    failures = 0
            except KubeError as error:
                if self._stop.is_set():
                    return
                if error.code == 410:
                    log.info("watch expired (%s); listing again", error.message)
                    version = None
                    continue
                failures += 1
                log.warning("watching pods: %s", error)
                self._stop.wait(backoff(failures, 0.05, 5.0))
            except Exception:  # the watch client was closed under us on shutdown
                if self._stop.is_set():
                    return
                log.exception("watching pods failed")
                failures += 1
                self._stop.wait(backoff(failures, 0.05, 5.0))

    def _relist(self) -> str:
        pods, version = self._kube.list_pods(self._config.node_name)
        fresh = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in pods}
        with self._lock:
            gone = [key for key in self._pods if key not in fresh]
            gone_uids = [self._pods[key]["metadata"]["uid"] for key in gone]
            self._pods = fresh
        for uid in gone_uids:
            self._forget(uid)
        for namespace, name in [*gone, *fresh]:
            self._enqueue(namespace, name)
        self.synced.set()
        return version

    def _apply(self, kind: str, pod: JSON) -> None:
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        with self._lock:
            before = self._pods.get(key)
            if kind == "DELETED":
                if before is not None and before["metadata"]["uid"] == meta["uid"]:
                    del self._pods[key]
            else:
                self._pods[key] = pod
        if kind == "DELETED":
            self._forget(meta["uid"])  # force-deleted pods too; its machine goes at the resync
        if kind == "DELETED" or before is None or _spec_view(before) != _spec_view(pod):
            self._enqueue(*key)

    def pods(self, namespace: str | None = None) -> list[JSON]:
        with self._lock:
            return [p for (ns, _), p in self._pods.items() if namespace in (None, ns)]

    def locate(self, namespace: str, name: str) -> tuple[JSON, str, str | None] | None:
        """For the kubelet's API: the pod, its namespace's app and the id of its machine
        (None before it has one), or None for a pod not bound to this node."""
        pod = self._pod(namespace, name)
        if pod is None:
            return None
        app = namespace_app_name(self._config.cluster, namespace, self._config.org)
        return pod, app, self._lost_id(pod)

    def _pod(self, namespace: str, name: str) -> JSON | None:
        with self._lock:
            return self._pods.get((namespace, name))

    # namespaces and their workers -------------------------------------------------------
    def _space(self, namespace: str) -> Namespace:
        with self._lock:
            space = self._namespaces.get(namespace)
            if space is not None:
                return space
            app = namespace_app_name(self._config.cluster, namespace, self._config.org)
            space = Namespace(namespace, app)
            self._namespaces[namespace] = space
        for index in range(self._config.workers_per_namespace):
            self._spawn(f"flyk-{namespace}-{index}", lambda: self._work(space))
        return space

    def _enqueue(self, namespace: str, name: str) -> None:
        while True:
            space = self._space(namespace)
            with self._lock:  # against `_prune`: a key is never added to a queue being closed
                if self._namespaces.get(namespace) is space:
                    space.queue.add(name)
                    return

    def _prune(self, space: Namespace) -> None:
        """A namespace with no pod and no machine left that no longer exists in the API loses
        its workers and its lists: they follow existing namespaces, not every one ever seen
        (one that comes back starts afresh)."""
        try:
            if self._kube.namespace_exists(space.name):
                return
        except KubeError as error:
            log.info("namespace %s: %s", space.name, error)
            return
        with self._lock:
            if self._namespaces.get(space.name) is not space or len(space.queue):
                return
            if any(namespace == space.name for namespace, _ in self._pods):
                return
            del self._namespaces[space.name]
            space.queue.close()  # its workers end
        log.info("namespace %s no longer exists; its workers stop", space.name)

    def _work(self, space: Namespace) -> None:
        while (key := space.queue.get(self._stop)) is not None:
            try:
                if key == RESYNC:
                    self._resync(space)
                else:
                    self._reconcile(space, key)
                space.queue.forget(key)
            except Retry as retry:
                self._retry(space, key, retry.delay)
            except (FlykError, KubeError) as error:
                if isinstance(error, FlykError):
                    self.health.record(error)
                log.warning("%s/%s: %s", space.name, key.strip("\0"), error)
                self._retry(space, key, None)
            except Exception:
                log.exception("%s/%s: reconcile failed", space.name, key.strip("\0"))
                self._retry(space, key, None)
            finally:
                space.queue.done(key)

    def _retry(self, space: Namespace, key: str, delay: float | None) -> None:
        intervals = self._config.intervals
        failures = space.queue.failed(key)
        if key == RESYNC:
            space.resync_pending = False  # the timer schedules the next one
            space.next_resync = time.monotonic() + backoff(
                failures, intervals.backoff_initial, intervals.resync
            )
            return
        wait = (
            delay
            if delay is not None
            else backoff(failures, intervals.backoff_initial, intervals.backoff_max)
        )
        space.queue.add_after(key, wait)

    # resync: one list per namespace app -------------------------------------------------
    def _resync_timer(self) -> None:
        """Queue each namespace's resync when due; every `resync` interval, sweep the per-pod
        tables. An error is logged and the timer goes on: without it nothing is listed again."""
        self.synced.wait()
        tick = min(0.25, self._config.intervals.fast_resync / 4)
        next_sweep = time.monotonic() + self._config.intervals.resync
        while not self._stop.wait(tick):
            try:
                self._queue_due_resyncs()
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self._config.intervals.resync
                    self._sweep_memory()
            except Exception:
                log.exception("resync timer")

    def _queue_due_resyncs(self) -> None:
        now = time.monotonic()
        with self._lock:
            spaces = list(self._namespaces.values())
        for space in spaces:
            if not space.resync_pending and now >= space.next_resync:
                space.resync_pending = True
                space.queue.add(RESYNC)

    def _sweep_memory(self) -> None:
        """Forget the uids that neither a pod nor a machine has. A worker may write about a pod
        after the reflector forgot it (an Event told while the pod was force-deleted); without
        this, such records would stay for as long as the kubelet runs. What was remembered is
        read first: a uid remembered then belonged to a pod already in the cache, so one that
        is in neither the cache nor a machine list afterwards is gone for good."""
        remembered = self.tracked()
        with self._lock:
            known = {pod["metadata"]["uid"] for pod in self._pods.values()}
            spaces = list(self._namespaces.values())
        for space in spaces:
            with space.lock:
                known |= {*space.machines, *space.recent}
        for uid in remembered - known:
            self._forget(uid)

    def _soon(self, space: Namespace) -> None:
        """Something is changing in this namespace: look at its machines soon."""
        self._resync_by(space, time.monotonic() + self._config.intervals.fast_resync)

    @staticmethod
    def _resync_by(space: Namespace, when: float) -> None:
        """Bring the namespace's next list forward to `when` (never back): workers and the
        resync all do it, and a read-then-write without the lock could undo another's."""
        with space.lock:
            space.next_resync = min(space.next_resync, when)

    def _list_machines(self, space: Namespace) -> None:
        with space.create_lock:
            self._list_machines_locked(space)

    def _list_machines_locked(self, space: Namespace) -> None:
        machines = self._fly.machines.list(
            space.app, metadata={records.META_CLUSTER: self._config.cluster}
        )
        self.health.record(None)
        by_uid: dict[str, JSON] = {}
        for machine in machines:
            data = machine.to_api()
            uid = machine.metadata.get(records.META_POD_UID, "")
            if machine.state in pod_status.GONE_STATES:  # going: counts as lost, not as a twin
                continue
            if uid in by_uid:  # two machines for one pod: keep the older, drop the newer
                keep = min(by_uid[uid], data, key=lambda m: str(m.get("created_at")))
                drop = data if keep is by_uid[uid] else by_uid[uid]
                self._destroy(space, drop, "a second machine for the same pod")
                data = keep
            by_uid[uid] = data
        now = time.monotonic()
        for uid, (created, data) in list(space.recent.items()):
            if uid in by_uid or now - created > RECENT_CREATE_GRACE:
                del space.recent[uid]
                continue
            # Made lately and not listed: maybe not visible to lists yet, maybe destroyed
            # since. A GET of that one machine says which (only in this rare case).
            try:
                fetched = self._fly.machines.get(space.app, str(data.get("id"))).to_api()
            except NotFoundError:
                fetched = None
            if fetched is None or fetched.get("state") in pod_status.GONE_STATES:
                del space.recent[uid]
            else:
                by_uid[uid] = fetched
        for uid, data in by_uid.items():
            if uid:
                self._remember(self._had, uid, str(data.get("id")))
        with space.lock:
            space.machines = by_uid
            space.listed = True

    def _resync(self, space: Namespace) -> None:
        self.synced.wait()
        # A `_soon` from a worker while this runs must survive it (min() below); the timer
        # does not read next_resync while this resync is pending.
        with space.lock:
            space.next_resync = float("inf")
        self._ensure_app(space)
        self._list_machines(space)
        pods = {p["metadata"]["uid"]: p for p in self.pods(space.name)}
        for uid, machine in list(space.machines.items()):
            if uid not in pods:
                self._destroy(space, machine, "its pod no longer exists")
                with space.lock:
                    space.machines.pop(uid, None)
                    space.recent.pop(uid, None)
                self._forget(uid)
        busy = False
        now = time.monotonic()
        for uid, pod in pods.items():
            failures, not_before = space.refresh_backoff.get(uid, (0, 0.0))
            if now < not_before:
                continue
            try:
                busy |= self._refresh(space, pod)
                space.refresh_backoff.pop(uid, None)
            except (FlykError, KubeError) as error:
                if isinstance(error, FlykError):
                    self.health.record(error)
                    if isinstance(error, NetworkError | ServerError | AuthError):
                        raise  # the API is down for every pod: the resync backs off as one
                intervals = self._config.intervals
                delay = backoff(failures + 1, intervals.backoff_initial, intervals.backoff_max)
                space.refresh_backoff[uid] = (failures + 1, now + delay)
                name = pod["metadata"]["name"]
                log.warning(
                    "%s/%s: status not refreshed (again in %.1fs): %s",
                    space.name,
                    name,
                    delay,
                    error,
                )
        for uid in [u for u in space.refresh_backoff if u not in pods]:
            space.refresh_backoff.pop(uid, None)
        intervals = self._config.intervals
        pause = (
            intervals.fast_resync
            if busy
            else settled_interval(pods.values(), space.machines, intervals)
        )
        self._resync_by(space, time.monotonic() + pause)
        space.resync_pending = False
        if not pods and not space.machines and not space.recent:
            self._prune(space)

    def _refresh(self, space: Namespace, pod: JSON) -> bool:
        """Bring one pod's status up to date from the listed machine; True while unsettled."""
        meta = pod["metadata"]
        current = pod.get("status") or {}
        if meta.get("deletionTimestamp"):
            return True
        if pod_status.is_terminal(current):
            return False
        machine = space.machines.get(meta["uid"])
        if machine is None:
            if self._had_machine(pod):
                space.queue.add(meta["name"])  # lost: the reconcile decides (restart policy)
                return True
            return False  # not created yet: the queue's retry looks after it
        machine = self._with_exit_events(space, machine)
        new = pod_status.pod_status(pod, machine, host_ip=self._config.node_ip)
        self._write_status(pod, new)
        if pod_status.restarts_when_stopped(pod, machine):
            return self._start_again(space, pod, machine)
        self._check_liveness(space, pod, machine)
        transient = new["phase"] == "Running" and machine.get("state") != "started"
        return new["phase"] == "Pending" or transient

    def _check_liveness(self, space: Namespace, pod: JSON, machine: JSON) -> None:
        """A critical liveness check restarts the machine, as a kubelet restarts the container
        (with restartPolicy Never it stops it), spaced by a backoff so that a workload that
        never gets healthy is not restarted in a tight loop."""
        uid = pod["metadata"]["uid"]
        failing = [
            str(check.get("name"))
            for check in machine.get("checks") or []
            if str(check.get("name", "")).startswith("liveness-")
            and check.get("status") == "critical"
        ]
        if not failing or machine.get("state") != "started":
            return
        count, not_before = self._liveness.get(uid, (0, 0.0))
        now = time.monotonic()
        if now < not_before:
            return
        never = (pod.get("spec") or {}).get("restartPolicy") == "Never"
        action = "stopping" if never else "restarting"
        self._event(
            pod, "Warning", "Unhealthy", f"liveness check {failing[0]} failed; {action} the machine"
        )
        if never:
            self._fly.machines.stop(space.app, machine["id"])
        else:
            self._fly.machines.restart(space.app, machine["id"])
        intervals = self._config.intervals
        delay = backoff(count + 1, intervals.liveness_backoff, intervals.backoff_max)
        self._remember(self._liveness, uid, (count + 1, now + delay))
        self._soon(space)

    def _start_again(self, space: Namespace, pod: JSON, machine: JSON) -> bool:
        """A machine stopped (by someone else, or by Fly giving up on `on-failure`) whose pod
        Kubernetes would restart: start it, at once the first time, then spaced like
        CrashLoopBackOff (`liveness_backoff` doubling to `backoff_max`). True: look again soon."""
        uid = pod["metadata"]["uid"]
        count, not_before = self._restarts.get(uid, (0, 0.0))
        now = time.monotonic()
        if now < not_before:
            self._resync_by(space, not_before)
            return False
        if now > not_before + 2 * self._config.intervals.backoff_max:
            count = 0  # it ran a good while since: the backoff starts over, as Kubernetes does
        info = pod_status.last_exit(machine)
        why = "no exit code" if info is None else f"exit code {info.exit_code}"
        policy = pod_status.restart_policy(pod)
        self._event(
            pod,
            "Warning",
            "MachineStopped",
            f"machine {machine['id']} stopped ({why}); starting it again (restartPolicy {policy})",
        )
        self._fly.machines.start(space.app, machine["id"])
        intervals = self._config.intervals
        delay = backoff(count + 1, intervals.liveness_backoff, intervals.backoff_max)
        self._remember(self._restarts, uid, (count + 1, now + delay))
        self._soon(space)
        return True

    def _with_exit_events(self, space: Namespace, machine: JSON) -> JSON:
        """A stopped machine whose list entry lacks its exit event gets its events fetched
        once (the pod then turns terminal and is never looked at again)."""
        if machine.get("state") not in pod_status.STOPPED_STATES | pod_status.FAILED_STATES:
            return machine
        if pod_status.last_exit(machine) is not None:
            return machine
        events = self._fly.machines.events(space.app, machine["id"])
        return {**machine, "events": [event.to_api() for event in events]}

    # reconcile one pod ------------------------------------------------------------------
    def _reconcile(self, space: Namespace, name: str) -> None:
        pod = self._pod(space.name, name)
        if pod is None:
            self._soon(space)  # gone from the API: the resync destroys its machine
            return
        self._ensure_app(space)
        if not space.listed:
            with space.create_lock:
                if not space.listed:  # again: the worker that held the lock may have listed
                    self._list_machines_locked(space)
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            self._delete(space, pod)
            return
        if pod_status.is_terminal(pod.get("status")):
            return
        machine = space.machines.get(meta["uid"])
        if machine is None:
            if self._had_machine(pod):
                self._machine_lost(space, pod)
            else:
                self._create(space, pod)
            return
        self._update_if_changed(space, pod, machine)

    def _had_machine(self, pod: JSON) -> bool:
        """Whether the pod had a machine: its status names one (`containerID`), or this kubelet
        made or listed one for it (the status may not have been written: the API server was
        down)."""
        return self._lost_id(pod) is not None

    def _lost_id(self, pod: JSON) -> str | None:
        # What this run saw first: the status may be stale (its write failed).
        annotations = pod["metadata"].get("annotations") or {}
        return (
            self._had.get(pod["metadata"]["uid"])
            or pod_status.machine_id_of(pod)
            or annotations.get(MACHINE_ID_ANNOTATION)
        )

    def _record_machine(self, pod: JSON, machine: JSON, plan: translate.MachinePlan) -> None:
        """The `Created` Event (machine id, size, region), told once, until the pod's status
        names the machine (the status write after the create may have failed)."""
        if pod_status.machine_id_of(pod) == machine["id"]:
            return
        self._created_event(pod, machine["id"], plan)

    def _created_event(self, pod: JSON, machine_id: str, plan: translate.MachinePlan) -> None:
        self._event(
            pod, "Normal", "Created", f"machine {machine_id} ({plan.size.label}) in {plan.region}"
        )

    def ensure_namespace_app(self, namespace: str) -> str:
        """The namespace's app, made and marked if missing: a claim's volume
        (provisioner.py) and a Service's address (admission.py) live there before any pod."""
        space = self._space(namespace)
        self._ensure_app(space)
        return space.app

    def _ensure_app(self, space: Namespace) -> None:
        """The namespace's app, created on first use, and marked as the cluster's: the marker
        secrets are set whenever they are missing (a create that stopped between the app and
        its secrets, an app made by an older flyk), checked once per kubelet run."""
        if space.app_ready and space.marked:
            return
        with space.lock:
            if not space.app_ready:
                try:
                    self._fly.apps.get(space.app)
                except NotFoundError:
                    self._fly.apps.create(space.app, self._config.org)
                    log.info("created app %s for namespace %s", space.app, space.name)
                    space.marked = False
                space.app_ready = True
            if space.marked:
                return
            markers = {
                records.MARKER_CLUSTER: self._config.cluster,
                records.MARKER_NAMESPACE: space.name,
                records.MARKER_ORG: self._config.org,
            }
            names = {secret.name for secret in self._fly.secrets.list(space.app)}
            if not set(markers) <= names:
                self._fly.secrets.set(space.app, markers)
            space.marked = True

    def _plan(self, pod: JSON) -> translate.MachinePlan:
        """Translate, after fetching the Secrets and ConfigMaps the pod references."""
        namespace = pod["metadata"]["namespace"]
        secrets: dict[str, JSON] = {}
        config_maps: dict[str, JSON] = {}
        for kind, name in set(translate.iter_referenced(pod)):
            if kind == "Secret":
                found = self._kube.get_secret(namespace, name)
                if found is not None:
                    secrets[name] = found
            else:
                found = self._kube.get_config_map(namespace, name)
                if found is not None:
                    config_maps[name] = found
        sources = translate.Sources(
            secrets=secrets, config_maps=config_maps, services=self.service_links(namespace)
        )
        plan = translate.build_plan(pod, sources, self._node)
        app = namespace_app_name(self._config.cluster, namespace, self._config.org)
        volume = mounts.resolve(pod, app, self._kube.get_claim, self._kube.get_volume)
        return plan if volume is None else mounts.with_volume(plan, pod, volume)

    def _plan_or_pending(self, pod: JSON, *, has_machine: bool = False) -> translate.MachinePlan:
        """The pod's plan, with a Warning Event per unsupported field. When it cannot be
        translated, a pod with no machine yet is Pending with the reason; a pod whose machine
        runs keeps running as it is, and gets a Warning Event."""
        try:
            plan = self._plan(pod)
        except translate.TranslationError as error:
            self._warn_unsupported(pod, translate.unsupported_fields(pod))
            if isinstance(error, mounts.MountError):
                self._event(pod, "Warning", error.reason, error.message)
            if has_machine:
                self._event(pod, "Warning", "FailedUpdate", f"machine not updated: {error.message}")
            else:
                self._pending(pod, error.reason, error.message)
            raise Retry(error.message) from error
        self._warn_unsupported(pod, plan.warnings)
        return plan

    def _warn_unsupported(self, pod: JSON, warnings: Iterable[str]) -> None:
        for warning in warnings:
            self._event(pod, "Warning", "UnsupportedField", warning)

    def _create(self, space: Namespace, pod: JSON) -> None:
        plan = self._plan_or_pending(pod)
        meta = pod["metadata"]
        config = MachineConfig.from_api(plan.config).with_metadata(
            **{LAUNCH_ID_KEY: launch_id(meta["uid"], self._lost_id(pod))}
        )
        with space.create_lock:
            listed = space.machines.get(meta["uid"])
            data = listed if listed is not None else self._create_locked(space, pod, plan, config)
        if listed is not None:
            # A list found the machine meanwhile (made by an earlier try whose answer was
            # lost): nothing to create, but the pod still learns of it.
            self._record_machine(pod, listed, plan)
            return
        self.health.record(None)
        self._record_machine(pod, data, plan)  # if this fails, the retry's reconcile repeats it
        self._write_status(pod, pod_status.pod_status(pod, data, host_ip=self._config.node_ip))
        self._soon(space)
        if data.get("state") != "started":
            self._boots.watch(space.app, str(data["id"]), lambda: space.queue.add(RESYNC))

    def _create_locked(
        self, space: Namespace, pod: JSON, plan: translate.MachinePlan, config: MachineConfig
    ) -> JSON:
        """The create itself, under `create_lock`; the machine's JSON, recorded as listed."""
        meta = pod["metadata"]
        try:
            machine = self._fly.machines.create(
                space.app, config, name=plan.name, region=plan.region
            )
        except CapacityError as error:
            self._no_capacity(pod, plan, error)
            raise Retry(error.message) from error
        except PreconditionFailedError as error:
            if "mounts" not in plan.config:
                raise
            # The volume is mounted by another machine (a Fly volume has one at a time):
            # said on the pod, retried with backoff until that machine is gone.
            message = f"the Machines API refused to mount the pod's volume: {error.message}"
            self._event(pod, "Warning", "FailedAttachVolume", message)
            self._pending(pod, "FailedAttachVolume", message)
            raise Retry(error.message) from error
        except InvalidRequestError as error:
            # Refused as invalid (400/422): said on the pod, as virtual-kubelet providers
            # do (ProviderFailed); retried with backoff (a Secret or the spec may change),
            # the Event told once per distinct message.
            message = f"the Machines API refused the machine: {error.message}"
            self._event(pod, "Warning", "FailedCreate", message)
            self._pending(pod, "ProviderFailed", message)
            raise Retry(error.message) from error
        except FlykError:
            space.listed = False  # it may exist after all: list before creating again
            raise
        data = machine.to_api()
        with space.lock:
            space.machines[meta["uid"]] = data
            space.recent[meta["uid"]] = (time.monotonic(), data)
        self._remember(self._had, meta["uid"], machine.id)
        return data

    def _alternatives(self, plan: translate.MachinePlan, error: CapacityError) -> tuple[str, ...]:
        """Regions that could take this machine now: the API's own list, else a placement
        query (asked once per region and size every `placements_ttl`, however many pods wait;
        capacity failures are retried with backoff)."""
        if error.alternatives:
            return tuple(error.alternatives)
        key = (plan.region, plan.size.label)
        ttl = self._config.intervals.placements_ttl
        with self._placements_lock:
            now = time.monotonic()
            for stale in [k for k, (asked, _) in self._placements.items() if now - asked > ttl]:
                self._placements.pop(stale, None)
            if key not in self._placements:
                found = self._fly.platform.regions_with_room(
                    self._config.org,
                    compute=GuestConfig.from_api(plan.size.to_api()),
                    exclude=set(translate.allowed_regions(plan.region)),
                )
                if found is None:  # not known: asked again at the next capacity failure
                    return ()
                self._placements[key] = (now, tuple(found))
            return self._placements[key][1]

    def _no_capacity(self, pod: JSON, plan: translate.MachinePlan, error: CapacityError) -> None:
        region = error.region or plan.region
        others = self._alternatives(plan, error)
        alternatives = ", ".join(others) or "none found"
        message = (
            f"no capacity in {region}: {error.message}. Regions that could serve: "
            f"{alternatives}. flyk does not move a pod to another region; to allow it, set "
            f"annotation {translate.REGION_ANNOTATION} to a list such as "
            f'"{plan.region},{others[0] if others else "<region>"}".'
        )
        self._event(pod, "Warning", "InsufficientCapacity", message)
        self._pending(pod, "InsufficientCapacity", message)

    def _update_if_changed(self, space: Namespace, pod: JSON, machine: JSON) -> None:
        metadata = (machine.get("config") or {}).get("metadata") or {}
        plan = self._plan_or_pending(pod, has_machine=True)
        self._record_machine(pod, machine, plan)
        stored = metadata.get(records.META_SPEC_HASH)
        if stored == plan.spec_hash:
            return
        if stored == plan.config_hash:
            # Made by a flyk that hashed the config, and the config is what we would send:
            # record the pod's hash in place (a metadata write does not restart the machine).
            self._fly.machines.set_metadata(
                space.app, machine["id"], records.META_SPEC_HASH, plan.spec_hash
            )
            recorded = {**metadata, records.META_SPEC_HASH: plan.spec_hash}
            with space.lock:
                space.machines[pod["metadata"]["uid"]] = {
                    **machine,
                    "config": {**(machine.get("config") or {}), "metadata": recorded},
                }
            return
        # The Services the machine joined stay (services.py owns them, not the pod's spec).
        config = MachineConfig.from_api(carry_routing(plan.config, machine.get("config")))
        # wait=0: a lease held elsewhere fails at once and the pod is retried with backoff,
        # rather than a namespace worker blocking for the client's default lease wait.
        with self._fly.machines.lease(
            space.app, machine["id"], ttl=60, description="flyk kubelet: pod spec changed", wait=0
        ) as lease:
            updated = self._fly.machines.update(space.app, machine["id"], config, nonce=lease.nonce)
        with space.lock:
            space.machines[pod["metadata"]["uid"]] = updated.to_api()
        self._event(
            pod,
            "Normal",
            "Updated",
            f"machine {machine['id']} updated to the new spec ({plan.size.label})",
        )
        self._soon(space)

    def _machine_lost(self, space: Namespace, pod: JSON) -> None:
        """The pod had a machine and it is gone: recreate it unless the pod never restarts."""
        policy = (pod.get("spec") or {}).get("restartPolicy", "Always")
        lost = self._lost_id(pod)
        if policy == "Never":
            self._event(pod, "Warning", "MachineLost", f"machine {lost} no longer exists")
            self._write_status(pod, pod_status.pod_status(pod, None, host_ip=self._config.node_ip))
            return
        self._event(pod, "Warning", "MachineLost", f"machine {lost} no longer exists; recreating")
        self._create(space, pod)

    # deletion ---------------------------------------------------------------------------
    def _delete(self, space: Namespace, pod: JSON) -> None:
        """Stop within the grace period, destroy, then remove the pod (grace 0, its UID).

        The stop is not waited on by a blocked worker: the reconcile comes back (the namespace
        is listed fast meanwhile) until the machine is stopped or the grace period plus
        `stop_wait` is over, so many pods of a namespace shut down gracefully in parallel.
        """
        meta = pod["metadata"]
        machine = space.machines.get(meta["uid"])
        if machine is not None:
            if not self._stopped_or_overdue(space, pod, machine):
                self._soon(space)
                raise Retry("waiting for the machine to stop", self._config.intervals.fast_resync)
            if machine.get("state") in pod_status.STOPPED_STATES:
                machine = self._with_exit_events(space, machine)  # its exit, for the status
            self._destroy(space, machine, "its pod was deleted")
            with space.lock:
                space.machines.pop(meta["uid"], None)
                space.recent.pop(meta["uid"], None)
        if not pod_status.is_terminal(pod.get("status")):
            # Terminal first, as kubelets do: a pod with finalizers (a Job's) outlives the
            # final delete, and its controller counts it only once Succeeded or Failed.
            host_ip = self._config.node_ip
            self._write_status(pod, pod_status.deleted_status(pod, machine, host_ip=host_ip))
        try:
            self._kube.delete_pod(meta["namespace"], meta["name"], meta["uid"])
        except KubeError as error:
            if error.code not in (404, 409):  # gone already, or a new pod took the name
                raise
        self._forget(meta["uid"])
        self._soon(space)

    def _stopped_or_overdue(self, space: Namespace, pod: JSON, machine: JSON) -> bool:
        meta = pod["metadata"]
        uid = meta["uid"]
        if machine.get("state") in ("stopped", "created", "failed", "suspended", "destroyed"):
            return True
        grace = int(
            meta.get("deletionGracePeriodSeconds")
            if meta.get("deletionGracePeriodSeconds") is not None
            else (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
        )
        stopping = self._stopping.get(uid)
        if stopping is None:
            if machine.get("state") != "stopping":  # a previous run of ours may have asked
                self._fly.machines.stop(space.app, machine["id"], timeout=float(grace))
            self._event(pod, "Normal", "Killing", f"stopping machine {machine['id']}")
            deadline = time.monotonic() + grace + self._config.intervals.stop_wait
            self._remember(self._stopping, uid, (deadline, grace))
            return False
        deadline, asked = stopping
        if grace < asked:
            # A second delete shortened the grace (`kubectl delete --grace-period=1` after a
            # longer one): the machine is destroyed when the new grace is over.
            deadline = min(deadline, time.monotonic() + grace)
            self._remember(self._stopping, uid, (deadline, grace))
        if time.monotonic() > deadline:
            log.warning("machine %s did not stop in time; destroying it", machine["id"])
            return True
        return False

    def _destroy(self, space: Namespace, machine: JSON, why: str) -> None:
        log.info("destroying machine %s of %s: %s", machine.get("id"), space.app, why)
        try:
            self._fly.machines.destroy(space.app, machine["id"], force=True)
        except NotFoundError:
            pass

    def tracked(self) -> set[str]:
        """The pod UIDs this kubelet keeps something about (status written, events told, …):
        the pods it knows, and for a moment those being deleted; never all it ever saw."""
        with self._memory_lock:
            return {uid for table in self._memory() for uid in table}

    def _memory(self) -> tuple[dict[str, Any], ...]:
        """Every per-pod table (read and changed only under `_memory_lock`)."""
        return (
            self._written,
            self._told,
            self._stopping,
            self._liveness,
            self._had,
            self._restarts,
        )

    def _remember(self, table: dict[str, Any], uid: str, value: Any) -> None:
        with self._memory_lock:
            table[uid] = value

    def _forget(self, uid: str) -> None:
        with self._memory_lock:
            for table in self._memory():
                table.pop(uid, None)

    # writing to the pod -----------------------------------------------------------------
    def _pending(self, pod: JSON, reason: str, message: str) -> None:
        self._write_status(
            pod,
            pod_status.pending_status(
                pod, host_ip=self._config.node_ip, reason=reason, message=message
            ),
        )

    def _write_status(self, pod: JSON, new: JSON) -> None:
        """PATCH pods/status, only when the status changed (against the cache and against
        what we wrote last, which the watch may not have echoed yet)."""
        meta = pod["metadata"]
        latest = self._pod(meta["namespace"], meta["name"]) or pod
        if latest["metadata"]["uid"] != meta["uid"]:
            return
        current = latest.get("status") or {}
        new = pod_status.with_transition_times(new, current, _now_iso())
        patch = pod_status.status_patch(new, current)
        if not patch:
            return
        if self._written.get(meta["uid"]) == new:
            return
        try:
            self._kube.patch_pod_status(meta["namespace"], meta["name"], meta["uid"], patch)
        except KubeError as error:
            if not stale_uid(error):
                raise
            # This pod was deleted and one of the same name created; the watch brings the
            # new one, whose own reconcile writes its status.
            log.info("%s/%s: status not written: %s", meta["namespace"], meta["name"], error)
            return
        self._remember(self._written, meta["uid"], new)

    def _event(self, pod: JSON, kind: str, reason: str, message: str) -> None:
        """A pod Event; each (reason, message) is told once per pod. Events are best effort."""
        meta = pod["metadata"]
        with self._memory_lock:
            told = self._told.setdefault(meta["uid"], set())
            if (reason, message) in told:
                return
            told.add((reason, message))
        event = event_body(
            pod,
            kind="Pod",
            event_type=kind,
            reason=reason,
            message=message,
            component="flyk-kubelet",
            host=self._config.node_name,
        )
        try:
            self._kube.create_event(meta["namespace"], event)
        except KubeError as error:
            log.warning("event for %s/%s not recorded: %s", meta["namespace"], meta["name"], error)
