"""Apps: list, create, show, delete."""

from __future__ import annotations

import secrets
import sqlite3
from typing import Any

from flyk.local import ids
from flyk.local.context import Ctx, Reply
from flyk.local.errors import ApiError, bad_request
from flyk.local.records import get_app, get_org, load_app_machines
from flyk.local.validate import DURATION, check_app_name, check_fields, require

CREATE_FIELDS = {
    "name": "str", "org_slug": "str", "network": "str?", "enable_subdomains": "bool?",
    # the name's older field, as the API docs showed it and clients in the wild still send it
    # (docs/local-backend.md "Older field names")
    "app_name": "str?",
}  # fmt: skip


def app_json(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    org = get_org(conn, row["org_slug"])
    machines = conn.execute(
        "SELECT COUNT(*) FROM machines WHERE app = ? AND state != 'destroyed'", (row["name"],)
    ).fetchone()[0]
    volumes = conn.execute(
        "SELECT COUNT(*) FROM volumes WHERE app = ? AND state != 'destroyed'", (row["name"],)
    ).fetchone()[0]
    return {
        "id": row["id"],
        "name": row["name"],
        "internal_numeric_id": row["numeric_id"],
        "status": "deployed" if machines else "pending",
        "network": row["network"],
        "organization": {
            "name": org["name"],
            "slug": org["slug"],
            "internal_numeric_id": org["numeric_id"],
        },
        "machine_count": machines,
        "volume_count": volumes,
    }


def list_apps(ctx: Ctx) -> Reply:
    slug = ctx.q("org_slug")
    if not slug:
        raise bad_request("org_slug is required")
    get_org(ctx.db, slug)
    rows = ctx.db.execute("SELECT * FROM apps WHERE org_slug = ? ORDER BY name", (slug,)).fetchall()
    for row in rows:
        load_app_machines(ctx.db, row["name"], ctx.now_ms, ctx.timing)
    apps = [app_json(ctx.db, row) for row in rows]
    return Reply(200, {"apps": apps, "total_apps": len(apps)})


def create_app(ctx: Ctx) -> Reply:
    body = ctx.json()
    check_fields(body, CREATE_FIELDS, "app")
    if not body.get("name") and body.get("app_name"):
        body = {**body, "name": body["app_name"]}
    name = require(body, "name", "app")
    slug = require(body, "org_slug", "app")
    check_app_name(name)
    get_org(ctx.db, slug)
    if ctx.db.execute("SELECT 1 FROM apps WHERE name = ?", (name,)).fetchone():
        raise ApiError(422, f"Name has already been taken: app {name!r} exists", code="name_taken")
    network = body.get("network") or "default"
    ctx.db.execute(
        "INSERT INTO apps (name, id, org_slug, network, numeric_id, secrets_version, created_ms)"
        " VALUES (?,?,?,?,?,0,?)",
        (name, ids.app_id(), slug, network, secrets.randbelow(10**9), ctx.now_ms),
    )
    return Reply(201)


def show_app(ctx: Ctx) -> Reply:
    row = get_app(ctx.db, ctx.params["app_name"])
    load_app_machines(ctx.db, row["name"], ctx.now_ms, ctx.timing)
    return Reply(200, app_json(ctx.db, row))


def create_deploy_token(ctx: Ctx) -> Reply:
    """A deploy token for the app. The local backend accepts any token, so this one is only
    shaped like Fly's (`FlyV1 fm2_…`); `expiry` must be a duration such as "720h"."""
    name = get_app(ctx.db, ctx.params["app_name"])["name"]
    body = ctx.json()
    check_fields(body, {"expiry": "str?"}, "deploy token request")
    expiry = body.get("expiry")
    if expiry is not None and not DURATION.match(expiry):
        raise bad_request(f'invalid expiry {expiry!r}: use a duration such as "720h"')
    return Reply(200, {"token": f"FlyV1 fm2_local_{name}_{secrets.token_urlsafe(24)}"})


def delete_app(ctx: Ctx) -> Reply:
    name = get_app(ctx.db, ctx.params["app_name"])["name"]
    machine_ids = [
        r[0] for r in ctx.db.execute("SELECT id FROM machines WHERE app = ?", (name,)).fetchall()
    ]
    for machine_id in machine_ids:
        for table in ("machine_versions", "events", "leases", "machine_memory"):
            ctx.db.execute(f"DELETE FROM {table} WHERE machine_id = ?", (machine_id,))
    ctx.db.execute(
        "DELETE FROM snapshots WHERE volume_id IN (SELECT id FROM volumes WHERE app = ?)", (name,)
    )
    for table in ("machines", "volumes", "secrets", "ips", "secret_keys", "certificates"):
        ctx.db.execute(f"DELETE FROM {table} WHERE app = ?", (name,))
    ctx.db.execute("DELETE FROM apps WHERE name = ?", (name,))
    return Reply(202)
