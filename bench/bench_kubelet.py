"""Benchmark of the virtual kubelet: N pods across M namespaces against the local backend.

The local backend enforces Fly's documented rate limits (429 when exceeded) and boots machines
with a realistic delay; the fake Kubernetes API (tests/kubelet/fake_kube.py) serves the pods.
Both run in a child process over real HTTP, so the resident memory measured here is the
kubelet's (plus this script's few HTTP calls), not the fakes'.

Reported, from one run:
- time until every pod is Running, and its ratio to the floor the rate limits set
  (machine creates are limited per app: 1/s with bursts of 3, so a namespace of k pods needs
  at least (k - 3) s, plus one boot; app creates are limited per org, which delays the later
  namespaces: both floors are printed);
- 429s received (target 0: the client's limiter keeps the kubelet under the limits);
- Machines API calls per pod over its life (create → Running → settled, then delete → gone;
  the idle window between is reported apart);
- steady-state Machines API calls per minute with every pod idle (should follow the number of
  namespaces, not of pods), and how many pods were written in that window (should be 0);
  with `--liveness-period P` every pod has a liveness probe, and each namespace is listed every
  max(5, 3 P) s instead of every 30 s (still one list per namespace);
- the kubelet process's resident memory.

    .venv/bin/python bench/bench_kubelet.py                       # 1,000 pods, 10 namespaces
    .venv/bin/python bench/bench_kubelet.py --pods 100 --idle 30  # quicker
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CREATE_RATE, CREATE_BURST = 1.0, 3  # Fly's documented limit for create, per app
CLUSTER, ORG, NODE = "bench", "bench", "flyk-bench"


# --------------------------------------------------------------------------- the child process


def serve_fakes(boot: float) -> None:
    """Child: the fake Kubernetes API and the local backend, until stdin closes."""
    from flyk.local import LocalBackend, Timing
    from tests.kubelet.fake_kube import FakeKube

    kube = FakeKube(history_limit=1_000_000)
    with tempfile.TemporaryDirectory() as scratch:
        timing = Timing(boot=boot, stop=0.5, destroy=0.3, restart_delay=1.0)
        backend = LocalBackend(Path(scratch) / "bench.db", timing, orgs=[ORG])
        backend.rate_limits.enable()
        served = backend.serve()
        print(json.dumps({"kube": kube.url, "fly": served.url}), flush=True)
        sys.stdin.read()
        served.close()
        kube.close()


# --------------------------------------------------------------------------- measuring


class Calls:
    """Every Machines API exchange the kubelet made, by status, for the report."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0
        self.statuses: Counter[int] = Counter()

    def __call__(self, _request: httpx.Request, response: httpx.Response) -> None:
        with self._lock:
            self.total += 1
            self.statuses[response.status_code] += 1

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self.total, self.statuses[429]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pods(kube: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{kube}/api/v1/pods", timeout=60)
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def wait_until(check: Any, poll: float = 0.5) -> float:
    start = time.monotonic()
    while not check():
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


# --------------------------------------------------------------------------- the run


def run(args: argparse.Namespace) -> dict[str, Any]:
    from flyk.api import FlyClient
    from flyk.kubelet import KubeletConfig
    from flyk.kubelet.runner import Kubelet

    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-fakes", "--boot", str(args.boot)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    urls = json.loads(child.stdout.readline())
    scratch = Path(tempfile.mkdtemp())
    kubeconfig = scratch / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "b", "cluster": {"server": urls["kube"]}}],
                "users": [{"name": "b", "user": {"token": "bench"}}],
                "contexts": [{"name": "b", "context": {"cluster": "b", "user": "b"}}],
                "current-context": "b",
            }
        )
    )
    calls = Calls()
    fly = FlyClient(base_url=urls["fly"], on_exchange=calls)  # Fly's limits, process-wide
    config = KubeletConfig(
        cluster=CLUSTER,
        org=ORG,
        region="iad",
        node_name=NODE,
        kubeconfig=str(kubeconfig),
        workers_per_namespace=args.workers,
    )
    rss_before = rss_mb()
    kubelet = Kubelet(config, fly=fly).start()
    kube = urls["kube"]
    try:
        return measure(args, kube, calls, rss_before)
    finally:
        kubelet.stop()
        fly.close()
        child.stdin.close()
        child.wait(30)


