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
from flyk.k8s import binary
from flyk.k8s import controlplane as cp


def launcher(config: Mapping[str, Any]) -> tuple[list[str], dict[str, str]] | None:
    """The supervisor's command line, and the binary's path as the image's ENV names it."""
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
    # On this machine the API server listens on loopback only (its published port).
    entrypoint = [sys.executable, "-m", "flyk", "ext", "k8s", "control-plane"]
    return [*entrypoint, "--bind-address=127.0.0.1", *cmd], {binary.BINARY_ENV_VAR: str(found)}
