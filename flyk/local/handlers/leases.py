"""Leases: show, acquire or refresh (same nonce), release. TTL in the body or in `?ttl=`."""

from __future__ import annotations

from flyk.local import ids
from flyk.local.context import Ctx, Reply, ok
from flyk.local.errors import bad_request, conflict, not_found
from flyk.local.lifecycle import rfc3339
from flyk.local.records import current_lease, lease_json, load_machine
from flyk.local.validate import check_fields

DEFAULT_TTL_SECONDS = 30
MAX_TTL_SECONDS = 3600
OWNER = "local@flyk.dev"


def show_lease(ctx: Ctx) -> Reply:
    m = load_machine(ctx, include_destroyed=False)
    lease = current_lease(ctx.db, m.id, ctx.now_ms)
    if lease is None:
        raise not_found(f"lease for machine {m.id!r}")
    return Reply(200, lease_json(lease))


def _ttl(ctx: Ctx) -> int:
    body = ctx.json()
    check_fields(body, {"ttl": "int?", "description": "str?"}, "lease request")
    ttl = body.get("ttl")
    if ttl is None:
        ttl = ctx.q_int("ttl")
    if ttl is None:
        ttl = DEFAULT_TTL_SECONDS
    if not 1 <= ttl <= MAX_TTL_SECONDS:
        raise bad_request(f"invalid lease ttl {ttl}: use 1 to {MAX_TTL_SECONDS} seconds")
    return ttl


def acquire_lease(ctx: Ctx) -> Reply:
    """Acquire a free lease, or refresh ours when `fly-machine-lease-nonce` names it."""
    m = load_machine(ctx, include_destroyed=False)
    ttl = _ttl(ctx)
    description = ctx.json().get("description") or ""
    held = current_lease(ctx.db, m.id, ctx.now_ms)
    given = ctx.nonce()
    expires = ctx.now_ms + ttl * 1000
    if held is not None:
        if given != held["nonce"]:
            raise conflict(
                f"machine {m.id} is already leased by {held['owner']} until "
                f"{rfc3339(held['expires_ms'])}"
            )
        ctx.db.execute(
            "UPDATE leases SET expires_ms = ?, version = ?, description = ? WHERE machine_id = ?",
            (expires, m.instance_id, description or held["description"], m.id),
        )
    else:
        if given is not None:
            raise not_found(f"lease with nonce {given!r} for machine {m.id!r} (it has expired)")
        ctx.db.execute(
            "INSERT OR REPLACE INTO leases"
            " (machine_id, nonce, expires_ms, owner, description, version) VALUES (?,?,?,?,?,?)",
            (m.id, ids.nonce(), expires, OWNER, description, m.instance_id),
        )
    lease = current_lease(ctx.db, m.id, ctx.now_ms)
    assert lease is not None
    return Reply(201, lease_json(lease))


def release_lease(ctx: Ctx) -> Reply:
    m = load_machine(ctx, include_destroyed=False)
    held = current_lease(ctx.db, m.id, ctx.now_ms)
    if held is None:
        raise not_found(f"lease for machine {m.id!r}")
    given = ctx.nonce()
    if given != held["nonce"]:
        reason = "no fly-machine-lease-nonce was sent" if given is None else "wrong nonce"
        raise conflict(f"cannot release the lease on machine {m.id}: {reason}")
    ctx.db.execute("DELETE FROM leases WHERE machine_id = ?", (m.id,))
    return ok()
