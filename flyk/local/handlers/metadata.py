"""Machine metadata (the config's `metadata`): edited live, without a new version or reboot."""

from __future__ import annotations

from typing import Any

from flyk.local.context import Ctx, Reply
from flyk.local.errors import bad_request, not_found, precondition
from flyk.local.records import MachineRecord, load_machine, save_machine
from flyk.local.validate import METADATA_KEY, check_fields, string_map


def _metadata(m: MachineRecord) -> dict[str, str]:
    return dict(m.config.get("metadata") or {})


def _store(ctx: Ctx, m: MachineRecord, metadata: dict[str, str]) -> None:
    m.config = {**m.config, "metadata": metadata}
    m.updated_ms = ctx.now_ms
    # Versions keep the config they were created with; metadata edits are live-only.
    save_machine(ctx.db, m, [])


def _check_key(key: str) -> None:
    if not METADATA_KEY.match(key):
        raise bad_request(
            f"invalid metadata key {key!r}: use 1-128 letters, digits, '_', '.' or '-'"
        )


def show_metadata(ctx: Ctx) -> Reply:
    return Reply(200, _metadata(load_machine(ctx, include_destroyed=False)))


def update_metadata(ctx: Ctx) -> Reply:
    """PUT replaces the whole map, PATCH merges; a null or "" value removes a key."""
    m = load_machine(ctx, include_destroyed=False)
    body = ctx.json()
    check_fields(
        body, {"metadata": "obj", "machine_version": "str?", "updated_at": "str?"}, "metadata"
    )
    changes: dict[str, Any] = string_map(
        body.get("metadata", {}), "metadata.metadata", nullable_values=True
    )
    version = body.get("machine_version")
    if version is not None and version != m.instance_id:
        raise precondition(
            f"machine_version {version} is stale: machine {m.id} is at {m.instance_id}"
        )
    metadata = {} if ctx.method == "PUT" else _metadata(m)
    for key, value in changes.items():
        _check_key(key)
        if value is None or value == "":
            metadata.pop(key, None)
        else:
            metadata[key] = value
    _store(ctx, m, metadata)
    return Reply(204)


def get_key(ctx: Ctx) -> Reply:
    m = load_machine(ctx, include_destroyed=False)
    key = ctx.params["key"]
    metadata = _metadata(m)
    if key not in metadata:
        raise not_found(f"metadata key {key!r}")
    return Reply(200, {"value": metadata[key]})


def set_key(ctx: Ctx) -> Reply:
    m = load_machine(ctx, include_destroyed=False)
    key = ctx.params["key"]
    _check_key(key)
    body = ctx.json()
    check_fields(body, {"value": "str", "updated_at": "str?"}, "metadata value")
    if "value" not in body:
        raise bad_request("invalid metadata value: value is required")
    metadata = _metadata(m)
    metadata[key] = body["value"]
    _store(ctx, m, metadata)
    return Reply(204)


def delete_key(ctx: Ctx) -> Reply:
    m = load_machine(ctx, include_destroyed=False)
    metadata = _metadata(m)
    metadata.pop(ctx.params["key"], None)
    _store(ctx, m, metadata)
    return Reply(204)
