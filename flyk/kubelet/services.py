"""The Service controller: keeps each namespace app's IP assignments and its machines'
`services` in step with the namespace's Services and their EndpointSlices.

It watches Services and EndpointSlices (the real endpoints controller's: flyk has no selector
of its own) and, when something in a namespace changed, reconciles that namespace whole:

1. addresses: the Flycast address the admission webhook (admission.py) assigned each Service
   must still exist (else a Warning Event: the Service cannot get another, its cluster IP is
   immutable); a `LoadBalancer` gets a dedicated public IPv6 and a shared IPv4 with its
   `service_name`, and `status.loadBalancer.ingress` as FKS shows it; every address whose
   Service is gone (or is no longer a LoadBalancer, or whose create failed after the webhook
   assigned it) is released.
2. machines: each pod machine's Service keys and `services[]` (service_config.py) are made to
   match the EndpointSlices; a machine that differs is updated under its lease.

Machines API calls: one IP list and one machine list per reconcile of a namespace, plus one
update per machine that changes and one call per address assigned or released. A namespace is
reconciled when its Services or slices change, and again every `resync` seconds while it has
Services: idle Services cost nothing per Service.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flyk.api import FlyClient, IPAssignment, MachineConfig
from flyk.errors import FlykError, NotFoundError
from flyk.k8s import records
from flyk.kubelet import service_config as sc
from flyk.kubelet.config import KubeletConfig, namespace_app_name
from flyk.kubelet.events import Recorder
from flyk.kubelet.kube import KubeApi, KubeError

log = logging.getLogger("flyk.kubelet.services")
JSON = dict[str, Any]

# An address with a service_name but no Service is released once it is this old: younger, it
# may belong to a Service the webhook has just admitted and the watch has not shown yet.
ORPHAN_GRACE = 60.0
GONE_STATES = {"destroyed", "destroying"}


def public_hostname(service: str, app: str) -> str:
    """FKS shows `<svc>.svc.<namespace app>.fly.dev` as a LoadBalancer's hostname."""
    return f"{service}.svc.{app}.fly.dev"


def _age(ip: IPAssignment, now: datetime) -> float:
    try:
        created = datetime.fromisoformat(str(ip.created_at).replace("Z", "+00:00"))
    except ValueError:
        return ORPHAN_GRACE  # no readable age: old enough
    return (now - created).total_seconds()


def _is_private(address: str) -> bool:
    return address.lower().startswith("fdaa:")


def _addresses_of(service: JSON) -> set[str]:
    """A Service's cluster IP and the addresses its status shows."""
    spec, status = service.get("spec") or {}, service.get("status") or {}
    found = {str(a) for a in spec.get("clusterIPs") or [] if a and a != "None"}
    for entry in (status.get("loadBalancer") or {}).get("ingress") or []:
        if entry.get("ip"):
            found.add(str(entry["ip"]))
    return found


def _is_public_v6(address: str) -> bool:
    return ":" in address and not _is_private(address)


def _is_v4(address: str) -> bool:
    return "." in address


