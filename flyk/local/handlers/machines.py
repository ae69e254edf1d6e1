"""Machines: list, create, show, update, destroy, events, versions."""

from __future__ import annotations

import sqlite3
from typing import Any

from flyk.local import ids
from flyk.local.context import Ctx, Reply, ok
from flyk.local.errors import (
    bad_request,
    conflict,
    insufficient_capacity,
    not_found,
    precondition,
)
from flyk.local.lifecycle import Sim
from flyk.local.records import (
    MachineRecord,
    add_version,
    advance,
    advance_region,
    check_lease,
    get_app,
    get_org,
    insert_machine,
    load_app_machines,
    load_machine,
    machine_events,
    machine_json,
    record_events,
    save_machine,
)
from flyk.local.regions import NEAREST, resolve_expression
from flyk.local.store import loads
from flyk.local.validate import check_fields, check_machine_name, validate_config

CREATE_FIELDS = {
    "config": "obj", "name": "str?", "region": "str?", "skip_launch": "bool?",
    "lease_ttl": "int?", "lsvd": "bool?", "min_secrets_version": "int?", "skip_secrets": "bool?",
    "skip_service_registration": "bool?",
}  # fmt: skip
UPDATE_FIELDS = {**CREATE_FIELDS, "current_version": "str?"}
MAX_LEASE_TTL_SECONDS = 3600
STATES = frozenset(
    {
        "created", "starting", "started", "stopping", "stopped", "suspending", "suspended",
        "replacing", "destroying", "destroyed", "failed",
    }
)  # fmt: skip


# --- list and show -----------------------------------------------------------------------------


def list_machines(ctx: Ctx) -> Reply:
    app = get_app(ctx.db, ctx.params["app_name"])["name"]
    include_deleted = ctx.q_bool("include_deleted")
    region = ctx.q("region")
    states = set(ctx.q_all("state"))
    unknown = states - STATES
    if unknown:
        raise bad_request(f"invalid state filter: {', '.join(sorted(unknown))}")
    summary = ctx.q_bool("summary")
    wanted_metadata = {k[len("metadata.") :]: v for k, v in ctx.query if k.startswith("metadata.")}
    body = []
    for m in load_app_machines(ctx.db, app, ctx.now_ms, ctx.timing):
        if m.state == "destroyed" and not include_deleted:
            continue
        if region and m.region != region:
            continue
        if states and m.state not in states:
            continue
        metadata = m.config.get("metadata") or {}
        if any(metadata.get(k) != v for k, v in wanted_metadata.items()):
            continue
        body.append(machine_json(ctx.db, m, summary=summary))
    return Reply(200, body)


def show_machine(ctx: Ctx) -> Reply:
    return Reply(200, machine_json(ctx.db, load_machine(ctx)))


# --- create ------------------------------------------------------------------------------------


def _check_secrets_version(app: sqlite3.Row, body: dict[str, Any]) -> None:
    wanted = body.get("min_secrets_version")
    if wanted is not None and wanted > app["secrets_version"]:
        raise bad_request(
            f"min_secrets_version {wanted} is newer than the app's secrets version "
            f"{app['secrets_version']}"
        )


def _mounted_volume(ctx: Ctx, app: str, config: dict[str, Any]) -> sqlite3.Row | None:
    mounts = config.get("mounts") or []
    if not mounts:
        return None
    volume_id = mounts[0]["volume"]
    volume: sqlite3.Row | None = ctx.db.execute(
        "SELECT * FROM volumes WHERE id = ? AND app = ? AND state != 'destroyed'",
        (volume_id, app),
    ).fetchone()
    if volume is None:
        raise not_found(f"volume {volume_id!r}")
    holder = volume["attached_machine_id"]
    if holder is not None:
        raise precondition(f"volume {volume_id} is in use by machine {holder}")
    return volume


def _place(ctx: Ctx, expression: str | None, memory_mb: int, volume: sqlite3.Row | None) -> str:
    """The region for a new machine: the first candidate with room, or 412 capacity."""
    if volume is not None:
        candidates = resolve_expression(expression) if expression else [volume["region"]]
        if volume["region"] not in candidates:
            raise bad_request(
                f"volume {volume['id']} is in region {volume['region']}, "
                f"which region {expression!r} does not include"
            )
        candidates = [volume["region"]]
    else:
        candidates = resolve_expression(expression or NEAREST)
    for region in candidates:
        used = advance_region(ctx.db, region, ctx.now_ms, ctx.timing)
        if used + memory_mb <= ctx.settings.capacity.limit(region):
            return region
    if volume is not None:
        raise insufficient_capacity(
            f"insufficient resources to create new machine with existing volume '{volume['id']}'"
        )
    raise insufficient_capacity(
        f"insufficient memory available to fulfill request: no capacity for {memory_mb} MB "
        f"in {', '.join(candidates)}"
    )


def _unique_name(ctx: Ctx, app: str, name: str | None) -> str:
    if name is None:
        name = ids.machine_name()
    check_machine_name(name)
    taken = ctx.db.execute(
        "SELECT id FROM machines WHERE app = ? AND name = ? AND state != 'destroyed'", (app, name)
    ).fetchone()
    if taken is not None:
        raise conflict(f"a machine named {name!r} already exists in this app ({taken['id']})")
    return name


