"""`client.platform` (regions, placements) and `client.tokens` (the token in use)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flyk.api._http import Call, path
from flyk.api._resource import Resource, as_list, as_mapping
from flyk.api.models import Placement, Regions, TokenInfo

if TYPE_CHECKING:  # only the caller builds one: listing regions needs no machine models
    from flyk.api.models import GuestConfig


class PlatformResource(Resource):
    def regions(self) -> Regions:
        """All regions and the one nearest the caller (keys parsed case-insensitively)."""
        data = self._core.json(
            Call("GET", path("platform", "regions"), idempotent=True, limit=("regions", "*"))
        )
        return Regions.from_api(as_mapping(data))

    def placements(
        self,
        org_slug: str,
        *,
        region: str,
        compute: GuestConfig,
        count: int = 1,
        volume_name: str | None = None,
        volume_size_bytes: int | None = None,
    ) -> list[Placement]:
        """Where `count` machines of size `compute` would go within a region expression.

        Asking changes nothing, so it is retried like a read.
        """
        body: dict[str, Any] = {
            "org_slug": org_slug,
            "region": region,
            "compute": compute.to_api(),
            "count": count,
        }
        if volume_name is not None:
            body["volume_name"] = volume_name
        if volume_size_bytes is not None:
            body["volume_size_bytes"] = volume_size_bytes
        data = self._core.json(
            Call(
                "POST",
                path("platform", "placements"),
                json=body,
                idempotent=True,
                limit=("placements", org_slug),
                region=region,
            )
        )
        return [Placement.from_api(item) for item in as_list(data, "regions")]


class TokensResource(Resource):
    def current(self) -> TokenInfo:
        data = self._core.json(
            Call("GET", path("tokens", "current"), idempotent=True, limit=("token", "*"))
        )
        return TokenInfo.from_api(as_mapping(data))
