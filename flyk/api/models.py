"""Typed models of the Machines API: frozen dataclasses with `from_api(dict)` / `to_api()`.

Every model keeps the wire fields it does not know in `extra` and merges them back in
`to_api()`, so a read-modify-write (get a machine, change its image, update) never drops
config that flyk does not model. Parsing is lenient: missing fields become None or empty,
`null` lists become empty, and the disagreements listed in reference §12 are all accepted.

Collections are typed as `Sequence`/`Mapping` so callers may pass lists and dicts; `to_api`
omits None values and empty collections (the API treats absent and empty alike).
Durations are Go duration strings ("10s"); `go_duration(seconds)` builds one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar, Self

from flyk.api._constants import LAUNCH_ID_KEY

# -- the generic wire mapping ---------------------------------------------------------------

_ONE, _LIST, _MAP = "one", "list", "map"


def go_duration(seconds: float) -> str:
    """A Go duration string: 10 → "10s", 0.5 → "500ms", 1.25 → "1.25s"."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    millis = seconds * 1000
    if millis == int(millis):
        return f"{int(millis)}ms"
    return f"{seconds}s"


def _duration_in(value: Any) -> Any:
    """Durations arrive as strings, or (docs, fly-go) as integer nanoseconds (§12.5)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return go_duration(value / 1e9)
    return value


def _wire(model: type[Model], shape: str = _ONE) -> dict[str, Any]:
    """Field metadata: the field holds a model, a list of models or a name → model map."""
    return {"model": model, "shape": shape}


def _duration() -> Any:
    return field(default=None, metadata={"decode": _duration_in})


def _strings() -> Any:
    return field(default=())


def _mapping() -> Any:
    return field(default_factory=dict)


def _extra() -> Any:
    return field(default_factory=dict, repr=False)


class Model:
    """Base of every model: the generic, lenient `from_api` and the merging `to_api`."""

    # Wire keys that differ from the field name (none yet need it but the hook is cheap).
    _wire_names: ClassVar[Mapping[str, str]] = {}
    extra: Mapping[str, Any]

    if TYPE_CHECKING:  # every subclass is a dataclass with its own keyword __init__

        def __init__(self, **fields: Any) -> None: ...

    @classmethod
    def from_api(cls, data: Mapping[str, Any] | None) -> Self:
        data = data if isinstance(data, Mapping) else {}
        known: dict[str, Any] = {}
        used: set[str] = set()
        for spec in fields(cls):  # type: ignore[arg-type]
            if spec.name == "extra":
                continue
            key = cls._wire_names.get(spec.name, spec.name)
            value = data.get(key)
            # An empty list or map the API sent stays in `extra`, so that it goes back as
            # sent (`handlers: []` is not the same as no handlers key to every server).
            if value is None or _is_unset(value):
                continue
            used.add(key)
            known[spec.name] = _decode(spec.metadata, value)
        extra = {key: copy.deepcopy(value) for key, value in data.items() if key not in used}
        return cls(**known, extra=extra)

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = copy.deepcopy(dict(self.extra))
        for spec in fields(self):  # type: ignore[arg-type]
            if spec.name == "extra":
                continue
            value = getattr(self, spec.name)
            if _is_unset(value):
                continue
            out[self._wire_names.get(spec.name, spec.name)] = _encode(value)
        return out


def _is_unset(value: Any) -> bool:
    """None and empty collections are left out of request bodies; "" and False are sent."""
    return value is None or (isinstance(value, list | tuple | Mapping) and not value)


def _decode(metadata: Mapping[str, Any], value: Any) -> Any:
    decoder: Callable[[Any], Any] | None = metadata.get("decode")
    if decoder is not None:
        return decoder(value)
    model: type[Model] | None = metadata.get("model")
    if model is None:
        if isinstance(value, list):
            return tuple(value)
        return value
    shape = metadata["shape"]
    if shape == _LIST:
        return tuple(model.from_api(item) for item in value if isinstance(item, Mapping))
    if shape == _MAP:
        if not isinstance(value, Mapping):
            return {}
        return {name: model.from_api(item) for name, item in value.items()}
    return model.from_api(value) if isinstance(value, Mapping) else None


def _encode(value: Any) -> Any:
    if isinstance(value, Model):
        return value.to_api()
    if isinstance(value, Mapping):
        return {key: _encode(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(item) for item in value]
    return value


# -- machine config -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class GuestConfig(Model):
    """CPU kind, count and memory; `flyk.api.machine_sizes` builds and validates these."""

    cpu_kind: str | None = None  # "shared" | "performance"
    cpus: int | None = None
    memory_mb: int | None = None
    gpus: int | None = None
    gpu_kind: str | None = None
    kernel_args: Sequence[str] = _strings()
    host_dedication_id: str | None = None
    max_memory_mb: int | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, kw_only=True)
class InitConfig(Model):
    exec: Sequence[str] = _strings()
    entrypoint: Sequence[str] = _strings()
    cmd: Sequence[str] = _strings()
    tty: bool | None = None
    swap_size_mb: int | None = None
    kernel_args: Sequence[str] = _strings()
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, kw_only=True)
class PortConfig(Model):
    port: int | None = None
    start_port: int | None = None
    end_port: int | None = None
    handlers: Sequence[str] = _strings()
    force_https: bool | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, kw_only=True)
class CheckConfig(Model):
    """A machine or service check; interval, timeout and grace period are Go durations."""

    type: str | None = None  # "tcp" | "http"
    port: int | None = None
    interval: str | None = _duration()
    timeout: str | None = _duration()
    grace_period: str | None = _duration()
    method: str | None = None
    path: str | None = None
    protocol: str | None = None
    kind: str | None = None  # "informational" | "readiness"
    tls_server_name: str | None = None
    tls_skip_verify: bool | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, kw_only=True)
class ConcurrencyConfig(Model):
    type: str | None = None  # "connections" | "requests"
    soft_limit: int | None = None
    hard_limit: int | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, kw_only=True)
class ServiceConfig(Model):
    protocol: str | None = None  # "tcp" | "udp"
    internal_port: int | None = None
    ports: Sequence[PortConfig] = field(default=(), metadata=_wire(PortConfig, _LIST))
    checks: Sequence[CheckConfig] = field(default=(), metadata=_wire(CheckConfig, _LIST))
    concurrency: ConcurrencyConfig | None = field(default=None, metadata=_wire(ConcurrencyConfig))
    autostart: bool | None = None
    autostop: str | None = None  # "off" | "stop" | "suspend"
    min_machines_running: int | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, kw_only=True)
class MountConfig(Model):
    volume: str | None = None
    path: str | None = None
    name: str | None = None
    encrypted: bool | None = None
    size_gb: int | None = None
    extend_threshold_percent: int | None = None
    add_size_gb: int | None = None
    size_gb_limit: int | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, kw_only=True)
class FileConfig(Model):
    """A file written into the machine: `raw_value` is base64; prefer `secret_name` for keys."""

    guest_path: str | None = None
    raw_value: str | None = None
    secret_name: str | None = None
    image_config: str | None = None
    mode: int | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, kw_only=True)
class RestartConfig(Model):
    policy: str | None = None  # "no" | "always" | "on-failure" | "spot-price"
    max_retries: int | None = None
    gpu_bid_price: float | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, kw_only=True)
class StopConfig(Model):
    signal: str | None = None
    timeout: str | None = _duration()
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, kw_only=True)
class DnsConfig(Model):
    nameservers: Sequence[str] = _strings()
    searches: Sequence[str] = _strings()
    options: Sequence[Mapping[str, Any]] = _strings()
    dns_forward_rules: Sequence[Mapping[str, Any]] = _strings()
    skip_registration: bool | None = None
    hostname: str | None = None
    hostname_fqdn: str | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, kw_only=True)
class ContainerConfig(Model):
    """One container of a multi-container machine (depends_on, healthchecks kept as wire dicts)."""

    name: str | None = None
    image: str | None = None
    entrypoint: Sequence[str] = _strings()
    cmd: Sequence[str] = _strings()
    exec: Sequence[str] = _strings()
    env: Mapping[str, str] = _mapping()
    env_from: Sequence[Mapping[str, Any]] = _strings()
    files: Sequence[FileConfig] = field(default=(), metadata=_wire(FileConfig, _LIST))
    secrets: Sequence[Mapping[str, Any]] = _strings()
    user: str | None = None
    depends_on: Sequence[Mapping[str, Any]] = _strings()
    healthchecks: Sequence[Mapping[str, Any]] = _strings()
    restart: Mapping[str, Any] | None = None
    stop: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, kw_only=True)
class MachineConfig(Model):
    image: str | None = None
    env: Mapping[str, str] = _mapping()
    guest: GuestConfig | None = field(default=None, metadata=_wire(GuestConfig))
    init: InitConfig | None = field(default=None, metadata=_wire(InitConfig))
    services: Sequence[ServiceConfig] = field(default=(), metadata=_wire(ServiceConfig, _LIST))
    checks: Mapping[str, CheckConfig] = field(
        default_factory=dict, metadata=_wire(CheckConfig, _MAP)
    )
    mounts: Sequence[MountConfig] = field(default=(), metadata=_wire(MountConfig, _LIST))
    files: Sequence[FileConfig] = field(default=(), metadata=_wire(FileConfig, _LIST))
    containers: Sequence[ContainerConfig] = field(
        default=(), metadata=_wire(ContainerConfig, _LIST)
    )
    restart: RestartConfig | None = field(default=None, metadata=_wire(RestartConfig))
    stop_config: StopConfig | None = field(default=None, metadata=_wire(StopConfig))
    dns: DnsConfig | None = field(default=None, metadata=_wire(DnsConfig))
    metadata: Mapping[str, str] = _mapping()
    auto_destroy: bool | None = None
    schedule: str | None = None
    extra: Mapping[str, Any] = _extra()

    @property
    def launch_id(self) -> str | None:
        return self.metadata.get(LAUNCH_ID_KEY)

    def with_metadata(self, **values: str) -> MachineConfig:
        return replace(self, metadata={**self.metadata, **values})


# -- machines and what hangs off them -------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CheckStatus(Model):
    name: str | None = None
    status: str | None = None  # "passing" | "warning" | "critical"
    output: str | None = None
    updated_at: str | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, kw_only=True)
class MachineEvent(Model):
    id: str | None = None
    type: str | None = None  # "launch" | "start" | "exit" | ...
    status: str | None = None
    source: str | None = None
    timestamp: int | None = None  # milliseconds since the epoch
    request: Mapping[str, Any] = _mapping()
    extra: Mapping[str, Any] = _extra()

    @property
    def exit_event(self) -> Mapping[str, Any]:
        value = self.request.get("exit_event")
        return value if isinstance(value, Mapping) else {}

    @property
    def exit_code(self) -> int | None:
        code = self.exit_event.get("exit_code")
        return code if isinstance(code, int) else None

    @property
    def oom_killed(self) -> bool:
        return bool(self.exit_event.get("oom_killed"))


@dataclass(frozen=True, kw_only=True)
class Machine(Model):
    id: str
    name: str | None = None
    state: str | None = None
    region: str | None = None
    instance_id: str | None = None
    private_ip: str | None = None
    config: MachineConfig | None = field(default=None, metadata=_wire(MachineConfig))
    incomplete_config: MachineConfig | None = field(default=None, metadata=_wire(MachineConfig))
    image_ref: Mapping[str, Any] = _mapping()
    created_at: str | None = None
    updated_at: str | None = None
    events: Sequence[MachineEvent] = field(default=(), metadata=_wire(MachineEvent, _LIST))
    checks: Sequence[CheckStatus] = field(default=(), metadata=_wire(CheckStatus, _LIST))
    nonce: str | None = None  # set on create when lease_ttl was given
    host_status: str | None = None
    extra: Mapping[str, Any] = _extra()

    @classmethod
    def from_api(cls, data: Mapping[str, Any] | None) -> Self:
        data = data if isinstance(data, Mapping) else {}
        return super().from_api({"id": "", **data})

    @property
    def version(self) -> str | None:
        """The current version (the API calls it `instance_id`)."""
        return self.instance_id

    @property
    def metadata(self) -> Mapping[str, str]:
        cfg = self.config or self.incomplete_config
        return cfg.metadata if cfg else {}


@dataclass(frozen=True, kw_only=True)
class MachineVersion(Model):
    version: str | None = None
    user_config: MachineConfig | None = field(default=None, metadata=_wire(MachineConfig))
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, kw_only=True)
class ExecResult(Model):
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    exit_signal: int | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, kw_only=True)
class Lease(Model):
    """A machine lease; `expires_at` is in Unix seconds."""

    nonce: str = ""
    expires_at: int | None = None
    owner: str | None = None
    description: str | None = None
    version: str | None = None
    extra: Mapping[str, Any] = _extra()

    @classmethod
    def from_api(cls, data: Mapping[str, Any] | None) -> Self:
        """Accepts the bare Lease (spec) and the `{status, data: {...}}` wrapper (docs, fly-go)."""
        data = data if isinstance(data, Mapping) else {}
        inner = data.get("data")
        if isinstance(inner, Mapping) and "nonce" not in data:
            data = inner
        return super().from_api(data)


# -- apps, volumes, secrets, IPs ------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Organization(Model):
    slug: str | None = None
    name: str | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, kw_only=True)
class App(Model):
    name: str
    id: str | None = None
    status: str | None = None
    organization: Organization | None = field(default=None, metadata=_wire(Organization))
    network: str | None = None
    machine_count: int | None = None
    volume_count: int | None = None
    extra: Mapping[str, Any] = _extra()

    @classmethod
    def from_api(cls, data: Mapping[str, Any] | None) -> Self:
        data = data if isinstance(data, Mapping) else {}
        return super().from_api({"name": "", **data})

    @property
    def org_slug(self) -> str | None:
        return self.organization.slug if self.organization else None


@dataclass(frozen=True, kw_only=True)
class Volume(Model):
    id: str
    name: str | None = None
    region: str | None = None
    size_gb: int | None = None
    state: str | None = None
    encrypted: bool | None = None
    fstype: str | None = None
    zone: str | None = None
    attached_machine_id: str | None = None
    attached_alloc_id: str | None = None
    host_status: str | None = None
    created_at: str | None = None
    snapshot_retention: int | None = None
    auto_backup_enabled: bool | None = None
    extra: Mapping[str, Any] = _extra()

    @classmethod
    def from_api(cls, data: Mapping[str, Any] | None) -> Self:
        data = data if isinstance(data, Mapping) else {}
        return super().from_api({"id": "", **data})


@dataclass(frozen=True, kw_only=True)
class VolumeExtension(Model):
    volume: Volume | None = field(default=None, metadata=_wire(Volume))
    needs_restart: bool = False
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, kw_only=True)
class Secret(Model):
    """An app secret; `value` is present only when the API was asked to show values."""

    name: str
    digest: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    value: str | None = None
    extra: Mapping[str, Any] = _extra()

    @classmethod
    def from_api(cls, data: Mapping[str, Any] | None) -> Self:
        data = data if isinstance(data, Mapping) else {}
        return super().from_api({"name": "", **data})


@dataclass(frozen=True, kw_only=True)
class IPAssignment(Model):
    ip: str
    region: str | None = None
    shared: bool | None = None
    service_name: str | None = None
    created_at: str | None = None
    extra: Mapping[str, Any] = _extra()

    @classmethod
    def from_api(cls, data: Mapping[str, Any] | None) -> Self:
        data = data if isinstance(data, Mapping) else {}
        return super().from_api({"ip": "", **data})


# -- platform and tokens --------------------------------------------------------------------


def _lower_keys(data: Mapping[str, Any]) -> dict[str, Any]:
    """Regions come with `Regions`/`Nearest` (live API, fly-go) or lowercase keys (spec)."""
    return {key.lower() if isinstance(key, str) else key: value for key, value in data.items()}


@dataclass(frozen=True, kw_only=True)
class Region(Model):
    code: str
    name: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    gateway_available: bool | None = None
    requires_paid_plan: bool | None = None
    deprecated: bool | None = None
    geo_region: str | None = None
    capacity: int | None = None
    extra: Mapping[str, Any] = _extra()

    @classmethod
    def from_api(cls, data: Mapping[str, Any] | None) -> Self:
        data = _lower_keys(data) if isinstance(data, Mapping) else {}
        return super().from_api({"code": "", **data})


@dataclass(frozen=True, kw_only=True)
class Regions(Model):
    regions: Sequence[Region] = field(default=(), metadata=_wire(Region, _LIST))
    nearest: str | None = None
    extra: Mapping[str, Any] = _extra()

    @classmethod
    def from_api(cls, data: Mapping[str, Any] | None) -> Self:
        return super().from_api(_lower_keys(data) if isinstance(data, Mapping) else {})

    def codes(self) -> list[str]:
        return [region.code for region in self.regions]


@dataclass(frozen=True, kw_only=True)
class Placement(Model):
    region: str
    count: int | None = None
    concurrency: int | None = None
    extra: Mapping[str, Any] = _extra()

    @classmethod
    def from_api(cls, data: Mapping[str, Any] | None) -> Self:
        data = data if isinstance(data, Mapping) else {}
        return super().from_api({"region": "", **data})


@dataclass(frozen=True, kw_only=True)
class TokenGrant(Model):
    """One token of the bundle in use: who it is for and what it may touch."""

    token_id: str | None = None
    org_slug: str | None = None
    organization: str | None = None
    apps: Sequence[str] = _strings()
    user: str | None = None
    restricted_to_machine: str | None = None
    source_machine_id: str | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, kw_only=True)
class TokenInfo(Model):
    """`GET /tokens/current`: the tokens of the bundle (a macaroon bundle may hold several)."""

    tokens: Sequence[TokenGrant] = field(default=(), metadata=_wire(TokenGrant, _LIST))
    extra: Mapping[str, Any] = _extra()

    @property
    def org_slugs(self) -> list[str]:
        return sorted({t.org_slug for t in self.tokens if t.org_slug})
