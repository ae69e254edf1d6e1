"""The real control plane on the local backend: how long until it serves, what it weighs.

Printed, from one run (the binary must be built: `flyk ext k8s build`):

- the API server's own start: kine and kube-apiserver started alone, until `/readyz` says ok;
- `flyk ext k8s create` (a CLI process, as a user runs it) until the flyk node is Ready, and its
  ratio to the API server's own start (goal ≤ 1.5);
- resident memory at idle of the supervisor, each component (CoreDNS included) and the kubelet;
- the binary's size, and with `--cold` a build from an empty Go build cache (modules already
  downloaded); the first build on a new machine also downloads them.

    .venv/bin/python bench/bench_controlplane.py [--runs 3] [--cold]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from flyk.k8s import binary, bootstrap, components, supervisor
from flyk.k8s.pki import ClusterPKI


def wait_until(check: object, timeout: float = 120.0) -> float:
    started = time.perf_counter()
    while True:
        try:
            if check():  # type: ignore[operator]
                return time.perf_counter() - started
        except OSError:
            pass
        if time.perf_counter() - started > timeout:
            raise SystemExit("timed out")
        time.sleep(0.02)


def api_server_alone(path: Path, work: Path) -> float:
    """kine, then the API server, with production's flags: seconds from the API server's
    start to its first ok `/readyz`."""
    pki = ClusterPKI.generate("bench")
    layout = components.Layout(root=work, api_port=supervisor.free_port(), bind_address="127.0.0.1")
    layout.pki.mkdir(parents=True)
    for name, pem in pki.tls_files().items():
        (layout.pki / name).write_bytes(pem)
    bootstrap.prepare(layout, ["127.0.0.1"])
    kine = subprocess.Popen(
        [str(path), "kine", *components.kine_args(layout)],
        cwd=layout.data,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: (layout.data / "kine.sock").exists())
        started = time.perf_counter()
        api = subprocess.Popen(
            [str(path), "kube-apiserver", *components.apiserver_args(layout)],
            cwd=layout.data,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            context = ssl.create_default_context(cafile=str(layout.ca("server-ca.crt")))
            url = f"https://127.0.0.1:{layout.api_port}/readyz"

            def ready() -> bool:
                with urllib.request.urlopen(url, context=context, timeout=2) as answer:
                    return bool(answer.status == 200)

            wait_until(ready)
            return time.perf_counter() - started
        finally:
            api.terminate()
            api.wait(30)
    finally:
        kine.terminate()
        kine.wait(30)


def flyk(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flyk", *args], env=env, capture_output=True, text=True, check=True
    )


def node_ready(env: dict[str, str]) -> bool:
    shown = subprocess.run(
        ["kubectl", "get", "nodes", "-o", "json"], env=env, capture_output=True, text=True
    )
    if shown.returncode != 0:
        return False
    nodes = json.loads(shown.stdout)["items"]
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for n in nodes
        for c in n["status"].get("conditions", [])
    )


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory; `RssAnon`: the part that is the process's own (the rest is mostly the
    binary's pages, which the page cache shares between the components of one binary)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tree(pid: int) -> list[tuple[int, str]]:
    """The process and its descendants, with a short name each."""
    found: list[tuple[int, str]] = []
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    words = [w.decode() for w in cmdline if w]
    name = next((w for w in words if w in (*components.COMPONENTS, "coredns")), None)
    if name is None:
        name = "kubelet" if "kubelet" in words else "supervisor"
    found.append((pid, name))
    for child in children:
        found.extend(tree(int(child)))
    return found


Memory = dict[str, tuple[float, float]]  # component -> (resident, anonymous) MB


def create_until_node_ready(env: dict[str, str], name: str) -> tuple[float, Memory]:
    started = time.perf_counter()
    flyk(env, "ext", "k8s", "create", name)
    wait_until(lambda: node_ready(env))
    seconds = time.perf_counter() - started
    time.sleep(5)  # idle
    (process,) = json.loads(flyk(env, "local", "status", "--json").stdout)["processes"]
    memory = {label: (rss_mb(pid), rss_mb(pid, "RssAnon")) for pid, label in tree(process["pid"])}
    flyk(env, "ext", "k8s", "delete", name, "--yes")
    return seconds, memory


def cold_build() -> tuple[float, int]:
    source = binary.source_dir()
    assert source is not None
    with tempfile.TemporaryDirectory() as cache:
        out = Path(cache) / "flyk-controlplane"
        env = {**os.environ, "GOCACHE": cache, "CGO_ENABLED": "0"}
        started = time.perf_counter()
        ldflags = binary.ldflags(
            binary.pinned_version(source, "k8s.io/kubernetes"),
            binary.pinned_version(source, "github.com/k3s-io/kine"),
        )
        subprocess.run(
            ["go", "build", "-trimpath", "-tags", "providerless", "-ldflags", ldflags,
             "-o", str(out), "."],
            cwd=source, env=env, check=True,
        )  # fmt: skip
        return time.perf_counter() - started, out.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="also time a cold build")
    args = parser.parse_args()
    path = binary.require()
    if shutil.which("kubectl") is None:
        raise SystemExit("kubectl is needed")

    alone: list[float] = []
    creates: list[float] = []
    memory: Memory = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            alone.append(api_server_alone(path, Path(tmp) / f"alone{run}"))
            env = {
                **os.environ,
                binary.BINARY_ENV_VAR: str(path),
                "FLYK_LOCAL_DB": str(Path(tmp) / f"local{run}.db"),
                "KUBECONFIG": str(Path(tmp) / f"kubeconfig{run}"),
            }
            seconds, memory = create_until_node_ready(env, f"bench{run}")
            creates.append(seconds)
    api, create = statistics.median(alone), statistics.median(creates)
    print(f"runs                         {args.runs} (medians)")
    print(f"API server start → /readyz   {api:.2f} s")
    print(f"create → node Ready          {create:.2f} s")
    print(f"ratio create/API server      {create / api:.2f} × (goal ≤ 1.5)")
    print(
        "resident memory at idle      "
        + ", ".join(f"{k} {v:.0f} MB" for k, (v, _) in memory.items())
    )
    print(f"  total                      {sum(v for v, _ in memory.values()):.0f} MB")
    print(
        "  of it anonymous (own)      "
        + ", ".join(f"{k} {a:.0f} MB" for k, (_, a) in memory.items())
    )
    print(f"  total                      {sum(a for _, a in memory.values()):.0f} MB")
    print(f"binary                       {path.stat().st_size / 1e6:.0f} MB")
    if args.cold:
        seconds, size = cold_build()
        print(f"cold build (modules cached)  {seconds:.0f} s, {size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
