"""The embedded local backend: the Fly.io Machines API served from SQLite.

Written from the spec (`shared/specs/machines-openapi.json`), never from `flyk.api`, so a bug
shared by client and backend cannot pass both. Images are not run: workloads are simulated.
See docs/local-backend.md.
"""

from __future__ import annotations

from flyk.local.backend import DB_ENV_VAR, LocalBackend, default_path
from flyk.local.knobs import Capacity, FaultRule, Faults, RateLimits, Timing
from flyk.local.store import LocalDatabaseError, LocalStorageError

__all__ = [
    "DB_ENV_VAR",
    "Capacity",
    "FaultRule",
    "Faults",
    "LocalBackend",
    "LocalDatabaseError",
    "LocalStorageError",
    "RateLimits",
    "Timing",
    "default_path",
]
