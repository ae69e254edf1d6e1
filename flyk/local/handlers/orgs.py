"""Org-wide lists of machines and volumes, sorted by `updated_at`, with a cursor."""

from __future__ import annotations

import base64
import calendar
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flyk.local.context import Ctx, Reply
from flyk.local.errors import bad_request
from flyk.local.handlers.volumes import volume_json
from flyk.local.lifecycle import rfc3339
from flyk.local.records import MachineRecord, get_org, load_app_machines

DEFAULT_LIMIT = 100
Item = TypeVar("Item")


def _updated_after(ctx: Ctx) -> int | None:
    value = ctx.q("updated_after")
    if not value:
        return None
    try:
        parsed = time.strptime(value.replace("Z", "").split(".")[0], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise bad_request(f"invalid updated_after {value!r}: use RFC 3339") from None
    return calendar.timegm(parsed) * 1000


def _encode_cursor(updated_ms: int, item_id: str) -> str:
    return base64.urlsafe_b64encode(f"{updated_ms}:{item_id}".encode()).decode()


def _decode_cursor(cursor: str | None) -> tuple[int, str] | None:
    if not cursor:
        return None
    try:
        updated, _, item_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        return int(updated), item_id
    except (ValueError, UnicodeDecodeError):
        raise bad_request("invalid cursor") from None


def _page(
    ctx: Ctx, items: list[Item], key: Callable[[Item], tuple[int, str]]
) -> tuple[list[Item], str | None]:
    limit = ctx.q_int("limit") or DEFAULT_LIMIT
    if limit < 1:
        raise bad_request("limit must be >= 1")
    after = _decode_cursor(ctx.q("cursor"))
    items = sorted(items, key=key)
    if after is not None:
        items = [item for item in items if key(item) > after]
    page = items[:limit]
    cursor = _encode_cursor(*key(page[-1])) if len(items) > limit else None
    return page, cursor


def list_org_machines(ctx: Ctx) -> Reply:
    org = get_org(ctx.db, ctx.params["org_slug"])["slug"]
    include_deleted = ctx.q_bool("include_deleted")
    summary = ctx.q_bool("summary")
    region, states, since = ctx.q("region"), set(ctx.q_all("state")), _updated_after(ctx)
    apps = [r["name"] for r in ctx.db.execute("SELECT name FROM apps WHERE org_slug = ?", (org,))]
    found: list[MachineRecord] = []
    for app in apps:
        for m in load_app_machines(ctx.db, app, ctx.now_ms, ctx.timing):
            if (m.state == "destroyed" and not include_deleted) or (region and m.region != region):
                continue
            if (states and m.state not in states) or (since is not None and m.updated_ms <= since):
                continue
            found.append(m)
    page, cursor = _page(ctx, found, lambda m: (m.updated_ms, m.id))
    body: dict[str, Any] = {"machines": [_org_machine(m, summary) for m in page]}
    if page:
        body["last_machine_id"] = page[-1].id
        body["last_updated_at"] = rfc3339(page[-1].updated_ms)
    if cursor:
        body["next_cursor"] = cursor
    return Reply(200, body)


def _org_machine(m: MachineRecord, summary: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": m.id,
        "name": m.name,
        "app_name": m.app,
        "state": m.state,
        "region": m.region,
        "private_ip": m.private_ip,
        "version": m.instance_id,
        "instance_id": m.instance_id,
        "created_at": rfc3339(m.created_ms),
        "updated_at": rfc3339(m.updated_ms),
    }
    if not summary:
        body["config"] = {
            "image": m.config.get("image", ""),
            "guest": m.config.get("guest", {}),
            "metadata": m.config.get("metadata") or {},
        }
    return body


def list_org_volumes(ctx: Ctx) -> Reply:
    org = get_org(ctx.db, ctx.params["org_slug"])["slug"]
    include_deleted = ctx.q_bool("include_deleted")
    ctx.q_bool("summary")
    region, states, since = ctx.q("region"), set(ctx.q_all("state")), _updated_after(ctx)
    rows = ctx.db.execute(
        "SELECT volumes.* FROM volumes JOIN apps ON apps.name = volumes.app"
        " WHERE apps.org_slug = ?",
        (org,),
    ).fetchall()
    found = [
        row
        for row in rows
        if (include_deleted or row["state"] != "destroyed")
        and (not region or row["region"] == region)
        and (not states or row["state"] in states)
        and (since is None or row["created_ms"] > since)
    ]
    page, cursor = _page(ctx, found, lambda row: (int(row["created_ms"]), str(row["id"])))
    volumes = [
        {**volume_json(row), "app_name": row["app"], "updated_at": rfc3339(row["created_ms"])}
        for row in page
    ]
    body: dict[str, Any] = {"volumes": volumes}
    if page:
        body["last_volume_id"] = page[-1]["id"]
        body["last_updated_at"] = rfc3339(page[-1]["created_ms"])
    if cursor:
        body["next_cursor"] = cursor
    return Reply(200, body)
