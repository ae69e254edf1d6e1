"""`client.volumes`: list, get, create, extend, delete."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

from flyk.api._http import Call, path
from flyk.api._resource import Resource, as_list, as_mapping
from flyk.api.models import Volume, VolumeExtension

if TYPE_CHECKING:  # only the caller builds one: listing volumes needs no machine models
    from flyk.api.models import GuestConfig


class VolumesResource(Resource):
    def list(self, app: str) -> builtins.list[Volume]:
        data = self._core.json(
            Call("GET", path("apps", app, "volumes"), idempotent=True, limit=("volume_list", app))
        )
        return [Volume.from_api(item) for item in as_list(data, "volumes")]

    def get(self, app: str, volume_id: str) -> Volume:
        data = self._core.json(
            Call(
                "GET",
                path("apps", app, "volumes", volume_id),
                idempotent=True,
                limit=("volume_get", volume_id),
            )
        )
        return Volume.from_api(as_mapping(data))

    def create(
        self,
        app: str,
        name: str,
        region: str,
        size_gb: int,
        *,
        encrypted: bool | None = None,
        fstype: str | None = None,
        snapshot_id: str | None = None,
        source_volume_id: str | None = None,
        require_unique_zone: bool | None = None,
        compute: GuestConfig | None = None,
        snapshot_retention: int | None = None,
        auto_backup_enabled: bool | None = None,
    ) -> Volume:
        """Create a volume; `compute` hints the machine size so the host can take it."""
        optional: dict[str, Any] = {
            "encrypted": encrypted,
            "fstype": fstype,
            "snapshot_id": snapshot_id,
            "source_volume_id": source_volume_id,
            "require_unique_zone": require_unique_zone,
            "compute": compute.to_api() if compute else None,
            "snapshot_retention": snapshot_retention,
            "auto_backup_enabled": auto_backup_enabled,
        }
        body = {"name": name, "region": region, "size_gb": size_gb}
        body.update({key: value for key, value in optional.items() if value is not None})
        data = self._core.json(
            Call(
                "POST",
                path("apps", app, "volumes"),
                json=body,
                limit=("volume_create", app),
                region=region,
            )
        )
        return Volume.from_api(as_mapping(data))

    def extend(self, app: str, volume_id: str, size_gb: int) -> VolumeExtension:
        """Grow a volume; `needs_restart` says whether the machine must restart to see it."""
        data = self._core.json(
            Call(
                "PUT",
                path("apps", app, "volumes", volume_id, "extend"),
                json={"size_gb": size_gb},
                # growing to an absolute size twice is the same as once
                idempotent=True,
                limit=("volume_extend", volume_id),
            )
        )
        return VolumeExtension.from_api(as_mapping(data))

    def delete(self, app: str, volume_id: str) -> None:
        self._core.send(
            Call(
                "DELETE",
                path("apps", app, "volumes", volume_id),
                idempotent=True,
                limit=("volume_delete", volume_id),
            )
        )
