"""The kubelet API's server on its own (flyk/kubelet/server.py): real TLS on loopback, routes and
an authorizer of the test's; what a client that is not the API server can do to it."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flyk.k8s.pki import ClusterPKI
from flyk.kubelet.server import Exchange, KubeletServer, Request, route, tls_context


@pytest.fixture(scope="module")
def pki() -> ClusterPKI:
    return ClusterPKI.generate("server-test")


@pytest.fixture
def files(pki: ClusterPKI, tmp_path: Path) -> dict[str, Path]:
    made: dict[str, Path] = {}
    for name, pair in (
        ("serving", pki.server_ca.sign_serving(["127.0.0.1"])),
        ("alice", pki.client_ca.sign_client("alice", ["team"])),
        ("mallory", pki.client_ca.sign_client("mallory")),
    ):
        made[f"{name}.crt"] = tmp_path / f"{name}.crt"
        made[f"{name}.key"] = tmp_path / f"{name}.key"
        made[f"{name}.crt"].write_bytes(pair.cert_pem)
        made[f"{name}.key"].write_bytes(pair.key_pem)
    made["client-ca.crt"] = tmp_path / "client-ca.crt"
    made["client-ca.crt"].write_bytes(pki.client_ca.cert_pem)
    made["server-ca.crt"] = tmp_path / "server-ca.crt"
    made["server-ca.crt"].write_bytes(pki.server_ca.cert_pem)
    return made


@pytest.fixture
def server(files: dict[str, Path]) -> Iterator[KubeletServer]:
    async def hello(exchange: Exchange, params: dict[str, str]) -> None:
        identity = exchange.request.identity
        assert identity is not None
        await exchange.respond(200, f"{params['name']} for {identity.user} {identity.groups}")

    async def authorize(request: Request) -> tuple[int, str] | None:
        assert request.identity is not None
        return (403, "no\n") if request.identity.user == "mallory" else None

    tls = tls_context(
        str(files["serving.crt"]), str(files["serving.key"]), str(files["client-ca.crt"])
    )
    made = KubeletServer(
        host="127.0.0.1", port=0, tls=tls, routes=[route("GET", "/hello/{name}", hello)],
        authorize=authorize,
    ).start()  # fmt: skip
    yield made
    made.stop()


def _client(files: dict[str, Path], who: str | None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(files["server-ca.crt"]))
    if who is not None:
        context.load_cert_chain(str(files[f"{who}.crt"]), str(files[f"{who}.key"]))
    return httpx.Client(verify=context, timeout=10)


def test_routes_identity_and_kept_alive_connections(
    server: KubeletServer, files: dict[str, Path]
) -> None:
    base = f"https://127.0.0.1:{server.bound_port}"
    with _client(files, "alice") as client:
        first = client.get(f"{base}/hello/world")
        assert (first.status_code, first.text) == (200, "world for alice ('team',)")
        assert client.get(f"{base}/hello/again").status_code == 200
        assert server.open_connections == 1  # the same connection, kept alive
        assert client.get(f"{base}/nowhere").status_code == 404
        assert client.post(f"{base}/hello/x").status_code == 405
    with _client(files, "mallory") as client:
        assert client.get(f"{base}/hello/world").status_code == 403
    with _client(files, None) as client:
        assert client.get(f"{base}/hello/world").status_code == 401


def test_garbage_and_oversized_requests_close_the_connection(
    server: KubeletServer, files: dict[str, Path]
) -> None:
    context = ssl.create_default_context(cafile=str(files["server-ca.crt"]))
    context.load_cert_chain(str(files["alice.crt"]), str(files["alice.key"]))
    for payload in (b"NOT HTTP AT ALL\r\n\r\n", b"GET / HTTP/1.1\r\nX: " + b"a" * 100_000):
        with socket.create_connection(("127.0.0.1", server.bound_port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                sock.sendall(payload)
                received = b""
                while chunk := sock.recv(65536):
                    received += chunk
        assert b"200" not in received.split(b"\r\n")[0]
    base = f"https://127.0.0.1:{server.bound_port}"
    with _client(files, "alice") as client:  # and it still serves
        assert client.get(f"{base}/hello/world").status_code == 200
