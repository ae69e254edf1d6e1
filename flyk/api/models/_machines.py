"""Machine config and machines, and what hangs off them: events, versions, exec, leases."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Self

from flyk.api._constants import LAUNCH_ID_KEY
from flyk.api.models._base import _LIST, _MAP, Model, _duration, _extra, _mapping, _strings, _wire

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