class ServiceController:
    """Start with `start(stop)`; `reconcile(namespace)` is the whole job for one namespace
    (tests and the benchmark call it directly)."""

    def __init__(
        self,
        kube: KubeApi,
        fly: FlyClient,
        config: KubeletConfig,
        *,
        watch_kube: Callable[[], KubeApi] | None = None,
        resync: float = 60.0,
        retry: float = 5.0,
    ) -> None:
        self._kube = kube
        self._fly = fly
        self._config = config
        self._watch_kube = watch_kube
        self._resync = resync
        self._retry = retry
        self._lock = threading.Condition()
        self._objects: dict[str, dict[tuple[str, str], JSON]] = {"Service": {}, "EndpointSlice": {}}
        self._dirty: dict[str, float] = {}  # namespace -> when it is due
        self._tracked: set[str] = set()  # namespaces with Services (resynced)
        self._events = Recorder(kube, "flyk-kubelet", config.node_name)
        # Addresses of Services seen deleted: released at once, without ORPHAN_GRACE.
        self._doomed: set[str] = set()
        self._waited = False  # services_in waited once for the first list
        self._threads: list[threading.Thread] = []
        self._watching: list[KubeApi] = []  # the watches' own clients
        self.synced = threading.Event()

    # -- wiring ----------------------------------------------------------------------------
    def start(self, stop: threading.Event) -> None:
        ready = [threading.Event(), threading.Event()]
        for kind, seen in zip(("Service", "EndpointSlice"), ready, strict=True):
            self._spawn(f"flyk-watch-{kind}", functools.partial(self._watch, kind, seen, stop))
        self._spawn("flyk-services", lambda: self._work(stop, ready))

    def join(self, timeout: float) -> None:
        """After `stop` is set: closing the watches' clients ends their blocked reads."""
        with self._lock:
            self._lock.notify_all()
            watching = list(self._watching)
        for api in watching:
            api.close()
        for thread in self._threads:
            thread.join(timeout)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    # -- watches ---------------------------------------------------------------------------
    def _watch(self, kind: str, listed: threading.Event, stop: threading.Event) -> None:
        api = self._watch_kube() if self._watch_kube else self._kube
        if api is not self._kube:
            with self._lock:
                self._watching.append(api)
        intervals = self._config.intervals
        try:
            while not stop.is_set():
                try:
                    items, version = api.list_all(kind)
                    self._replace(kind, items)
                    listed.set()
                    while not stop.is_set():
                        for event, obj in api.watch_all(
                            kind,
                            version,
                            server_timeout=intervals.watch_timeout,
                            read_timeout=intervals.watch_timeout + intervals.watch_read_grace,
                        ):
                            version = obj["metadata"].get("resourceVersion") or version
                            self.observe(kind, event, obj)
                            if stop.is_set():
                                return
                except KubeError as error:
                    if stop.is_set():
                        return
                    if error.code != 410:
                        log.warning("watch of %ss: %s; listing again", kind, error.message)
                        stop.wait(intervals.backoff_initial)
        finally:
            if api is not self._kube:
                api.close()

    def _replace(self, kind: str, items: list[JSON]) -> None:
        fresh = {(i["metadata"]["namespace"], i["metadata"]["name"]): i for i in items}
        with self._lock:
            old = self._objects[kind]
            self._objects[kind] = fresh
            for namespace, _ in set(old) ^ set(fresh) | {
                k for k in fresh if old.get(k) != fresh[k]
            }:
                self._mark(namespace)
            self._lock.notify_all()

    def observe(self, kind: str, event: str, obj: JSON) -> None:
        """One watch event (ADDED, MODIFIED, DELETED) of a Service or EndpointSlice: the
        watches call it; so do the benchmark and tests that feed objects by hand."""
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        with self._lock:
            if event == "DELETED":
                self._objects[kind].pop(key, None)
                if kind == "Service":
                    self._doomed.update(_addresses_of(obj))
            else:
                self._objects[kind][key] = obj
            self._mark(meta["namespace"])
            self._lock.notify_all()

    def _mark(self, namespace: str, delay: float = 0.0) -> None:
        """Reconcile `namespace` in `delay` seconds (sooner if already due sooner)."""
        due = time.monotonic() + delay
        self._dirty[namespace] = min(self._dirty.get(namespace, due), due)

    # -- the worker ------------------------------------------------------------------------
    def _work(self, stop: threading.Event, ready: list[threading.Event]) -> None:
        for seen in ready:
            while not seen.wait(0.2):
                if stop.is_set():
                    return
        self.synced.set()
        next_resync = time.monotonic() + self._resync
        while not stop.is_set():
            with self._lock:
                now = time.monotonic()
                if now >= next_resync:
                    for namespace in self._tracked:
                        self._mark(namespace)
                    next_resync = now + self._resync
                due = [ns for ns, when in self._dirty.items() if when <= now]
                if not due:
                    wake = min([next_resync, *self._dirty.values()]) - now
                    self._lock.wait(max(0.05, min(wake, 1.0)))
                    continue
                for namespace in due:
                    del self._dirty[namespace]
            for namespace in due:
                try:
                    self.reconcile(namespace)
                except (FlykError, KubeError) as error:
                    log.warning("services of namespace %s: %s; retrying", namespace, error)
                    with self._lock:
                        self._mark(namespace, self._retry)

    def services_in(self, namespace: str, wait: float = 10.0) -> list[JSON]:
        """The namespace's Services as the watch last saw them (for Service link variables);
        waits up to `wait` seconds for the first list, as a kubelet waits for its informer
        (once: if the list never comes, pods are made without the variables, not held)."""
        if not self._waited and not self.synced.wait(wait):
            log.warning("no list of Services yet: pods get no Service link variables for now")
        self._waited = True
        return self._in("Service", namespace)

    # -- one namespace ---------------------------------------------------------------------
    def _in(self, kind: str, namespace: str) -> list[JSON]:
        with self._lock:
            return [obj for (ns, _), obj in self._objects[kind].items() if ns == namespace]

    def reconcile(self, namespace: str) -> None:
        services = {s["metadata"]["name"]: s for s in self._in("Service", namespace)}
        managed = {name: s for name, s in services.items() if sc.is_managed(s)}
        for service in services.values():
            for message in sc.unsupported(service):
                self._event(service, "Warning", "UnsupportedField", message)
        with self._lock:
            if services:
                self._tracked.add(namespace)
            else:
                self._tracked.discard(namespace)
        app = namespace_app_name(self._config.cluster, namespace, self._config.org)
        try:
            ips = self._fly.ips.list(app)
        except NotFoundError:
            return  # no app: no addresses and no machines to tend
        self._addresses(app, managed, services, ips)
        slices = self._in("EndpointSlice", namespace)
        wanted: dict[str, dict[str, sc.PortMap]] = {}
        for name, service in managed.items():
            own = [
                s
                for s in slices
                if (s["metadata"].get("labels") or {}).get(sc.SERVICE_NAME_LABEL) == name
            ]
            for uid, ports in sc.members(service, own).items():
                wanted.setdefault(uid, {})[name] = ports
        self._machines(app, wanted, managed)

    def _addresses(
        self, app: str, managed: dict[str, JSON], services: dict[str, JSON], ips: list[IPAssignment]
    ) -> None:
        named: dict[str, list[IPAssignment]] = {}
        for ip in ips:
            if ip.service_name:
                named.setdefault(ip.service_name, []).append(ip)
        for name, service in managed.items():
            mine = named.get(name, [])
            cluster_ip = service["spec"]["clusterIP"]
            if not any(ip.ip == cluster_ip for ip in mine):
                self._event(
                    service,
                    "Warning",
                    "FlycastAddressMissing",
                    f"app {app} holds no address {cluster_ip} for this Service any more; "
                    "nothing routes to it. Delete and create the Service again for a new one.",
                )
            if service["spec"].get("type") == "LoadBalancer":
                mine = self._public_addresses(app, service, mine)
        now = datetime.now(UTC)
        for ip in ips:
            owner = managed.get(ip.service_name or "")
            if not ip.service_name:
                continue  # not a Service's (the app's own): not ours to release
            keep = owner is not None and (
                ip.ip == owner["spec"]["clusterIP"]
                or (owner["spec"].get("type") == "LoadBalancer" and not _is_private(ip.ip))
            )
            with self._lock:
                doomed = ip.ip in self._doomed
            if keep or (not doomed and _age(ip, now) < ORPHAN_GRACE):
                continue
            try:
                self._fly.ips.delete(app, ip.ip)
            except NotFoundError:
                pass  # released meanwhile
            with self._lock:
                self._doomed.discard(ip.ip)
            log.info("released %s (service %s) of app %s", ip.ip, ip.service_name, app)
        for name, service in services.items():
            ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress")
            is_lb = name in managed and service["spec"].get("type") == "LoadBalancer"
            if ingress and not is_lb:
                self._set_ingress(service, [])

    def _public_addresses(
        self, app: str, service: JSON, mine: list[IPAssignment]
    ) -> list[IPAssignment]:
        name = service["metadata"]["name"]
        have = list(mine)
        kinds: dict[str, Callable[[str], bool]] = {"v6": _is_public_v6, "shared_v4": _is_v4}
        for kind, matches in kinds.items():
            if any(matches(ip.ip) for ip in have):
                continue
            try:
                have.append(self._fly.ips.create(app, kind, service_name=name))
            except FlykError as error:
                self._event(
                    service,
                    "Warning",
                    "AllocationFailed",
                    f"no public {kind} address: {error.message}",
                )
                raise
        v6 = next(ip.ip for ip in have if kinds["v6"](ip.ip))
        v4 = next(ip.ip for ip in have if kinds["shared_v4"](ip.ip))
        ingress = [{"hostname": public_hostname(name, app)}, {"ip": v6}, {"ip": v4}]
        current = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress")
        if current != ingress:
            self._set_ingress(service, ingress)
        return have

    def _set_ingress(self, service: JSON, ingress: list[JSON]) -> None:
        meta = service["metadata"]
        self._kube.patch_service_status(
            meta["namespace"], meta["name"], {"loadBalancer": {"ingress": ingress or None}}
        )

    def _machines(
        self, app: str, wanted: dict[str, dict[str, sc.PortMap]], managed: dict[str, JSON]
    ) -> None:
        machines = self._fly.machines.list(
            app, metadata={records.META_CLUSTER: self._config.cluster}
        )
        for machine in machines:
            if machine.state in GONE_STATES:
                continue
            config = machine.to_api().get("config") or {}
            metadata = config.get("metadata") or {}
            want = {
                n: p for n, p in wanted.get(metadata.get(records.META_POD_UID, ""), {}).items() if p
            }
            target = sc.with_services(config, want, managed)
            same_keys = sc.joined_services(metadata) == want
            if same_keys and (config.get("services") or []) == (target.get("services") or []):
                continue
            with self._fly.machines.lease(
                app, machine.id, ttl=60, description="flyk kubelet: Service routing", wait=0
            ) as lease:
                # A machine that is not running stays so (a finished pod's must not start).
                self._fly.machines.update(
                    app,
                    machine.id,
                    MachineConfig.from_api(target),
                    nonce=lease.nonce,
                    skip_launch=machine.state not in ("started", "starting"),
                )
            log.info(
                "machine %s of app %s now serves %s", machine.id, app, sorted(want) or "no Service"
            )

    # -- events ----------------------------------------------------------------------------
    def _event(self, service: JSON, kind: str, reason: str, message: str) -> None:
        """A Service Event; each message is told once per Service. Best effort."""
        self._events(service, "Service", kind, reason, message)
