"""Machine actions: start, stop, restart, suspend, signal, cordon, uncordon, exec, and wait."""

from __future__ import annotations

import base64
import json
import shlex
import time
from typing import Any

from flyk.local.context import Ctx, Reply, ok
from flyk.local.errors import ApiError, bad_request, precondition
from flyk.local.lifecycle import SETTLED_STATES, SIGNALS, Event
from flyk.local.records import (
    MachineRecord,
    advance,
    check_lease,
    load_machine,
    save_machine,
)
from flyk.local.validate import DURATION, check_fields

STOP_SIGNALS = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGTERM")
WAIT_STATES = frozenset(
    {"started", "stopped", "suspended", "destroyed", "failed", "settled", "created"}
)
MAX_WAIT_SECONDS = 60
# A wait re-reads the database at least this often, to see writes by other processes.
WAIT_RECHECK_SECONDS = 0.5


def _mutate(ctx: Ctx, action: str, **kwargs: Any) -> tuple[MachineRecord, str]:
    """Load, check the lease, apply one Sim action, save; return the machine and its prior state."""
    m = load_machine(ctx, include_destroyed=False)
    check_lease(ctx, m)
    previous = m.state
    events: list[Event] = getattr(m.sim, action)(ctx.now_ms, **kwargs)
    save_machine(ctx.db, m, events)
    advance(ctx.db, m, ctx.now_ms, ctx.timing)
    return m, previous


def start(ctx: Ctx) -> Reply:
    _, previous = _mutate(ctx, "start", timing=ctx.timing)
    return Reply(200, {"ok": True, "previous_state": previous})


def _signal_name(value: Any, allowed: tuple[str, ...] | frozenset[str], where: str) -> str:
    if not isinstance(value, str) or value.upper() not in allowed:
        raise bad_request(f"invalid {where}: signal must be one of {', '.join(sorted(allowed))}")
    return value.upper()


