"""Client throughput: create → wait → destroy cycles against the local backend.

Measured side by side in one run, in-process (an httpx transport, no sockets) and served over
real HTTP on loopback, and printed with the ratio between them. The rate limiter is off (the
backend's limits are off too): this measures the client and the transport, not Fly's limits.

    .venv/bin/python bench/bench_client.py [--cycles N] [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from flyk.api import FlyClient, GuestConfig, MachineConfig, RateLimiter
from flyk.local import LocalBackend, Timing

CONFIG = MachineConfig(
    image="registry-1.docker.io/library/nginx:latest",
    guest=GuestConfig(cpu_kind="shared", cpus=1, memory_mb=256),
)
CALLS_PER_CYCLE = 3  # create, wait, destroy


def cycles(client: FlyClient, app: str, count: int) -> float:
    """Run `count` create → wait started → destroy cycles; return the elapsed seconds."""
    start = time.perf_counter()
    for _ in range(count):
        machine = client.machines.create(app, CONFIG)
        client.machines.wait(app, machine.id, "started", timeout=30)
        client.machines.destroy(app, machine.id, force=True)
    return time.perf_counter() - start


def measure(make: Callable[[], FlyClient], app: str, count: int, rounds: int) -> float:
    """Median calls per second over `rounds` rounds (after one warm-up round)."""
    client = make()
    try:
        client.apps.create(app, "personal")
        cycles(client, app, max(1, count // 10))  # warm-up: connections, caches, JIT-free paths
        rates = [count * CALLS_PER_CYCLE / cycles(client, app, count) for _ in range(rounds)]
    finally:
        client.close()
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        backend = LocalBackend(path=Path(tmp) / "bench.db", timing=Timing.instant())
        served = backend.serve()
        try:

            def in_process() -> FlyClient:
                return FlyClient(
                    "http://local.flyk",
                    transport=backend.transport(),
                    rate_limiter=RateLimiter.unlimited(),
                )

            def over_http() -> FlyClient:
                return FlyClient(
                    served.url,
                    transport=httpx.HTTPTransport(),
                    rate_limiter=RateLimiter.unlimited(),
                )

            # interleave the rounds so both targets see the same machine conditions
            local_rates, http_rates = [], []
            for round_number in range(args.rounds):
                local_rates.append(
                    measure(in_process, f"bench-local-{round_number}", args.cycles, 1)
                )
                http_rates.append(measure(over_http, f"bench-http-{round_number}", args.cycles, 1))
        finally:
            served.close()
            close = getattr(backend, "close", None)
            if close is not None:
                close()

    local_rate = statistics.median(local_rates)
    http_rate = statistics.median(http_rates)
    print(f"create → wait → destroy, {args.cycles} cycles × {args.rounds} rounds (median)")
    print(
        f"  in-process  {local_rate:8.0f} calls/s  ({local_rate / CALLS_PER_CYCLE:6.0f} cycles/s)"
    )
    print(f"  over HTTP   {http_rate:8.0f} calls/s  ({http_rate / CALLS_PER_CYCLE:6.0f} cycles/s)")
    print(f"  ratio       {local_rate / http_rate:8.2f} × (in-process / HTTP)")


if __name__ == "__main__":
    main()
