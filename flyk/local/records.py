"""Rows in and out of SQLite: apps, machines (advanced to now on every load), events, leases."""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from typing import Any

from flyk.local import ids
from flyk.local.context import Ctx
from flyk.local.errors import ApiError, conflict, not_found
from flyk.local.knobs import Timing
from flyk.local.lifecycle import Event, Sim, Workload, rfc3339
from flyk.local.store import dumps, loads

__all__ = ["MachineRecord", "get_app", "load_machine"]

RECENT_EVENTS_ON_MACHINE = 10
# Events kept per machine: a long crash loop must not grow the database without bound.
EVENTS_KEPT_PER_MACHINE = 500


def get_app(conn: sqlite3.Connection, name: str) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute("SELECT * FROM apps WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise not_found(f"app {name!r}")
    return row


def get_org(conn: sqlite3.Connection, slug: str) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute("SELECT * FROM orgs WHERE slug = ?", (slug,)).fetchone()
    if row is None:
        raise ApiError(404, f"not_found: organization {slug!r} not found")
    return row


@dataclass
class MachineRecord:
    id: str
    app: str
    name: str
    region: str
    instance_id: str
    private_ip: str
    config: dict[str, Any]
    sim: Sim
    cordoned: bool
    created_ms: int
    updated_ms: int

    @property
    def state(self) -> str:
        return self.sim.state

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> MachineRecord:
        return cls(
            id=row["id"],
            app=row["app"],
            name=row["name"],
            region=row["region"],
            instance_id=row["instance_id"],
            private_ip=row["private_ip"],
            config=loads(row["config"]),
            sim=Sim.from_json(loads(row["sim"])),
            cordoned=bool(row["cordoned"]),
            created_ms=row["created_ms"],
            updated_ms=row["updated_ms"],
        )

    def workload(self) -> Workload:
        return Workload.from_config(self.config)

    def memory_mb(self) -> int:
        return int((self.config.get("guest") or {}).get("memory_mb") or 256)


def insert_machine(conn: sqlite3.Connection, m: MachineRecord) -> None:
    conn.execute(
        "INSERT INTO machines (id, app, name, region, state, instance_id, private_ip, config,"
        " sim, cordoned, created_ms, updated_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            m.id, m.app, m.name, m.region, m.state, m.instance_id, m.private_ip,
            dumps(m.config), dumps(m.sim.to_json()), int(m.cordoned), m.created_ms, m.updated_ms,
        ),
    )  # fmt: skip
    add_version(conn, m)


def add_version(conn: sqlite3.Connection, m: MachineRecord) -> None:
    conn.execute(
        "INSERT INTO machine_versions (machine_id, version, config, created_ms) VALUES (?,?,?,?)",
        (m.id, m.instance_id, dumps(m.config), m.updated_ms),
    )


def save_machine(conn: sqlite3.Connection, m: MachineRecord, events: list[Event]) -> None:
    """Write the machine and record its new events (and their side effects)."""
    if events:
        m.updated_ms = max(m.updated_ms, events[-1].timestamp)
    conn.execute(
        "UPDATE machines SET state=?, instance_id=?, config=?, sim=?, cordoned=?, updated_ms=?"
        " WHERE id=?",
        (
            m.state, m.instance_id, dumps(m.config), dumps(m.sim.to_json()), int(m.cordoned),
            m.updated_ms, m.id,
        ),
    )  # fmt: skip
    record_events(conn, m.id, events)
    if m.state == "destroyed":
        _release_destroyed(conn, m)


def _release_destroyed(conn: sqlite3.Connection, m: MachineRecord) -> None:
    conn.execute(
        "UPDATE volumes SET attached_machine_id = NULL WHERE attached_machine_id = ?", (m.id,)
    )
    conn.execute("DELETE FROM leases WHERE machine_id = ?", (m.id,))


def record_events(conn: sqlite3.Connection, machine_id: str, events: list[Event]) -> None:
    for event in events:
        conn.execute(
            "INSERT INTO events (id, machine_id, type, status, source, timestamp, request)"
            " VALUES (?,?,?,?,?,?,?)",
            (
                ids.ulid(event.timestamp / 1000),
                machine_id,
                event.type,
                event.status,
                event.source,
                event.timestamp,
                None if event.request is None else dumps(event.request),
            ),
        )
    if events:
        conn.execute(
            "DELETE FROM events WHERE machine_id = ? AND seq <= ("
            " SELECT seq FROM events WHERE machine_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
            (machine_id, machine_id, EVENTS_KEPT_PER_MACHINE),
        )


def advance(conn: sqlite3.Connection, m: MachineRecord, now: int, timing: Timing) -> None:
    """Bring the machine up to `now`, saving it if anything happened."""
    events = m.sim.advance(now, m.workload(), timing)
    if events:
        save_machine(conn, m, events)


def load_machine(ctx: Ctx, *, include_destroyed: bool = True) -> MachineRecord:
    """The machine named by the path, advanced to now. 404 for an unknown app or machine."""
    app = ctx.params["app_name"]
    get_app(ctx.db, app)
    row = ctx.db.execute(
        "SELECT * FROM machines WHERE id = ? AND app = ?", (ctx.params["machine_id"], app)
    ).fetchone()
    if row is None:
        raise not_found(f"machine {ctx.params['machine_id']!r}")
    m = MachineRecord.from_row(row)
    advance(ctx.db, m, ctx.now_ms, ctx.timing)
    if m.state == "destroyed" and not include_destroyed:
        raise not_found(f"machine {m.id!r}")
    return m


