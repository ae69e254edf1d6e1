"""Benchmark of PersistentVolumeClaims on Fly volumes: the real control plane (its
persistentvolume-binder), the kubelet's provisioner, the local backend in-process with a
latency on every Machines API call (the real API answers in tens to hundreds of ms).

Each claim lives its whole life: created, provisioned (a Fly volume, a PV), Bound, grown by
1 GB, deleted; its volume destroyed and its PV gone. Printed, from one run:
- Machines API calls per claim over that life, by kind (the namespace app's set-up, once per
  namespace, apart);
- time from the claim's create to Bound, and its ratio to the volume create call itself
  (median over the claims): what the binder, the watch and the PV cost on top of Fly.

    .venv/bin/python bench/bench_volumes.py                 # 10 claims, 100 ms per call
    .venv/bin/python bench/bench_volumes.py --claims 2 --latency 0.01
The control-plane binary must be built (`flyk ext k8s build`) or named by
FLYK_CONTROLPLANE_BIN.
"""

from __future__ import annotations

import argparse
import statistics
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

from flyk.k8s import binary  # noqa: E402
from flyk.local import LocalBackend, Timing  # noqa: E402
from tests.kubelet.harness import Harness  # noqa: E402
from tests.kubelet.realkube import ControlPlane, Kube  # noqa: E402


class Timed(httpx.BaseTransport):
    """The kubelet's Machines transport: every call's method, path and duration."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str, float, float]] = []  # method, path, start, seconds
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        start = time.monotonic()
        response = self.inner.handle_request(request)
        with self.lock:
            self.calls.append((request.method, request.url.path, start, time.monotonic() - start))
        return response


class TimedBackend:
    """The backend as the harness sees it, its kubelet's transport timed."""

    def __init__(self, backend: LocalBackend, timed: Timed) -> None:
        self.backend, self.timed = backend, timed
        self.path, self.timing, self.clock = backend.path, backend.timing, backend.clock

    def transport(self) -> httpx.BaseTransport:
        return self.timed


def kind(method: str, path: str) -> str | None:
    """What a call is for, when it is the volume flow's (None: the pod side's)."""
    if "/volumes" in path:
        if path.endswith("/extend"):
            return "volume extend"
        action = {"GET": "get", "POST": "create", "DELETE": "delete"}.get(method, method)
        return f"volume {'list' if action == 'get' and path.endswith('/volumes') else action}"
    if "/placements" in path:
        return "placements"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--claims", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per Machines call")
    args = parser.parse_args()

    found = binary.find()
    if found is None:
        sys.exit("the control-plane binary is not built: flyk ext k8s build")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        plane = ControlPlane(found, work / "plane").start()
        try:
            run(plane, work, args.claims, args.latency)
        finally:
            plane.stop()


def bound_at(kube: Kube, name: str) -> float:
    while True:
        claim = kube.get("persistentvolumeclaims", name, "default") or {}
        if (claim.get("status") or {}).get("phase") == "Bound":
            return time.monotonic()
        time.sleep(0.005)


def wait(check: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.02)


def run(plane: ControlPlane, work: Path, claims: int, latency: float) -> None:
    backend = LocalBackend(work / "local.db", Timing.instant(), orgs=["personal"])
    if latency:
        backend.faults.add("latency", seconds=latency, times=None)
    kube = Kube(plane, work)
    timed = Timed(backend.transport())
    harness = Harness(kube, kube.kubeconfig(), TimedBackend(backend, timed))  # type: ignore[arg-type]
    harness.start()
    namespace = harness.ns()
    ratios: list[float] = []
    to_bound: list[float] = []
    create_calls: list[float] = []
    try:
        # The namespace's app is made once, by the first claim: told apart.
        setup_start = len(timed.calls)
        for index in range(claims):
            name = f"data-{index}"
            body = {
                "metadata": {"name": name},
                "spec": {
                    "accessModes": ["ReadWriteOncePod"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
            start = time.monotonic()
            kube.create("persistentvolumeclaims", body, namespace)
            bound = bound_at(kube, name) - start
            with timed.lock:
                creates = [
                    seconds
                    for method, path, began, seconds in timed.calls
                    if method == "POST" and path.endswith("/volumes") and began >= start
                ]
            to_bound.append(bound)
            create_calls.append(creates[-1])
            ratios.append(bound / creates[-1])
        for index in range(claims):
            patch = {"spec": {"resources": {"requests": {"storage": "2Gi"}}}}
            kube.patch("persistentvolumeclaims", f"data-{index}", patch, "default")
        wait(lambda: len([c for c in timed.calls if c[1].endswith("/extend")]) >= claims)
        for index in range(claims):
            kube.delete("persistentvolumeclaims", f"data-{index}", "default")
        wait(lambda: not harness.fly.volumes.list(harness.app()))
        wait(lambda: not [
            pv for pv in kube.list("persistentvolumes")
            if (pv["spec"].get("claimRef") or {}).get("namespace") == namespace
        ])  # fmt: skip
    finally:
        harness.close()
        kube.close()
    with timed.lock:
        calls = list(timed.calls[setup_start:])
    by_kind = Counter(k for method, path, _, _ in calls if (k := kind(method, path)))
    app = harness.app()
    setup = [  # the namespace app: made (POST /apps) and marked (its secrets)
        path
        for method, path, _, _ in calls
        if kind(method, path) is None
        and "/machines" not in path
        and (f"/apps/{app}" in path or (method == "POST" and path.endswith("/apps")))
    ]
    total = sum(by_kind.values())
    print(f"claims                      {claims} (latency {latency * 1000:.0f} ms per call)")
    print(f"Machines calls per claim    {total / claims:.1f} over its life")
    for name, count in sorted(by_kind.items()):
        print(f"  {name:<24}  {count / claims:.1f}")
    print(f"namespace app set-up        {len(setup)} calls, once per namespace")
    print(f"PVC to Bound (median)       {statistics.median(to_bound) * 1000:.0f} ms")
    print(f"volume create call (median) {statistics.median(create_calls) * 1000:.0f} ms")
    print(f"ratio Bound/create          {statistics.median(ratios):.2f} ×")


if __name__ == "__main__":
    main()
