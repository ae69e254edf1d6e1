"""Apps and what belongs to one: volumes, secrets, IP assignments."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from flyk.api.models._base import Model, _extra, _wire


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
