"""IP assignments: list, allocate (v6, v4, shared_v4, private_v6), release."""

from __future__ import annotations

import ipaddress
import secrets
import sqlite3
from typing import Any

from flyk.local.context import Ctx, Reply
from flyk.local.errors import bad_request, not_found
from flyk.local.lifecycle import rfc3339
from flyk.local.records import get_app, get_org
from flyk.local.regions import REGIONS
from flyk.local.validate import check_fields

CREATE_FIELDS = {
    "type": "str", "region": "str?", "org_slug": "str?", "network": "str?", "service_name": "str?",
}  # fmt: skip
IP_TYPES = ("v6", "v4", "shared_v4", "private_v6")
SHARED_V4 = "66.241.124.{}"


def ip_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "ip": row["ip"],
        "region": row["region"],
        "shared": bool(row["shared"]),
        "service_name": row["service_name"],
        "created_at": rfc3339(row["created_ms"]),
    }


def list_ips(ctx: Ctx) -> Reply:
    app = get_app(ctx.db, ctx.params["app_name"])["name"]
    rows = ctx.db.execute(
        "SELECT * FROM ips WHERE app = ? ORDER BY created_ms, ip", (app,)
    ).fetchall()
    return Reply(200, {"ips": [ip_json(row) for row in rows]})


def _new_address(kind: str, org_numeric_id: int) -> str:
    groups = ":".join(f"{secrets.randbits(16):x}" for _ in range(2))
    if kind == "v6":
        return f"2a09:8280:1::{groups}"
    if kind == "v4":
        return f"137.66.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
    if kind == "shared_v4":
        return SHARED_V4.format(secrets.randbelow(254) + 1)
    # In canonical form (RFC 5952), as Fly answers and as Kubernetes and DNS show an address.
    return str(ipaddress.IPv6Address(f"fdaa:0:{org_numeric_id & 0xFFFF:x}:0::{groups}"))


def create_ip(ctx: Ctx) -> Reply:
    app = get_app(ctx.db, ctx.params["app_name"])
    body = ctx.json()
    check_fields(body, CREATE_FIELDS, "ip assignment")
    kind = body.get("type")
    if kind not in IP_TYPES:
        raise bad_request(f"invalid ip assignment type {kind!r}: use {', '.join(IP_TYPES)}")
    region = body.get("region") or "global"
    if region != "global" and region not in REGIONS:
        raise bad_request(f"unknown region {region!r}")
    if body.get("org_slug"):
        get_org(ctx.db, body["org_slug"])
    if kind == "shared_v4":
        existing = ctx.db.execute(
            "SELECT * FROM ips WHERE app = ? AND type = 'shared_v4' AND service_name = ?",
            (app["name"], body.get("service_name") or ""),
        ).fetchone()
        # An app has one shared address (per service_name, each a service of its own);
        # asking again returns it.
        if existing is not None:
            return Reply(200, ip_json(existing))
    org = get_org(ctx.db, app["org_slug"])
    taken = {
        row["ip"] for row in ctx.db.execute("SELECT ip FROM ips WHERE app = ?", (app["name"],))
    }
    address = _new_address(kind, org["numeric_id"])
    while address in taken:  # a shared v4 is drawn from 254: another service may hold it
        address = _new_address(kind, org["numeric_id"])
    ctx.db.execute(
        "INSERT INTO ips (app, ip, type, region, shared, service_name, network, created_ms)"
        " VALUES (?,?,?,?,?,?,?,?)",
        (
            app["name"], address, kind, region, int(kind == "shared_v4"),
            body.get("service_name") or "", body.get("network") or "", ctx.now_ms,
        ),
    )  # fmt: skip
    row = ctx.db.execute(
        "SELECT * FROM ips WHERE app = ? AND ip = ?", (app["name"], address)
    ).fetchone()
    return Reply(200, ip_json(row))


def delete_ip(ctx: Ctx) -> Reply:
    app = get_app(ctx.db, ctx.params["app_name"])["name"]
    ip = ctx.params["ip"]
    deleted = ctx.db.execute("DELETE FROM ips WHERE app = ? AND ip = ?", (app, ip)).rowcount
    if not deleted:
        raise not_found(f"ip assignment {ip!r}")
    return Reply(204)
