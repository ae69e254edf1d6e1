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


def _raw(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes; the status, headers and body."""
    with _connect(url) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    fields = (line.partition(":") for line in lines)
    headers = {name.strip().lower(): value.strip() for name, _, value in fields}
    return int(status_line.split(" ")[1]), headers, body


def _line(method: bytes, target: bytes = b"/v1/apps", extra: bytes = b"") -> bytes:
    return method + b" " + target + b" HTTP/1.1\r\nHost: local\r\nConnection: close\r\n" + extra


APPS_ALLOW = "GET, HEAD, POST"
MACHINE_ALLOW = "GET, HEAD, POST, DELETE"
ANY_REQUEST_CASES = [
    # a method the path does not take: 405 with the methods it does
    ("trace", _line(b"TRACE") + b"\r\n", 405, APPS_ALLOW),
    ("options", _line(b"OPTIONS") + b"\r\n", 405, APPS_ALLOW),
    ("connect", _line(b"CONNECT") + b"\r\n", 405, APPS_ALLOW),
    ("invented-method", _line(b"BREW") + b"\r\n", 405, APPS_ALLOW),
    ("delete-a-collection", _line(b"DELETE") + b"\r\n", 405, APPS_ALLOW),
    ("put-a-machine", _line(b"PUT", b"/v1/apps/a/machines/m") + b"\r\n", 405, MACHINE_ALLOW),
    ("trace-admin", _line(b"TRACE", b"/_flyk/timing") + b"\r\n", 405, "GET, HEAD, PUT"),
    # a path the API does not have: 404, whatever the method
    ("unknown-path", _line(b"GET", b"/v1/nowhere") + b"\r\n", 404, None),
    ("trace-unknown-path", _line(b"TRACE", b"/elsewhere") + b"\r\n", 404, None),
    ("bad-percent-encoding", _line(b"GET", b"/v1/apps/%ff%fe") + b"\r\n", 404, None),
    # what the HTTP layer itself refuses
    ("garbage-request-line", b"GARBAGE\r\n\r\n", 400, None),
    ("http-2-version", b"GET /v1/apps HTTP/2.0\r\nHost: local\r\n\r\n", 505, None),
    ("uri-too-long", _line(b"GET", b"/v1/" + b"a" * 70_000) + b"\r\n", 414, None),
    ("header-too-long", _line(b"GET", extra=b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n"), 431, None),
    ("too-many-headers", _line(b"GET", extra=b"X-A: b\r\n" * 120 + b"\r\n"), 431, None),
    # bodies: not JSON, not UTF-8, compressed, too large
    ("not-json", _line(b"POST", extra=b"Content-Length: 5\r\n\r\nhello"), 400, None),
    ("not-utf8", _line(b"POST", extra=b"Content-Length: 4\r\n\r\n\xff\xfe{}"), 400, None),
    ("gzip-body", _line(b"POST", extra=b"Content-Encoding: gzip\r\nContent-Length: 4\r\n\r\n"
                        b"\x1f\x8b\x08\x00"), 400, None),
    ("json-array", _line(b"POST", extra=b"Content-Length: 2\r\n\r\n[]"), 400, None),
    ("huge-body", _line(b"POST", extra=b"Content-Length: 5000000\r\n\r\n" + b"x" * 999), 413,
     None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("request_bytes", "status", "allow"),
    [c[1:] for c in ANY_REQUEST_CASES],
    ids=[c[0] for c in ANY_REQUEST_CASES],
)
def test_every_answer_is_json_in_the_api_error_shape(
    backend: LocalBackend, request_bytes: bytes, status: int, allow: str | None
) -> None:
    """No HTML and no 501 from the standard library, whatever a client sends."""
    with backend.serve() as served:
        code, headers, body = _raw(served.url, request_bytes)
    assert code == status, body
    assert headers["content-type"] == "application/json; charset=utf-8"
    error = json.loads(body)
    assert set(error) == {"error"} and isinstance(error["error"], str) and error["error"]
    assert headers.get("allow") == allow


def test_head_is_get_without_the_body(backend: LocalBackend) -> None:
    with backend.serve() as served:
        get = _raw(served.url, _line(b"GET", b"/v1/apps?org_slug=personal") + b"\r\n")
        head = _raw(served.url, _line(b"HEAD", b"/v1/apps?org_slug=personal") + b"\r\n")
        missing = _raw(served.url, _line(b"HEAD", b"/v1/apps/nope") + b"\r\n")
    assert (get[0], head[0], missing[0]) == (200, 200, 404)
    assert json.loads(get[2]) == {"apps": [], "total_apps": 0}
    assert head[2] == missing[2] == b""
    assert head[1]["content-type"] == get[1]["content-type"]
