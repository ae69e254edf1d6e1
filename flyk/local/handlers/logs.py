"""Fly's logs API (`GET /api/v1/apps/{app}/logs`, served beside the Machines API), with the lines
the simulated workloads write.

Fly serves an app's logs at `https://api.fly.io/api/v1/apps/{app}/logs?instance=&region=&
next_token=` (fly-go `GetAppLogs`; reference k8s-next-capabilities.md §4.4): a page of entries
`{id, type, attributes: {timestamp, message, level, instance, region, meta}}` and
`meta.next_token`, the cursor to ask with next. Without `next_token` the page is the newest
lines; with it, the lines after it, oldest first. An empty page keeps the cursor.

No image runs here, so the lines are derived from what the machine went through (its events,
kept per machine like every event) and from its `config.env`:

- platform lines (`meta.event.provider` `runner`, as Fly's own): the image pulled at launch, each
  start, each exit with its code;
- the workload's lines (provider `app`): `FLYK_SIM_LOG` (its lines, written each time the main
  process starts; in the machine's env and in each of its containers') and, with
  `FLYK_SIM_LOG_EVERY=N`, the line `FLYK_SIM_LOG_LINE` (default `tick`) followed by a count,
  every N seconds while the machine is started (at most the last `TICKS_KEPT` of each run, as a
  log store forgets).

Everything is a function of recorded timestamps, so the same request gives the same lines in any
process, and a line "written" a second ago appears once its second has passed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flyk.local.context import Ctx, Reply
from flyk.local.errors import bad_request
from flyk.local.lifecycle import rfc3339_ms
from flyk.local.records import MachineRecord, get_app, load_app_machines
from flyk.local.store import loads

__all__ = ["PAGE_SIZE", "TICKS_KEPT", "app_logs"]

PAGE_SIZE = 100
TICKS_KEPT = 1000
_TOKEN = re.compile(r"^(\d+)\.(\d+)\.([0-9a-z]+)\.(\d+)$")


@dataclass(frozen=True, order=True)
class _Line:
    # Ordered by time, then a stable position, so a cursor means the same thing on every call.
    at: int
    rank: int
    machine_id: str
    index: int
    message: str = ""
    provider: str = "app"
    region: str = ""

    def token(self) -> str:
        return f"{self.at}.{self.rank}.{self.machine_id}.{self.index}"

    def to_api(self) -> dict[str, Any]:
        stamp = rfc3339_ms(self.at)
        level = "info"
        return {
            "id": self.token(),
            "type": "logs",
            "attributes": {
                "timestamp": stamp,
                "message": self.message,
                "level": level,
                "instance": self.machine_id,
                "region": self.region,
                "meta": {
                    "instance": self.machine_id,
                    "region": self.region,
                    "event": {"provider": self.provider},
                },
            },
        }


def _cursor(token: str) -> tuple[int, int, str, int] | None:
    if not token:
        return None
    found = _TOKEN.match(token)
    if found is None:
        raise bad_request(f"invalid next_token {token!r}")
    return int(found[1]), int(found[2]), found[3], int(found[4])


def _env_lines(config: dict[str, Any]) -> tuple[list[str], float, str]:
    """What the machine writes: the machine's env, then each container's (a multi-container
    machine); the first that ticks sets the pace."""
    envs = [config.get("env") or {}] + [c.get("env") or {} for c in config.get("containers") or []]
    lines: list[str] = []
    every, tick = 0.0, "tick"
    for env in envs:
        lines += [line for line in str(env.get("FLYK_SIM_LOG") or "").split("\n") if line]
        if not every and env.get("FLYK_SIM_LOG_EVERY"):
            try:
                every = max(0.0, float(env["FLYK_SIM_LOG_EVERY"]))
            except ValueError:
                every = 0.0
            tick = str(env.get("FLYK_SIM_LOG_LINE") or "tick")
    return lines, every, tick


def _machine_lines(m: MachineRecord, events: list[dict[str, Any]], now: int) -> list[_Line]:
    """The machine's lines: platform lines from its events, the workload's from its env."""
    out: list[_Line] = []
    written, every, tick = _env_lines(m.config)
    image = str(m.config.get("image") or "")

    def line(at: int, rank: int, index: int, message: str, provider: str = "app") -> None:
        out.append(_Line(at, rank, m.id, index, message, provider, m.region))

    run_started: int | None = None
    run_rank = 0

    def end_run(until: int) -> None:
        if run_started is None or every <= 0:
            return
        step = round(every * 1000)
        count = (until - run_started - 1) // step if until > run_started else 0
        for n in range(max(1, count - TICKS_KEPT + 1), count + 1):
            line(run_started + n * step, run_rank, n, f"{tick} {n}")

    for event in events:
        at, seq = int(event["timestamp"]), int(event["seq"])
        kind, status = event["type"], event["status"]
        if run_started is not None and status != "started":
            end_run(at + 1)
            run_started = None
        if kind == "launch":
            line(at, seq, 0, f"Pulling container image {image}", "runner")
        elif kind == "start" and status == "started":
            line(at, seq, 0, f"Machine {m.id} started", "runner")
            for index, text in enumerate(written, start=1):
                line(at, seq, index, text)
            run_started, run_rank = at, seq
        elif kind == "exit":
            exit_event = (event.get("request") or {}).get("exit_event") or {}
            code = exit_event.get("exit_code", 0)
            line(at, seq, 0, f"Main child exited normally with code: {code}", "runner")
    if run_started is not None:
        end_run(now + 1)
    return out


def app_logs(ctx: Ctx) -> Reply:
    """`GET /api/v1/apps/{app}/logs`: a page of the app's lines (see the module docstring)."""
    app = ctx.params["app_name"]
    get_app(ctx.db, app)
    instance, region = ctx.q("instance") or "", ctx.q("region") or ""
    after = _cursor(ctx.q("next_token") or "")
    machines = [
        m
        for m in load_app_machines(ctx.db, app, ctx.now_ms, ctx.timing)
        if (not instance or m.id == instance) and (not region or m.region == region)
    ]
    lines: list[_Line] = []
    for m in machines:
        rows = ctx.db.execute(
            "SELECT seq, type, status, timestamp, request FROM events"
            " WHERE machine_id = ? ORDER BY seq",
            (m.id,),
        ).fetchall()
        events = [
            {
                "seq": row["seq"],
                "type": row["type"],
                "status": row["status"],
                "timestamp": row["timestamp"],
                "request": loads(row["request"]) if row["request"] else None,
            }
            for row in rows
        ]
        lines.extend(_machine_lines(m, events, ctx.now_ms))
    lines.sort()
    if after is None:
        page = lines[-PAGE_SIZE:]
    else:
        page = [line for line in lines if (line.at, line.rank, line.machine_id, line.index) > after]
        page = page[:PAGE_SIZE]
    token = page[-1].token() if page else (ctx.q("next_token") or "")
    return Reply(200, {"data": [line.to_api() for line in page], "meta": {"next_token": token}})
