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


def _run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard only
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
    import os

    env = {**os.environ, "FLYK_CONTROLPLANE_BIN": str(controlplane_binary)}
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_controlplane.py"), "--runs", "1"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,  # a hang guard only
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"ratio create/API server\s+\d+\.\d+ ×", done.stdout), done.stdout
    assert re.search(r"kube-apiserver \d+ MB", done.stdout), done.stdout


def test_bench_services_prints_its_calls_and_idle_ratio() -> None:
    out = _run(
        "bench_services.py", "--pods", "2", "--services", "3", "--idle", "1", "--resync", "0.5"
    )
    assert re.search(r"expose: route calls\s+\d+ \(\d+\.\d per pod", out), out
    assert re.search(r"ratio 3/1 Services\s+\d+\.\d+ ×", out), out
