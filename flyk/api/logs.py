"""`client.logs`: Fly's logs API, the polling half of what `fly logs` reads.

Fly serves an app's logs at `{FLY_API_BASE_URL or https://api.fly.io}/api/v1/apps/{app}/logs`
(fly-go `GetAppLogs`), not on the Machines API's host; the same token authorizes it. A page is
the newest lines when asked without a cursor, else the lines after the cursor, oldest first; an
empty page keeps the cursor (`next_token`). flyctl polls it with a backoff from 64 ms to about
4 s while nothing comes (reference k8s-next-capabilities.md §4.4).

Where the logs live: FLY_API_BASE_URL when set; Fly's own host when the Machines API is Fly's
(api.machines.dev, or `_api.internal` inside a machine); otherwise the Machines API's own origin,
since a Machines-compatible server (`flyk local serve`, the in-process local backend) serves the
logs path beside the Machines API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flyk.api._http import Call, path
from flyk.api._resource import Resource, as_list, as_mapping

LOGS_BASE_ENV = "FLY_API_BASE_URL"
FLY_LOGS_BASE = "https://api.fly.io"
_FLY_MACHINES_HOSTS = ("api.machines.dev", "_api.internal")


def logs_base_url(machines_base_url: str, env: Mapping[str, str]) -> str:
    """Where the logs API is (see the module docstring)."""
    explicit = (env.get(LOGS_BASE_ENV) or "").strip().rstrip("/")
    if explicit:
        return explicit if "://" in explicit else f"https://{explicit}"
    parts = urlsplit(machines_base_url)
    if parts.hostname in _FLY_MACHINES_HOSTS:
        return FLY_LOGS_BASE
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class LogEntry:
    """One line. `provider` is `meta.event.provider`: `app` for the workload's own output,
    another value (`runner`, `proxy`, …) for a line the platform wrote."""

    id: str
    timestamp: str
    message: str
    instance: str = ""
    region: str = ""
    level: str = ""
    provider: str = ""

    @property
    def from_app(self) -> bool:
        return self.provider in ("", "app")

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> LogEntry:
        attributes = as_mapping(item.get("attributes"))
        meta = as_mapping(attributes.get("meta"))
        event = as_mapping(meta.get("event") or meta.get("Event"))
        return cls(
            id=str(item.get("id") or ""),
            timestamp=str(attributes.get("timestamp") or ""),
            message=str(attributes.get("message") or ""),
            instance=str(attributes.get("instance") or meta.get("instance") or ""),
            region=str(attributes.get("region") or meta.get("region") or ""),
            level=str(attributes.get("level") or ""),
            provider=str(event.get("provider") or event.get("Provider") or ""),
        )


@dataclass(frozen=True)
class LogPage:
    entries: list[LogEntry]
    next_token: str


class LogsResource(Resource):
    def page(
        self,
        app: str,
        *,
        instance: str | None = None,
        region: str | None = None,
        next_token: str = "",
        read_timeout: float | None = None,
    ) -> LogPage:
        """One page of the app's lines (of one machine with `instance`): the newest without
        `next_token`, else those after it. A read: retried like one."""
        base = logs_base_url(self._core.base_url, self._core.env)
        params = {"next_token": next_token, "instance": instance or None, "region": region}
        data = self._core.json(
            Call(
                "GET",
                base + "/api/v1" + path("apps", app, "logs"),
                params=params,
                idempotent=True,
                read_timeout=read_timeout,
            )
        )
        body = as_mapping(data)
        entries = [LogEntry.from_api(item) for item in as_list(body.get("data"))]
        token = str(as_mapping(body.get("meta")).get("next_token") or next_token)
        return LogPage(entries, token)
