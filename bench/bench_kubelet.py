"""Benchmark of the virtual kubelet on the real control plane: Deployments of N pods across M
namespaces, the kubelet turning them into machines on the local backend.

The control plane is the flyk-controlplane binary (upstream kube-apiserver,
controller-manager and scheduler on kine) with production's flags, run by flyk's supervisor
(tests/kubelet/realkube.py); the kubelet authenticates as its node, as in production, and runs
with production's intervals in this process. The local backend enforces Fly's documented rate
limits (429 when exceeded) and boots machines with a realistic delay; it runs in a child
process over real HTTP, so the resident memory measured here is the kubelet's (plus this
script's watch of the pods, which keeps a few numbers per pod), not the backend's.

Reported, from one run:
- time from the Deployments' creation until every pod is Running, and its ratio to the floor
  the rate limits set (machine creates are limited per app: 1/s with bursts of 3, so a
  namespace of k pods needs at least (k - 3) s, plus one boot; app creates are limited per
  org, which delays the later namespaces: both floors are printed; goal ≤ 1.10);
- 429s received (goal 0: the client's limiter keeps the kubelet under the limits);
- pod start latency above the machine's boot, p50 and p99: single pods created one at a time
  while the others idle (so no rate limit holds them), from the create until a watch sees them
  Running, less the boot;
- with every pod idle: Machines API calls per minute (should follow the namespaces, not the
  pods), API server requests per minute from the kubelet (should not grow with the pods), and
  how many pods were written (should be 0);
- Machines API calls per pod over its life (create → Running → settled, then delete → gone);
- the kubelet process's resident memory.

    .venv/bin/python bench/bench_kubelet.py           # 1,000 pods, 10 namespaces
    .venv/bin/python bench/bench_kubelet.py --large   # 10,000 pods, 100 namespaces
    .venv/bin/python bench/bench_kubelet.py --quick   # a smoke run (tests/test_bench.py)

The binary must be built (`flyk ext k8s build`, or FLYK_CONTROLPLANE_BIN).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CREATE_RATE, CREATE_BURST = 1.0, 3  # Fly's documented limit for create, per app
CLUSTER, ORG, NODE = "bench", "bench", "flyk-bench"
JSON = dict[str, Any]

SIZES = {  # pods, namespaces, idle window (s), latency samples, machine boot (s)
    "quick": (12, 3, 5.0, 3, 0.2),
    "default": (1000, 10, 60.0, 40, 1.0),
    "large": (10_000, 100, 60.0, 40, 1.0),
}


# --------------------------------------------------------------------------- the child process


def serve_backend(boot: float) -> None:
    """Child: the local backend with Fly's limits enforced, until stdin closes."""
    from flyk.local import LocalBackend, Timing

    with tempfile.TemporaryDirectory() as scratch:
        timing = Timing(boot=boot, stop=0.5, destroy=0.3, restart_delay=1.0)
        backend = LocalBackend(Path(scratch) / "bench.db", timing, orgs=[ORG])
        backend.rate_limits.enable()
        served = backend.serve()
        print(json.dumps({"fly": served.url}), flush=True)
        sys.stdin.read()
        served.close()


# --------------------------------------------------------------------------- measuring


class Calls:
    """Every Machines API exchange the kubelet made, by status."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0
        self.statuses: Counter[int] = Counter()

        self.limited: Counter[str] = Counter()  # "METHOD /path shape" of each 429

    def __call__(self, request: httpx.Request, response: httpx.Response) -> None:
        with self._lock:
            self.total += 1
            self.statuses[response.status_code] += 1
            if response.status_code == 429:
                shape = re.sub(r"/machines/[^/]+", "/machines/ID", request.url.path)
                shape = re.sub(r"/apps/[^/]+", "/apps/APP", shape)
                self.limited[f"{request.method} {shape}"] += 1

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self.total, self.statuses[429]


class KubeRequests:
    """Counts the kubelet's requests to the API server, by method, in its own HTTP client
    (lightkube's httpx2 transport; the hook tests/kubelet/realkube.py's Traffic uses)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_method: Counter[str] = Counter()

    def attach(self, api: Any) -> None:
        import httpx2

        http: httpx2.Client = api._client._client._client
        real = http._transport
        counter = self

        class Counted(httpx2.BaseTransport):
            def handle_request(self, request: httpx2.Request) -> httpx2.Response:
                with counter._lock:
                    counter.by_method[request.method] += 1
                return real.handle_request(request)

            def close(self) -> None:
                real.close()

        http._transport = Counted()

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.by_method)


