"""The backend over real HTTP: a stdlib ThreadingHTTPServer around the shared core."""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from flyk.local.core import Core, LocalRequest
from flyk.local.validate import MAX_BODY_BYTES

__all__ = ["ServedBackend"]

# What a client that goes away mid-request looks like from the server's side (a reset, a
# write to a closed peer, a read that times out): normal for a server, never a traceback.
CLIENT_GONE = (ConnectionError, TimeoutError)
_DIGITS = re.compile(r"^[0-9]+$")
_HEX = re.compile(rb"^[0-9A-Fa-f]+$")


class _BadFraming(Exception):
    """The request's body framing (Content-Length, chunked encoding) cannot be trusted."""


def _handler_class(core: Core) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as separate small writes
        server_version = "flyk-local"

        def _read_body(self) -> tuple[bytes, bool]:
            """The body, and whether it was over the limit (then unread: the connection is
            closed after the 413, since its remaining bytes cannot be trusted).

            Raises _BadFraming when the body's length cannot be known: it is never taken for
            an empty body, whose errors ("name is required") would mislead."""
            encoding = self.headers.get("transfer-encoding")
            if encoding is not None:
                if encoding.strip().lower() != "chunked":
                    raise _BadFraming(f"unsupported Transfer-Encoding {encoding!r}")
                return self._read_chunked()
            raw_length = self.headers.get("content-length")
            if raw_length is None:
                return b"", False
            if not _DIGITS.match(raw_length.strip()):
                raise _BadFraming(f"invalid Content-Length header {raw_length!r}")
            length = int(raw_length.strip())
            if length > MAX_BODY_BYTES:
                self.close_connection = True
                return b"", True
            body = self.rfile.read(length) if length else b""
            if len(body) < length:
                raise _BadFraming(f"body ended after {len(body)} of {length} bytes")
            return body, False

        def _read_chunked(self) -> tuple[bytes, bool]:
            chunks: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(64)
                size_text = line.split(b";")[0].strip()
                if not _HEX.match(size_text):
                    raise _BadFraming(f"malformed chunked body: chunk size {size_text!r}")
                size = int(size_text, 16)
                if size == 0:
                    self.rfile.readline(64)  # the blank line after the last chunk
                    return b"".join(chunks), False
                total += size
                if total > MAX_BODY_BYTES:
                    self.close_connection = True
                    return b"", True
                chunk = self.rfile.read(size)
                if len(chunk) < size or self.rfile.readline(64).strip():
                    raise _BadFraming("malformed chunked body: a chunk is not its stated size")
                chunks.append(chunk)

        def _send_json_error(self, code: int, message: str) -> None:
            """An error the HTTP layer finds itself, in the API's shape (`{"error": …}`). The
            connection closes: what follows on it cannot be trusted."""
            self.close_connection = True
            if not self.request_version.startswith("HTTP/1."):
                # a request line too broken to name a version (the standard library then
                # assumes HTTP/0.9, which has no status line): answer in HTTP/1.1
                self.request_version = "HTTP/1.1"
            body = json.dumps({"error": message}).encode()
            try:
                self.send_response(code)
                self.send_header("content-type", "application/json; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.send_header("connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
            except CLIENT_GONE:
                pass  # the client left: nobody to tell

        def _serve(self) -> None:
            try:
                body, too_large = self._read_body()
            except _BadFraming as error:
                self._send_json_error(400, f"malformed request body: {error}")
                return
            url = urlsplit(self.path)
            request = LocalRequest(
                method=self.command,
                path=url.path,
                query=url.query,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                too_large=too_large,
            )
            response = core.handle(request)
            if response.drop_connection:
                self.close_connection = True
                return  # committed, but no response: the client sees the connection close
            try:
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(response.body)))
                if self.close_connection:
                    self.send_header("connection", "close")
                self.end_headers()
                self.wfile.write(response.body)
            except CLIENT_GONE:
                self.close_connection = True  # the client left before its answer: normal

        def __getattr__(self, name: str) -> Any:
            """Every method a client may send reaches the core (`do_TRACE`, `do_OPTIONS`,
            `do_FOO`, …), which answers in the API's shape: 405 with `Allow` for a method the
            path does not take. Without this the standard library answers 501 in HTML."""
            if name.startswith("do_"):
                return self._serve
            raise AttributeError(name)

        def send_error(
            self, code: int, message: str | None = None, explain: str | None = None
        ) -> None:
            """The standard library's own refusals (a malformed request line, a URI or headers
            too long, an HTTP version it does not speak) in the API's error shape, not HTML."""
            reason = message or self.responses.get(code, ("error",))[0]
            self._send_json_error(code, f"{reason}: {explain}" if explain else reason)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the CLI owns the terminal

    return Handler


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that left (while its request was read, say) is not the server's error;
        anything else is still printed with its traceback."""
        if isinstance(sys.exc_info()[1], CLIENT_GONE):
            return
        super().handle_error(request, client_address)


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


_WILDCARD_TO_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1"}


class ServedBackend:
    """A running server: `.url` (how this machine reaches it: no trailing slash, without /v1;
    loopback when it listens on every address), `.close()`; a context manager."""

    def __init__(self, core: Core, host: str, port: int) -> None:
        server_class = _IPv6Server if ":" in host else _Server
        self._server = server_class((host, port), _handler_class(core))
        self._server.daemon_threads = True
        bound_host, bound_port = self._server.server_address[:2]
        host_text = bound_host.decode() if isinstance(bound_host, bytes) else str(bound_host)
        # bound to every address: the URL is how this machine reaches it (http://0.0.0.0 is
        # no address to connect to, and a client does not take it for loopback)
        host_text = _WILDCARD_TO_LOOPBACK.get(host_text, host_text)
        shown = f"[{host_text}]" if ":" in host_text else host_text
        self.url = f"http://{shown}:{bound_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # how soon close() is noticed
            name="flyk-local-serve",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> ServedBackend:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