def load_app_machines(
    conn: sqlite3.Connection, app: str, now: int, timing: Timing
) -> list[MachineRecord]:
    rows = conn.execute(
        "SELECT * FROM machines WHERE app = ? ORDER BY created_ms, id", (app,)
    ).fetchall()
    machines = [MachineRecord.from_row(row) for row in rows]
    for m in machines:
        advance(conn, m, now, timing)
    return machines


def advance_region(conn: sqlite3.Connection, region: str, now: int, timing: Timing) -> int:
    """Advance every live machine of a region; return the memory (MB) they hold."""
    rows = conn.execute(
        "SELECT * FROM machines WHERE region = ? AND state != 'destroyed'", (region,)
    ).fetchall()
    used = 0
    for row in rows:
        m = MachineRecord.from_row(row)
        advance(conn, m, now, timing)
        if m.state != "destroyed":
            used += m.memory_mb()
    return used


# --- leases ------------------------------------------------------------------------------------


def current_lease(conn: sqlite3.Connection, machine_id: str, now: int) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM leases WHERE machine_id = ?", (machine_id,)
    ).fetchone()
    if row is None:
        return None
    if row["expires_ms"] <= now:
        conn.execute("DELETE FROM leases WHERE machine_id = ?", (machine_id,))
        return None
    return row


def check_lease(ctx: Ctx, m: MachineRecord) -> None:
    """A mutation of a leased machine needs the lease's nonce: 409 otherwise."""
    lease = current_lease(ctx.db, m.id, ctx.now_ms)
    if lease is None:
        return
    given = ctx.nonce()
    if given != lease["nonce"]:
        reason = "no nonce was sent" if given is None else "the nonce does not match"
        raise conflict(
            f"machine {m.id} is leased by {lease['owner']} until "
            f"{rfc3339(lease['expires_ms'])} and {reason} (fly-machine-lease-nonce)"
        )


def lease_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "nonce": row["nonce"],
        "expires_at": row["expires_ms"] // 1000,
        "owner": row["owner"],
        "description": row["description"],
        "version": row["version"],
    }


# --- JSON --------------------------------------------------------------------------------------


def event_json(row: sqlite3.Row) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": row["id"],
        "type": row["type"],
        "status": row["status"],
        "source": row["source"],
        "timestamp": row["timestamp"],
    }
    if row["request"] is not None:
        event["request"] = loads(row["request"])
    return event


def machine_events(
    conn: sqlite3.Connection, machine_id: str, limit: int | None
) -> list[dict[str, Any]]:
    """Newest first."""
    sql = "SELECT * FROM events WHERE machine_id = ? ORDER BY seq DESC"
    args: tuple[Any, ...] = (machine_id,)
    if limit is not None:
        sql += " LIMIT ?"
        args = (machine_id, limit)
    return [event_json(row) for row in conn.execute(sql, args).fetchall()]


def image_ref(image: str) -> dict[str, Any]:
    rest, _, digest = image.partition("@")
    registry, repository = "docker-hub-mirror.fly.io", rest
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, remainder
    name, colon, tag = repository.rpartition(":")
    if colon and "/" not in tag:
        repository = name
    else:
        tag = "latest"
    if "/" not in repository and registry == "docker-hub-mirror.fly.io":
        repository = f"library/{repository}"
    if not digest:
        digest = "sha256:" + hashlib.sha256(image.encode()).hexdigest()
    return {
        "registry": registry,
        "repository": repository,
        "tag": tag,
        "digest": digest,
        "labels": {},
    }


def checks_json(m: MachineRecord) -> list[dict[str, Any]]:
    """The status of every check the config declares: the machine's `checks` and each
    container's `healthchecks` (multi-container machines). The spec reports check status in one
    place only, `Machine.checks[]` (`CheckStatus`: name, status, output, updated_at), so
    container healthchecks are reported there too, under their own names.

    Checks report `passing` while the machine is started (no workload is probed), else
    `critical`; `FLYK_SIM_CHECK_STATUS` in the env overrides the started status (for a
    container's healthchecks its own env first, then the machine's)."""
    machine_env = m.config.get("env") or {}
    named = [(name, machine_env) for name in sorted(m.config.get("checks") or {})]
    for container in m.config.get("containers") or []:
        env = {**machine_env, **(container.get("env") or {})}
        named.extend((str(h.get("name", "")), env) for h in container.get("healthchecks") or [])
    started = m.state == "started"
    output = "simulated by the flyk local backend" if started else "machine not started"
    updated = rfc3339(m.updated_ms)
    return [
        {
            "name": name,
            "status": env.get("FLYK_SIM_CHECK_STATUS", "passing") if started else "critical",
            "output": output,
            "updated_at": updated,
        }
        for name, env in named
    ]


def machine_json(
    conn: sqlite3.Connection, m: MachineRecord, *, summary: bool = False, nonce: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": m.id,
        "name": m.name,
        "state": m.state,
        "region": m.region,
        "instance_id": m.instance_id,
        "private_ip": m.private_ip,
        "image_ref": image_ref(str(m.config.get("image", ""))),
        "created_at": rfc3339(m.created_ms),
        "updated_at": rfc3339(m.updated_ms),
        "host_status": "ok",
    }
    if not summary:
        body["config"] = m.config
        body["events"] = machine_events(conn, m.id, RECENT_EVENTS_ON_MACHINE)
        body["checks"] = checks_json(m)
        if nonce is not None:
            body["nonce"] = nonce
    return body