class PodWatch:
    """An administrator's watch of every pod: when each was first seen Running, and which are
    Running now. Keeps a few numbers per pod, not the pods."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.lock = threading.Lock()
        self.running: set[str] = set()
        self.bound: set[str] = set()  # uids the scheduler has bound (their first sight)
        self.first_running: dict[str, float] = {}
        self.names: dict[str, str] = {}  # "namespace/name" -> uid
        self.versions: dict[str, str] = {}  # uid -> resourceVersion
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        version = ""
        while not self.stop.is_set():
            try:
                if not version:
                    version = self._list()
                query = {"watch": "1", "resourceVersion": version, "timeoutSeconds": "60"}
                query["allowWatchBookmarks"] = "true"
                with self.http.stream("GET", "/api/v1/pods", params=query, timeout=90) as stream:
                    if stream.status_code != 200:
                        version = ""
                        continue
                    for line in stream.iter_lines():
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            version = ""
                            break
                        version = event["object"]["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK":
                            self._see(event["type"], event["object"])
            except (httpx.HTTPError, ValueError, KeyError):
                version = ""
                self.stop.wait(0.5)

    def _list(self) -> str:
        page = self.http.get("/api/v1/pods", timeout=120).json()
        for pod in page["items"]:
            self._see("ADDED", pod)
        return str(page["metadata"]["resourceVersion"])

    def _see(self, kind: str, pod: JSON) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        up = (
            kind != "DELETED"
            and (pod.get("status") or {}).get("phase") == "Running"
            and not meta.get("deletionTimestamp")
        )
        with self.lock:
            if (pod.get("spec") or {}).get("nodeName"):
                self.bound.add(uid)
            if kind == "DELETED":
                self.versions.pop(uid, None)
                self.names.pop(f"{meta['namespace']}/{meta['name']}", None)
            else:
                self.versions[uid] = meta["resourceVersion"]
                self.names[f"{meta['namespace']}/{meta['name']}"] = uid
            if up:
                self.running.add(uid)
                self.first_running.setdefault(uid, time.monotonic())
            else:
                self.running.discard(uid)

    def count_running(self) -> int:
        with self.lock:
            return len(self.running)

    def count_bound(self) -> int:
        with self.lock:
            return len(self.bound)

    def count(self) -> int:
        with self.lock:
            return len(self.versions)

    def snapshot_versions(self) -> dict[str, str]:
        with self.lock:
            return dict(self.versions)

    def running_since(self, key: str) -> float | None:
        with self.lock:
            uid = self.names.get(key)
            return self.first_running.get(uid) if uid else None

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def wait_until(check: Any, poll: float = 0.2, timeout: float = 3600.0) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise SystemExit(f"timed out waiting for {check}")
        time.sleep(poll)
    return time.monotonic() - start


def floor_seconds(per_namespace: list[int], boot: float, *, with_apps: bool) -> float:
    """The least time the rate limits allow. Each namespace app creates its machines at 1/s
    after a burst of 3, in parallel with the others, and the last machine then boots. With
    `with_apps`, the namespace apps themselves count too: app creates are limited per org
    (1/s after a burst of 3), so the i-th namespace can start only (i - 3) s in."""
    worst = 0.0
    for index, pods in enumerate(sorted(per_namespace)):
        app_ready = max(0, index + 1 - CREATE_BURST) / CREATE_RATE if with_apps else 0.0
        worst = max(worst, app_ready + max(0, math.ceil((pods - CREATE_BURST) / CREATE_RATE)))
    return worst + boot


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


# --------------------------------------------------------------------------- the run


def control_plane_binary() -> Path:
    from flyk.k8s import binary

    found = binary.find()
    if found is None:
        raise SystemExit("the control plane is not built: run `flyk ext k8s build` first")
    return found


def run(args: argparse.Namespace) -> JSON:
    from flyk.api import FlyClient
    from flyk.k8s import bootstrap
    from flyk.kubelet import KubeletConfig
    from flyk.kubelet.runner import Kubelet
    from tests.kubelet.realkube import ControlPlane

    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-backend", "--boot", str(args.boot)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    fly_url = json.loads(child.stdout.readline())["fly"]
    scratch = Path(tempfile.mkdtemp(prefix="bench-kubelet-"))
    plane = ControlPlane(control_plane_binary(), scratch / "control-plane").start()
    try:
        kubeconfig = plane.kubeconfig(
            scratch / "kubelet.kubeconfig", bootstrap.node_user(NODE), (bootstrap.NODES_GROUP,)
        )
        calls = Calls()
        fly = FlyClient(base_url=fly_url, on_exchange=calls)  # Fly's limits, process-wide
        config = KubeletConfig(
            cluster=CLUSTER,
            org=ORG,
            region="iad",
            node_name=NODE,
            kubeconfig=kubeconfig,
            workers_per_namespace=args.workers,
        )
        with plane.admin() as http:
            namespaces = [f"ns{i}" for i in range(args.namespaces)]
            for namespace in namespaces:
                body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
                http.post("/api/v1/namespaces", json=body).raise_for_status()
            for namespace in namespaces:  # pods are admitted once its ServiceAccount exists
                path = f"/api/v1/namespaces/{namespace}/serviceaccounts/default"
                wait_until(lambda p=path: http.get(p).status_code == 200, poll=0.05)
            requests = KubeRequests()
            rss_before = rss_mb()
            kubelet = Kubelet(config, fly=fly)
            requests.attach(kubelet.kube)
            requests.attach(kubelet.pods._watch_kube)
            kubelet.start()
            watch = PodWatch(http)
            try:
                return measure(args, http, namespaces, watch, calls, requests, rss_before)
            finally:
                watch.close()
                kubelet.stop()
                fly.close()
    finally:
        left = plane.stop()
        child.stdin.close()
        child.wait(30)
        shutil.rmtree(scratch, ignore_errors=True)
        if left:
            print(f"control-plane processes left running: {left}", file=sys.stderr)


def deployment(name: str, replicas: int, liveness_period: int) -> JSON:
    container: JSON = {"name": "app", "image": "nginx:1.27"}
    if liveness_period:
        container["livenessProbe"] = {"tcpSocket": {"port": 8080}, "periodSeconds": liveness_period}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]},
            },
        },
    }


def measure(
    args: argparse.Namespace,
    http: httpx.Client,
    namespaces: list[str],
    watch: PodWatch,
    calls: Calls,
    requests: KubeRequests,
    rss_before: float,
) -> JSON:
    per_namespace = [
        args.pods // len(namespaces) + (i < args.pods % len(namespaces))
        for i in range(len(namespaces))
    ]
    start = time.monotonic()
    for namespace, replicas in zip(namespaces, per_namespace, strict=True):
        body = deployment("web", replicas, args.liveness_period)
        http.post(f"/apis/apps/v1/namespaces/{namespace}/deployments", json=body).raise_for_status()
    wait_until(lambda: watch.count_bound() >= args.pods)
    to_bound = time.monotonic() - start
    wait_until(lambda: watch.count_running() == args.pods)
    to_running = time.monotonic() - start
    rss_running = rss_mb()

    time.sleep(min(10.0, args.idle / 4))  # let the last fast resyncs settle
    # Everything up to here is the pods' start (the settling resyncs included): life calls.
    idle_start_calls, _ = calls.snapshot()
    idle_start_requests = requests.snapshot()
    versions_before = watch.snapshot_versions()
    time.sleep(args.idle)
    idle_calls = calls.snapshot()[0] - idle_start_calls
    idle_requests = requests.snapshot() - idle_start_requests
    versions_after = watch.snapshot_versions()
    idle_patches = sum(versions_after.get(uid) != rv for uid, rv in versions_before.items())

    latencies = start_latencies(args, http, namespaces, watch)

    delete_start_calls, _ = calls.snapshot()
    delete_start = time.monotonic()
    for namespace in namespaces:
        path = f"/apis/apps/v1/namespaces/{namespace}/deployments/web"
        http.request("DELETE", path, json={"propagationPolicy": "Background"})
        for index in range(args.samples):
            if namespaces[index % len(namespaces)] == namespace:
                http.request(
                    "DELETE",
                    f"/api/v1/namespaces/{namespace}/pods/single-{index}",
                    json={"gracePeriodSeconds": 1},
                )
    wait_until(lambda: watch.count() == 0)
    to_deleted = time.monotonic() - delete_start
    total_calls, four_twenty_nines = calls.snapshot()
    # Over a pod's life: its start (until settled) and its deletion; not the idle window, not
    # the latency samples.
    life_calls = idle_start_calls + (total_calls - delete_start_calls)
    floor = floor_seconds(per_namespace, args.boot, with_apps=False)
    floor_apps = floor_seconds(per_namespace, args.boot, with_apps=True)
    minutes = args.idle / 60
    return {
        "pods": args.pods,
        "namespaces": args.namespaces,
        "boot_seconds": args.boot,
        "liveness_period_seconds": args.liveness_period or "none",
        "seconds_to_all_bound": round(to_bound, 1),  # controllers and scheduler, for comparison
        "seconds_to_all_running": round(to_running, 1),
        "floor_seconds_machine_creates": round(floor, 1),
        "ratio_to_machine_creates_floor": round(to_running / floor, 2),
        "floor_seconds_with_app_creates": round(floor_apps, 1),
        "ratio_to_floor_with_app_creates": round(to_running / floor_apps, 2),
        "429s": four_twenty_nines,
        "429s_by_call": dict(calls.limited) or "none",
        "start_latency_above_boot_ms_p50": round(percentile(latencies, 0.5) * 1000),
        "start_latency_above_boot_ms_p99": round(percentile(latencies, 0.99) * 1000),
        "start_latency_samples": len(latencies),
        "idle_window_seconds": args.idle,
        "idle_machines_calls_per_minute": round(idle_calls / minutes, 1),
        "idle_api_server_requests_per_minute": round(sum(idle_requests.values()) / minutes, 1),
        "idle_api_server_requests_by_method": dict(sorted(idle_requests.items())),
        "idle_pods_written": idle_patches,
        "machines_calls_per_pod_over_life": round(life_calls / args.pods, 2),
        "seconds_to_all_deleted": round(to_deleted, 1),
        "rss_mb_before_kubelet": round(rss_before, 1),
        "rss_mb_all_running": round(rss_running, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def start_latencies(
    args: argparse.Namespace, http: httpx.Client, namespaces: list[str], watch: PodWatch
) -> list[float]:
    """Single pods created one at a time, round the namespaces, far enough apart that no rate
    limit holds them (each app gets one every `len(namespaces) × spacing` s, and Fly allows
    one a second): seconds from the create until Running, less the machine's boot."""
    spacing = max(0.3, 1.5 / len(namespaces))
    created: list[tuple[str, float]] = []
    for index in range(args.samples):
        namespace = namespaces[index % len(namespaces)]
        name = f"single-{index}"
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "app", "image": "nginx:1.27"}],
            },
        }
        sent = time.monotonic()
        http.post(f"/api/v1/namespaces/{namespace}/pods", json=body).raise_for_status()
        created.append((f"{namespace}/{name}", sent))
        time.sleep(spacing)
    wait_until(lambda: all(watch.running_since(key) for key, _ in created))
    return [(watch.running_since(key) or sent) - sent - args.boot for key, sent in created]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--large", action="store_true", help="10,000 pods in 100 namespaces")
    size.add_argument("--quick", action="store_true", help="a smoke run: 12 pods, 3 namespaces")
    parser.add_argument("--pods", type=int, help="pods (default 1,000)")
    parser.add_argument("--namespaces", type=int, help="namespaces (default 10)")
    parser.add_argument("--boot", type=float, help="machine boot seconds (default 1)")
    parser.add_argument("--idle", type=float, help="idle window seconds (default 60)")
    parser.add_argument("--samples", type=int, help="start latency samples (default 40)")
    parser.add_argument("--workers", type=int, default=4, help="workers per namespace")
    parser.add_argument(
        "--liveness-period",
        type=int,
        default=0,
        help="give every pod a tcpSocket liveness probe with this periodSeconds (0: none)",
    )
    parser.add_argument("--serve-backend", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_backend:
        serve_backend(args.boot)
        return
    chosen = "large" if args.large else "quick" if args.quick else "default"
    pods, namespaces, idle, samples, boot = SIZES[chosen]
    args.pods = args.pods or pods
    args.namespaces = args.namespaces or namespaces
    args.idle = args.idle if args.idle is not None else idle
    args.samples = args.samples if args.samples is not None else samples
    args.boot = args.boot if args.boot is not None else boot
    report = run(args)
    width = max(map(len, report))
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
