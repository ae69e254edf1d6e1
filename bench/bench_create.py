"""`flyk ext k8s create` against the local backend with injected per-call latency.

Every API call is delayed by the backend's latency fault (a stand-in for a network round trip)
and the machine takes `--boot` seconds to start. Printed, from one run:

- API calls made, and how many of them write;
- sequential round trips on the critical path: calls that overlap in time count once;
- wall time, against the ideal "boot + one round trip per dependency level", and against what
  the same calls would take one after another.

    .venv/bin/python bench/bench_create.py [--latency 0.05] [--boot 0.5] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from flyk.api import FlyClient, RateLimiter
from flyk.k8s import cluster
from flyk.k8s.plan import ClusterSpec
from flyk.local import LocalBackend, Timing

# preflight (regions ∥ org ∥ name free) → app → volume ∥ secrets ∥ IPs → machine → wait started
# → check passing: the dependencies of create, whatever the implementation does.
DEPENDENCY_LEVELS = 6


@dataclass
class TimedTransport(httpx.BaseTransport):
    """Records when each request started and ended."""

    inner: httpx.BaseTransport
    spans: list[tuple[float, float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        start = time.perf_counter()
        response = self.inner.handle_request(request)
        response.read()
        with self.lock:
            self.spans.append((start, time.perf_counter(), f"{request.method} {request.url.path}"))
        return response


def levels(spans: list[tuple[float, float, str]]) -> list[list[str]]:
    """Groups of calls that overlap in time: the round trips someone had to wait for in turn."""
    groups: list[list[str]] = []
    group_end = float("-inf")
    for start, end, what in sorted(spans):
        if start >= group_end:
            groups.append([])
        groups[-1].append(what)
        group_end = max(group_end, end) if start < group_end else end
    return groups


@dataclass(frozen=True)
class Run:
    calls: int
    writes: int
    round_trips: list[list[str]]
    wall: float
    serial: float


def one_run(directory: Path, index: int, latency: float, boot: float) -> Run:
    backend = LocalBackend(directory / f"db{index}", timing=Timing(boot=boot))
    backend.faults.add("latency", seconds=latency, times=None)
    transport = TimedTransport(backend.transport())
    client = FlyClient(
        base_url="http://local.flyk", transport=transport, rate_limiter=RateLimiter.unlimited()
    )
    options = cluster.CreateOptions(
        timeout=120,
        kubelet_token="bench",
        kubeconfig=cluster.KubeconfigOptions(path=str(directory / f"kubeconfig{index}")),
    )
    spec = ClusterSpec(name=f"bench{index}", org="personal", region="iad")
    start = time.perf_counter()
    cluster.create(client, spec, options)
    wall = time.perf_counter() - start
    client.close()
    spans = transport.spans
    # placements is a POST that changes nothing
    writes = sum(1 for *_, w in spans if not w.startswith("GET") and "placements" not in w)
    return Run(
        calls=len(spans),
        writes=writes,
        round_trips=levels(spans),
        wall=wall,
        serial=sum(end - begin for begin, end, _ in spans),
    )


def positive_seconds(text: str) -> float:
    """The ratios divide by latency-driven times: a zero latency has nothing to compare."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--latency", type=positive_seconds, default=0.05, help="seconds added to every call"
    )
    parser.add_argument("--boot", type=float, default=0.5, help="machine boot time in seconds")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flyk-bench-") as tmp:
        runs = [one_run(Path(tmp), i, args.latency, args.boot) for i in range(args.runs)]
    wall = statistics.median(r.wall for r in runs)
    serial = statistics.median(r.serial for r in runs)
    ideal = args.boot + DEPENDENCY_LEVELS * args.latency
    last = runs[-1]
    print(f"flyk ext k8s create, local backend, latency {args.latency * 1000:.0f} ms/call, "
          f"boot {args.boot:.2f} s, {args.runs} runs (median)")  # fmt: skip
    print(f"  API calls                      {last.calls} ({last.writes} writes)")
    print(f"  sequential round trips         {len(last.round_trips)} "
          f"(dependency levels: {DEPENDENCY_LEVELS}; the wait spans the boot)")  # fmt: skip
    print(f"  wall time                      {wall:.3f} s")
    print(f"  ideal: boot + 1 RTT per level  {ideal:.3f} s   ratio wall/ideal  {wall / ideal:.2f}")
    print(
        f"  the same calls one by one      {serial:.3f} s   ratio wall/serial {wall / serial:.2f}"
    )
    print("  critical path:")
    for number, group in enumerate(last.round_trips, 1):
        print(f"    {number}. {' ∥ '.join(group)}")


if __name__ == "__main__":
    main()
