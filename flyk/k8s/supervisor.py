"""The control-plane machine's main process: starts kine, the API server, then the
controller-manager, the scheduler, CoreDNS and the virtual kubelet, each stage once the one
before it is ready; restarts one that dies, with backoff; stops them in reverse order on
SIGTERM; exits non-zero when it cannot keep them up (Fly's restart policy then restarts the
machine).

Why Python and not Go: the supervisor signs the boot's certificates with flyk's PKI code
(bootstrap.py), renders every flag in one place (components.py) and starts the kubelet, which
is Python too; the Go binary stays upstream's components and nothing else. It costs one
Python process (~30 MB) beside a control plane of several hundred.

`Supervisor` is generic over `Process` specs, so tests drive it with small stand-ins; `run`
wires the real control plane.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from flyk.k8s import bootstrap, clusterdns, components, rbac, webhook
from flyk.k8s.components import ClusterDNS, Layout

log = logging.getLogger("flyk.supervisor")

# A component that dies this many times within RESTART_WINDOW seconds is not coming back:
# the supervisor stops everything and exits 1, and Fly restarts the machine.
MAX_RESTARTS = 5
RESTART_WINDOW = 120.0
MAX_BACKOFF = 30.0
STOP_GRACE = 10.0
READY_TIMEOUT = 180.0
POLL = 0.2  # how often running processes are looked at
READY_POLL = 0.05  # how often a starting one is asked whether it is ready

# Environment the components never see: the CA keys (Fly injects app secrets as variables;
# the files are what the components read) and the Machines API token, the kubelet's alone.
PRIVATE_ENV_PREFIXES = ("FLYK_PKI_",)
TOKEN_ENV = ("FLYK_KUBELET_TOKEN", "FLY_API_TOKEN", "FLY_ACCESS_TOKEN")
EXIT_FILE_ENV = "FLYK_EXIT_FILE"
KUBELET_PORT = 10250
WEBHOOK_PATH = "/mutate-services"  # flyk/kubelet/admission.py's PATH (k8s cannot import it)


@dataclass
class Process:
    """One supervised process: how to start it and how to tell it is ready."""

    name: str
    argv: Callable[[], Sequence[str]]
    ready: Callable[[], bool] = lambda: True
    env: Mapping[str, str] | None = None  # the whole environment; None inherits ours
    cwd: Path | None = None
    after_ready: Callable[[], None] | None = None
    # Processes of one stage start together, once every process of the stages before is
    # ready (the controller-manager, the scheduler and the kubelet need only the API server).
    stage: int = 0
    log: Path | None = None  # where its output goes (appended); None: the supervisor's own
    popen: subprocess.Popen[bytes] | None = None
    deaths: list[float] = field(default_factory=list)


class SupervisorError(Exception):
    pass


class Supervisor:
    def __init__(
        self,
        processes: Sequence[Process],
        *,
        ready_timeout: float = READY_TIMEOUT,
        max_restarts: int = MAX_RESTARTS,
        max_backoff: float = MAX_BACKOFF,
    ):
        self.processes = list(processes)
        self.ready_timeout = ready_timeout
        self.max_restarts = max_restarts
        self.max_backoff = max_backoff
        self._stopping = threading.Event()
        # Set once every process has been started and found ready (tests wait on it).
        self.up = threading.Event()

    def request_stop(self, *_args: object) -> None:
        self._stopping.set()

    def run(self) -> int:
        """Start stage by stage, then watch until asked to stop or a process cannot be kept up."""
        try:
            for stage in sorted({p.stage for p in self.processes}):
                if self._stopping.is_set():
                    return 0
                starting = [p for p in self.processes if p.stage == stage]
                for process in starting:
                    self._start(process)
                for process in starting:
                    self._wait_ready(process)
            log.info("control plane up: %s", ", ".join(p.name for p in self.processes))
            self.up.set()
            while not self._stopping.wait(POLL):
                for process in self.processes:
                    self._check(process)
            return 0
        except SupervisorError as exc:
            log.error("%s; stopping the control plane", exc)
            return 1
        finally:
            self.stop_all()

    def _start(self, process: Process) -> None:
        argv = list(process.argv())
        env = None if process.env is None else dict(process.env)
        if process.log is None:
            process.popen = subprocess.Popen(
                argv, env=env, cwd=process.cwd, stdin=subprocess.DEVNULL
            )
        else:
            with process.log.open("ab") as output:
                process.popen = subprocess.Popen(
                    argv,
                    env=env,
                    cwd=process.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
        log.info("started %s (pid %d)", process.name, process.popen.pid)

    def _wait_ready(self, process: Process) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while not self._stopping.is_set():
            assert process.popen is not None
            code = process.popen.poll()
            if code is not None:
                raise SupervisorError(f"{process.name} exited with {code} before it was ready")
            if _safely(process.ready):
                log.info("%s is ready", process.name)
                if process.after_ready is not None:
                    process.after_ready()
                return
            if time.monotonic() > deadline:
                raise SupervisorError(
                    f"{process.name} was not ready after {self.ready_timeout:.0f}s"
                )
            time.sleep(READY_POLL)

    def _check(self, process: Process) -> None:
        assert process.popen is not None
        code = process.popen.poll()
        if code is None:
            return
        now = time.monotonic()
        process.deaths = [t for t in process.deaths if now - t < RESTART_WINDOW] + [now]
        if len(process.deaths) > self.max_restarts:
            raise SupervisorError(
                f"{process.name} exited {len(process.deaths)} times in {RESTART_WINDOW:.0f} s"
            )
        delay = min(self.max_backoff, 2.0 ** (len(process.deaths) - 1))
        log.warning("%s exited with %d; restarting it in %.1f s", process.name, code, delay)
        if self._stopping.wait(delay):
            return
        self._start(process)
        self._wait_ready(process)

    def stop_all(self) -> None:
        """SIGTERM each process, last stage first; SIGKILL what outlives STOP_GRACE."""
        started = list(enumerate(self.processes))
        for _, process in sorted(started, key=lambda item: (item[1].stage, item[0]), reverse=True):
            popen = process.popen
            if popen is None or popen.poll() is not None:
                continue
            popen.terminate()
            try:
                popen.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                log.warning("%s ignored SIGTERM for %.0f s; killing it", process.name, STOP_GRACE)
                popen.kill()
                popen.wait()
            log.info("stopped %s", process.name)


def _safely(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except (OSError, ValueError):
        return False


def https_ok(url: str, ca_file: Path) -> Callable[[], bool]:
    """A readiness check: GET `url` answers 200, its certificate signed by `ca_file`."""

    def check() -> bool:
        context = ssl.create_default_context(cafile=str(ca_file))
        with urllib.request.urlopen(url, context=context, timeout=2) as response:
            return bool(response.status == 200)

    return check


def http_ok(url: str) -> Callable[[], bool]:
    """A readiness check: GET `url` (plain HTTP, loopback) answers 200."""

    def check() -> bool:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)

    return check


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _private(name: str) -> bool:
    return name.startswith(PRIVATE_ENV_PREFIXES)


def _component_env() -> dict[str, str]:
    """The environment the Go components get: ours less the CA keys and the tokens."""
    return {k: v for k, v in os.environ.items() if not _private(k) and k not in TOKEN_ENV}


@dataclass(frozen=True)
class KubeletAddress:
    """Where the kubelet's API listens, which is where the node says it is."""

    ip: str
    port: int


