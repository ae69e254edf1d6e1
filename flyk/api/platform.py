"""`client.platform` (regions, placements) and `client.tokens` (the token in use)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from flyk.api._http import Call, path
from flyk.api._resource import Resource, as_list, as_mapping
from flyk.api.models import App, Placement, Regions, TokenInfo
from flyk.errors import FlykError

if TYPE_CHECKING:  # only the caller builds one: listing regions needs no machine models
    from flyk.api.models import GuestConfig

# a hint's calls: one attempt each, and a short wait for the answer
_HINT_READ_TIMEOUT = 5.0
_GB = 1024**3


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
        hint: bool = False,
    ) -> list[Placement]:
        """Where `count` machines of size `compute` would go within a region expression.

        Asking changes nothing, so it is retried like a read; with `hint=True` it is asked
        once, with a short read timeout, for a caller whose answer is only advice (a failing
        placements endpoint must not slow down a create that would fail fast or go on).
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
        call = Call(
            "POST",
            path("platform", "placements"),
            json=body,
            idempotent=True,
            limit=("placements", org_slug),
            region=region,
        )
        data = self._core.json(self._as_hint(call) if hint else call)
        return [Placement.from_api(item) for item in as_list(data, "regions")]

    def regions_with_room(
        self,
        org_slug: str | None = None,
        *,
        app_name: str | None = None,
        compute: GuestConfig | None = None,
        volume_size_gb: int | None = None,
        exclude: Collection[str] = (),
        limit: int = 5,
    ) -> list[str] | None:
        """Regions that could take one more machine of ``compute`` (and, with
        ``volume_size_gb``, its volume) in the organization ``org_slug`` (or ``app_name``'s),
        best first, leaving out ``exclude``.

        For the hint after a CapacityError (flyk fails fast and names alternatives; it never
        moves anything itself), so it must not slow that failure down: each call is asked
        once, without retries, with a short read timeout. None when a call fails: "not
        known", unlike [] ("the platform has no room anywhere").
        """
        try:
            if org_slug is None:
                get_app = Call("GET", path("apps", app_name or ""), idempotent=True)
                app = App.from_api(as_mapping(self._core.json(self._as_hint(get_app))))
                org_slug = app.org_slug or "personal"
            body: dict[str, Any] = {"org_slug": org_slug, "region": "any"}
            if compute is not None:
                body["compute"] = compute.to_api()
            if volume_size_gb is not None:
                body["volume_size_bytes"] = volume_size_gb * _GB
            call = Call(
                "POST",
                path("platform", "placements"),
                json=body,
                idempotent=True,
                limit=("placements", org_slug),
            )
            data = self._core.json(self._as_hint(call))
        except FlykError:
            return None
        placements = [Placement.from_api(item) for item in as_list(data, "regions")]
        found = [p.region for p in placements if p.region and p.count != 0]
        return [code for code in dict.fromkeys(found) if code not in exclude][:limit]

    def _as_hint(self, call: Call) -> Call:
        """One attempt with a short read timeout: for a call whose answer is only advice
        (a deadline of now leaves no time for any retry, whatever the failure)."""
        return replace(call, read_timeout=_HINT_READ_TIMEOUT, deadline=self._core.retry.clock())

    def local_published_port(self, app_name: str, port: int) -> int:
        """flyk's local backend only: the loopback port that stands for `port` of the app's
        services (Fly Proxy's role there). Made once per app and port, then kept."""
        root = self._core.base_url.rstrip("/").removesuffix("/v1")
        data = self._core.json(
            Call("POST", f"{root}/_flyk/publish", json={"app": app_name, "port": port})
        )
        host_port = as_mapping(data).get("host_port")
        if not isinstance(host_port, int):
            raise FlykError("the local backend did not say which port it published")
        return host_port

    def local_processes(self) -> list[dict[str, Any]]:
        """flyk's local backend only: the machines it runs as processes (runtime.py)."""
        root = self._core.base_url.rstrip("/").removesuffix("/v1")
        data = self._core.json(Call("GET", f"{root}/_flyk/processes", idempotent=True))
        return [dict(item) for item in as_list(data) if isinstance(item, dict)]


class TokensResource(Resource):
    def current(self) -> TokenInfo:
        data = self._core.json(
            Call("GET", path("tokens", "current"), idempotent=True, limit=("token", "*"))
        )
        return TokenInfo.from_api(as_mapping(data))
