"""`status` asks the API server over real TLS with the kubeconfig's credentials."""

from __future__ import annotations

import dataclasses
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from flyk.api import FlyClient, RetryPolicy
from flyk.errors import WaitTimeoutError
from flyk.k8s import cluster
from flyk.k8s.kubeconfig import KubeconfigEntry
from flyk.k8s.pki import CertificateAuthority, ClusterPKI
from flyk.k8s.plan import ClusterSpec
from flyk.k8s.probe import ApiProbe, probe_api_server, probe_ready
from flyk.local import LocalBackend
from tests.k8s.conftest import make_client

RESPONSES = {
    "/readyz": "ok",
    "/version": {"gitVersion": "v1.31.4+k3s1"},
    "/api/v1/nodes": {"items": [{"status": {"conditions": [{"type": "Ready", "status": "True"}]}}]},
    "/api/v1/pods": {
        "items": [
            {"metadata": {"namespace": "default"}},
            {"metadata": {"namespace": "default"}},
            {"metadata": {"namespace": "kube-system"}},
        ]
    },
}


class FakeApiServer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = RESPONSES.get(self.path)
        if body is None:
            self.send_error(404)
            return
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def pki() -> ClusterPKI:
    return ClusterPKI.generate("probe")


@pytest.fixture
def api_server(pki: ClusterPKI, tmp_path: Path) -> Iterator[int]:
    serving = pki.server_ca.sign_serving(["127.0.0.1"])
    (tmp_path / "s.crt").write_bytes(serving.cert_pem)
    (tmp_path / "s.key").write_bytes(serving.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "s.crt", tmp_path / "s.key")
    context.verify_mode = ssl.CERT_REQUIRED  # like kube-apiserver with --client-ca-file
    context.load_verify_locations(cadata=pki.client_ca.cert_pem.decode())
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApiServer)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def entry(
    pki: ClusterPKI, port: int, client_ca: CertificateAuthority | None = None
) -> KubeconfigEntry:
    admin = (client_ca or pki.client_ca).sign_client("flyk-admin", ["system:masters"])
    return KubeconfigEntry(
        "probe", f"https://127.0.0.1:{port}", pki.server_ca.cert_pem, admin.cert_pem, admin.key_pem
    )


def test_answering_api_server_reports_version_nodes_and_pods(
    pki: ClusterPKI, api_server: int
) -> None:
    result = probe_api_server(entry(pki, api_server), timeout=5)
    assert result.reachable and "/readyz ok" in result.detail
    assert result.version == "v1.31.4+k3s1"
    assert (result.nodes, result.nodes_ready, result.pods, result.namespaces) == (1, 1, 3, 2)


def test_a_client_cert_from_another_ca_is_refused(pki: ClusterPKI, api_server: int) -> None:
    stranger = CertificateAuthority.generate("stranger")
    result = probe_api_server(entry(pki, api_server, client_ca=stranger), timeout=5)
    assert not result.reachable


def test_nothing_listening_is_reported_not_raised(pki: ClusterPKI) -> None:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    result = probe_api_server(entry(pki, port), timeout=2)
    assert not result.reachable and "not answering" in result.detail


# -- create waits until the API server answers ------------------------------------------------


class StartingApiServer(BaseHTTPRequestHandler):
    """/readyz says 503 until `ready_after` of its requests were made, then ok; the node list
    has one Ready node."""

    requests = 0
    ready_after = 0

    def do_GET(self) -> None:
        cls = type(self)
        if self.path == "/api/v1/nodes":
            ready_node = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
            nodes = json.dumps({"items": [ready_node]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(nodes)))
            self.end_headers()
            self.wfile.write(nodes)
            return
        cls.requests += 1
        ready = self.path == "/readyz" and cls.requests > cls.ready_after
        data = b"ok" if ready else b"[-]poststarthook/rbac failed: not finished"
        self.send_response(200 if ready else 503)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


