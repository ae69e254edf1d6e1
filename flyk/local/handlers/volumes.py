"""Volumes: list, create (or fork), show, update, extend, delete. One machine per volume."""

from __future__ import annotations

import hashlib
import sqlite3
from typing import Any

from flyk.local import ids
from flyk.local.context import Ctx, Reply
from flyk.local.errors import bad_request, not_found, precondition
from flyk.local.lifecycle import rfc3339
from flyk.local.records import MachineRecord, advance, get_app
from flyk.local.regions import REGIONS
from flyk.local.validate import VOLUME_NAME, check_fields, require

CREATE_FIELDS = {
    "auto_backup_enabled": "bool?", "compute": "obj?", "compute_image": "str?",
    "encrypted": "bool?", "fstype": "str?", "name": "str", "region": "str?",
    "require_unique_zone": "bool?", "size_gb": "int?", "snapshot_id": "str?",
    "snapshot_retention": "int?", "source_volume_id": "str?", "unique_zone_app_wide": "bool?",
}  # fmt: skip
MAX_SIZE_GB = 500
MAX_RETENTION_DAYS = 60
BLOCK_SIZE = 4096


def volume_json(row: sqlite3.Row) -> dict[str, Any]:
    total = row["size_gb"] * 1024**3
    used = 0
    blocks = total // BLOCK_SIZE
    body: dict[str, Any] = {
        "id": row["id"],
        "name": row["name"],
        "state": row["state"],
        "size_gb": row["size_gb"],
        "region": row["region"],
        "zone": row["zone"],
        "encrypted": bool(row["encrypted"]),
        "fstype": row["fstype"],
        "type": "local",
        "host_status": "ok",
        "attached_machine_id": row["attached_machine_id"],
        "attached_alloc_id": row["attached_machine_id"],
        "auto_backup_enabled": bool(row["auto_backup_enabled"]),
        "snapshot_retention": row["snapshot_retention"],
        "created_at": rfc3339(row["created_ms"]),
        "block_size": BLOCK_SIZE,
        "blocks": blocks,
        "blocks_free": blocks,
        "blocks_avail": blocks,
        "bytes_total": total,
        "bytes_used": used,
    }
    # The spec types these as strings (no null): an unattached volume omits them.
    return {key: value for key, value in body.items() if value is not None}


def _get(ctx: Ctx) -> sqlite3.Row:
    app = get_app(ctx.db, ctx.params["app_name"])["name"]
    row: sqlite3.Row | None = ctx.db.execute(
        "SELECT * FROM volumes WHERE id = ? AND app = ?", (ctx.params["volume_id"], app)
    ).fetchone()
    if row is None or row["state"] == "destroyed":
        raise not_found(f"volume {ctx.params['volume_id']!r}")
    return row


def _reload(ctx: Ctx, volume_id: str) -> sqlite3.Row:
    row: sqlite3.Row | None = ctx.db.execute(
        "SELECT * FROM volumes WHERE id = ?", (volume_id,)
    ).fetchone()
    assert row is not None
    return row


def list_volumes(ctx: Ctx) -> Reply:
    app = get_app(ctx.db, ctx.params["app_name"])["name"]
    ctx.q_bool("summary")
    rows = ctx.db.execute(
        "SELECT * FROM volumes WHERE app = ? AND state != 'destroyed' ORDER BY created_ms, id",
        (app,),
    ).fetchall()
    return Reply(200, [volume_json(row) for row in rows])


def create_volume(ctx: Ctx) -> Reply:
    app = get_app(ctx.db, ctx.params["app_name"])["name"]
    body = ctx.json()
    check_fields(body, CREATE_FIELDS, "volume")
    name = require(body, "name", "volume")
    if not VOLUME_NAME.match(name):
        raise bad_request(
            f"invalid volume name {name!r}: use 1-30 lowercase letters, digits and underscores"
        )
    if body.get("snapshot_id"):
        raise bad_request("restoring from a snapshot is not supported by the flyk local backend")
    region, size = body.get("region"), body.get("size_gb")
    source_id = body.get("source_volume_id")
    if source_id:
        source = ctx.db.execute(
            "SELECT * FROM volumes WHERE id = ? AND state != 'destroyed'", (source_id,)
        ).fetchone()
        if source is None:
            raise not_found(f"source volume {source_id!r}")
        region = region or source["region"]
        size = size or source["size_gb"]
    if not region:
        raise bad_request("invalid volume: region is required")
    if region not in REGIONS:
        raise bad_request(
            f"unknown region {region!r}; valid regions are {', '.join(sorted(REGIONS))}"
        )
    size = 1 if size is None else size
    if not 1 <= size <= MAX_SIZE_GB:
        raise bad_request(f"invalid volume size_gb {size}: use 1 to {MAX_SIZE_GB}")
    retention = body.get("snapshot_retention")
    if retention is not None and not 1 <= retention <= MAX_RETENTION_DAYS:
        raise bad_request(f"invalid snapshot_retention: use 1 to {MAX_RETENTION_DAYS} days")
    _reserve(ctx, region, size)
    volume_id = ids.volume_id()
    ctx.db.execute(
        "INSERT INTO volumes (id, app, name, region, zone, size_gb, state, encrypted, fstype,"
        " auto_backup_enabled, snapshot_retention, attached_machine_id, created_ms)"
        " VALUES (?,?,?,?,?,?,'created',?,?,?,?,NULL,?)",
        (
            volume_id, app, name, region, ids.zone(), size,
            int(body.get("encrypted", True)), body.get("fstype") or "ext4",
            int(body.get("auto_backup_enabled", True)), 5 if retention is None else retention,
            ctx.now_ms,
        ),
    )  # fmt: skip
    return Reply(200, volume_json(_reload(ctx, volume_id)))


