"""`status` asks the API server over real TLS with the kubeconfig's credentials."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from flyk.k8s.kubeconfig import KubeconfigEntry
from flyk.k8s.pki import CertificateAuthority, ClusterPKI
from flyk.k8s.probe import probe_api_server

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