class ClusterApiServer:
    """Stands in for the new cluster's K3s: a real TLS server whose serving certificate is
    signed by the server CA that create stored as the app's secrets, requiring client
    certificates of the cluster's client CA. Used as create's ApiCheck: the real probe,
    pointed at it."""

    def __init__(self, client: FlyClient, tmp_path: Path, ready_after: int) -> None:
        self.client, self.tmp_path = client, tmp_path
        self.handler = type("Handler", (StartingApiServer,), {"ready_after": ready_after})
        self.server: ThreadingHTTPServer | None = None

    def __call__(self, entry: KubeconfigEntry, timeout: float) -> ApiProbe:
        if self.server is None:
            self.server = self._start(entry.cluster)
        port = self.server.server_address[1]
        return probe_ready(dataclasses.replace(entry, server=f"https://127.0.0.1:{port}"))

    def _start(self, name: str) -> ThreadingHTTPServer:
        listed = self.client.secrets.list(f"flyk-{name}-personal", show_secrets=True)
        pki = ClusterPKI.from_secrets({s.name: s.value for s in listed if s.value})
        serving = pki.server_ca.sign_serving(["127.0.0.1"])
        (self.tmp_path / "s.crt").write_bytes(serving.cert_pem)
        (self.tmp_path / "s.key").write_bytes(serving.key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.tmp_path / "s.crt", self.tmp_path / "s.key")
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=pki.client_ca.cert_pem.decode())
        server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


class AsIfRemote(httpx.BaseTransport):
    """The local backend as if it were Fly's API: without the `server` header naming it,
    create treats its control plane as one that runs an API server, as on Fly."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        del response.headers["server"]
        return response


def _create_options(tmp_path: Path, api: ClusterApiServer, timeout: float) -> cluster.CreateOptions:
    kube = cluster.KubeconfigOptions(path=str(tmp_path / "kubeconfig"))
    return cluster.CreateOptions(timeout=timeout, kubeconfig=kube, api_check=api)


def test_create_waits_until_the_api_server_answers_readyz(
    backend: LocalBackend, tmp_path: Path
) -> None:
    slept: list[float] = []
    client = make_client(AsIfRemote(backend.transport()), RetryPolicy(sleep=slept.append))
    api = ClusterApiServer(client, tmp_path, ready_after=2)
    try:
        spec = ClusterSpec(name="demo", org="personal", region="iad")
        result = cluster.create(client, spec, _create_options(tmp_path, api, 60.0))
    finally:
        api.close()
    assert api.handler.requests == 3  # two 503s, then ok: asked again after each, paced
    assert len(slept) == 2
    assert (tmp_path / "kubeconfig").exists() and result.machine.state == "started"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_an_api_server_that_never_answers_times_out_and_rolls_back(
    backend: LocalBackend, tmp_path: Path
) -> None:
    clock = Clock()
    client = make_client(
        AsIfRemote(backend.transport()), RetryPolicy(clock=clock, sleep=clock.advance)
    )
    api = ClusterApiServer(client, tmp_path, ready_after=10**9)
    try:
        spec = ClusterSpec(name="demo", org="personal", region="iad")
        with pytest.raises(WaitTimeoutError) as info:
            cluster.create(client, spec, _create_options(tmp_path, api, 30.0))
    finally:
        api.close()
    assert info.value.message.startswith(
        "the API server did not answer /readyz with a node Ready within --timeout 30s "
        "(last: /readyz said 503"
    )
    assert client.apps.list("personal") == []
    assert not (tmp_path / "kubeconfig").exists()


def test_create_waits_for_a_node_ready_after_readyz(backend: LocalBackend, tmp_path: Path) -> None:
    """The machine's check and /readyz can pass a moment before the kubelet registers its
    node: create is done when `kubectl get nodes` would show it Ready."""
    slept: list[float] = []
    client = make_client(AsIfRemote(backend.transport()), RetryPolicy(sleep=slept.append))
    api = ClusterApiServer(client, tmp_path, ready_after=0)
    answers = iter([False, False, True])
    original = api.handler.do_GET

    def nodes_later(handler: StartingApiServer) -> None:
        if handler.path == "/api/v1/nodes" and not next(answers):
            body = b'{"items": []}'
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        original(handler)

    api.handler.do_GET = nodes_later  # type: ignore[method-assign]
    try:
        spec = ClusterSpec(name="demo", org="personal", region="iad")
        cluster.create(client, spec, _create_options(tmp_path, api, 60.0))
    finally:
        api.close()
    assert len(slept) == 2 and max(slept) <= 0.25  # asked again twice, never long apart
