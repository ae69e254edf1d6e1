"""Platform and tokens: regions, placements, the token in use."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from flyk.api.models._base import _LIST, Model, _extra, _strings, _wire


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
