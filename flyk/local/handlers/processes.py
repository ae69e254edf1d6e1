"""A machine's processes and memory balloon, simulated from its config."""

from __future__ import annotations

from typing import Any

from flyk.local.context import Ctx, Reply
from flyk.local.errors import bad_request, precondition
from flyk.local.records import MachineRecord, load_machine
from flyk.local.validate import check_fields

SORT_KEYS = ("pid", "cpu", "rss", "rtime", "stime", "command")


def _require_started(m: MachineRecord) -> None:
    if m.state != "started":
        raise precondition(f"machine {m.id} is not started (state: {m.state})")


def _command(m: MachineRecord) -> str:
    init = m.config.get("init") or {}
    parts = init.get("exec") or [*(init.get("entrypoint") or []), *(init.get("cmd") or [])]
    return " ".join(parts) if parts else f"{m.config.get('image')} (simulated workload)"


def list_processes(ctx: Ctx) -> Reply:
    """One process: the simulated main process (pid 1), since no image runs."""
    sort_by = ctx.q("sort_by") or "pid"
    order = ctx.q("order") or "asc"
    if sort_by not in SORT_KEYS or order not in {"asc", "desc"}:
        raise bad_request(f"sort_by must be one of {', '.join(SORT_KEYS)}; order asc or desc")
    m = load_machine(ctx, include_destroyed=False)
    _require_started(m)
    process: dict[str, Any] = {
        "pid": 1,
        "command": _command(m),
        "directory": "/",
        "cpu": 0,
        "rss": m.memory_mb() * 1024 * 1024 // 8,
        "rtime": 0,
        "stime": 0,
        "listen_sockets": [],
    }
    return Reply(200, [process])


def _limit(ctx: Ctx, m: MachineRecord) -> int:
    row = ctx.db.execute(
        "SELECT limit_mb FROM machine_memory WHERE machine_id = ?", (m.id,)
    ).fetchone()
    return m.memory_mb() if row is None else int(row["limit_mb"])


def _memory_body(ctx: Ctx, m: MachineRecord) -> dict[str, int]:
    limit = _limit(ctx, m)
    used = m.memory_mb() // 8  # what the simulated workload "uses"
    return {"limit_mb": limit, "available_mb": max(0, limit - used)}


def get_memory(ctx: Ctx) -> Reply:
    m = load_machine(ctx, include_destroyed=False)
    return Reply(200, _memory_body(ctx, m))


def set_memory_limit(ctx: Ctx) -> Reply:
    m = load_machine(ctx, include_destroyed=False)
    body = ctx.json()
    check_fields(body, {"limit_mb": "int"}, "memory limit")
    limit = body.get("limit_mb")
    if limit is None or not 1 <= limit <= m.memory_mb():
        raise bad_request(f"limit_mb must be between 1 and the machine's {m.memory_mb()} MB")
    ctx.db.execute(
        "INSERT OR REPLACE INTO machine_memory (machine_id, limit_mb) VALUES (?, ?)", (m.id, limit)
    )
    return Reply(200, _memory_body(ctx, m))


def reclaim_memory(ctx: Ctx) -> Reply:
    m = load_machine(ctx, include_destroyed=False)
    _require_started(m)
    body = ctx.json()
    check_fields(body, {"amount_mb": "int"}, "memory reclaim")
    amount = body.get("amount_mb")
    if amount is None or amount < 0:
        raise bad_request("amount_mb must be a number of MB >= 0")
    return Reply(200, {"actual_mb": min(amount, _memory_body(ctx, m)["available_mb"])})