def kubelet_address(layout: Layout) -> KubeletAddress:
    """On Fly: the machine's 6PN address (FLY_PRIVATE_IP), port 10250. Where the API server
    listens on loopback only (the local backend runs this machine as local processes, beside
    other clusters' control planes): 127.0.0.1 and a free port, chosen at boot."""
    if ipaddress.ip_address(layout.bind_address).is_loopback:
        return KubeletAddress("127.0.0.1", free_port())
    return KubeletAddress(os.environ.get(bootstrap.PRIVATE_IP_ENV) or "127.0.0.1", KUBELET_PORT)


def kubelet_process(
    files: bootstrap.BootFiles,
    address: KubeletAddress,
    cluster_dns: str = "",
    webhook: tuple[int, Path, Path] | None = None,
) -> Process:
    """`flyk ext k8s kubelet` against the Machines API the machine was given: the local
    backend's database (FLYK_LOCAL_DB, set by the local runtime) or FLYK_API_URL with the
    kubelet's own token; serving its API at `address` with this boot's certificate;
    `cluster_dns` is the nameserver it gives ClusterFirst pods."""
    env = {k: v for k, v in os.environ.items() if not _private(k)}
    env["KUBECONFIG"] = str(files.kubelet)
    env[bootstrap.NODE_NAME_ENV] = bootstrap.node_name()  # the name its certificate carries
    env.update(
        FLYK_KUBELET_NODE_IP=address.ip,
        FLYK_KUBELET_PORT=str(address.port),
        FLYK_KUBELET_TLS_CERT_FILE=str(files.kubelet_serving_cert),
        FLYK_KUBELET_TLS_PRIVATE_KEY_FILE=str(files.kubelet_serving_key),
        FLYK_KUBELET_CLIENT_CA_FILE=str(files.client_ca),
    )
    if webhook is not None:  # the Service address webhook: port, certificate, key
        port, cert, key = webhook
        env["FLYK_KUBELET_WEBHOOK_PORT"] = str(port)
        env["FLYK_KUBELET_WEBHOOK_CERT"] = str(cert)
        env["FLYK_KUBELET_WEBHOOK_KEY"] = str(key)
    token = env.pop("FLYK_KUBELET_TOKEN", "") or env.pop("FLY_API_TOKEN", "")
    env.pop("FLY_ACCESS_TOKEN", None)
    argv = [sys.executable, "-m", "flyk"]
    if env.get("FLYK_LOCAL_DB"):
        argv.append("--local")
    else:
        env["FLY_FLAPS_BASE_URL"] = env.get("FLYK_API_URL", "http://_api.internal:4280")
        if token:
            env["FLY_API_TOKEN"] = token
    argv += ["ext", "k8s", "kubelet"]
    if cluster_dns:
        argv.append(f"--cluster-dns={cluster_dns}")
    return Process("kubelet", lambda: argv, env=env, stage=2)


