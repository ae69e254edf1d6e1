"""The kubelet's HTTPS API (flyk/kubelet/server.py) with the real control plane and the real
kubectl: `kubectl logs` and `kubectl exec` go from kubectl to the API server, which calls the
kubelet's port over TLS with its kubelet-client certificate; the kubelet answers from the local
backend's logs API and `/exec`. Pod machines are simulated (FLYK_SIM_LOG* write their lines)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from flyk.kubelet.config import Intervals, Serving
from flyk.kubelet.server import CALL_WORKERS, KubeletServer
from flyk.local import LocalBackend

from .conftest import eventually
from .harness import FAST, Harness
from .realkube import Kube

KUBECTL_TIMEOUT = 60  # a hang is a failure, never a stuck test


class Api:
    """A kubelet serving its API, kubectl with an administrator's kubeconfig, and the pods."""

    def __init__(self, harness: Harness, kubeconfig: str, tmp: Path) -> None:
        self.harness = harness
        self.env = {**os.environ, "KUBECONFIG": kubeconfig}
        self.namespace = harness.ns()
        self.tmp = tmp

    @property
    def server(self) -> KubeletServer:
        assert self.harness.kubelet is not None and self.harness.kubelet.server is not None
        return self.harness.kubelet.server

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", "-n", self.namespace, *args],
            env=self.env,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=KUBECTL_TIMEOUT,
        )

    def pod(self, name: str, *, labels: dict[str, str] | None = None, **env: str) -> None:
        containers = [
            {
                "name": "app",
                "image": "nginx",
                "env": [{"name": k, "value": v} for k, v in env.items()],
            }
        ]
        body = {
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"nodeName": self.harness.node, "containers": containers},
        }
        self.harness.kube.create("pods", body, "default")

    def running(self, *names: str) -> None:
        for name in names:
            self.harness.wait_phase(name, "Running")


@pytest.fixture
def api(kube: Kube, kubeconfig: str, backend: LocalBackend, tmp_path: Path) -> Iterator[Api]:
    with serving_kubelet(kube, kubeconfig, backend, tmp_path, FAST) as made:
        yield made


@contextlib.contextmanager
def serving_kubelet(
    kube: Kube, kubeconfig: str, backend: LocalBackend, tmp_path: Path, intervals: Intervals
) -> Iterator[Api]:
    plane = kube.plane
    pair = plane.pki.server_ca.sign_serving(["127.0.0.1", kube.node])
    (tmp_path / "serving.crt").write_bytes(pair.cert_pem)
    (tmp_path / "serving.key").write_bytes(pair.key_pem)
    serving = Serving(
        port=0,
        cert_file=str(tmp_path / "serving.crt"),
        key_file=str(tmp_path / "serving.key"),
        client_ca_file=str(plane.layout.ca("client-ca.crt")),
    )
    harness = Harness(
        kube, kubeconfig, backend, intervals=intervals, node_ip="127.0.0.1", serving=serving
    ).start()
    admin = plane.kubeconfig(tmp_path / "admin.kubeconfig", "test-admin", ("system:masters",))
    try:
        yield Api(harness, admin, tmp_path)
    finally:
        harness.close()


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


# -- logs -----------------------------------------------------------------------------------------


def test_the_node_declares_websockets_and_the_port_it_serves(api: Api) -> None:
    node = api.harness.kube.get("nodes", api.harness.node)
    assert node is not None
    assert node["status"]["declaredFeatures"] == ["ExtendWebSocketsToKubelet"]
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == api.server.bound_port


def test_logs_of_one_pod_among_three_are_its_lines_only(api: Api) -> None:
    for name in ("alpha", "beta", "gamma"):
        api.pod(name, labels={"app": "web" if name != "gamma" else "db"},
                FLYK_SIM_LOG=f"{name} says one\n{name} says two")  # fmt: skip
    api.running("alpha", "beta", "gamma")
    logs = api.kubectl("logs", "beta")
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == "beta says one\nbeta says two\n"  # no platform lines, no neighbours
    both = api.kubectl("logs", "-l", "app=web", "--prefix")
    assert both.returncode == 0, both.stderr
    lines = sorted(both.stdout.splitlines())
    assert len(lines) == 4 and all("gamma" not in line for line in lines)
    assert any(line.startswith("[pod/alpha/app] alpha says one") for line in lines)


