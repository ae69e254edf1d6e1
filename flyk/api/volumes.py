"""`client.volumes`: list, get, create, extend, delete."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flyk.api._http import Call, path
from flyk.api._resource import Resource, as_list, as_mapping, pause
from flyk.api.models import Volume, VolumeExtension
from flyk.errors import FlykError, NetworkError, ServerError, WaitTimeoutError

if TYPE_CHECKING:  # only the caller builds one: listing volumes needs no machine models
    from flyk.api.models import GuestConfig


# Failures after which a create may or may not have happened (reference §10).
_AMBIGUOUS = (ServerError, NetworkError, WaitTimeoutError)
# states of a volume on its way out: never the one a create just made
_GONE = frozenset({"destroyed", "destroying", "pending_destroy", "scheduling_destroy"})


@dataclass(frozen=True)
class _Wanted:
    name: str
    region: str
    size_gb: int | None  # None: restored from a snapshot or a volume, whose size may differ


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
        reuse_named: bool = False,
    ) -> Volume:
        """Create a volume; `compute` hints the machine size so the host can take it.

        `reuse_named`: a volume of this name already in the app (not on its way out) is
        returned instead of making another, found in the list the create makes anyway. For
        names that are a key (the volume provisioner's carry the claim's uid), this makes the
        create idempotent across processes: one made by an earlier run is found, not doubled.
        """
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
        call = Call(
            "POST", path("apps", app, "volumes"), json=body, limit=("volume_create", app),
            region=region,
        )  # fmt: skip
        # A volume has no metadata to carry a launch id, so a create whose answer was lost is
        # recognised by what it asked for (name, region, size) among the volumes that were
        # not there before it: ids listed first, one GET per create.
        listed = self.list(app)
        if reuse_named:
            named = [v for v in listed if v.name == name and v.state not in _GONE]
            if named:
                return named[0]
        before = {volume.id for volume in listed}
        wanted = _Wanted(name, region, None if snapshot_id or source_volume_id else size_gb)
        deadline = self._core.retry.clock() + self._core.retry.deadline
        attempt = 0
        while True:
            attempt += 1
            try:
                return Volume.from_api(as_mapping(self._core.json(call)))
            except _AMBIGUOUS:
                made = self._made(app, wanted, before)
                if made is not None:
                    return made
                if attempt >= self._core.retry.max_attempts or not pause(
                    self._core, attempt, deadline
                ):
                    raise
                made = self._made(app, wanted, before)  # a list may lag the write it follows
                if made is not None:
                    return made

    def _made(self, app: str, wanted: _Wanted, before: set[str]) -> Volume | None:
        """The volume a create whose answer was lost made, if it made one."""
        new = [
            volume
            for volume in self.list(app)
            if volume.id not in before
            and volume.state not in _GONE
            and (volume.name, volume.region) == (wanted.name, wanted.region)
            and (wanted.size_gb is None or volume.size_gb == wanted.size_gb)
        ]
        if len(new) > 1:  # another create of the same volume ran at the same time
            raise FlykError(
                f"the answer to creating volume {wanted.name} in {wanted.region} was lost, and "
                f"{len(new)} such volumes appeared meanwhile ({', '.join(v.id for v in new)}): "
                "flyk cannot tell which one it made",
                hint=f"See them with flyk volumes list -a {app}; destroy the one not needed.",
            )
        return new[0] if new else None

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
