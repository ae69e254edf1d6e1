"""The shared Machines API client layer: every call flyk makes to the API goes through here.

`FlyClient` is the entry point; models are frozen dataclasses with `from_api` / `to_api`;
`flyk.api.machine_sizes` holds the guest presets and their validation.

Names are loaded on first use (PEP 562): `import flyk.api` costs next to nothing, and
`from flyk.api import App` does not import httpx. Shell completion and `--help` depend on it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flyk.api._auth import (
        authorization_header,
        redact_headers,
        redact_text,
        resolve_base_url,
    )
    from flyk.api._constants import LAUNCH_ID_KEY, LEASE_NONCE_HEADER
    from flyk.api._ratelimit import Limit, RateLimiter, default_rate_limiter
    from flyk.api._retry import RetryPolicy, backoff, fits_deadline, retry_delay
    from flyk.api.client import FlyClient
    from flyk.api.models import (
        App,
        CheckConfig,
        CheckStatus,
        ConcurrencyConfig,
        ContainerConfig,
        DnsConfig,
        ExecResult,
        FileConfig,
        GuestConfig,
        InitConfig,
        IPAssignment,
        Lease,
        Machine,
        MachineConfig,
        MachineEvent,
        MachineVersion,
        Model,
        MountConfig,
        Organization,
        Placement,
        PortConfig,
        Region,
        Regions,
        RestartConfig,
        Secret,
        ServiceConfig,
        StopConfig,
        TokenGrant,
        TokenInfo,
        Volume,
        VolumeExtension,
        go_duration,
    )

# Where each public name lives; models not listed come from `flyk.api.models`.
_MODULE_OF: dict[str, str] = {
    "authorization_header": "_auth",
    "redact_headers": "_auth",
    "redact_text": "_auth",
    "resolve_base_url": "_auth",
    "LAUNCH_ID_KEY": "_constants",
    "LEASE_NONCE_HEADER": "_constants",
    "Limit": "_ratelimit",
    "RateLimiter": "_ratelimit",
    "default_rate_limiter": "_ratelimit",
    "RetryPolicy": "_retry",
    # the retry policy's pacing, for workflows that poll what the API cannot wait on
    "backoff": "_retry",
    "fits_deadline": "_retry",
    "retry_delay": "_retry",
    "FlyClient": "client",
}
# Public submodules, reachable as attributes once `flyk.api` is imported (as they always were).
_SUBMODULES = frozenset(
    "apps client ips logs machine_sizes machines models platform secrets volumes".split()
)


def __getattr__(name: str) -> Any:
    """Import what defines `name` on first use, then keep it as a plain attribute."""
    if name in _SUBMODULES:
        return import_module(f"{__name__}.{name}")
    if name in __all__:
        module = import_module(f"{__name__}.{_MODULE_OF.get(name, 'models')}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_SUBMODULES})


__all__ = [
    "LAUNCH_ID_KEY",
    "LEASE_NONCE_HEADER",
    "App",
    "CheckConfig",
    "CheckStatus",
    "ConcurrencyConfig",
    "ContainerConfig",
    "DnsConfig",
    "ExecResult",
    "FileConfig",
    "FlyClient",
    "GuestConfig",
    "IPAssignment",
    "InitConfig",
    "Lease",
    "Limit",
    "Machine",
    "MachineConfig",
    "MachineEvent",
    "MachineVersion",
    "Model",
    "MountConfig",
    "Organization",
    "Placement",
    "PortConfig",
    "RateLimiter",
    "Region",
    "Regions",
    "RestartConfig",
    "RetryPolicy",
    "Secret",
    "ServiceConfig",
    "StopConfig",
    "TokenGrant",
    "TokenInfo",
    "Volume",
    "VolumeExtension",
    "authorization_header",
    "backoff",
    "default_rate_limiter",
    "fits_deadline",
    "go_duration",
    "redact_headers",
    "redact_text",
    "resolve_base_url",
    "retry_delay",
]
