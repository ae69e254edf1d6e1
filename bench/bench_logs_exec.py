"""`kubectl logs` and `kubectl exec` through the kubelet's API, against the Machines calls made
directly; and what 50 open `logs -f` streams cost the kubelet.

Set-up, all on loopback: the real control plane (the binary must be built: `flyk ext k8s
build`), the local backend served over HTTP with `--latency` seconds added to its logs and exec
calls (standing for the network between the kubelet and Fly's API), and `flyk ext k8s kubelet`
as a process of its own, serving its API with a certificate of the cluster's server CA.

Printed, medians over `--rounds`:

- time to first byte of a pod's logs through the API server (`GET …/pods/P/log`, the request
  `kubectl logs` makes, on a kept-alive connection) and of the same logs call made directly to
  the backend, and their ratio (goal ≤ 1.2);
- the same for exec: the first stdout message of a WebSocket `…/pods/P/exec` (v5.channel.k8s.io,
  as kubectl 1.30+ speaks it) against `POST …/machines/M/exec` made directly;
- for reference, the real kubectl's whole run of each (a process start included);
- the kubelet's resident memory and threads idle, with `--streams` `logs -f` open, and after
  they are closed.

    .venv/bin/python bench/bench_logs_exec.py [--rounds 20] [--streams 50] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from wsproto.connection import Connection as WsConnection
from wsproto.connection import ConnectionType
from wsproto.events import BytesMessage

from flyk.k8s import binary, bootstrap, components, supervisor
from flyk.k8s.pki import ClusterPKI
from flyk.kubelet import namespace_app_name
from flyk.local import LocalBackend, Timing

NODE, CLUSTER, ORG, NAMESPACE = "bench", "bench", "personal", "default"


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def wait_until(check: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except (OSError, httpx.HTTPError, KeyError, ValueError):
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def proc_status(pid: int) -> tuple[float, int]:
    """(resident MB, threads) of a process."""
    rss, threads = 0.0, 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss, threads


class Bench:
    def __init__(self, work: Path, latency: float) -> None:
        self.work = work
        self.pki = ClusterPKI.generate("bench")
        self.layout = components.Layout(
            root=work / "cp", api_port=supervisor.free_port(), bind_address="127.0.0.1"
        )
        self.layout.pki.mkdir(parents=True)
        for name, pem in self.pki.tls_files().items():
            (self.layout.pki / name).write_bytes(pem)
        processes = supervisor.control_plane(
            binary.require(), self.layout, ["127.0.0.1"], with_kubelet=False
        )
        for process in processes:
            process.log = work / f"{process.name}.log"
        self.supervisor = supervisor.Supervisor(processes)
        self.thread = threading.Thread(target=self.supervisor.run, daemon=True)
        self.url = f"https://127.0.0.1:{self.layout.api_port}"
        self.backend = LocalBackend(work / "local.db", Timing.instant(), orgs=[ORG])
        self.served = self.backend.serve()
        for path in (r"/exec$", r"/logs$"):
            self.backend.faults.add("latency", path=path, seconds=latency, times=None)
        self.files: dict[str, Path] = {}
        self.kubelet: subprocess.Popen[bytes] | None = None

    def _pair(self, name: str, pem: Any) -> tuple[str, str]:
        cert, key = self.work / f"{name}.crt", self.work / f"{name}.key"
        cert.write_bytes(pem.cert_pem)
        key.write_bytes(pem.key_pem)
        return str(cert), str(key)

    def start(self) -> None:
        self.thread.start()
        wait_until(self.supervisor.up.is_set, "the control plane", 180)
        admin_cert, admin_key = self._pair(
            "admin", self.pki.client_ca.sign_client("bench-admin", [bootstrap.MASTERS])
        )
        self.context = ssl.create_default_context(cafile=str(self.layout.ca("server-ca.crt")))
        self.context.load_cert_chain(admin_cert, admin_key)
        self.admin = httpx.Client(base_url=self.url, verify=self.context, timeout=60)
        node = self.pki.client_ca.sign_client(bootstrap.node_user(NODE), [bootstrap.NODES_GROUP])
        kubeconfig = self.work / "kubelet.kubeconfig"
        kubeconfig.write_text(
            bootstrap.kubeconfig_yaml(self.url, self.pki.server_ca.cert_pem, node, NODE)
        )
        serving_cert, serving_key = self._pair(
            "serving", self.pki.server_ca.sign_serving(["127.0.0.1", NODE])
        )
        admin_config = self.work / "admin.kubeconfig"
        admin_pair = self.pki.client_ca.sign_client("bench-admin", [bootstrap.MASTERS])
        admin_config.write_text(
            bootstrap.kubeconfig_yaml(self.url, self.pki.server_ca.cert_pem, admin_pair, "admin")
        )
        self.kubectl_env = {**os.environ, "KUBECONFIG": str(admin_config)}
        env = {**os.environ, "FLYK_LOCAL_STRICT": "0"}
        self.kubelet = subprocess.Popen(
            [
                sys.executable, "-m", "flyk", "ext", "k8s", "kubelet",
                "--cluster", CLUSTER, "--org", ORG, "--region", "iad", "--node-name", NODE,
                "--node-ip", "127.0.0.1", "--kubeconfig", str(kubeconfig),
                "--api-url", self.served.url, "--port", "0",
                "--tls-cert-file", serving_cert, "--tls-private-key-file", serving_key,
                "--client-ca-file", str(self.layout.ca("client-ca.crt")),
                "--log-level", "WARNING",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.work / "kubelet.log", "wb"),
        )  # fmt: skip

        def node_ready() -> bool:
            answer = self.admin.get(f"/api/v1/nodes/{NODE}")
            if answer.status_code != 200:
                return False
            status = answer.json()["status"]
            return any(c["type"] == "Ready" and c["status"] == "True" for c in status["conditions"])

        wait_until(node_ready, "the node Ready")

    def pods(self, count: int) -> list[str]:
        names = [f"p{i}" for i in range(count)]
        lines = "\n".join(f"line {n}" for n in range(20))
        account = f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/default"
        wait_until(lambda: self.admin.get(account).status_code == 200, "the default account")
        for name in names:
            env = [{"name": "FLYK_SIM_LOG", "value": lines}]
            body = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name},
                "spec": {
                    "nodeName": NODE,
                    "containers": [{"name": "app", "image": "nginx", "env": env}],
                },
            }
            self.admin.post(f"/api/v1/namespaces/{NAMESPACE}/pods", json=body).raise_for_status()

        def all_running() -> bool:
            items = self.admin.get(f"/api/v1/namespaces/{NAMESPACE}/pods").json()["items"]
            return sum(1 for p in items if p["status"].get("phase") == "Running") == count

        wait_until(all_running, f"{count} pods Running", 300)
        return names

    def machine_of(self, pod: str) -> str:
        status = self.admin.get(f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}").json()["status"]
        return str(status["containerStatuses"][0]["containerID"]).removeprefix("fly://")

    def stop(self) -> None:
        if self.kubelet is not None:
            self.kubelet.terminate()
            self.kubelet.wait(30)
        self.served.close()
        self.supervisor.request_stop()
        self.thread.join(60)


def ttfb_stream(client: httpx.Client, method: str, url: str, **kwargs: Any) -> float:
    started = time.perf_counter()
    with client.stream(method, url, **kwargs) as response:
        for chunk in response.iter_raw():
            if chunk:
                break
        response.raise_for_status()
        return time.perf_counter() - started


def ttfb_ws_exec(bench: Bench, pod: str) -> float:
    """The first stdout message of `echo hi` over the API server's WebSocket exec."""
    host, port = "127.0.0.1", bench.layout.api_port
    path = (
        f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}/exec"
        "?command=echo&command=hi&stdout=true&stderr=true"
    )
    key = base64.b64encode(os.urandom(16)).decode()
    started = time.perf_counter()
    with socket.create_connection((host, port)) as raw:
        with bench.context.wrap_socket(raw, server_hostname=host) as sock:
            sock.sendall(
                (
                    f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n"
                ).encode()
            )
            buffer = b""
            while b"\r\n\r\n" not in buffer:
                buffer += sock.recv(65536)
            head, _, rest = buffer.partition(b"\r\n\r\n")
            if b" 101 " not in head.split(b"\r\n")[0]:
                raise SystemExit(f"exec not upgraded: {head[:200]!r}")
            ws = WsConnection(ConnectionType.CLIENT, trailing_data=rest)
            while True:
                for event in ws.events():
                    if isinstance(event, BytesMessage) and event.data[:1] == b"\x01":
                        return time.perf_counter() - started
                ws.receive_data(sock.recv(65536) or None)


