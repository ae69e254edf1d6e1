"""Benchmark of Services: the Machines API calls (and time) from `kubectl expose` until the
Service's address routes to every selected machine, and the steady-state calls with many
Services idle.

The Service controller (flyk/kubelet/services.py) runs for real against the local backend;
the Kubernetes side is fed by hand, as its watches would feed it (a Service and its
EndpointSlice), so no API server is needed. Routing is read from the backend's records
(flyk/local/routing.py). Reported:

- expose: calls to assign the address (the webhook's part), then calls until the address
  routes to all P selected machines (one IP list and one machine list for the namespace,
  then a lease, an update and a release per machine), per Service and per pod, and the time
  (with `--latency` seconds added to every Machines API call, a stand-in for the network);
- idle: Machines API calls per minute with 1 Service and with S Services in the namespace,
  every one routed and nothing changing (resync every `--resync` s): the two rates should be
  equal, the controller's cost follows namespaces, not Services.

    .venv/bin/python bench/bench_services.py                     # 10 pods, 100 Services
    .venv/bin/python bench/bench_services.py --pods 3 --services 5 --idle 2 --resync 0.5
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flyk.api import FlyClient, MachineConfig, RateLimiter  # noqa: E402
from flyk.k8s import records  # noqa: E402
from flyk.kubelet import KubeletConfig, namespace_app_name  # noqa: E402
from flyk.kubelet.services import ServiceController  # noqa: E402
from flyk.local import LocalBackend, Timing  # noqa: E402

CLUSTER, ORG, NAMESPACE = "bench", "personal", "default"
JSON = dict[str, Any]


class QuietKube:
    """The Kubernetes side: lists what was fed, watches that stay silent, and accepts the
    Events and status patches the controller sends."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.writes = 0

    def list_all(self, *_: Any) -> tuple[list[JSON], str]:
        return [], "1"

    def watch_all(self, *_: Any, **__: Any) -> Any:
        self.stop.wait(1.0)
        return iter(())

    def create_event(self, *_: Any) -> None:
        self.writes += 1

    def patch_service_status(self, *_: Any) -> None:
        self.writes += 1

    def close(self) -> None:
        pass


class Calls:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request, _response: httpx.Response) -> None:
        with self.lock:
            self.counts[request.method] += 1

    def total(self) -> int:
        with self.lock:
            return sum(self.counts.values())


def service(name: str, address: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": str(uuid.uuid4()),
            "annotations": {"fly.io/clusterip-allocator": "configured"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": address,
            "clusterIPs": [address],
            "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
        },
    }


def endpoint_slice(name: str, pod_uids: list[str]) -> JSON:
    return {
        "metadata": {
            "name": f"{name}-abcde",
            "namespace": NAMESPACE,
            "labels": {"kubernetes.io/service-name": name},
        },
        "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["fdaa::1"], "conditions": {"ready": True},
             "targetRef": {"kind": "Pod", "uid": uid}}
            for uid in pod_uids
        ],
    }  # fmt: skip


def wait_routed(backend: LocalBackend, address: str, machines: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while {m["machine_id"] for m in backend.routes(address, 80)["machines"]} != machines:
        if time.monotonic() > deadline:
            raise SystemExit(f"{address} never routed to all {len(machines)} machines")
        time.sleep(0.01)


def run(pods: int, services: int, idle: float, resync: float, latency: float) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        backend = LocalBackend(Path(scratch) / "local.db", Timing.instant(), orgs=[ORG])
        calls = Calls()
        fly = FlyClient(
            transport=backend.transport(), rate_limiter=RateLimiter.unlimited(), on_exchange=calls
        )
        app = namespace_app_name(CLUSTER, NAMESPACE, ORG)
        fly.apps.create(app, ORG)
        uids = [str(uuid.uuid4()) for _ in range(pods)]
        machines = set()
        for uid in uids:
            config = MachineConfig.from_api(
                {
                    "image": "nginx:1.27",
                    "metadata": {records.META_CLUSTER: CLUSTER, records.META_POD_UID: uid},
                }
            )
            machines.add(fly.machines.create(app, config, region="iad").id)
        if latency:
            backend.faults.add("latency", seconds=latency, times=None)

        kube = QuietKube()
        config = KubeletConfig(cluster=CLUSTER, org=ORG, region="iad")
        controller = ServiceController(kube, fly, config, resync=resync)  # type: ignore[arg-type]
        stop = threading.Event()
        controller.start(stop)
        controller.synced.wait(10)

        def expose(name: str) -> tuple[int, int, float]:
            """(calls to assign, calls to route, seconds until routed)"""
            began, before = time.monotonic(), calls.total()
            address = fly.ips.create(app, "private_v6", service_name=name).ip  # the webhook
            assigned = calls.total()
            controller.observe("Service", "ADDED", service(name, address))
            controller.observe("EndpointSlice", "ADDED", endpoint_slice(name, uids))
            wait_routed(backend, address, machines, timeout=60 + 20 * pods * (latency + 0.05))
            return assigned - before, calls.total() - assigned, time.monotonic() - began

        assign, route, seconds = expose("svc-0")
        print(f"pods selected          {pods}")
        print(f"expose: assign calls   {assign} (the webhook's ip_assignments POST)")
        print(
            f"expose: route calls    {route} "
            f"({route / pods:.1f} per pod, {route - 3 * pods} per Service beyond 3 per pod)"
        )
        print(f"expose: time to route  {seconds:.3f} s (latency {latency} s per call)")

        def idle_rate() -> float:
            time.sleep(resync * 1.5)  # let what the last expose started settle
            before = calls.total()
            time.sleep(idle)
            return (calls.total() - before) * 60 / idle

        one = idle_rate()
        backend.faults.clear()
        for index in range(1, services):
            expose(f"svc-{index}")
        many = idle_rate()
        stop.set()
        kube.stop.set()
        controller.join(10)
        fly.close()
        print(f"idle, 1 Service        {one:.1f} calls/min (resync every {resync} s)")
        print(
            f"idle, {services} Services{' ' * max(1, 7 - len(str(services)))}{many:.1f} calls/min"
        )
        ratio = many / one if one else float("nan")
        print(f"ratio {services}/1 Services   {ratio:.2f} × (should be 1: follows namespaces)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of each idle window")
    parser.add_argument("--resync", type=float, default=5.0, help="the controller's resync (s)")
    parser.add_argument("--latency", type=float, default=0.0, help="added to each API call (s)")
    args = parser.parse_args()
    run(args.pods, args.services, args.idle, args.resync, args.latency)


if __name__ == "__main__":
    main()