def create_pods(kube: str, count: int, namespaces: int, liveness_period: int = 0) -> list[int]:
    per_namespace = [0] * namespaces
    container: dict[str, Any] = {"name": "app", "image": "nginx:1.27"}
    if liveness_period:
        container["livenessProbe"] = {
            "tcpSocket": {"port": 8080},
            "periodSeconds": liveness_period,
        }
    with httpx.Client(base_url=kube, timeout=60) as http:
        for index in range(count):
            namespace = f"ns{index % namespaces}"
            per_namespace[index % namespaces] += 1
            body = {
                "metadata": {"name": f"pod-{index}", "namespace": namespace},
                "spec": {
                    "nodeName": NODE,
                    "terminationGracePeriodSeconds": 1,
                    "containers": [container],
                },
            }
            http.post(f"/api/v1/namespaces/{namespace}/pods", json=body).raise_for_status()
    return per_namespace


def measure(args: argparse.Namespace, kube: str, calls: Calls, rss_before: float) -> dict[str, Any]:
    start = time.monotonic()
    per_namespace = create_pods(kube, args.pods, args.namespaces, args.liveness_period)
    wait_until(lambda: sum(p["status"].get("phase") == "Running" for p in pods(kube)) == args.pods)
    to_running = time.monotonic() - start
    rss_running = rss_mb()

    time.sleep(min(10.0, args.idle / 4))  # let the last fast resyncs settle
    # Everything up to here is the pods' start (the settling resyncs included): life calls.
    idle_start_calls, _ = calls.snapshot()
    versions_before = pod_versions(kube)
    time.sleep(args.idle)
    idle_calls = calls.snapshot()[0] - idle_start_calls
    versions_after = pod_versions(kube)
    idle_patches = sum(versions_after[uid] != rv for uid, rv in versions_before.items())

    delete_start_calls, _ = calls.snapshot()
    delete_start = time.monotonic()
    with httpx.Client(base_url=kube, timeout=60) as http:
        for pod in pods(kube):
            meta = pod["metadata"]
            path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
            http.request("DELETE", path, json={"gracePeriodSeconds": 1})
    wait_until(lambda: not pods(kube))
    to_deleted = time.monotonic() - delete_start
    total_calls, four_twenty_nines = calls.snapshot()
    # Over a pod's life: its start (until settled) and its deletion; not the idle window.
    life_calls = idle_start_calls + (total_calls - delete_start_calls)
    floor = floor_seconds(per_namespace, args.boot, with_apps=False)
    floor_apps = floor_seconds(per_namespace, args.boot, with_apps=True)
    return {
        "pods": args.pods,
        "namespaces": args.namespaces,
        "boot_seconds": args.boot,
        "liveness_period_seconds": args.liveness_period or "none",
        "seconds_to_all_running": round(to_running, 1),
        "floor_seconds_machine_creates": round(floor, 1),
        "ratio_to_machine_creates_floor": round(to_running / floor, 2),
        "floor_seconds_with_app_creates": round(floor_apps, 1),
        "ratio_to_floor_with_app_creates": round(to_running / floor_apps, 2),
        "seconds_to_all_deleted": round(to_deleted, 1),
        "429s": four_twenty_nines,
        "machines_calls_per_pod_over_life": round(life_calls / args.pods, 2),
        "idle_window_seconds": args.idle,
        "idle_machines_calls_per_minute": round(idle_calls * 60 / args.idle, 1),
        "idle_pods_written": idle_patches,
        "rss_mb_before_kubelet": round(rss_before, 1),
        "rss_mb_all_running": round(rss_running, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def pod_versions(kube: str) -> dict[str, str]:
    return {p["metadata"]["uid"]: p["metadata"]["resourceVersion"] for p in pods(kube)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--boot", type=float, default=1.0, help="machine boot seconds")
    parser.add_argument("--idle", type=float, default=60.0, help="idle window seconds")
    parser.add_argument("--workers", type=int, default=4, help="workers per namespace")
    parser.add_argument(
        "--liveness-period",
        type=int,
        default=0,
        help="give every pod a tcpSocket liveness probe with this periodSeconds (0: none)",
    )
    parser.add_argument("--serve-fakes", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fakes:
        serve_fakes(args.boot)
        return
    report = run(args)
    width = max(map(len, report))
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