def control_plane(
    binary: Path,
    layout: Layout,
    tls_sans: Sequence[str],
    *,
    with_kubelet: bool = True,
    dns: ClusterDNS | None = None,
) -> list[Process]:
    """The control plane's processes, in start order. Signs this boot's certificates first,
    and writes CoreDNS's Corefile when there is cluster DNS (`dns`)."""
    address = kubelet_address(layout)
    files = bootstrap.prepare(layout, tls_sans, node_ip=address.ip)
    env = _component_env()
    cwd = layout.data
    ca = layout.ca("server-ca.crt")
    api = f"https://127.0.0.1:{layout.api_port}"
    kcm_port, scheduler_port = free_port(), free_port()

    def component(
        name: str, args: Callable[[], list[str]], ready: Callable[[], bool], stage: int
    ) -> Process:
        argv = lambda: [str(binary), name, *args()]  # noqa: E731
        return Process(name, argv, ready, env=env, cwd=cwd, stage=stage)

    processes = [
        component(
            "kine",
            lambda: components.kine_args(layout),
            lambda: (cwd / "kine.sock").exists(),
            stage=0,
        ),
        component(
            "kube-apiserver",
            lambda: components.apiserver_args(layout),
            https_ok(f"{api}/readyz", ca),
            stage=1,
        ),
        component(
            "kube-controller-manager",
            lambda: components.controller_manager_args(layout, kcm_port),
            https_ok(f"https://127.0.0.1:{kcm_port}/healthz", ca),
            stage=2,
        ),
        component(
            "kube-scheduler",
            lambda: components.scheduler_args(layout, scheduler_port),
            https_ok(f"https://127.0.0.1:{scheduler_port}/healthz", ca),
            stage=2,
        ),
    ]
    credentials = (api, ca, files.supervisor_cert, files.supervisor_key)
    webhook_port = free_port()

    def api_ready() -> None:
        """What the API server must hold before the rest starts (again after each restart)."""
        rbac.ensure(*credentials)
        if dns is not None:
            with rbac.supervisor_client(*credentials) as client:
                clusterdns.ensure(client, dns)
        if with_kubelet:
            url = f"https://127.0.0.1:{webhook_port}{WEBHOOK_PATH}"
            webhook.ensure(*credentials, url)

    processes[1].after_ready = api_ready
    if dns is not None:
        health, ready = dns.health_port or free_port(), dns.ready_port or free_port()
        dns = dataclasses.replace(dns, health_port=health, ready_port=ready)
        layout.corefile.write_text(components.corefile(layout, dns))  # no secret in it
        processes.append(
            component(
                "coredns",
                lambda: components.coredns_args(layout),
                http_ok(f"http://127.0.0.1:{dns.ready_port}/ready"),
                stage=2,
            )
        )
    if with_kubelet:
        serving = (
            webhook_port,
            layout.leaf("service-webhook.crt"),
            layout.leaf("service-webhook.key"),
        )
        nameserver = dns.nameserver if dns else ""
        processes.append(kubelet_process(files, address, nameserver, serving))
    return processes


def run(
    binary: Path,
    layout: Layout,
    tls_sans: Sequence[str],
    *,
    with_kubelet: bool = True,
    dns: ClusterDNS | None = None,
) -> int:
    """The supervisor's whole life; its exit code is the machine's."""
    processes = control_plane(binary, layout, tls_sans, with_kubelet=with_kubelet, dns=dns)
    supervisor = Supervisor(processes)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        supervisor.request_stop()

    logging.getLogger("httpx").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    code = supervisor.run()
    exit_file = os.environ.get(EXIT_FILE_ENV)
    if exit_file:
        with contextlib.suppress(OSError):
            Path(exit_file).write_text(f"{code}\n")
    return code
