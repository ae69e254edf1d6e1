"""The kubelet's HTTPS API (port 10250): what the API server calls for `kubectl logs`, `exec`,
`attach` and `port-forward`.

One asyncio event loop on one thread serves every connection; HTTP/1.1 is parsed by h11 and
WebSocket frames by wsproto (both sans-IO, from python-hyper), TLS by the standard library. A
request that must call a blocking client (the Machines API, a SubjectAccessReview) runs that
call on a small shared pool (`CALL_WORKERS` threads); everything else, `logs -f` streams
included, is a coroutine. So open streams cost no thread, and a stream that ends (its client
gone) leaves nothing behind: each connection is closed when its handler returns.

Authentication is the client certificate, verified against the cluster's client CA during the
TLS handshake (a certificate from anyone else fails the handshake; none at all is 401).
Authorization is the kubelet's own rule (access.py). Routes:

| path | what |
|---|---|
| `GET /containerLogs/{ns}/{pod}/{container}` | logs.py |
| `GET|POST /exec/{ns}/{pod}/{container}` | exec.py (WebSocket `v5.channel.k8s.io`) |
| `GET|POST /attach/{ns}/{pod}/{container}` | refused with what to use instead (exec.py) |
| `GET|POST /portForward/{ns}/{pod}` | refused with what to use instead (exec.py) |
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import ssl
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import h11
from wsproto.connection import Connection as WsConnection
from wsproto.connection import ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.utilities import LocalProtocolError

log = logging.getLogger("flyk.kubelet.server")

T = TypeVar("T")

CALL_WORKERS = 8  # threads for blocking calls (Machines API, SubjectAccessReview), shared
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024  # kubelet API requests carry no body worth more
READ_CHUNK = 64 * 1024
HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 300.0  # a kept-alive connection with no request for this long is closed
CLOSE_WAIT = 2.0  # for the peer's close frame after ours
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass(frozen=True)
class Identity:
    """Who the client certificate names: CN is the user, each O a group."""

    user: str
    groups: tuple[str, ...] = ()


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    identity: Identity | None

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def params(self, name: str) -> list[str]:
        return list(self.query.get(name, []))

    def flag(self, name: str) -> bool:
        return (self.param(name) or "").lower() in ("1", "true", "yes")

    @property
    def is_websocket(self) -> bool:
        return (
            "websocket" in self.headers.get("upgrade", "").lower()
            and "upgrade" in self.headers.get("connection", "").lower()
        )

    @property
    def upgrade(self) -> str:
        return self.headers.get("upgrade", "")

    def subprotocols(self) -> list[str]:
        raw = self.headers.get("sec-websocket-protocol", "")
        return [p.strip() for p in raw.split(",") if p.strip()]


class ClientGone(Exception):
    """The peer closed the connection (a follow ends)."""


class Exchange:
    """One request on a connection and the means to answer it: a whole response, a streamed
    one, or an upgrade to a WebSocket."""

    def __init__(
        self,
        server: KubeletServer,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: Request,
    ) -> None:
        self.server = server
        self.request = request
        self._conn = conn
        self._reader = reader
        self._writer = writer
        self.answered = False
        self._eof: asyncio.Task[bytes] | None = None

    async def _write(self, *events: Any) -> None:
        for event in events:
            data = self._conn.send(event)
            if data:
                self._writer.write(data)
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as error:
            raise ClientGone(str(error)) from error

    async def respond(
        self, status: int, body: str | bytes, content_type: str = "text/plain"
    ) -> None:
        raw = body.encode() if isinstance(body, str) else body
        headers = [
            ("content-type", f"{content_type}; charset=utf-8"),
            ("content-length", str(len(raw))),
        ]
        self.answered = True
        await self._write(
            h11.Response(status_code=status, headers=headers),
            h11.Data(data=raw),
            h11.EndOfMessage(),
        )

    async def start_stream(self, content_type: str = "text/plain") -> None:
        """A 200 whose body follows in `send` calls (chunked), ended by `end`."""
        self.answered = True
        headers = [
            ("content-type", f"{content_type}; charset=utf-8"),
            ("transfer-encoding", "chunked"),
        ]
        await self._write(h11.Response(status_code=200, headers=headers))

    async def send(self, data: bytes) -> None:
        if data:
            await self._write(h11.Data(data=data))

    async def end(self) -> None:
        await self._write(h11.EndOfMessage())

    def peer_gone(self) -> asyncio.Task[bytes]:
        """A task that finishes when the peer closes its side (a streamed answer's client
        went away). Only for responses after which the connection is not reused."""
        if self._eof is None:
            self._eof = asyncio.ensure_future(self._reader.read(1))
        return self._eof

    async def websocket(self, protocol: str) -> WebSocket:
        """Answer 101 with `protocol` and return the WebSocket on this connection."""
        key = self.request.headers.get("sec-websocket-key", "")
        accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        headers = [
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-accept", accept),
            ("sec-websocket-protocol", protocol),
        ]
        self.answered = True
        await self._write(h11.InformationalResponse(status_code=101, headers=headers))
        trailing, _closed = self._conn.trailing_data
        return WebSocket(self._reader, self._writer, trailing)

    @property
    def watched_peer(self) -> bool:
        return self._eof is not None

    def close_task(self) -> None:
        if self._eof is not None and not self._eof.done():
            self._eof.cancel()


class WebSocket:
    """The server side of a WebSocket after the 101: binary messages in and out."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, trailing: bytes
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._ws = WsConnection(ConnectionType.SERVER, trailing_data=trailing)
        self._pending: list[bytes] = []
        self._partial = bytearray()
        self.closed = False

    async def _flush(self, data: bytes) -> None:
        self._writer.write(data)
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as error:
            self.closed = True
            raise ClientGone(str(error)) from error

    async def send(self, data: bytes) -> None:
        if self.closed:
            raise ClientGone("websocket closed")
        await self._flush(self._ws.send(BytesMessage(data=data)))

    async def receive(self) -> bytes | None:
        """The next whole message (text messages as their UTF-8 bytes); None once closed."""
        while True:
            if self._pending:
                return self._pending.pop(0)
            if self.closed:
                return None
            await self._pump()

    async def _pump(self) -> None:
        try:
            data = await self._reader.read(READ_CHUNK)
        except (ConnectionError, OSError):
            data = b""
        self._ws.receive_data(data or None)
        for event in self._ws.events():
            if isinstance(event, BytesMessage | TextMessage):
                body = event.data
                chunk = body.encode() if isinstance(body, str) else bytes(body)
                self._partial.extend(chunk)
                if event.message_finished:
                    self._pending.append(bytes(self._partial))
                    self._partial.clear()
            elif isinstance(event, Ping):
                # (no pong once we are closing: wsproto refuses to send one then)
                with contextlib.suppress(ClientGone, LocalProtocolError):
                    await self._flush(self._ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                # answered when the peer began the close; our own close was the question
                with contextlib.suppress(ClientGone, LocalProtocolError):
                    await self._flush(self._ws.send(event.response()))
                self.closed = True
        if not data:
            self.closed = True

    async def close(self, code: int = 1000) -> None:
        """The closing handshake: our close frame, then the peer's (or its EOF), at most
        `CLOSE_WAIT` seconds. Closing the socket with the peer's frames still unread would
        reset the connection, and the peer could lose the last frames we sent (the status)."""
        if self.closed:
            return
        try:
            await self._flush(self._ws.send(CloseConnection(code=code)))
        except ClientGone:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drain(), CLOSE_WAIT)
        self.closed = True

    async def _drain(self) -> None:
        while not self.closed:
            await self._pump()
            self._pending.clear()


