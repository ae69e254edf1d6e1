"""A running kubelet between the real control plane (realkube.py) and the local backend."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx

from flyk.api import FlyClient, RateLimiter, RetryPolicy
from flyk.errors import NotFoundError
from flyk.kubelet import Intervals, KubeletConfig, namespace_app_name
from flyk.kubelet.config import Serving
from flyk.kubelet.runner import Kubelet
from flyk.local import LocalBackend

from .conftest import eventually
from .realkube import Kube, Traffic

CLUSTER, ORG = "demo", "personal"
FAST = Intervals(
    lease=0.05,
    node_status=0.2,
    ping=0.05,
    resync=0.3,
    fast_resync=0.03,
    watch_timeout=2,
    backoff_initial=0.03,
    backoff_max=0.3,
    stop_wait=5.0,
    liveness_backoff=0.2,
)


@dataclass
class Exchange:
    method: str
    path: str
    status: int
    body: Any
    query: str = ""


@dataclass
class Recorder:
    """Every Machines API exchange the kubelet made (the client's on_exchange hook)."""

    calls: list[Exchange] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: httpx.Request, response: httpx.Response) -> None:
        try:
            body = json.loads(request.content) if request.content else None
        except ValueError:
            body = None
        path = request.url.path.removeprefix("/v1")
        with self.lock:
            query = request.url.query.decode()
            self.calls.append(Exchange(request.method, path, response.status_code, body, query))

    def matching(self, method: str, fragment: str = "") -> list[Exchange]:
        with self.lock:
            return [c for c in self.calls if c.method == method and fragment in c.path]


class Harness:
    def __init__(
        self,
        kube: Kube,
        kubeconfig: str,
        backend: LocalBackend,
        *,
        intervals: Intervals = FAST,
        rate_limiter: RateLimiter | None = None,
        workers: int = 4,
        node_ip: str = "fdaa::2",
        serving: Serving | None = None,
    ) -> None:
        self.kube = kube
        self.node = kube.node
        self.backend = backend
        self.calls = Recorder()
        # What the kubelet asked the API server (and faults scripted there), across restarts.
        self.traffic = Traffic()
        retry = RetryPolicy(deadline=30.0, initial_delay=0.01, max_delay=0.05)
        # The kubelet's client: every exchange it makes is in `calls`.
        self.kubelet_fly = FlyClient(
            transport=backend.transport(),
            retry=retry,
            rate_limiter=rate_limiter or RateLimiter.unlimited(),
            on_exchange=self.calls,
        )
        # The test's own client, for arranging and polling: a second backend on the same
        # database file (same state, same clock), so that what the test does is not in `calls`,
        # takes none of the faults or rate limits scripted on `backend`, and vice versa.
        self.observer = LocalBackend(backend.path, backend.timing, clock=backend.clock)
        self.fly = FlyClient(
            transport=self.observer.transport(), retry=retry, rate_limiter=RateLimiter.unlimited()
        )
        self.config = KubeletConfig(
            cluster=CLUSTER,
            org=ORG,
            region="iad",
            node_name=kube.node,
            node_ip=node_ip,
            kubeconfig=kubeconfig,
            intervals=intervals,
            workers_per_namespace=workers,
            serving=serving or Serving(),
        )
        self.kubelet: Kubelet | None = None

    # the kubelet ------------------------------------------------------------------------
    def start(self) -> Harness:
        kubelet = Kubelet(self.config, fly=self.kubelet_fly)
        self.traffic.attach(kubelet.kube)
        self.traffic.attach(kubelet.pods._watch_kube)
        self.kubelet = kubelet.start()
        return self

    def stop(self) -> None:
        if self.kubelet is not None:
            self.kubelet.stop()
            self.kubelet = None

    def close(self) -> None:
        self.stop()
        self.kubelet_fly.close()
        self.fly.close()

    # pods -------------------------------------------------------------------------------
    def ns(self, namespace: str = "default") -> str:
        """The test's own name for a namespace it calls `namespace`."""
        return self.kube.ns(namespace)

    def create_pod(self, name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
        return self.kube.create(
            "pods", make_pod(name, namespace=self.ns(namespace), node=self.node, **spec)
        )

    def pod(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        return self.kube.get("pods", name, namespace)

    def phase(self, name: str, namespace: str = "default") -> str | None:
        pod = self.pod(name, namespace)
        return None if pod is None else pod.get("status", {}).get("phase")

    def wait_phase(self, name: str, phase: str, namespace: str = "default") -> dict[str, Any]:
        eventually(lambda: self.phase(name, namespace) == phase, what=f"{namespace}/{name} {phase}")
        pod = self.pod(name, namespace)
        assert pod is not None
        return pod

    def delete_pod(self, name: str, namespace: str = "default", grace: int | None = None) -> None:
        options = {} if grace is None else {"gracePeriodSeconds": grace}
        self.kube.delete("pods", name, namespace, **options)

    def events(
        self, pod: str, reason: str | None = None, namespace: str = "default"
    ) -> list[dict[str, Any]]:
        return [
            e
            for e in self.kube.list("events", namespace)
            if e["involvedObject"]["name"] == pod and reason in (None, e["reason"])
        ]

    # machines ---------------------------------------------------------------------------
    def app(self, namespace: str = "default") -> str:
        return namespace_app_name(CLUSTER, self.ns(namespace), ORG)

    def machines(self, namespace: str = "default") -> list[dict[str, Any]]:
        try:
            return [m.to_api() for m in self.fly.machines.list(self.app(namespace))]
        except NotFoundError:  # the app does not exist yet
            return []

    def machine_of(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        found = [
            m for m in self.machines(namespace) if m["config"]["metadata"].get("flyk_pod") == name
        ]
        assert len(found) <= 1, f"{len(found)} machines for {namespace}/{name}"
        return found[0] if found else None


def make_pod(
    name: str,
    *,
    namespace: str,
    node: str | None,
    image: str = "nginx:1.27",
    containers: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A Pod bound to `node` (None: unbound, for the scheduler); `annotations` go in metadata."""
    body_spec: dict[str, Any] = {
        "containers": containers or [{"name": "app", "image": image}],
        **spec,
    }
    if node:
        body_spec["nodeName"] = node
    annotations = body_spec.pop("annotations", None)
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": body_spec}