def test_tail_since_timestamps_and_limit_bytes(api: Api) -> None:
    api.pod("lines", FLYK_SIM_LOG="one\ntwo\nthree")
    api.running("lines")
    assert api.kubectl("logs", "lines", "--tail=2").stdout == "two\nthree\n"
    assert api.kubectl("logs", "lines", "--tail=0").stdout == ""
    assert api.kubectl("logs", "lines", "--since=1h").stdout == "one\ntwo\nthree\n"
    future = datetime.now(UTC).replace(year=datetime.now(UTC).year + 1).isoformat()
    assert api.kubectl("logs", "lines", f"--since-time={future}").stdout == ""
    assert api.kubectl("logs", "lines", "--limit-bytes=6").stdout == "one\ntw"
    stamped = api.kubectl("logs", "lines", "--timestamps", "--tail=1").stdout
    stamp, _, text = stamped.strip().partition(" ")
    assert text == "three"
    written = _parse(stamp)
    assert abs((datetime.now(UTC) - written).total_seconds()) < 600
    previous = api.kubectl("logs", "lines", "--previous")
    assert previous.returncode == 1 and "previous container logs" in previous.stderr


def _follow(api: Api, pod: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["kubectl", "-n", api.namespace, "logs", "-f", "--timestamps", pod],
        env=api.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _a_later_line(follow: subprocess.Popen[str], began: datetime) -> str:
    """The first line whose time is after `began`, with the lines before it."""
    assert follow.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + KUBECTL_TIMEOUT
    while time.monotonic() < deadline:
        stamp, _, text = follow.stdout.readline().strip().partition(" ")
        seen.append(text)
        if text.startswith("tick") and _parse(stamp) > began:
            return "\n".join(seen)
    raise AssertionError(f"no line written after the follow began: {seen}")


def test_follow_gets_a_line_written_after_it_began_and_ends_on_interrupt(api: Api) -> None:
    api.pod("ticker", FLYK_SIM_LOG="ready", FLYK_SIM_LOG_EVERY="0.5", FLYK_SIM_LOG_LINE="tick A")
    api.pod("other", FLYK_SIM_LOG_EVERY="0.5", FLYK_SIM_LOG_LINE="tick B")
    api.running("ticker", "other")
    threads_before = threading.active_count()
    began = datetime.now(UTC)
    follows = [_follow(api, "ticker"), _follow(api, "other")]
    try:
        first, second = (_a_later_line(follow, began) for follow in follows)
        assert "ready" in first and "tick B" not in first
        assert "tick A" not in second
        eventually(lambda: api.server.open_connections == 2, what="two streams open")
    finally:
        for follow in follows:
            follow.send_signal(signal.SIGINT)
            follow.communicate(timeout=KUBECTL_TIMEOUT)
    # The API server closes its connections to the kubelet; the streams end with them.
    eventually(lambda: api.server.open_connections == 0, what="the streams closed")
    # No thread per stream: what may have started meanwhile is the shared call pool (and a
    # ping of the Machines API, one at a time).
    pool = [t for t in threading.enumerate() if t.name.startswith("flyk-kubelet-call")]
    assert len(pool) <= CALL_WORKERS
    assert threading.active_count() <= threads_before + CALL_WORKERS + 1
    # One poller for the namespace's app: the only calls about one machine are each stream's
    # history; the follow itself polls the app.
    calls = api.harness.calls.matching("GET", "/logs")
    by_machine = [c for c in calls if "instance=" in c.query]
    assert len(by_machine) == 2 and len(calls) > 2


def test_logs_of_a_pod_without_a_machine_say_so(api: Api) -> None:
    api.harness.backend.capacity.set("iad", 0)
    api.pod("waiting", FLYK_SIM_LOG="never")
    eventually(lambda: api.harness.events("waiting", "InsufficientCapacity"), what="no room")
    answer = api.kubectl("logs", "waiting")
    assert answer.returncode == 1
    assert 'container "app" in pod "waiting" is waiting to start' in answer.stderr


# -- exec -----------------------------------------------------------------------------------------


def test_exec_output_exit_codes_and_stdin(api: Api) -> None:
    table = {"migrate": {"stdout": "applied 3\n", "stderr": "warning: slow\n", "exit_code": 3}}
    api.pod("shell", GREETING="hello", FLYK_SIM_EXEC=json.dumps(table))
    api.running("shell")
    steered = api.kubectl("exec", "shell", "--", "migrate", "--all")
    assert (steered.returncode, steered.stdout) == (3, "applied 3\n")
    assert "warning: slow" in steered.stderr
    echoed = api.kubectl("exec", "shell", "--", "echo", "one", "two words")
    assert (echoed.returncode, echoed.stdout) == (0, "one two words\n")
    assert api.kubectl("exec", "shell", "--", "true").returncode == 0
    failed = api.kubectl("exec", "shell", "--", "false")
    assert failed.returncode == 1
    missing = api.kubectl("exec", "shell", "--", "frobnicate")
    assert missing.returncode == 127
    assert "frobnicate: command not found" in missing.stderr and missing.stdout == ""
    piped = api.kubectl("exec", "-i", "shell", "--", "cat", stdin="line one\nline two\n")
    assert (piped.returncode, piped.stdout) == (0, "line one\nline two\n")
    env = api.kubectl("exec", "shell", "-c", "app", "--", "env")
    assert "GREETING=hello" in env.stdout.splitlines()


def test_interactive_exec_attach_and_port_forward_end_at_once_with_what_to_use(api: Api) -> None:
    api.pod("term")
    api.running("term")
    # -t needs a terminal on kubectl's side: `script` gives it one.
    command = f"kubectl -n {api.namespace} exec -it term -- sh"
    tty = subprocess.run(
        ["script", "-qec", command, "/dev/null"],
        env=api.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=KUBECTL_TIMEOUT,
    )
    assert tty.returncode != 0
    assert "interactive terminal (-t) is not available" in tty.stdout
    assert "fly ssh console" in tty.stdout
    attach = api.kubectl("attach", "term")
    assert attach.returncode == 1 and "attach is not available" in attach.stderr
    forward = api.kubectl("port-forward", "term", "18080:80")
    assert forward.returncode == 1 and "port-forward is not available" in forward.stderr


def test_exec_in_a_pod_whose_machine_is_gone_says_so(api: Api) -> None:
    api.pod("lost")
    api.running("lost")
    machine = api.harness.machine_of("lost")
    assert machine is not None
    # The kubelet's machine lists fail from now on, so it cannot notice the loss (and make a
    # new machine) before the exec arrives.
    api.harness.backend.faults.add("server_error", method="GET", path=r"/machines$", times=None)
    api.harness.fly.machines.destroy(api.harness.app(), machine["id"], force=True)
    answer = api.kubectl("exec", "lost", "--", "true")
    assert answer.returncode == 1
    assert f"the pod's machine {machine['id']} is gone" in answer.stderr


# -- who may call -------------------------------------------------------------------------------


def _client_context(api: Api, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(api.harness.kube.plane.ca_file))
    if cert is not None and key is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def _get(api: Api, context: ssl.SSLContext, path: str) -> httpx.Response:
    url = f"https://127.0.0.1:{api.server.bound_port}{path}"
    return httpx.get(url, verify=context, timeout=30)


def _pair(api: Api, name: str, pem: Any) -> tuple[Path, Path]:
    cert, key = api.tmp / f"{name}.crt", api.tmp / f"{name}.key"
    cert.write_bytes(pem.cert_pem)
    key.write_bytes(pem.key_pem)
    return cert, key


def test_only_the_api_servers_certificate_and_node_proxy_users_get_in(api: Api) -> None:
    from flyk.k8s.pki import ClusterPKI

    api.pod("guarded", FLYK_SIM_LOG="secret line")
    api.running("guarded")
    path = f"/containerLogs/{api.namespace}/guarded/app"
    plane = api.harness.kube.plane

    anonymous = _get(api, _client_context(api, None, None), path)
    assert anonymous.status_code == 401

    stranger = _pair(api, "stranger", plane.pki.client_ca.sign_client("bob", ["devs"]))
    refused = _get(api, _client_context(api, *stranger), path)
    assert refused.status_code == 403
    assert "user=bob" in refused.text and "secret" not in refused.text

    other_ca = ClusterPKI.generate("elsewhere").client_ca.sign_client("kube-apiserver")
    forged = _pair(api, "forged", other_ca)
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        _get(api, _client_context(api, *forged), path)

    apiserver = (plane.layout.leaf("apiserver-kubelet-client.crt"),
                 plane.layout.leaf("apiserver-kubelet-client.key"))  # fmt: skip
    allowed = _get(api, _client_context(api, *apiserver), path)
    assert (allowed.status_code, allowed.text) == (200, "secret line\n")


def test_every_container_of_a_multi_container_pod_shows_the_machines_lines(api: Api) -> None:
    env = [{"name": "FLYK_SIM_LOG", "value": "from the machine"}]
    containers = [
        {"name": "app", "image": "nginx", "env": env},
        {"name": "sidecar", "image": "envoy", "env": env},
    ]
    body = {"metadata": {"name": "pair"}, "spec": {"nodeName": api.harness.node,
                                                    "containers": containers}}  # fmt: skip
    api.harness.kube.create("pods", body, "default")
    api.running("pair")
    for container in ("app", "sidecar"):
        logs = api.kubectl("logs", "pair", "-c", container)
        assert logs.returncode == 0, logs.stderr
        assert "from the machine" in logs.stdout
    execs = api.harness.calls.matching("POST", "/exec")
    assert execs == []
    ran = api.kubectl("exec", "pair", "-c", "sidecar", "--", "echo", "hi")
    assert (ran.returncode, ran.stdout) == (0, "hi\n")
    (sent,) = api.harness.calls.matching("POST", "/exec")
    assert sent.body["container"] == "sidecar"  # the Machines API runs it in that container