def volume_room_gb(ctx: Ctx, region: str) -> int:
    """GB of volumes the region's budget still holds (placements weigh it too)."""
    used = ctx.db.execute(
        "SELECT COALESCE(SUM(size_gb), 0) FROM volumes WHERE region = ? AND state != 'destroyed'",
        (region,),
    ).fetchone()[0]
    return max(0, ctx.settings.capacity.volume_limit(region) - int(used))


def _reserve(ctx: Ctx, region: str, size_gb: int) -> None:
    """400 "no capacity" (the real API's answer to a volume create, reference §9) when
    `size_gb` more does not fit the region's volume budget; nothing is written then."""
    if size_gb > volume_room_gb(ctx, region):
        raise bad_request(f"no capacity for {size_gb} GB more of volumes in {region}")


def show_volume(ctx: Ctx) -> Reply:
    return Reply(200, volume_json(_get(ctx)))


def update_volume(ctx: Ctx) -> Reply:
    row = _get(ctx)
    body = ctx.json()
    check_fields(body, {"auto_backup_enabled": "bool?", "snapshot_retention": "int?"}, "volume")
    retention = body.get("snapshot_retention")
    if retention is not None and not 1 <= retention <= MAX_RETENTION_DAYS:
        raise bad_request(f"invalid snapshot_retention: use 1 to {MAX_RETENTION_DAYS} days")
    if body.get("auto_backup_enabled") is not None:
        ctx.db.execute(
            "UPDATE volumes SET auto_backup_enabled = ? WHERE id = ?",
            (int(body["auto_backup_enabled"]), row["id"]),
        )
    if retention is not None:
        ctx.db.execute(
            "UPDATE volumes SET snapshot_retention = ? WHERE id = ?", (retention, row["id"])
        )
    return Reply(200, volume_json(_reload(ctx, row["id"])))


def extend_volume(ctx: Ctx) -> Reply:
    """Grow a volume. `needs_restart` is true when a started machine has it mounted: the
    simulated filesystem is resized at the next boot."""
    row = _get(ctx)
    body = ctx.json()
    check_fields(body, {"size_gb": "int"}, "extend request")
    size = require(body, "size_gb", "extend request")
    if size <= row["size_gb"]:
        raise bad_request(
            f"invalid size_gb {size}: must be larger than the current {row['size_gb']}"
        )
    if size > MAX_SIZE_GB:
        raise bad_request(f"invalid size_gb {size}: the maximum is {MAX_SIZE_GB}")
    _reserve(ctx, row["region"], size - row["size_gb"])
    ctx.db.execute("UPDATE volumes SET size_gb = ? WHERE id = ?", (size, row["id"]))
    needs_restart = False
    if row["attached_machine_id"]:
        machine = ctx.db.execute(
            "SELECT * FROM machines WHERE id = ?", (row["attached_machine_id"],)
        ).fetchone()
        if machine is not None:
            m = MachineRecord.from_row(machine)
            advance(ctx.db, m, ctx.now_ms, ctx.timing)
            needs_restart = m.state == "started"
    return Reply(
        200, {"volume": volume_json(_reload(ctx, row["id"])), "needs_restart": needs_restart}
    )


def snapshot_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "created_at": rfc3339(row["created_ms"]),
        "digest": row["digest"],
        "retention_days": row["retention_days"],
        "size": row["size"],
        "volume_size": row["volume_size"],
        "status": "created",
    }


def list_snapshots(ctx: Ctx) -> Reply:
    row = _get(ctx)
    snapshots = ctx.db.execute(
        "SELECT * FROM snapshots WHERE volume_id = ? ORDER BY created_ms, id", (row["id"],)
    ).fetchall()
    return Reply(200, [snapshot_json(s) for s in snapshots])


def create_snapshot(ctx: Ctx) -> Reply:
    """Record a snapshot (there is no data to copy: images and volumes are simulated)."""
    row = _get(ctx)
    snapshot_id = "vs_" + ids.volume_id().removeprefix("vol_")
    ctx.db.execute(
        "INSERT INTO snapshots (id, volume_id, size, volume_size, digest, retention_days,"
        " created_ms) VALUES (?,?,?,?,?,?,?)",
        (
            snapshot_id,
            row["id"],
            0,
            row["size_gb"] * 1024**3,
            "sha256:" + hashlib.sha256(snapshot_id.encode()).hexdigest(),
            row["snapshot_retention"],
            ctx.now_ms,
        ),
    )
    return Reply(200, {"ok": True})


def delete_volume(ctx: Ctx) -> Reply:
    row = _get(ctx)
    holder = row["attached_machine_id"]
    if holder:
        machine = ctx.db.execute("SELECT * FROM machines WHERE id = ?", (holder,)).fetchone()
        if machine is not None:
            m = MachineRecord.from_row(machine)
            advance(ctx.db, m, ctx.now_ms, ctx.timing)
            if m.state != "destroyed":
                raise precondition(f"volume {row['id']} is attached to machine {holder}")
    ctx.db.execute(
        "UPDATE volumes SET state = 'destroyed', attached_machine_id = NULL WHERE id = ?",
        (row["id"],),
    )
    if ctx.settings.runtime is not None:  # what a machine run for real kept on it goes too
        ctx.settings.runtime.forget_volume(row["id"])
    return Reply(200, volume_json(_reload(ctx, row["id"])))