def kubectl_seconds(bench: Bench, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["kubectl", "-n", NAMESPACE, *args], env=bench.kubectl_env, capture_output=True,
        check=True, timeout=60,
    )  # fmt: skip
    return time.perf_counter() - started


def follow_streams(bench: Bench, pods: list[str], count: int) -> tuple[float, int, float, int]:
    """Open `count` follow streams; (MB, threads) of the kubelet with them open, and after."""
    assert bench.kubelet is not None
    opened = threading.Barrier(count + 1)
    release = threading.Event()

    def one(index: int) -> None:
        pod = pods[index % len(pods)]
        with httpx.Client(base_url=bench.url, verify=bench.context, timeout=120) as client:
            url = f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}/log"
            with client.stream("GET", url, params={"follow": "true"}) as response:
                next(response.iter_raw())
                opened.wait()
                release.wait()

    workers = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(count)]
    for worker in workers:
        worker.start()
    opened.wait()
    time.sleep(1.0)  # the polls settle into their backoff
    rss, threads = proc_status(bench.kubelet.pid)
    release.set()
    for worker in workers:
        worker.join(30)
    time.sleep(1.0)
    after_rss, after_threads = proc_status(bench.kubelet.pid)
    return rss, threads, after_rss, after_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added per call")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp), args.latency)
        try:
            bench.start()
            assert bench.kubelet is not None
            idle_rss, idle_threads = proc_status(bench.kubelet.pid)
            pods = bench.pods(args.pods)
            machines = {pod: bench.machine_of(pod) for pod in pods}
            app = namespace_app_name(CLUSTER, NAMESPACE, ORG)
            direct = httpx.Client(base_url=bench.served.url, timeout=60)
            logs_url = f"/api/v1/apps/{app}/logs"
            # warm-up: connections, the kubelet's access review cache
            ttfb_stream(bench.admin, "GET", f"/api/v1/namespaces/{NAMESPACE}/pods/{pods[-1]}/log")
            ttfb_ws_exec(bench, pods[-1])
            pod = pods[0]
            via_logs, direct_logs, via_exec, direct_exec = [], [], [], []
            # Each round on the next pod: exec is a machine action, which the kubelet's client
            # paces as Fly limits it (1/s per machine, bursts of 3); the direct calls are not.
            for index in range(args.rounds):
                one = pods[index % len(pods)]
                machine = machines[one]
                log_path = f"/api/v1/namespaces/{NAMESPACE}/pods/{one}/log"
                exec_url = f"/v1/apps/{app}/machines/{machine}/exec"
                via_logs.append(ttfb_stream(bench.admin, "GET", log_path))
                by_machine = {"instance": machine}
                direct_logs.append(ttfb_stream(direct, "GET", logs_url, params=by_machine))
                via_exec.append(ttfb_ws_exec(bench, one))
                body = {"command": ["echo", "hi"], "timeout": 60}
                direct_exec.append(ttfb_stream(direct, "POST", exec_url, json=body))
            kubectl_logs = [
                kubectl_seconds(bench, "logs", pod) for _ in range(max(1, args.rounds // 4))
            ]
            kubectl_exec = [kubectl_seconds(bench, "exec", pod, "--", "echo", "hi")
                            for _ in range(max(1, args.rounds // 4))]  # fmt: skip
            rss, threads, after_rss, after_threads = follow_streams(bench, pods, args.streams)
        finally:
            bench.stop()

    def row(label: str, through: list[float], straight: list[float]) -> None:
        a, b = median_ms(through), median_ms(straight)
        print(f"{label:<6} via kubelet {a:7.1f} ms   direct {b:7.1f} ms   ratio {a / b:5.2f} ×")

    print(
        f"added latency per Machines/logs call: {args.latency * 1000:.0f} ms, {args.rounds} rounds"
    )
    row("logs", via_logs, direct_logs)
    row("exec", via_exec, direct_exec)
    print(f"kubectl logs (whole run)  {median_ms(kubectl_logs):7.1f} ms")
    print(f"kubectl exec (whole run)  {median_ms(kubectl_exec):7.1f} ms")
    print(f"kubelet idle              {idle_rss:6.0f} MB  {idle_threads:3d} threads")
    print(f"kubelet, {args.streams:3d} logs -f open  {rss:6.0f} MB  {threads:3d} threads")
    print(f"kubelet, streams closed   {after_rss:6.0f} MB  {after_threads:3d} threads")
    print(
        json.dumps(
            {"streams": args.streams, "threads_open": threads, "threads_after": after_threads}
        )
    )


if __name__ == "__main__":
    main()
