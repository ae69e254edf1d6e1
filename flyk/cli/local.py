"""``flyk local``: the embedded Machines API that flyk uses when no Fly.io token is found.

``serve`` puts the same backend on a loopback port so that other tools (or another flyk,
with ``FLY_FLAPS_BASE_URL``) can use it over HTTP. The backend does not run images: machine
lifecycles are simulated, with the timings ``--timing`` selects.
"""

from __future__ import annotations

import signal
import threading
from enum import StrEnum
from typing import Annotated, Any

import typer

from flyk import config
from flyk.cli.context import app_context, open_local_backend
from flyk.cli.options import DEFAULT_ORG, JsonOption, YesOption
from flyk.errors import UsageError

app = typer.Typer(name="local", help="The embedded local backend.", no_args_is_help=True)

DEFAULT_PORT = 4280  # the port of the Machines API over WireGuard (_api.internal:4280)


class TimingChoice(StrEnum):
    instant = "instant"
    realistic = "realistic"


def _backend(timing: TimingChoice | None = None) -> Any:
    from flyk.local import Timing

    chosen = Timing.realistic() if timing is TimingChoice.realistic else Timing.instant()
    return open_local_backend(config.local_db_path(), timing=chosen)


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            "-p", "--port", min=0, max=65535, metavar="PORT", help="Port (0: any free port)."
        ),
    ] = (DEFAULT_PORT),
    timing: Annotated[
        TimingChoice,
        typer.Option(
            "--timing",
            metavar="TIMING",
            help="How long simulated transitions take: instant or realistic.",
        ),
    ] = TimingChoice.realistic,
    json: JsonOption = False,
) -> None:
    """Serve the local backend over HTTP until Ctrl-C.

    Then, in another shell: export FLY_FLAPS_BASE_URL=http://127.0.0.1:4280
    """
    out = app_context(ctx).use_json(json)
    try:
        served = _backend(timing).serve(host=host, port=port)
    except OSError as error:  # the port is taken, or the address is not this machine's
        raise UsageError(
            f"cannot listen on {host}:{port}: {error.strerror or error}", hint=_listen_hint(error)
        ) from error
    # SIGTERM (a service manager, `kill`, a container stopping) stops it as Ctrl-C does; the
    # handler is in place before the URL is printed, so whoever read the URL may stop it.
    stop = threading.Event()
    try:
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    except ValueError:  # not the main thread (an embedding caller): Ctrl-C only
        previous = None
    try:
        out.emit(
            {"url": served.url, "data": str(config.local_db_path())}, lambda: out.line(served.url)
        )
        out.notice(f"Serving the local Machines API; data in {config.local_db_path()}")
        if not config.is_loopback_url(f"http://{_bracketed(host)}"):
            out.warn(
                f"listening on {host}: whoever reaches this address can use it "
                "(the local backend checks no token)"
            )
        out.notice(f"Use it with: export FLY_FLAPS_BASE_URL={served.url}   (Ctrl-C stops)")
        stop.wait()
        out.notice("Stopped.")
    except KeyboardInterrupt:
        out.notice("Stopped.")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        served.close()


def _listen_hint(error: OSError) -> str:
    import errno
    import socket

    if isinstance(error, socket.gaierror) or error.errno == errno.EADDRNOTAVAIL:
        return "Give an address of this machine with --host, e.g. 127.0.0.1 (or 0.0.0.0: all)."
    return "Pick another port with -p/--port, or --port 0 for any free one."


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@app.command("status")
def status(ctx: typer.Context, json: JsonOption = False) -> None:
    """Where the local backend keeps its data, what is in it, and which machines it runs for
    real (control planes), with their log files."""
    context = app_context(ctx)
    out = context.use_json(json)
    context.force_local()
    path = config.local_db_path()
    exists = path.exists()
    apps = context.client.apps.list(DEFAULT_ORG) if exists else []
    processes = context.client.platform.local_processes() if exists else []
    document = {
        "data": str(path),
        "exists": exists,
        "size_bytes": path.stat().st_size if exists else 0,
        "apps": len(apps),
        "processes": processes,
    }

    def render() -> None:
        out.detail(
            [
                ("DATA", document["data"]),
                ("EXISTS", exists),
                ("SIZE BYTES", document["size_bytes"]),
                ("APPS", document["apps"]),
            ]
        )
        for process in processes:
            state = f"running (pid {process['pid']})" if process["running"] else "not running"
            out.line(
                f"MACHINE {process['machine_id']} (app {process['app']}): {state}; "
                f"log {process['log']}"
            )

    out.emit(document, render)


@app.command("reset")
def reset(ctx: typer.Context, yes: YesOption = False, json: JsonOption = False) -> None:
    """Delete everything in the local backend (apps, machines, volumes, secrets)."""
    context = app_context(ctx)
    out = context.use_json(json)
    path = config.local_db_path()
    if not out.confirm(f"Delete every app, machine and volume in {path}?", yes=yes):
        out.declined("Nothing deleted.")
    _backend().reset()
    out.emit({"data": str(path), "reset": True}, lambda: out.success(f"Reset {path}"))
