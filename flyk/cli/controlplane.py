"""`flyk ext k8s build` (compile the control-plane binary) and `flyk ext k8s control-plane`
(the control-plane machine's main process: the supervisor of flyk/k8s/supervisor.py)."""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flyk.cli.context import app_context
from flyk.errors import UsageError

if TYPE_CHECKING:
    from flyk.k8s.components import ClusterDNS

# The local backend runs the control-plane machine with its guest paths under a directory of
# its own, and publishes the API port on a free loopback port (flyk/local/runtime.py).
ROOT_ENV = "FLYK_ROOT"
LOCAL_PORT_ENV = "FLYK_LOCAL_PORT_{port}"
PRIVATE_IP_ENV = "FLY_PRIVATE_IP"


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
    dns_address: Annotated[
        str | None,
        typer.Option(
            "--dns-address",
            metavar="ADDRESS",
            help="Where CoreDNS listens (default: the machine's 6PN address, FLY_PRIVATE_IP).",
        ),
    ] = None,
    dns_upstream: Annotated[
        list[str] | None,
        typer.Option(
            "--dns-upstream",
            metavar="ADDRESS",
            help="Where CoreDNS forwards names outside the cluster: an address, address:port "
            "or a resolv.conf path (repeatable; default: Fly's resolver, fdaa::3).",
        ),
    ] = None,
) -> None:
    """Run the control plane (kine, API server, controllers, scheduler, CoreDNS) and the kubelet.

    The control-plane machine's entrypoint: it signs the boot's certificates from the CA files
    under /etc/flyk/pki, starts each component once the one before it is ready, restarts one
    that dies and stops them all on SIGTERM. Pods get CoreDNS, on the machine's 6PN address,
    as their nameserver.
    """
    from flyk.k8s import binary, components, supervisor

    logging.basicConfig(level=logging.INFO, format="%(asctime)s flyk-supervisor: %(message)s")
    root = Path(os.environ.get(ROOT_ENV) or "/")
    api_port = _port(components.API_PORT)
    layout = components.Layout(
        root=root,
        api_port=api_port,
        bind_address=bind_address,
        flycast_cidr=components.flycast_range(os.environ.get(PRIVATE_IP_ENV)),
    )
    dns = _cluster_dns(dns_address, dns_upstream or [])
    code = supervisor.run(
        binary.require(), layout, tls_san or [], with_kubelet=not no_kubelet, dns=dns
    )
    raise typer.Exit(code)


def _port(port: int) -> int:
    """The port a component listens on: the local backend's published stand-in, else `port`."""
    name = LOCAL_PORT_ENV.format(port=port)
    override = os.environ.get(name)
    try:
        return int(override) if override else port
    except ValueError as exc:
        raise UsageError(f"{name}={override!r} is not a port") from exc


def _cluster_dns(address: str | None, upstreams: list[str]) -> ClusterDNS | None:
    """CoreDNS's settings: pods are given the machine's 6PN address (Fly sets FLY_PRIVATE_IP,
    as the local backend does); without one there is no address to give, and no cluster DNS."""
    from flyk.k8s import components

    nameserver = os.environ.get(PRIVATE_IP_ENV, "")
    if not nameserver:
        logging.getLogger("flyk.supervisor").warning(
            "%s is not set: no cluster DNS (pods keep the machines' own resolver)", PRIVATE_IP_ENV
        )
        return None
    try:
        nameserver = str(ipaddress.ip_address(nameserver))  # canonical, as DNS answers show it
    except ValueError as exc:
        raise UsageError(f"{PRIVATE_IP_ENV}={nameserver!r} is not an IP address") from exc
    return components.ClusterDNS(
        listen=address or nameserver,
        nameserver=nameserver,
        port=_port(components.DNS_PORT),
        upstreams=tuple(upstreams) or (components.FLY_RESOLVER,),
    )
