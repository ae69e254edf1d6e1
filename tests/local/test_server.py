"""The served backend and clients that go away: a dropped client is normal, never a traceback.

Each test runs a real HTTP server and a raw socket. A latency fault holds the request (through
the backend's injectable `sleep`, so the order is certain rather than timed) until the client has
gone; the server's reply then meets a closed socket. Leaving `backend.serve()` joins the
handler threads, so the server's stderr is complete when it is read.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from pathlib import Path

import httpx
import pytest

from flyk.local import LocalBackend, Timing

REQUEST = b"GET /v1/apps?org_slug=personal HTTP/1.1\r\nHost: local\r\n\r\n"


class Gate:
    """A latency fault's sleep that tells when the request is held and waits for the test."""

    def __init__(self) -> None:
        self.held = threading.Event()
        self.released = threading.Event()

    def __call__(self, seconds: float) -> None:
        self.held.set()
        self.released.wait(10)


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host.strip("[]"), int(port)), timeout=10)


def _reset_on_close(sock: socket.socket) -> None:
    """close() sends RST instead of FIN (SO_LINGER with a zero timeout): an abrupt drop."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.mark.parametrize("abrupt", [False, True], ids=["closed", "reset"])
def test_client_gone_before_the_reply_leaves_no_traceback(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], abrupt: bool
) -> None:
    gate = Gate()
    backend = LocalBackend(tmp_path / "local.db", Timing.instant(), sleep=gate)
    backend.faults.add("latency", seconds=1, path="^/apps$", times=1)
    with backend.serve() as served:
        client = _connect(served.url)
        # Two pipelined requests: whether or not the first reply meets the peer's RST in
        # time, the second one is written after it has.
        client.sendall(REQUEST * 2)
        assert gate.held.wait(10), "the request never reached the backend"
        if abrupt:
            _reset_on_close(client)
        client.close()
        gate.released.set()
        # The server still serves others afterwards.
        with httpx.Client(base_url=f"{served.url}/v1") as other:
            assert other.get("/apps", params={"org_slug": "personal"}).status_code == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert "Error" not in err, err


@pytest.mark.parametrize(
    "sent", [b"", b"GET /v1/apps HTTP/1.1\r\nHost: lo", b"POST /v1/apps HTTP/1.1\r\n"]
)
def test_client_reset_while_the_request_is_read_leaves_no_traceback(
    backend: LocalBackend, capfd: pytest.CaptureFixture[str], sent: bytes
) -> None:
    with backend.serve() as served:
        client = _connect(served.url)
        if sent:
            client.sendall(sent)
        _reset_on_close(client)
        client.close()
        body = b'{"name": "a", "org_slug": "personal"}'
        cut = _connect(served.url)  # a body announced longer than what arrives
        cut.sendall(
            b"POST /v1/apps HTTP/1.1\r\nHost: local\r\ncontent-type: application/json\r\n"
            b"content-length: 500\r\n\r\n" + body
        )
        _reset_on_close(cut)
        cut.close()
        with httpx.Client(base_url=f"{served.url}/v1") as other:
            assert other.get("/apps", params={"org_slug": "personal"}).status_code == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err, err


def _exchange(url: str, request: bytes) -> tuple[int, str]:
    """Send raw bytes, read until the server closes; the status and the body."""
    with _connect(url) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)  # a short body then ends here, it does not hang
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body.decode()


APP = b'{"name": "framed", "org_slug": "personal"}'
CHUNKED = b"Transfer-Encoding: chunked\r\n\r\n"
END = b"\r\n0\r\n\r\n"  # the end of a chunk, then the last (empty) chunk
FRAMING_CASES = [
    ("length-not-a-number", b"Content-Length: abc\r\n\r\n" + APP, "Content-Length"),
    ("length-negative", b"Content-Length: -5\r\n\r\n" + APP, "Content-Length"),
    ("length-underscore", b"Content-Length: 4_2\r\n\r\n" + APP, "Content-Length"),
    ("body-short", b"Content-Length: 99\r\n\r\n" + APP, "ended after"),
    ("chunk-size-not-hex", CHUNKED + b"zz\r\n" + APP, "chunk"),
    ("chunk-size-negative", CHUNKED + b"-5\r\n" + APP, "chunk"),
    ("chunk-too-short", CHUNKED + b"ff\r\n" + APP + END, "chunk"),
    ("chunk-too-long", CHUNKED + b"2\r\n" + APP + END, "chunk"),
    ("unknown-encoding", b"Transfer-Encoding: gzip\r\n\r\n" + APP, "Transfer-Encoding"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("framing", "named"), [c[1:] for c in FRAMING_CASES], ids=[c[0] for c in FRAMING_CASES]
)
def test_malformed_body_framing_is_a_400_that_says_so(
    backend: LocalBackend, framing: bytes, named: str
) -> None:
    with backend.serve() as served:
        head = b"POST /v1/apps HTTP/1.1\r\nHost: local\r\nContent-Type: application/json\r\n"
        status, body = _exchange(served.url, head + framing)
        assert status == 400
        message = json.loads(body)["error"]
        assert named in message and "required" not in message
        with httpx.Client(base_url=f"{served.url}/v1") as client:
            assert client.get("/apps/framed").status_code == 404  # nothing was created


def test_well_framed_bodies_still_work_over_raw_http(backend: LocalBackend) -> None:
    with backend.serve() as served:
        head = b"POST /v1/apps HTTP/1.1\r\nHost: local\r\nConnection: close\r\n"
        sized = head + b"Content-Length: %d\r\n\r\n" % len(APP) + APP
        assert _exchange(served.url, sized)[0] == 201
        chunked = head + CHUNKED
        other = APP.replace(b"framed", b"chunked")
        chunked += b"%x\r\n" % len(other) + other + END
        assert _exchange(served.url, chunked)[0] == 201


def test_listening_on_every_address_gives_a_loopback_url(tmp_path: Path) -> None:
    """`http://0.0.0.0:PORT` is no address to connect to (and no client takes it for local)."""
    backend = LocalBackend(tmp_path / "local.db", Timing.instant())
    with backend.serve(host="0.0.0.0", port=0) as served:
        assert served.url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=f"{served.url}/v1") as client:
            assert client.get("/apps", params={"org_slug": "personal"}).status_code == 200
