"""App certificates, simulated: no DNS is looked up and no CA is contacted.

An ACME certificate starts "Awaiting configuration" (`pending_validation`); `POST …/check`
treats the DNS as configured and issues it ("Ready", `active`). A custom certificate needs PEM
text and is active at once.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from typing import Any

from flyk.local.context import Ctx, Reply
from flyk.local.errors import ApiError, bad_request, not_found
from flyk.local.lifecycle import rfc3339
from flyk.local.records import get_app
from flyk.local.validate import check_fields

HOSTNAME = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
VALIDITY_MS = 90 * 24 * 3600 * 1000
DEFAULT_LIMIT = 100


def _ips(ctx: Ctx, app: str, kinds: tuple[str, ...]) -> list[str]:
    marks = ",".join("?" for _ in kinds)
    rows = ctx.db.execute(
        f"SELECT ip FROM ips WHERE app = ? AND type IN ({marks}) ORDER BY ip", (app, *kinds)
    ).fetchall()
    return [r["ip"] for r in rows]


def _status(row: sqlite3.Row) -> str:
    if row["custom"] or row["validated"]:
        return "Ready"
    return "Awaiting configuration"


def _entries(row: sqlite3.Row) -> list[dict[str, Any]]:
    entries = []
    expires = rfc3339(row["updated_ms"] + VALIDITY_MS)
    if row["acme"]:
        entries.append(
            {
                "source": "fly",
                "status": "active" if row["validated"] else "pending_validation",
                "issuer": "Let's Encrypt (simulated by flyk)",
                "created_at": rfc3339(row["created_ms"]),
                "expires_at": expires,
                "issued": (
                    [
                        {
                            "type": "ecdsa",
                            "certificate_authority": "lets_encrypt",
                            "expires_at": expires,
                        }
                    ]
                    if row["validated"]
                    else []
                ),
            }
        )
    if row["custom"]:
        entries.append(
            {
                "source": "custom",
                "status": "active",
                "issuer": "custom",
                "created_at": rfc3339(row["created_ms"]),
                "expires_at": expires,
                "issued": [
                    {"type": "ecdsa", "certificate_authority": "custom", "expires_at": expires}
                ],
            }
        )
    return entries


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def detail_json(ctx: Ctx, row: sqlite3.Row) -> dict[str, Any]:
    app, hostname = row["app"], row["hostname"]
    configured = bool(row["validated"] or row["custom"])
    return {
        "hostname": hostname,
        "status": _status(row),
        "configured": configured,
        "acme_requested": bool(row["acme"]),
        "dns_provider": "unknown",
        "certificates": _entries(row),
        "validation": {
            "alpn_configured": configured,
            "dns_configured": configured,
            "http_configured": configured,
            "ownership_txt_configured": configured,
        },
        "validation_errors": [],
        "dns_requirements": {
            "a": _ips(ctx, app, ("v4", "shared_v4")),
            "aaaa": _ips(ctx, app, ("v6",)),
            "cname": f"{app}.fly.dev",
            "acme_challenge": {
                "name": f"_acme-challenge.{hostname.removeprefix('*.')}",
                "target": f"{hostname.removeprefix('*.')}.{app}.flydns.net",
            },
            "ownership": {
                "name": f"_fly-ownership.{hostname.removeprefix('*.')}",
                "app_value": f"app-{_digest(app)}",
                "org_value": f"org-{_digest(app + hostname)}",
            },
        },
    }


def summary_json(row: sqlite3.Row) -> dict[str, Any]:
    configured = bool(row["validated"] or row["custom"])
    return {
        "hostname": row["hostname"],
        "status": _status(row),
        "configured": configured,
        "acme_requested": bool(row["acme"]),
        "acme_alpn_configured": configured,
        "acme_dns_configured": configured,
        "acme_http_configured": configured,
        "ownership_txt_configured": configured,
        "has_custom_certificate": bool(row["custom"]),
        "has_fly_certificate": bool(row["acme"] and row["validated"]),
        "dns_provider": "unknown",
        "created_at": rfc3339(row["created_ms"]),
        "updated_at": rfc3339(row["updated_ms"]),
    }


def _load(ctx: Ctx) -> sqlite3.Row:
    app = get_app(ctx.db, ctx.params["app_name"])["name"]
    row: sqlite3.Row | None = ctx.db.execute(
        "SELECT * FROM certificates WHERE app = ? AND hostname = ?", (app, ctx.params["hostname"])
    ).fetchone()
    if row is None:
        raise not_found(f"certificate for {ctx.params['hostname']!r}")
    return row


def _reload(ctx: Ctx, app: str, hostname: str) -> sqlite3.Row:
    row: sqlite3.Row = ctx.db.execute(
        "SELECT * FROM certificates WHERE app = ? AND hostname = ?", (app, hostname)
    ).fetchone()
    return row


def list_certificates(ctx: Ctx) -> Reply:
    app = get_app(ctx.db, ctx.params["app_name"])["name"]
    text = ctx.q("filter") or ""
    limit = ctx.q_int("limit") or DEFAULT_LIMIT
    if limit < 1:
        raise bad_request("limit must be >= 1")
    after = ctx.q("cursor") or ""
    rows = [
        r
        for r in ctx.db.execute(
            "SELECT * FROM certificates WHERE app = ? ORDER BY hostname", (app,)
        ).fetchall()
        if text in r["hostname"]
    ]
    remaining = [r for r in rows if r["hostname"] > after]
    page = remaining[:limit]
    body: dict[str, Any] = {
        "certificates": [summary_json(r) for r in page],
        "total_count": len(rows),
    }
    if len(remaining) > limit:
        body["next_cursor"] = page[-1]["hostname"]
    return Reply(200, body)


def _hostname(body: dict[str, Any]) -> str:
    hostname = str(body.get("hostname") or "").lower()
    if not HOSTNAME.match(hostname):
        raise ApiError(422, f"invalid hostname {body.get('hostname')!r}")
    if hostname.endswith(".fly.dev"):
        raise ApiError(422, f"{hostname} is served by Fly's own certificate")
    return hostname


def _upsert(ctx: Ctx, hostname: str, *, acme: bool, custom: str | None) -> Reply:
    app = get_app(ctx.db, ctx.params["app_name"])["name"]
    row = ctx.db.execute(
        "SELECT * FROM certificates WHERE app = ? AND hostname = ?", (app, hostname)
    ).fetchone()
    if row is None:
        ctx.db.execute(
            "INSERT INTO certificates (app, hostname, acme, custom, validated, created_ms,"
            " updated_ms) VALUES (?,?,?,?,0,?,?)",
            (app, hostname, int(acme), custom, ctx.now_ms, ctx.now_ms),
        )
    elif (acme and row["acme"]) or (custom and row["custom"]):
        raise ApiError(422, f"a certificate for {hostname} already exists")
    elif acme:
        ctx.db.execute(
            "UPDATE certificates SET acme = 1, updated_ms = ? WHERE app = ? AND hostname = ?",
            (ctx.now_ms, app, hostname),
        )
    else:
        ctx.db.execute(
            "UPDATE certificates SET custom = ?, updated_ms = ? WHERE app = ? AND hostname = ?",
            (custom, ctx.now_ms, app, hostname),
        )
    return Reply(201, detail_json(ctx, _reload(ctx, app, hostname)))


def create_acme(ctx: Ctx) -> Reply:
    body = ctx.json()
    check_fields(body, {"hostname": "str"}, "certificate request")
    return _upsert(ctx, _hostname(body), acme=True, custom=None)


def create_custom(ctx: Ctx) -> Reply:
    body = ctx.json()
    check_fields(body, {"hostname": "str", "fullchain": "str", "private_key": "str"}, "certificate")
    hostname = _hostname(body)
    chain, key = body.get("fullchain") or "", body.get("private_key") or ""
    if "-----BEGIN CERTIFICATE-----" not in chain or "PRIVATE KEY-----" not in key:
        raise ApiError(422, "fullchain and private_key must be PEM (a certificate chain and a key)")
    return _upsert(ctx, hostname, acme=False, custom=_digest(chain))


def show_certificate(ctx: Ctx) -> Reply:
    return Reply(200, detail_json(ctx, _load(ctx)))


def check_certificate(ctx: Ctx) -> Reply:
    row = _load(ctx)
    ctx.db.execute(
        "UPDATE certificates SET validated = 1, updated_ms = ? WHERE app = ? AND hostname = ?",
        (ctx.now_ms, row["app"], row["hostname"]),
    )
    detail = detail_json(ctx, _reload(ctx, row["app"], row["hostname"]))
    requirements = detail["dns_requirements"]
    detail["dns_records"] = {
        "a": requirements["a"],
        "aaaa": requirements["aaaa"],
        "cname": [],
        "resolved_addresses": requirements["a"] + requirements["aaaa"],
        "acme_challenge_cname": requirements["acme_challenge"]["target"],
        "ownership_txt": requirements["ownership"]["app_value"],
        "soa": "simulated",
    }
    return Reply(200, detail)


def delete_certificate(ctx: Ctx) -> Reply:
    row = _load(ctx)
    ctx.db.execute(
        "DELETE FROM certificates WHERE app = ? AND hostname = ?", (row["app"], row["hostname"])
    )
    return Reply(204)


def _remove(ctx: Ctx, column: str) -> tuple[sqlite3.Row, dict[str, Any]]:
    row = _load(ctx)
    present = row["acme"] if column == "acme" else row["custom"]
    if not present:
        raise not_found(f"{column} certificate for {row['hostname']!r}")
    value = 0 if column == "acme" else None
    extra = ", validated = 0" if column == "acme" else ""
    ctx.db.execute(
        f"UPDATE certificates SET {column} = ?{extra}, updated_ms = ?"
        " WHERE app = ? AND hostname = ?",
        (value, ctx.now_ms, row["app"], row["hostname"]),
    )
    updated = _reload(ctx, row["app"], row["hostname"])
    return updated, detail_json(ctx, updated)


def delete_acme(ctx: Ctx) -> Reply:
    return Reply(200, _remove(ctx, "acme")[1])


def delete_custom(ctx: Ctx) -> Reply:
    row, detail = _remove(ctx, "custom")
    if not row["acme"]:
        detail["warning"] = f"{row['hostname']} has no certificate left; TLS for it will fail"
    return Reply(200, detail)
