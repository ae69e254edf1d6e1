"""`flyk ext k8s build` (compile the control-plane binary) and `flyk ext k8s control-plane`
(the control-plane machine's main process: the supervisor of flyk/k8s/supervisor.py)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from flyk.cli.context import app_context
from flyk.errors import UsageError

# The local backend runs the control-plane machine with its guest paths under a directory of
# its own, and publishes the API port on a free loopback port (flyk/local/runtime.py).
ROOT_ENV = "FLYK_ROOT"
LOCAL_PORT_ENV = "FLYK_LOCAL_PORT_{port}"


def build_command(
    ctx: typer.Context,
    force: Annotated[
        bool, typer.Option("--force", help="Build again even when the cache has this version.")
    ] = False,
) -> None:
    """Build the control-plane binary (upstream Kubernetes and kine, from controlplane/) with Go.

    The binary is cached under the user's cache dir, keyed by the module's go.mod, go.sum and
    sources: later creates reuse it. The first build downloads the modules and compiles for
    several minutes.
    """
    from flyk.k8s import binary

    out = app_context(ctx).output
    built = binary.build(force=force, progress=out.notice)
    size = f"{built.size_bytes / 1_000_000:.0f} MB"
    if built.reused:
        out.notice(f"Control plane already built ({size}): {built.path}")
    else:
        out.notice(f"Built the control plane in {built.seconds:.0f} s ({size}): {built.path}")
    out.line(str(built.path))


def control_plane_command(
    tls_san: Annotated[
        list[str] | None,
        typer.Option(
            "--tls-san",
            metavar="NAME",
            help="A name or address the API server's certificate covers (repeatable).",
        ),
    ] = None,
    bind_address: Annotated[
        str,
        typer.Option("--bind-address", metavar="ADDRESS", help="Where the API server listens."),
    ] = "0.0.0.0",
    no_kubelet: Annotated[
        bool, typer.Option("--no-kubelet", help="Run the control plane without the kubelet.")
    ] = False,
) -> None:
    """Run the control plane (kine, API server, controller-manager, scheduler) and the kubelet.

    The control-plane machine's entrypoint: it signs the boot's certificates from the CA files
    under /etc/flyk/pki, starts each component once the one before it is ready, restarts one
    that dies and stops them all on SIGTERM.
    """
    from flyk.k8s import binary, components, supervisor

    logging.basicConfig(level=logging.INFO, format="%(asctime)s flyk-supervisor: %(message)s")
    root = Path(os.environ.get(ROOT_ENV) or "/")
    port_env = LOCAL_PORT_ENV.format(port=components.API_PORT)
    port_override = os.environ.get(port_env)
    try:
        api_port = int(port_override) if port_override else components.API_PORT
    except ValueError as exc:
        raise UsageError(f"{port_env}={port_override!r} is not a port") from exc
    layout = components.Layout(
        root=root,
        api_port=api_port,
        bind_address=bind_address,
        flycast_cidr=components.flycast_range(os.environ.get("FLY_PRIVATE_IP")),
    )
    code = supervisor.run(binary.require(), layout, tls_san or [], with_kubelet=not no_kubelet)
    raise typer.Exit(code)
