"""The machine state machine, computed from recorded timestamps (no background thread).

A machine's `Sim` holds its current state and the steps scheduled for the future, each with the
millisecond at which it is due. `advance(sim, now)` applies every due step in order and returns the
events they record, so a machine progresses between separate CLI runs with no daemon running: the
next reader (any process) materialises what has happened since. Actions (`start`, `stop`, …)
replace the schedule. Nothing here touches SQLite or HTTP.

The workload is simulated (images are not run). Its conventions, read from `config.env`:

- `FLYK_SIM_RUN_SECONDS`: the main process exits on its own this long after the machine starts
  (absent: it runs until stopped);
- `FLYK_SIM_EXIT_CODE`: the code it exits with (default 0; setting it alone means "exit at once");
- `FLYK_SIM_OOM=1`: the exit is an OOM kill (exit code 137, `oom_killed: true`);
- `FLYK_SIM_START_FAILS=1`: every start ends in `failed` instead of `started`;
- `FLYK_SIM_CHECK_STATUS`: what the machine's checks report while started (default `passing`;
  a container's own env sets it for its healthchecks).

A requested stop exits 0 (the workload handles the signal), or 137 for SIGKILL. A terminating
signal sent with `/signal` exits 128+signal and is not a requested stop.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from flyk.local.errors import precondition
from flyk.local.knobs import Timing

__all__ = [
    "SETTLED_STATES",
    "Event",
    "Sim",
    "Step",
    "Workload",
]

SETTLED_STATES = frozenset({"created", "started", "stopped", "suspended", "failed", "destroyed"})
RUNNING_STATES = frozenset({"started", "starting"})

SIGNALS = {
    "SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6,
    "SIGFPE": 8, "SIGKILL": 9, "SIGUSR1": 10, "SIGSEGV": 11, "SIGUSR2": 12, "SIGPIPE": 13,
    "SIGALRM": 14, "SIGTERM": 15,
}  # fmt: skip
# Signals the simulated workload handles (like a config reload) instead of exiting.
HANDLED_SIGNALS = frozenset({"SIGHUP", "SIGUSR1", "SIGUSR2"})

# Steps applied in one advance before a crash loop is fast-forwarded arithmetically.
_MAX_STEPS = 200
_DEFAULT_MAX_RETRIES = 10


def ms(seconds: float) -> int:
    return round(seconds * 1000)


def rfc3339(millis: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(millis / 1000))


def rfc3339_ms(millis: int) -> str:
    """With its milliseconds, as log lines carry their time."""
    seconds, rest = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest:03d}Z"


@dataclass
class Event:
    type: str
    status: str
    source: str
    timestamp: int
    request: dict[str, Any] | None = None


@dataclass
class Step:
    """A scheduled step. `kind` is "state" (enter `state`), "exit" (the main process exits; the
    restart policy decides what follows) or "restart" (exit, then start again regardless)."""

    at: int
    kind: str
    state: str = ""
    event_type: str = ""
    source: str = "flyd"
    exit_code: int = 0
    oom_killed: bool = False
    requested_stop: bool = False
    signal: int = -1


@dataclass(frozen=True)
class Workload:
    run_ms: int | None
    exit_code: int
    oom_killed: bool
    policy: str
    max_retries: int
    auto_destroy: bool
    start_fails: bool = False

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Workload:
        env = config.get("env") or {}
        run = env.get("FLYK_SIM_RUN_SECONDS")
        code = env.get("FLYK_SIM_EXIT_CODE")
        oom = _flag(env.get("FLYK_SIM_OOM"))
        run_ms = ms(_float(run)) if run is not None else None
        if run_ms is None and (code is not None or oom):
            run_ms = 0
        exit_code = 137 if oom else _int(code, 0)
        restart = config.get("restart") or {}
        policy = restart.get("policy") or "on-failure"
        max_retries = restart.get("max_retries")
        return cls(
            run_ms=run_ms,
            exit_code=exit_code,
            oom_killed=oom,
            policy=policy,
            max_retries=_DEFAULT_MAX_RETRIES if max_retries is None else int(max_retries),
            auto_destroy=bool(config.get("auto_destroy")),
            start_fails=_flag(env.get("FLYK_SIM_START_FAILS")),
        )

    def restarts_after(self, exit_code: int, restart_count: int) -> bool:
        if self.policy == "always":
            return True
        if self.policy == "on-failure":
            return exit_code != 0 and restart_count < self.max_retries
        return False  # "no", and "spot-price" (no spot market here)


def _flag(value: Any) -> bool:
    return str(value or "").lower() in {"1", "true", "yes"}


def _float(value: Any) -> float:
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 0.0


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


@dataclass
class Sim:
    state: str
    pending: list[Step] = field(default_factory=list)
    restart_count: int = 0
    cycle_ms: int = 0  # duration of one crash-loop cycle, for fast-forwarding

    # --- persistence -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sim:
        pending = [Step(**step) for step in data.get("pending", [])]
        return cls(
            state=data["state"],
            pending=pending,
            restart_count=int(data.get("restart_count", 0)),
            cycle_ms=int(data.get("cycle_ms", 0)),
        )

    def next_due(self) -> int | None:
        return self.pending[0].at if self.pending else None

    # --- progression ---------------------------------------------------------------------------

    def advance(self, now: int, workload: Workload, timing: Timing) -> list[Event]:
        """Apply every step due at or before `now`; return the events they record."""
        events: list[Event] = []
        steps = 0
        while self.pending and self.pending[0].at <= now:
            if steps == _MAX_STEPS:
                self._fast_forward(now, workload)
            if steps > 2 * _MAX_STEPS:
                break
            step = self.pending.pop(0)
            events.extend(self._apply(step, workload, timing))
            steps += 1
        return events

    def _fast_forward(self, now: int, workload: Workload) -> None:
        """Skip whole crash-loop cycles without recording their events."""
        if not self.pending or self.cycle_ms <= 0:
            return
        cycles = (now - self.pending[0].at) // self.cycle_ms
        if workload.policy == "on-failure":
            cycles = min(cycles, max(0, workload.max_retries - self.restart_count))
        if cycles <= 0:
            return
        for step in self.pending:
            step.at += cycles * self.cycle_ms
        self.restart_count += cycles

    def _apply(self, step: Step, workload: Workload, timing: Timing) -> list[Event]:
        if step.kind == "state":
            if step.state == "started" and workload.start_fails:
                self.state = "failed"
                self.pending = []
                return [Event(step.event_type, "failed", step.source, step.at)]
            self.state = step.state
            events = [Event(step.event_type, step.state, step.source, step.at)]
            if step.state == "started":
                self._schedule_workload_exit(step.at, workload)
            return events
        exit_event = self._exit_event(step, restarting=False)
        if step.kind == "restart":
            exit_event.request = self._exit_request(step, restarting=True)
            exit_event.status = "starting"
            self.state = "starting"
            self.pending = [Step(step.at + ms(timing.boot), "state", "started", "start")]
            return [exit_event]
        return self._after_exit(step, exit_event, workload, timing)

    def _after_exit(
        self, step: Step, exit_event: Event, workload: Workload, timing: Timing
    ) -> list[Event]:
        restart = not step.requested_stop and workload.restarts_after(
            step.exit_code, self.restart_count
        )
        if restart:
            exit_event.request = self._exit_request(step, restarting=True)
            self.restart_count += 1
            self.state = "starting"
            start_at = step.at + ms(timing.restart_delay)
            self.cycle_ms = max(
                1, ms(timing.restart_delay) + ms(timing.boot) + (workload.run_ms or 0)
            )
            self.pending = [Step(start_at + ms(timing.boot), "state", "started", "start")]
            exit_event.status = "starting"
            return [exit_event]
        self.state = "stopped"
        events = [exit_event]
        if workload.auto_destroy:
            self.state = "destroying"
            events.append(Event("destroy", "destroying", "flyd", step.at))
            self.pending = [Step(step.at + ms(timing.destroy), "state", "destroyed", "destroy")]
        else:
            self.pending = []
        return events

    def _exit_event(self, step: Step, *, restarting: bool) -> Event:
        return Event("exit", "stopped", "flyd", step.at, self._exit_request(step, restarting))

    def _exit_request(self, step: Step, restarting: bool) -> dict[str, Any]:
        return {
            "exit_event": {
                "exit_code": step.exit_code,
                "guest_exit_code": step.exit_code,
                "guest_signal": step.signal,
                "signal": step.signal,
                "oom_killed": step.oom_killed,
                "requested_stop": step.requested_stop,
                "restarting": restarting,
                "exited_at": rfc3339(step.at),
            },
            "restart_count": self.restart_count,
        }

    def _schedule_workload_exit(self, started_at: int, workload: Workload) -> None:
        if workload.run_ms is None:
            return
        self.pending.append(
            Step(
                started_at + workload.run_ms,
                "exit",
                exit_code=workload.exit_code,
                oom_killed=workload.oom_killed,
            )
        )

    # --- actions (the caller has advanced the sim to `now` first) ------------------------------

    def _begin(self, now: int, state: str, event_type: str) -> Event:
        self.state = state
        return Event(event_type, state, "user", now)

    def launch(self, now: int, timing: Timing, *, skip_launch: bool) -> list[Event]:
        events = [Event("launch", "created", "user", now)]
        self.state = "created"
        if not skip_launch:
            events.append(self._begin(now, "starting", "start"))
            self.pending = [Step(now + ms(timing.boot), "state", "started", "start")]
        return events

    def start(self, now: int, timing: Timing) -> list[Event]:
        if self.state in RUNNING_STATES:
            return []
        if self.state not in {"created", "stopped", "suspended", "failed"}:
            raise precondition(f"unable to start machine from current state: '{self.state}'")
        self.restart_count = 0
        event = self._begin(now, "starting", "start")
        self.pending = [Step(now + ms(timing.boot), "state", "started", "start")]
        return [event]

    def stop(self, now: int, timing: Timing, signal: str) -> list[Event]:
        if self.state == "stopping":
            # Already on the way down; a restart in progress becomes a plain stop.
            for step in self.pending:
                if step.kind == "restart":
                    step.kind = "exit"
            return []
        if self.state in {"stopped", "created", "failed"}:
            return []
        if self.state == "suspended":
            return [self._begin(now, "stopped", "stop")]
        if self.state not in RUNNING_STATES:
            raise precondition(f"unable to stop machine from current state: '{self.state}'")
        event = self._begin(now, "stopping", "stop")
        killed = signal == "SIGKILL"
        self.pending = [
            Step(
                now + (0 if killed else ms(timing.stop)),
                "exit",
                exit_code=137 if killed else 0,
                requested_stop=True,
                signal=SIGNALS[signal] if killed else -1,
            )
        ]
        return [event]

    def restart(self, now: int, timing: Timing) -> list[Event]:
        if self.state != "started":
            raise precondition(f"unable to restart machine from current state: '{self.state}'")
        event = self._begin(now, "stopping", "restart")
        self.pending = [Step(now + ms(timing.stop), "restart", requested_stop=True)]
        return [event]

    def suspend(self, now: int, timing: Timing) -> list[Event]:
        if self.state in {"suspended", "suspending"}:
            return []
        if self.state != "started":
            raise precondition(f"unable to suspend machine from current state: '{self.state}'")
        event = self._begin(now, "suspending", "suspend")
        self.pending = [Step(now + ms(timing.suspend), "state", "suspended", "suspend")]
        return [event]

    def signal(self, now: int, signal: str) -> list[Event]:
        if self.state != "started":
            raise precondition(f"unable to signal machine in current state: '{self.state}'")
        if signal in HANDLED_SIGNALS:
            return []
        number = SIGNALS[signal]
        self.pending = [Step(now, "exit", exit_code=128 + number, signal=number)]
        return []

    def exited(self, now: int, exit_code: int, workload: Workload, timing: Timing) -> list[Event]:
        """The machine's real process ended by itself (runtime.py saw it go): an exit now,
        then what the restart policy says."""
        signal = exit_code - 128 if exit_code > 128 else -1
        step = Step(now, "exit", exit_code=exit_code, signal=signal)
        self.pending = []
        return self._after_exit(step, self._exit_event(step, restarting=False), workload, timing)

    def destroy(self, now: int, timing: Timing, *, force: bool) -> list[Event]:
        if self.state in {"destroying", "destroyed"}:
            return []
        events: list[Event] = []
        if self.state not in {"created", "stopped", "suspended", "failed"}:
            if not force:
                raise precondition("unable to destroy machine, not currently stopped")
            killed = Step(now, "exit", exit_code=137, requested_stop=True, signal=9)
            events.append(self._exit_event(killed, restarting=False))
        events.append(self._begin(now, "destroying", "destroy"))
        self.pending = [Step(now + ms(timing.destroy), "state", "destroyed", "destroy")]
        return events

    def update(self, now: int, timing: Timing, *, skip_launch: bool) -> list[Event]:
        if self.state in {"destroying", "destroyed", "replacing"}:
            raise precondition(f"unable to update machine in current state: '{self.state}'")
        self.restart_count = 0
        running = self.state in RUNNING_STATES or self.state in {"stopping", "suspending"}
        if running:
            event = self._begin(now, "replacing", "update")
            after = now + ms(timing.stop)
            if skip_launch:
                self.pending = [Step(after, "state", "stopped", "update")]
            else:
                self.pending = [
                    Step(after, "state", "starting", "start"),
                    Step(after + ms(timing.boot), "state", "started", "start"),
                ]
            return [event]
        if skip_launch:
            return [Event("update", self.state, "user", now)]
        event = Event("update", self.state, "user", now)
        return [event, *self.start(now, timing)]
