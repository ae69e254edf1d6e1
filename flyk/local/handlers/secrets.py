"""App secrets: list, bulk set (null deletes), set one, get one, delete one. Each change bumps
the app's secrets version, which `min_secrets_version` on machine create/update refers to."""

from __future__ import annotations

import hashlib
import sqlite3
from typing import Any

from flyk.local.context import Ctx, Reply
from flyk.local.errors import bad_request, not_found
from flyk.local.lifecycle import rfc3339
from flyk.local.records import get_app
from flyk.local.validate import SECRET_NAME, check_fields, string_map


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def secret_json(row: sqlite3.Row, *, show: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": row["name"],
        "digest": row["digest"],
        "created_at": rfc3339(row["created_ms"]),
        "updated_at": rfc3339(row["updated_ms"]),
    }
    if show:
        body["value"] = row["value"]
    return body


def _check_name(name: str) -> None:
    if not SECRET_NAME.match(name):
        raise bad_request(
            f"invalid secret name {name!r}: use letters, digits and underscores, "
            "not starting with a digit"
        )


def _bump_version(ctx: Ctx, app: str) -> int:
    ctx.db.execute("UPDATE apps SET secrets_version = secrets_version + 1 WHERE name = ?", (app,))
    return int(get_app(ctx.db, app)["secrets_version"])


def _upsert(ctx: Ctx, app: str, name: str, value: str) -> None:
    ctx.db.execute(
        "INSERT INTO secrets (app, name, value, digest, created_ms, updated_ms)"
        " VALUES (?,?,?,?,?,?) ON CONFLICT (app, name) DO UPDATE SET"
        " value = excluded.value, digest = excluded.digest, updated_ms = excluded.updated_ms",
        (app, name, value, _digest(value), ctx.now_ms, ctx.now_ms),
    )


def _rows(ctx: Ctx, app: str) -> list[sqlite3.Row]:
    return ctx.db.execute("SELECT * FROM secrets WHERE app = ? ORDER BY name", (app,)).fetchall()


def list_secrets(ctx: Ctx) -> Reply:
    app = get_app(ctx.db, ctx.params["app_name"])["name"]
    show = ctx.q_bool("show_secrets")
    return Reply(200, {"secrets": [secret_json(r, show=show) for r in _rows(ctx, app)]})


def update_secrets(ctx: Ctx) -> Reply:
    app = get_app(ctx.db, ctx.params["app_name"])["name"]
    body = ctx.json()
    check_fields(body, {"values": "obj"}, "secrets update")
    values = string_map(body.get("values", {}), "secrets update values", nullable_values=True)
    for name, value in values.items():
        _check_name(name)
        if value is None:
            ctx.db.execute("DELETE FROM secrets WHERE app = ? AND name = ?", (app, name))
        else:
            _upsert(ctx, app, name, value)
    version = _bump_version(ctx, app)
    secrets = [secret_json(r, show=False) for r in _rows(ctx, app)]
    return Reply(200, {"secrets": secrets, "version": version, "Version": version})


def _one(ctx: Ctx) -> tuple[str, sqlite3.Row]:
    app = get_app(ctx.db, ctx.params["app_name"])["name"]
    name = ctx.params["secret_name"]
    row = ctx.db.execute("SELECT * FROM secrets WHERE app = ? AND name = ?", (app, name)).fetchone()
    if row is None:
        raise not_found(f"secret {name!r}")
    return app, row


def get_secret(ctx: Ctx) -> Reply:
    _, row = _one(ctx)
    return Reply(200, secret_json(row, show=ctx.q_bool("show_secrets")))


def set_secret(ctx: Ctx) -> Reply:
    app = get_app(ctx.db, ctx.params["app_name"])["name"]
    name = ctx.params["secret_name"]
    _check_name(name)
    body = ctx.json()
    check_fields(body, {"value": "str"}, "secret")
    if "value" not in body:
        raise bad_request("invalid secret: value is required")
    _upsert(ctx, app, name, body["value"])
    version = _bump_version(ctx, app)
    row = ctx.db.execute("SELECT * FROM secrets WHERE app = ? AND name = ?", (app, name)).fetchone()
    return Reply(201, {**secret_json(row, show=False), "version": version, "Version": version})


def delete_secret(ctx: Ctx) -> Reply:
    app, row = _one(ctx)
    ctx.db.execute("DELETE FROM secrets WHERE app = ? AND name = ?", (app, row["name"]))
    version = _bump_version(ctx, app)
    return Reply(200, {"version": version, "Version": version})
