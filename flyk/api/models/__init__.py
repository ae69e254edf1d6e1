"""Typed models of the Machines API: frozen dataclasses with `from_api(dict)` / `to_api()`.

Every model keeps the wire fields it does not know in `extra` and merges them back in
`to_api()`, so a read-modify-write (get a machine, change its image, update) never drops
config that flyk does not model. Parsing is lenient: missing fields become None or empty,
`null` lists become empty, and the disagreements listed in reference §12 are all accepted.

Collections are typed as `Sequence`/`Mapping` so callers may pass lists and dicts; `to_api`
omits None values and empty collections (the API treats absent and empty alike).
Durations are Go duration strings ("10s"); `go_duration(seconds)` builds one.

The models live in three private modules, each imported on first use of one of its names
(`from flyk.api.models import App` does not build the thirty-odd machine config classes):
`_machines` (machine config, machines, events, leases), `_apps` (apps, volumes, secrets,
IPs) and `_platform` (regions, placements, tokens). Import them from here, never from there.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from flyk.api.models._base import Model, go_duration

if TYPE_CHECKING:
    from flyk.api.models._apps import (
        App,
        IPAssignment,
        Organization,
        Secret,
        Volume,
        VolumeExtension,
    )
    from flyk.api.models._machines import (
        CheckConfig,
        CheckStatus,
        ConcurrencyConfig,
        ContainerConfig,
        DnsConfig,
        ExecResult,
        FileConfig,
        GuestConfig,
        InitConfig,
        Lease,
        Machine,
        MachineConfig,
        MachineEvent,
        MachineVersion,
        MountConfig,
        PortConfig,
        RestartConfig,
        ServiceConfig,
        StopConfig,
    )
    from flyk.api.models._platform import Placement, Region, Regions, TokenGrant, TokenInfo

_MODULE_OF: dict[str, str] = {
    **dict.fromkeys(
        ("App", "IPAssignment", "Organization", "Secret", "Volume", "VolumeExtension"), "_apps"
    ),
    **dict.fromkeys(
        (
            "CheckConfig",
            "CheckStatus",
            "ConcurrencyConfig",
            "ContainerConfig",
            "DnsConfig",
            "ExecResult",
            "FileConfig",
            "GuestConfig",
            "InitConfig",
            "Lease",
            "Machine",
            "MachineConfig",
            "MachineEvent",
            "MachineVersion",
            "MountConfig",
            "PortConfig",
            "RestartConfig",
            "ServiceConfig",
            "StopConfig",
        ),
        "_machines",
    ),
    **dict.fromkeys(("Placement", "Region", "Regions", "TokenGrant", "TokenInfo"), "_platform"),
}


def __getattr__(name: str) -> Any:
    """Import the module that defines `name` on first use (PEP 562), then keep it here."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF})


__all__ = [
    "App",
    "CheckConfig",
    "CheckStatus",
    "ConcurrencyConfig",
    "ContainerConfig",
    "DnsConfig",
    "ExecResult",
    "FileConfig",
    "GuestConfig",
    "IPAssignment",
    "InitConfig",
    "Lease",
    "Machine",
    "MachineConfig",
    "MachineEvent",
    "MachineVersion",
    "Model",
    "MountConfig",
    "Organization",
    "Placement",
    "PortConfig",
    "Region",
    "Regions",
    "RestartConfig",
    "Secret",
    "ServiceConfig",
    "StopConfig",
    "TokenGrant",
    "TokenInfo",
    "Volume",
    "VolumeExtension",
    "go_duration",
]
