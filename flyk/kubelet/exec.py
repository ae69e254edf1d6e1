"""`/exec`, `/attach`, `/portForward`: what Fly can do of them, and a clear refusal for the rest.

**Which stream protocol.** The control plane is Kubernetes 1.37, whose API server (feature gate
`ExtendWebSocketsToKubelet`, beta and on since 1.36) proxies a WebSocket exec straight to the
kubelet when the node declares `ExtendWebSocketsToKubelet` in `status.declaredFeatures`, which
this kubelet does (node.py); otherwise it would translate the client's WebSocket into SPDY/3.1
towards the kubelet. kubectl 1.30+ speaks WebSocket to the API server by default. So this
kubelet speaks WebSocket `v5.channel.k8s.io` only: binary messages whose first byte is the
channel (0 stdin, 1 stdout, 2 stderr, 3 the final status, 4 resize; 255 closes a channel), and
no SPDY. A client that asks for SPDY (kubectl with `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`, or
older than 1.30) is answered 400 saying so.

**exec** runs through the Machines API's `POST …/exec`, which is not interactive: it takes the
whole stdin and returns stdout, stderr and the exit code when the command is done. So the kubelet
reads stdin to its end (`kubectl exec -i` with a pipe: up to `STDIN_LIMIT`), makes one call
(timeout `EXEC_TIMEOUT`), writes stdout and stderr on their channels (each cut at
`OUTPUT_LIMIT`, with a note on stderr) and the exit code as the status kubectl turns into its
own exit code.

**exec -t, attach, port-forward** need a terminal or a connection into the machine, which the
Machines API does not offer. They end at once with one line naming what works instead.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from flyk.api import ExecResult
from flyk.kubelet.server import ClientGone, Exchange, WebSocket

PROTOCOL = "v5.channel.k8s.io"
STDIN, STDOUT, STDERR, STATUS, RESIZE = 0, 1, 2, 3, 4
CLOSE_CHANNEL = 255
EXEC_TIMEOUT = 60  # seconds, the Machines API call's `timeout`
STDIN_LIMIT = 1024 * 1024
OUTPUT_LIMIT = 8 * 1024 * 1024
_FRAME = 32 * 1024

INSTEAD = (
    "use `kubectl exec POD -- COMMAND` (no -t), `flyk machine exec MACHINE -a APP -- COMMAND`, "
    "or `fly ssh console -a APP --machine MACHINE` for a shell"
)
NO_TTY = f"flyk: an interactive terminal (-t) is not available through the Machines API; {INSTEAD}"
NO_ATTACH = f"flyk: attach is not available through the Machines API; {INSTEAD}"
NO_PORT_FORWARD = (
    "flyk: port-forward is not available through the Machines API; expose the port with a "
    "Service, or use `fly proxy PORT -a APP` (or `fly machine proxy`) from your machine"
)
SPDY_REFUSED = (
    "flyk's kubelet speaks WebSocket (v5.channel.k8s.io), not SPDY: use kubectl 1.30 or later "
    "without KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false"
)


def status_success() -> bytes:
    return json.dumps({"metadata": {}, "status": "Success"}).encode()


def status_failure(message: str, *, exit_code: int | None = None) -> bytes:
    body: dict[str, Any] = {"metadata": {}, "status": "Failure", "message": message}
    if exit_code is not None:
        body["reason"] = "NonZeroExitCode"
        body["details"] = {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]}
    else:
        body["reason"] = "InternalError"
    return json.dumps(body).encode()


def status_body(message: str, code: int) -> bytes:
    """A Status as an HTTP body, for refusals before an upgrade: client-go's dialers decode
    it for its message (a plain-text body would be read as YAML and lose it)."""
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": "BadRequest", "code": code}  # fmt: skip
    return json.dumps(body).encode()


async def open_channels(exchange: Exchange) -> WebSocket | None:
    """The 101 for a v5 WebSocket; None after answering a request we cannot serve (400)."""
    request = exchange.request
    if not request.is_websocket:
        if "spdy" in request.upgrade.lower():
            message = SPDY_REFUSED
        else:
            message = f"flyk: an exec needs a WebSocket upgrade ({PROTOCOL})"
        await exchange.respond(400, status_body(message, 400), "application/json")
        return None
    if PROTOCOL not in request.subprotocols():
        message = f"flyk's kubelet speaks {PROTOCOL} only (asked: {request.subprotocols()})"
        await exchange.respond(400, status_body(message, 400), "application/json")
        return None
    return await exchange.websocket(PROTOCOL)


async def refuse_stream(exchange: Exchange, message: str) -> None:
    """Upgrade and end at once with `message` as the status: kubectl prints it and exits 1."""
    ws = await open_channels(exchange)
    if ws is None:
        return
    await finish(ws, status_failure(message))


async def finish(ws: WebSocket, status: bytes) -> None:
    try:
        await ws.send(bytes([STATUS]) + status)
    except ClientGone:
        return
    await ws.close()


async def read_stdin(ws: WebSocket, wanted: bool) -> bytes | None:
    """stdin to its end (its channel closed, or the socket); None when it was too big."""
    if not wanted:
        return b""
    data = bytearray()
    while True:
        message = await ws.receive()
        if message is None:
            return bytes(data)
        if not message:
            continue
        channel, payload = message[0], message[1:]
        if channel == STDIN:
            data.extend(payload)
            if len(data) > STDIN_LIMIT:
                return None
        elif channel == CLOSE_CHANNEL and payload[:1] == bytes([STDIN]):
            return bytes(data)


async def send_output(ws: WebSocket, channel: int, text: str) -> None:
    raw = text.encode("utf-8", "replace")
    for start in range(0, len(raw), _FRAME):
        await ws.send(bytes([channel]) + raw[start : start + _FRAME])


def _cut(text: str, name: str, notes: list[str]) -> str:
    if len(text.encode("utf-8", "replace")) <= OUTPUT_LIMIT:
        return text
    notes.append(f"flyk: {name} cut at {OUTPUT_LIMIT} bytes\n")
    return text.encode("utf-8", "replace")[:OUTPUT_LIMIT].decode("utf-8", "ignore")


RunExec = Callable[[list[str], str | None], Awaitable[ExecResult]]


async def serve_exec(exchange: Exchange, run: RunExec, *, problem: str | None = None) -> None:
    """One exec: `run(command, stdin)` is the Machines API call; `problem` a reason to refuse
    that is known before running anything (no machine yet, machine gone)."""
    request = exchange.request
    if request.flag("tty"):
        # Before the upgrade: once a terminal is attached, kubectl's stdin and resize writers
        # race the end of the stream and print errors of their own over the message.
        await exchange.respond(400, status_body(NO_TTY, 400), "application/json")
        return
    ws = await open_channels(exchange)
    if ws is None:
        return
    if problem is not None:
        await finish(ws, status_failure(problem))
        return
    command = request.params("command")
    if not command:
        await finish(ws, status_failure("flyk: exec needs a command (kubectl exec POD -- CMD)"))
        return
    stdin = await read_stdin(ws, request.flag("input"))
    if stdin is None:
        await finish(ws, status_failure(f"flyk: stdin is larger than {STDIN_LIMIT} bytes"))
        return
    try:
        result = await run(command, stdin.decode("utf-8", "replace") if stdin else None)
    except ExecRefused as refused:
        await finish(ws, status_failure(str(refused)))
        return
    notes: list[str] = []
    try:
        if request.flag("output"):
            await send_output(ws, STDOUT, _cut(result.stdout, "stdout", notes))
        if request.flag("error"):
            await send_output(ws, STDERR, _cut(result.stderr, "stderr", notes) + "".join(notes))
    except ClientGone:
        return
    await finish(ws, exit_status(command, result))


def exit_status(command: list[str], result: ExecResult) -> bytes:
    code = result.exit_code
    if code is None and result.exit_signal:
        code = 128 + result.exit_signal
    if not code:
        return status_success()
    return status_failure(
        f"command terminated with non-zero exit code: error executing command {command}, "
        f"exit code {code}",
        exit_code=code,
    )


class ExecRefused(Exception):
    """The Machines API would not run the command (machine gone, not started, …): the message
    is for the user."""
