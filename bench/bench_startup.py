"""Start-up time of the flyk executable against bare Python, measured in one run.

    .venv/bin/python bench/bench_startup.py [--runs N]

Each case is timed N times as a fresh process (after one warm-up run that fills the
bytecode cache); medians are compared with `python -c pass` measured in the same run, so
the ratios hold on any machine. Targets: `--version` within 3x, `--help` and a completion
request within 8x of bare Python start-up.

Completion requests are measured in a throwaway HOME:
- `flyk machine st<TAB>` in bash, zsh and fish: command words (target 8x). flyk answers
  these from a generated table without importing Typer (flyk.cli.quickcomplete);
- `flyk machine list --<TAB>` (bash): options, answered by Typer (8x);
- `flyk apps show <TAB>` with apps in the local backend: a dynamic completion that imports
  the client and the backend and reads the database. Reported for information: its cost
  is mostly those two packages' import time.

`flyk machine --help` (a group) and `flyk machine run --help` (a command) are pre-rendered
like `flyk --help` (target 8x).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS: dict[str, float | None] = {
    "--version": 3.0,
    "--help": 8.0,
    "machine --help": 8.0,
    "machine run --help": 8.0,
    "completion": 8.0,
    "completion (zsh)": 8.0,
    "completion (fish)": 8.0,
    "completion (options)": 8.0,
    "completion (app names)": None,
}


def flyk_executable() -> str:
    candidate = Path(sys.executable).with_name("flyk")
    return str(candidate) if candidate.exists() else "flyk"


def timed(argv: list[str], env: dict[str, str], runs: int) -> float:
    """Median wall time of `argv` in seconds over `runs` fresh processes."""
    subprocess.run(argv, env=env, capture_output=True, check=False)  # warm the caches
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=False)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def isolated_env(home: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FLY_", "FLYK_", "_FLYK_"))
        and key not in ("KUBECONFIG", "PYTHONDONTWRITEBYTECODE")  # users have a bytecode cache
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        NO_COLOR="1",
    )
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    flyk = flyk_executable()
    with tempfile.TemporaryDirectory() as tmp:
        env = isolated_env(Path(tmp))
        words_env = {**env, "_FLYK_COMPLETE": "complete_bash"}
        words_env.update(COMP_WORDS="flyk machine st", COMP_CWORD="2")
        zsh_env = {
            **env,
            "_FLYK_COMPLETE": "complete_zsh",
            "_TYPER_COMPLETE_ARGS": "flyk machine st",
        }
        fish_env = {**zsh_env, "_FLYK_COMPLETE": "complete_fish"}
        fish_env["_TYPER_COMPLETE_FISH_ACTION"] = "get-args"
        options_env = {**env, "_FLYK_COMPLETE": "complete_bash"}
        options_env.update(COMP_WORDS="flyk machine list --", COMP_CWORD="3")
        apps_env = {**env, "_FLYK_COMPLETE": "complete_bash"}
        apps_env.update(COMP_WORDS="flyk apps show ", COMP_CWORD="3")
        for name in ("web", "worker"):
            subprocess.run([flyk, "apps", "create", name], env=env, capture_output=True, check=True)
        wide = {**env, "COLUMNS": "100"}  # pre-rendered help needs 80 columns or more
        baseline = timed([sys.executable, "-c", "pass"], env, runs)
        cases = {
            "--version": timed([flyk, "--version"], env, runs),
            "--help": timed([flyk, "--help"], wide, runs),
            "machine --help": timed([flyk, "machine", "--help"], wide, runs),
            "machine run --help": timed([flyk, "machine", "run", "--help"], wide, runs),
            "completion": timed([flyk], words_env, runs),
            "completion (zsh)": timed([flyk], zsh_env, runs),
            "completion (fish)": timed([flyk], fish_env, runs),
            "completion (options)": timed([flyk], options_env, runs),
            "completion (app names)": timed([flyk], apps_env, runs),
        }
    print(f"bare python -c pass: {baseline * 1000:7.1f} ms (median of {runs})")
    failed = False
    for name, seconds in cases.items():
        ratio = seconds / baseline
        target = TARGETS[name]
        ok = target is None or ratio <= target
        failed |= not ok
        if target is None:
            verdict = "(no target)"
        else:
            verdict = f"ok (target {target:g}x)" if ok else f"over the {target:g}x target"
        print(f"flyk {name:<22} {seconds * 1000:7.1f} ms  {ratio:5.2f}x  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
