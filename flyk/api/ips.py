"""`client.ips`: IP assignments of an app (list, create, delete)."""

from __future__ import annotations

import builtins
from typing import Any

from flyk.api._http import Call, path
from flyk.api._resource import Resource, as_list, as_mapping
from flyk.api.models import IPAssignment


class IPsResource(Resource):
    def list(self, app: str) -> builtins.list[IPAssignment]:
        data = self._core.json(
            Call(
                "GET", path("apps", app, "ip_assignments"), idempotent=True, limit=("ip_list", app)
            )
        )
        return [IPAssignment.from_api(item) for item in as_list(data, "ips")]

    def create(
        self,
        app: str,
        type: str,
        *,
        region: str | None = None,
        network: str | None = None,
        org_slug: str | None = None,
        service_name: str | None = None,
    ) -> IPAssignment:
        """Assign an IP: `type` is "v6", "v4" or "shared_v4" (flyctl's first deploy)."""
        optional = {
            "region": region,
            "network": network,
            "org_slug": org_slug,
            "service_name": service_name,
        }
        body: dict[str, Any] = {"type": type}
        body.update({key: value for key, value in optional.items() if value is not None})
        data = self._core.json(
            Call(
                "POST",
                path("apps", app, "ip_assignments"),
                json=body,
                limit=("ip_create", app),
                region=region,
            )
        )
        return IPAssignment.from_api(as_mapping(data))

    def delete(self, app: str, ip: str) -> None:
        self._core.send(
            Call(
                "DELETE",
                path("apps", app, "ip_assignments", ip),
                idempotent=True,
                limit=("ip_delete", app),
            )
        )