Handler = Callable[[Exchange, dict[str, str]], Awaitable[None]]
Authorizer = Callable[[Request], Awaitable[tuple[int, str] | None]]


@dataclass
class Route:
    methods: tuple[str, ...]
    parts: tuple[str, ...]  # literal segments, "{name}" for a parameter
    handler: Handler

    def match(self, path: str) -> dict[str, str] | None:
        segments = [unquote(s) for s in path.strip("/").split("/")]
        if len(segments) != len(self.parts):
            return None
        params: dict[str, str] = {}
        for part, segment in zip(self.parts, segments, strict=True):
            if part.startswith("{"):
                if not segment:
                    return None
                params[part[1:-1]] = segment
            elif part != segment:
                return None
        return params


def route(methods: str, template: str, handler: Handler) -> Route:
    return Route(tuple(methods.split(",")), tuple(template.strip("/").split("/")), handler)


@dataclass
class KubeletServer:
    """`start()` binds and serves on a thread of its own; `stop()` closes every connection."""

    host: str
    port: int
    tls: ssl.SSLContext
    routes: list[Route]
    authorize: Authorizer
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(
            CALL_WORKERS, thread_name_prefix="flyk-kubelet-call"
        )
    )
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _server: asyncio.Server | None = None
    _thread: threading.Thread | None = None
    _connections: set[asyncio.Task[None]] = field(default_factory=set)
    bound_port: int = 0

    def start(self) -> KubeletServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self._listen())
            except BaseException as error:  # reported to start()'s caller
                failure.append(error)
                ready.set()
                return
            ready.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, name="flyk-kubelet-api", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._serve,
            self.host,
            self.port,
            ssl=self.tls,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
            limit=MAX_HEADER_BYTES,
        )
        self.bound_port = int(self._server.sockets[0].getsockname()[1])

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._connections):
                task.cancel()
            if self._connections:
                await asyncio.wait(list(self._connections), timeout=timeout)

        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout + 1)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        self.executor.shutdown(wait=False, cancel_futures=True)
        if not self._thread.is_alive():
            self.loop.close()
        self._thread = None

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking call on the shared pool."""
        return await self.loop.run_in_executor(self.executor, function, *args)

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    # connections --------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._connection(reader, writer)
        except (ClientGone, ConnectionError, OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:  # a bug: logged, and only this connection ends
            log.exception("kubelet API connection failed")
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        identity = _identity(writer.get_extra_info("peercert"))
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        while True:
            event = await _next_event(conn, reader, IDLE_TIMEOUT)
            if not isinstance(event, h11.Request):
                return
            request = _request(event, identity)
            if not await _drain_body(conn, reader):
                return
            exchange = Exchange(self, conn, reader, writer, request)
            try:
                await self._dispatch(exchange)
            finally:
                exchange.close_task()
            finished = conn.our_state is h11.DONE and conn.their_state is h11.DONE
            # A stream that watched for the peer's EOF may have read a byte of what came next.
            if request.is_websocket or not finished or exchange.watched_peer:
                return
            conn.start_next_cycle()

    async def _dispatch(self, exchange: Exchange) -> None:
        request = exchange.request
        if request.identity is None:
            await exchange.respond(401, "Unauthorized: a client certificate is required\n")
            return
        matched: tuple[Route, dict[str, str]] | None = None
        methods: list[str] = []
        for candidate in self.routes:
            params = candidate.match(request.path)
            if params is None:
                continue
            methods.extend(candidate.methods)
            if request.method in candidate.methods:
                matched = (candidate, params)
                break
        if matched is None:
            if methods:
                await exchange.respond(405, f"method {request.method} not allowed\n")
            else:
                await exchange.respond(404, f"404 page not found: {request.path}\n")
            return
        refused = await self.authorize(request)
        if refused is not None:
            await exchange.respond(*refused)
            return
        await matched[0].handler(exchange, matched[1])
        if not exchange.answered:
            await exchange.respond(500, "no answer\n")


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader, timeout: float) -> Any:
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:
            return None
        if event is h11.NEED_DATA:
            try:
                data = await asyncio.wait_for(reader.read(READ_CHUNK), timeout)
            except TimeoutError:
                return None
            conn.receive_data(data)
            if not data and conn.their_state is h11.IDLE:
                return None
            continue
        if event is h11.PAUSED:
            return None
        return event


async def _drain_body(conn: h11.Connection, reader: asyncio.StreamReader) -> bool:
    """Read (and drop) the request's body; False when the peer went away or sent too much."""
    size = 0
    while True:
        event = await _next_event(conn, reader, 30.0)
        if event is None or isinstance(event, h11.ConnectionClosed):
            return conn.their_state is h11.DONE
        if isinstance(event, h11.EndOfMessage):
            return True
        if isinstance(event, h11.Data):
            size += len(event.data)
            if size > MAX_BODY_BYTES:
                return False


def _request(event: h11.Request, identity: Identity | None) -> Request:
    target = event.target.decode("latin-1")
    parts = urlsplit(target)
    headers: dict[str, str] = {}
    for name, value in event.headers:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return Request(
        method=event.method.decode("ascii", "replace"),
        path=parts.path,
        query=parse_qs(parts.query, keep_blank_values=True),
        headers=headers,
        identity=identity,
    )


def _identity(peercert: Any) -> Identity | None:
    """The verified client certificate's subject: CN the user, O the groups."""
    if not peercert:
        return None
    user = ""
    groups: list[str] = []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                user = value
            elif key == "organizationName":
                groups.append(value)
    return Identity(user, tuple(groups)) if user else None


def tls_context(cert_file: str, key_file: str, client_ca_file: str) -> ssl.SSLContext:
    """TLS 1.2+, our serving certificate; a client certificate is asked for and, when given,
    must chain to the client CA (the handshake fails otherwise); without one the request is
    answered 401."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    context.load_verify_locations(cafile=client_ca_file)
    context.verify_mode = ssl.CERT_OPTIONAL
    return context