def _check_duration(value: Any, where: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise bad_request(f'invalid {where}: timeout must be a duration such as "10s"')
    if isinstance(value, str) and not DURATION.match(value):
        raise bad_request(f'invalid {where}: timeout {value!r} is not a duration such as "10s"')


def stop(ctx: Ctx) -> Reply:
    body = ctx.json()
    check_fields(body, {"signal": "str?", "timeout": "str?"}, "stop request")
    _check_duration(body.get("timeout"), "stop request")
    signal = body.get("signal")
    if signal is None:
        m = load_machine(ctx, include_destroyed=False)
        signal = (m.config.get("stop_config") or {}).get("signal") or "SIGINT"
    name = _signal_name(signal, STOP_SIGNALS, "stop request")
    _mutate(ctx, "stop", timing=ctx.timing, signal=name)
    return ok()


def restart(ctx: Ctx) -> Reply:
    signal = ctx.q("signal")
    if signal is not None:
        _signal_name(signal, frozenset(SIGNALS), "restart request")
    _check_duration(ctx.q("timeout"), "restart request")
    ctx.q_bool("force_stop")
    _mutate(ctx, "restart", timing=ctx.timing)
    return ok()


def suspend(ctx: Ctx) -> Reply:
    _mutate(ctx, "suspend", timing=ctx.timing)
    return ok()


# fly-go's Kill sends the signal's number, `{"signal": 9}` (docs/local-backend.md "Older field
# names"); the spec names it.
SIGNAL_NAMES = {number: name for name, number in SIGNALS.items()}


def signal(ctx: Ctx) -> Reply:
    body = ctx.json()
    number = body.get("signal")
    if isinstance(number, int) and not isinstance(number, bool):
        if number not in SIGNAL_NAMES:
            raise bad_request(f"invalid signal request: unknown signal number {number}")
        body = {**body, "signal": SIGNAL_NAMES[number]}
    check_fields(body, {"signal": "str"}, "signal request")
    if "signal" not in body:
        raise bad_request("invalid signal request: signal is required")
    name = _signal_name(body["signal"], frozenset(SIGNALS), "signal request")
    _mutate(ctx, "signal", signal=name)
    return ok()


def _set_cordoned(ctx: Ctx, cordoned: bool) -> Reply:
    m = load_machine(ctx, include_destroyed=False)
    check_lease(ctx, m)
    m.cordoned = cordoned
    save_machine(
        ctx.db, m, [Event("cordon" if cordoned else "uncordon", m.state, "user", ctx.now_ms)]
    )
    return ok()


def cordon(ctx: Ctx) -> Reply:
    return _set_cordoned(ctx, True)


def uncordon(ctx: Ctx) -> Reply:
    return _set_cordoned(ctx, False)


# --- exec (simulated: no image runs) -------------------------------------------------------------

EXEC_FIELDS = {
    "cmd": "str?",
    "command": "list?",
    "container": "str?",
    "stdin": "str?",
    "timeout": "int?",
}


def exec_command(ctx: Ctx) -> Reply:
    body = ctx.json()
    check_fields(body, EXEC_FIELDS, "exec request")
    command = body.get("command")
    if command is None and body.get("cmd"):
        command = shlex.split(body["cmd"])
    if not command or not all(isinstance(part, str) for part in command):
        raise bad_request("invalid exec request: command must be a non-empty array of strings")
    m = load_machine(ctx, include_destroyed=False)
    if m.state != "started":
        raise precondition(f"machine {m.id} is not started (state: {m.state})")
    stdout, stderr, code = simulate_exec(m, command, body.get("stdin") or "")
    return Reply(200, {"stdout": stdout, "stderr": stderr, "exit_code": code, "exit_signal": 0})


def simulate_exec(m: MachineRecord, command: list[str], stdin: str) -> tuple[str, str, int]:
    """The machine's own command table (`FLYK_SIM_EXEC`), then a few builtins answered from
    the machine's config; anything else exits 127."""
    program, args = command[0].rsplit("/", 1)[-1], command[1:]
    env = {"FLY_MACHINE_ID": m.id, "FLY_REGION": m.region, "FLY_APP_NAME": m.app}
    env.update(m.config.get("env") or {})
    table = _command_table(env.get("FLYK_SIM_EXEC"))
    if isinstance(table, str):
        return "", table, 126
    if program in table:
        entry = table[program]
        return str(entry.get("stdout", "")), str(entry.get("stderr", "")), _code(entry)
    if program == "true":
        return "", "", 0
    if program == "false":
        return "", "", 1
    if program == "echo":
        return " ".join(args) + "\n", "", 0
    if program == "hostname":
        return m.id + "\n", "", 0
    if program == "env":
        return "".join(f"{k}={v}\n" for k, v in sorted(env.items())), "", 0
    if program == "cat":
        return _cat(m, args, stdin)
    return "", f"{program}: command not found (flyk local backend: images are not run)\n", 127


def _command_table(raw: str | None) -> dict[str, dict[str, Any]] | str:
    """`FLYK_SIM_EXEC`: a JSON object naming programs, each `{stdout, stderr, exit_code}`;
    a malformed one is the error message to answer with."""
    if not raw:
        return {}
    try:
        table = json.loads(raw)
    except ValueError:
        table = None
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        example = '{"ls": {"stdout": "a\\n", "exit_code": 0}}'
        return f"FLYK_SIM_EXEC must be a JSON object like {example}\n"
    return table


def _code(entry: dict[str, Any]) -> int:
    try:
        return int(entry.get("exit_code", 0))
    except (TypeError, ValueError):
        return 1


def _cat(m: MachineRecord, paths: list[str], stdin: str) -> tuple[str, str, int]:
    if not paths:
        return stdin, "", 0
    files = {f.get("guest_path"): f for f in m.config.get("files") or []}
    out: list[str] = []
    for path in paths:
        entry = files.get(path)
        if entry is None or entry.get("raw_value") is None:
            return "".join(out), f"cat: {path}: No such file or directory\n", 1
        try:
            out.append(base64.b64decode(entry["raw_value"]).decode("utf-8", "replace"))
        except ValueError:
            return "".join(out), f"cat: {path}: unreadable\n", 1
    return "".join(out), "", 0


# --- wait: a long-poll that sleeps until the next transition is due or a write lands ----------


def _wait_params(ctx: Ctx) -> tuple[set[str], float, str | None, str | None]:
    states = set(ctx.q_all("state")) or {"started"}
    unknown = states - WAIT_STATES
    if unknown:
        raise bad_request(
            f"invalid state {', '.join(sorted(unknown))}: wait for one of "
            f"{', '.join(sorted(WAIT_STATES))}"
        )
    timeout = ctx.q_int("timeout")
    if timeout is None:
        timeout = MAX_WAIT_SECONDS
    if timeout < 0 or timeout > MAX_WAIT_SECONDS:
        raise bad_request(
            f"invalid_argument: timeout must be between 0 and {MAX_WAIT_SECONDS} seconds"
        )
    version = ctx.q("version") or ctx.q("instance_id")
    return states, float(timeout), version, ctx.q("from_event_id")


def _reached(ctx: Ctx, m: MachineRecord, states: set[str], from_event: str | None) -> bool:
    if from_event is not None:
        row = ctx.db.execute(
            "SELECT seq FROM events WHERE machine_id = ? AND id = ?", (m.id, from_event)
        ).fetchone()
        if row is None:
            raise bad_request(f"unknown from_event_id {from_event!r}")
        later = ctx.db.execute(
            "SELECT 1 FROM events WHERE machine_id = ? AND seq > ?", (m.id, row["seq"])
        ).fetchone()
        if later is None:
            return False
    return m.state in states or ("settled" in states and m.state in SETTLED_STATES)


def _check_version(ctx: Ctx, m: MachineRecord, version: str | None) -> bool:
    """True when the wait applies to the machine's current version."""
    if version is None or version == m.instance_id:
        return True
    known = ctx.db.execute(
        "SELECT 1 FROM machine_versions WHERE machine_id = ? AND version = ?", (m.id, version)
    ).fetchone()
    if known is None:
        raise bad_request(f"invalid version {version!r} for machine {m.id}")
    return False  # an older version: it was replaced and never reaches a state again


def wait(ctx: Ctx) -> Reply:
    states, timeout, version, from_event = _wait_params(ctx)
    store = ctx.settings.store
    deadline = time.monotonic() + timeout
    while True:
        generation = store.generation()
        with store.transaction() as conn:
            ctx.conn = conn
            ctx.now_ms = round(ctx.settings.clock() * 1000)
            m = load_machine(ctx)
            if _check_version(ctx, m, version) and _reached(ctx, m, states, from_event):
                return Reply(200, _wait_body(ctx, m))
            due = m.sim.next_due()
        ctx.conn = None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ApiError(
                408,
                f"deadline_exceeded: machine {m.id} did not reach {' or '.join(sorted(states))} "
                f"within {int(timeout)}s (state: {m.state})",
            )
        sleep = min(remaining, WAIT_RECHECK_SECONDS)
        if due is not None:
            sleep = min(sleep, max(0.0, (due - ctx.now_ms) / 1000))
        store.wait_for_change(sleep, generation)


def _wait_body(ctx: Ctx, m: MachineRecord) -> dict[str, Any]:
    row = ctx.db.execute(
        "SELECT id FROM events WHERE machine_id = ? ORDER BY seq DESC LIMIT 1", (m.id,)
    ).fetchone()
    body: dict[str, Any] = {"ok": True, "state": m.state, "version": m.instance_id}
    if row is not None:
        body["event_id"] = row["id"]
    return body
