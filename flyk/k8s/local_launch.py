"""How the local backend runs flyk's control-plane image: as `flyk ext k8s control-plane`, the
image's own entrypoint, with the machine's `init.cmd` (flyk/local/runtime.py does the rest).

Only the published control-plane image runs for real, and only once the control-plane
binary is there (built with `flyk ext k8s build`, or named by FLYK_CONTROLPLANE_BIN); without
it the machine stays a simulation, as every other machine is.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from flyk.errors import FlykError
from flyk.k8s import binary, components
from flyk.k8s import controlplane as cp

# Where CoreDNS forwards names outside the cluster here: the host's own resolvers (Fly's,
# fdaa::3, exists only inside Fly).
HOST_RESOLV_CONF = "/etc/resolv.conf"


def launcher(
    config: Mapping[str, Any],
) -> tuple[list[str], dict[str, str], tuple[int, ...]] | None:
    """The supervisor's command line, the binary's path as the image's ENV names it, and the
    DNS port, which the local backend publishes on loopback as it does the API port: the
    fields of flyk.local.runtime.Launch, as a plain tuple (this layer does not import the local
    backend; the CLI wires the two)."""
    if not cp.is_control_plane_image(str(config.get("image") or "")):
        return None
    try:
        found = binary.find()
    except FlykError:  # a FLYK_CONTROLPLANE_BIN that is not a binary: simulate, as without one
        return None
    if found is None:
        return None
    init = config.get("init") or {}
    cmd = [str(arg) for arg in (init.get("cmd") or [])]
    # On this machine the API server and CoreDNS listen on loopback only (their published ports).
    entrypoint = [sys.executable, "-m", "flyk", "ext", "k8s", "control-plane"]
    local = [
        "--bind-address=127.0.0.1",
        "--dns-address=127.0.0.1",
        f"--dns-upstream={HOST_RESOLV_CONF}",
    ]
    env = {binary.BINARY_ENV_VAR: str(found)}
    return [*entrypoint, *local, *cmd], env, (components.DNS_PORT,)