def create_machine(ctx: Ctx) -> Reply:
    app = get_app(ctx.db, ctx.params["app_name"])
    body = ctx.json()
    check_fields(body, CREATE_FIELDS, "machine")
    if "config" not in body:
        raise bad_request("invalid machine: config is required")
    config = validate_config(body["config"])
    _check_secrets_version(app, body)
    name = _unique_name(ctx, app["name"], body.get("name"))
    volume = _mounted_volume(ctx, app["name"], config)
    memory = int(config["guest"]["memory_mb"])
    region = _place(ctx, body.get("region"), memory, volume)
    org = get_org(ctx.db, app["org_slug"])
    m = MachineRecord(
        id=ids.machine_id(),
        app=app["name"],
        name=name,
        region=region,
        instance_id=ids.ulid(ctx.now_ms / 1000),
        private_ip=ids.private_ip(org["numeric_id"]),
        config=config,
        sim=Sim("created"),
        cordoned=bool(body.get("skip_service_registration")),
        created_ms=ctx.now_ms,
        updated_ms=ctx.now_ms,
    )
    events = m.sim.launch(ctx.now_ms, ctx.timing, skip_launch=bool(body.get("skip_launch")))
    insert_machine(ctx.db, m)
    record_events(ctx.db, m.id, events)
    if volume is not None:
        ctx.db.execute(
            "UPDATE volumes SET attached_machine_id = ? WHERE id = ?", (m.id, volume["id"])
        )
    nonce = _lease_on_create(ctx, m, body.get("lease_ttl"))
    if ctx.settings.runtime is not None:
        ctx.settings.runtime.adopt(ctx.db, m)
    advance(ctx.db, m, ctx.now_ms, ctx.timing)
    return Reply(200, machine_json(ctx.db, m, nonce=nonce))


def _lease_on_create(ctx: Ctx, m: MachineRecord, ttl: int | None) -> str | None:
    if ttl is None:
        return None
    if not 1 <= ttl <= MAX_LEASE_TTL_SECONDS:
        raise bad_request(f"lease_ttl must be 1 to {MAX_LEASE_TTL_SECONDS} seconds")
    nonce = ids.nonce()
    ctx.db.execute(
        "INSERT OR REPLACE INTO leases (machine_id, nonce, expires_ms, owner, description, version)"
        " VALUES (?,?,?,?,?,?)",
        (m.id, nonce, ctx.now_ms + ttl * 1000, "local@flyk.dev", "", m.instance_id),
    )
    return nonce


# --- update ------------------------------------------------------------------------------------


def update_machine(ctx: Ctx) -> Reply:
    m = load_machine(ctx, include_destroyed=False)
    check_lease(ctx, m)
    app = get_app(ctx.db, m.app)
    body = ctx.json()
    check_fields(body, UPDATE_FIELDS, "machine update")
    current = body.get("current_version")
    if current is not None and current != m.instance_id:
        raise conflict(
            f"machine {m.id} version mismatch: current_version {current} but the machine is at "
            f"{m.instance_id}"
        )
    if body.get("name") not in (None, m.name):
        raise bad_request("a machine's name cannot be changed")
    if body.get("region") not in (None, m.region):
        raise bad_request("a machine's region cannot be changed")
    if "config" not in body:
        raise bad_request("invalid machine update: config is required")
    config = validate_config(body["config"])
    _check_secrets_version(app, body)
    if _mount_volume_id(config) != _mount_volume_id(m.config):
        raise bad_request("a machine's mounted volume cannot be changed: destroy and recreate it")
    _reserve_growth(ctx, m, int(config["guest"]["memory_mb"]))
    m.config = config
    m.instance_id = ids.ulid(ctx.now_ms / 1000)
    m.updated_ms = ctx.now_ms
    events = m.sim.update(ctx.now_ms, ctx.timing, skip_launch=bool(body.get("skip_launch")))
    add_version(ctx.db, m)
    save_machine(ctx.db, m, events)
    if ctx.settings.runtime is not None:
        ctx.settings.runtime.adopt(ctx.db, m)
    nonce = None
    if body.get("lease_ttl") is not None and ctx.nonce() is None:
        nonce = _lease_on_create(ctx, m, body["lease_ttl"])
    advance(ctx.db, m, ctx.now_ms, ctx.timing)
    return Reply(200, machine_json(ctx.db, m, nonce=nonce))


def _mount_volume_id(config: dict[str, Any]) -> str | None:
    mounts = config.get("mounts") or []
    return mounts[0].get("volume") if mounts else None


def _reserve_growth(ctx: Ctx, m: MachineRecord, memory_mb: int) -> None:
    growth = memory_mb - m.memory_mb()
    if growth <= 0:
        return
    used = advance_region(ctx.db, m.region, ctx.now_ms, ctx.timing)
    if used + growth > ctx.settings.capacity.limit(m.region):
        raise conflict(
            "aborted: could not reserve resource for machine: "
            "insufficient memory available to fulfill request"
        )


# --- destroy, events, versions ---------------------------------------------------------------


def destroy_machine(ctx: Ctx) -> Reply:
    m = load_machine(ctx, include_destroyed=False)
    check_lease(ctx, m)
    force = ctx.q_bool("force") or ctx.q_bool("kill")
    events = m.sim.destroy(ctx.now_ms, ctx.timing, force=force)
    save_machine(ctx.db, m, events)
    advance(ctx.db, m, ctx.now_ms, ctx.timing)
    return ok()


def list_events(ctx: Ctx) -> Reply:
    m = load_machine(ctx)
    limit = ctx.q_int("limit")
    if limit is not None and limit < 0:
        raise bad_request("limit must be >= 0")
    return Reply(200, machine_events(ctx.db, m.id, limit))


def list_versions(ctx: Ctx) -> Reply:
    m = load_machine(ctx)
    rows = ctx.db.execute(
        "SELECT version, config FROM machine_versions WHERE machine_id = ?"
        " ORDER BY created_ms DESC, version DESC",
        (m.id,),
    ).fetchall()
    return Reply(200, [{"version": r["version"], "user_config": loads(r["config"])} for r in rows])
