"""The benchmarks still run: each with tiny parameters, in a subprocess, printing its summary.

Nothing here measures time; a benchmark that broke (an API it calls changed, say) fails here
instead of at the next manual run.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(script: str, *args: str, binary: Path | None = None, timeout: float = 120) -> str:
    """The benchmark's stdout; `binary`: the control plane it runs (FLYK_CONTROLPLANE_BIN)."""
    import os

    env = {**os.environ}
    if binary is not None:
        env["FLYK_CONTROLPLANE_BIN"] = str(binary)
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,  # a hang guard only
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def test_bench_client_prints_its_ratio() -> None:
    out = _run("bench_client.py", "--cycles", "2", "--rounds", "1")
    assert re.search(r"in-process\s+\d+ calls/s", out), out
    assert re.search(r"over HTTP\s+\d+ calls/s", out), out
    assert re.search(r"ratio\s+\d+\.\d+ × \(in-process / HTTP\)", out), out


def test_bench_create_prints_its_critical_path() -> None:
    # not 0/0: the ideal time would then be 0 and its ratio a division by zero
    out = _run("bench_create.py", "--latency", "0.001", "--boot", "0.01", "--runs", "1")
    assert re.search(r"API calls\s+\d+", out), out
    assert re.search(r"ratio wall/ideal\s+\d+\.\d+", out), out
    assert "critical path:" in out


def test_bench_controlplane_prints_its_ratio_and_memory(controlplane_binary: Path) -> None:
    out = _run("bench_controlplane.py", "--runs", "1", binary=controlplane_binary, timeout=300)
    assert re.search(r"ratio create/API server\s+\d+\.\d+ ×", out), out
    assert re.search(r"kube-apiserver \d+ MB", out), out


def test_bench_kubelet_prints_its_ratio_latency_and_idle_rates(controlplane_binary: Path) -> None:
    """On the real control plane, a dozen pods: the report's lines are there."""
    out = _run("bench_kubelet.py", "--quick", binary=controlplane_binary, timeout=300)
    assert re.search(r"ratio_to_machine_creates_floor\s+\d+\.\d+", out), out
    assert re.search(r"429s\s+\d+", out), out  # the goal, 0, is the bench's to report
    assert re.search(r"start_latency_above_boot_ms_p99\s+-?\d+", out), out
    assert re.search(r"idle_api_server_requests_per_minute\s+\d+\.\d", out), out
    assert re.search(r"idle_machines_calls_per_minute\s+\d+\.\d", out), out


def test_bench_logs_exec_prints_its_ratios_and_the_kubelets_threads(
    controlplane_binary: Path,
) -> None:
    out = _run(
        "bench_logs_exec.py",
        *("--rounds", "2", "--streams", "3", "--pods", "2", "--latency", "0.01"),
        binary=controlplane_binary,
        timeout=300,
    )
    assert re.search(r"logs\s+via kubelet\s+\d+\.\d ms\s+direct\s+\d+\.\d ms\s+ratio", out), out
    assert re.search(r"exec\s+via kubelet\s+\d+\.\d ms\s+direct\s+\d+\.\d ms\s+ratio", out), out
    assert re.search(r"3 logs -f open\s+\d+ MB\s+\d+ threads", out), out


def test_bench_volumes_prints_calls_per_claim_and_its_ratio(controlplane_binary: Path) -> None:
    out = _run(
        "bench_volumes.py",
        *("--claims", "1", "--latency", "0"),
        binary=controlplane_binary,
        timeout=300,
    )
    assert re.search(r"Machines calls per claim\s+\d+\.\d+", out), out
    assert re.search(r"ratio Bound/create\s+\d+\.\d+ ×", out), out


def test_bench_services_prints_its_calls_and_idle_ratio() -> None:
    out = _run(
        "bench_services.py", "--pods", "2", "--services", "3", "--idle", "1", "--resync", "0.5"
    )
    assert re.search(r"expose: route calls\s+\d+ \(\d+\.\d per pod", out), out
    assert re.search(r"ratio 3/1 Services\s+\d+\.\d+ ×", out), out
