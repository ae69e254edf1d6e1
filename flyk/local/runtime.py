"""Machines the local backend runs for real, as local processes.

Every other machine's workload is simulated (lifecycle.py). A machine whose image a
`Launcher` knows (flyk's control-plane image: the CLI wires it, flyk/k8s/local_launch.py)
runs its entrypoint here, in a directory of its own that stands for the machine's disk:
`files[]` are written under it at their guest paths, each mount is a link to the volume's own
directory (which outlives the machine, as a Fly volume does), the app's secrets and
`config.env` are its environment, and each `services[].internal_port` (and each port the image
exposes on the private network, as the control plane's DNS) is published on a free loopback
port, recorded per app, that the process is told to listen on (`FLYK_LOCAL_PORT_<port>`).

The machine's state says what should run; `sync` makes it so after every request and when a
backend opens: a started machine has its process (started again, with the restart policy
applied, when it died: the exit is recorded as an exit event with the process's exit code), a
stopped one has none (SIGTERM, then SIGKILL for the whole process group after the stop
timeout), a suspended one is frozen (SIGSTOP) and thawed on resume, a destroyed one is gone
with its directory. Processes are recorded (pid and start time) in SQLite, so any flyk process
finds them again, after a reboot too. Processes this runtime starts run with
`FLYK_LOCAL_RUNTIME=0`, so that a flyk inside them (the kubelet) never manages its own parent.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from flyk.local.knobs import Timing
from flyk.local.records import MachineRecord, advance, save_machine
from flyk.local.store import Store

__all__ = ["RUNTIME_ENV_VAR", "Launch", "Launcher", "Runtime"]

# Set to 0 in the environment of every process the runtime starts (and honoured by the CLI).
RUNTIME_ENV_VAR = "FLYK_LOCAL_RUNTIME"
PORT_ENV = "FLYK_LOCAL_PORT_{port}"
ROOT_ENV = "FLYK_ROOT"
EXIT_FILE_ENV = "FLYK_EXIT_FILE"
# An exit the process could not report (SIGKILL, a reboot): what Fly reports for a kill.
UNKNOWN_EXIT = 137
DEFAULT_STOP_SECONDS = 30.0
RESTART_EVENTS = ("exit", "restart", "stop", "update", "destroy")


class Launch(NamedTuple):
    """How a machine's image runs here: its entrypoint and cmd, the environment the image itself
    sets (its Dockerfile's ENV), and the ports it serves on the machine's private (6PN) address
    beside its services (its EXPOSE): published on loopback as the services' are. A launcher
    turns a machine config into one (a plain `(argv, env)` pair will do), or None when it does
    not run that image."""

    argv: list[str]
    env: Mapping[str, str]
    exposed: tuple[int, ...] = ()


# A launcher may answer with a Launch or any tuple of its fields (layers above this one do
# not import it).
Launcher = Callable[
    [Mapping[str, Any]],
    Launch
    | tuple[list[str], Mapping[str, str]]
    | tuple[list[str], Mapping[str, str], tuple[int, ...]]
    | None,
]


@dataclass(frozen=True)
class ProcessRow:
    machine_id: str
    app: str
    pid: int
    start_ticks: int
    spawned_ms: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ProcessRow:
        return cls(row["machine_id"], row["app"], row["pid"], row["start_ticks"], row["spawned_ms"])


# The processes this Python process started, kept so that they are reaped here when they exit
# (rather than staying zombies) and never garbage-collected while they run.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), None when it is gone or a
    zombie: with the pid it names one process for good, whatever reuses the pid later."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        child = _CHILDREN.pop(pid, None)
        if child is not None:
            child.poll()  # ours: reap it
        return None
    return int(fields[19])


def _alive(row: ProcessRow) -> bool:
    return row.pid > 0 and _start_ticks(row.pid) == row.start_ticks


def _stopped(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] == "T"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Runtime:
    """Runs the machines `launcher` knows. `address` is how a process reaches this backend
    (FLYK_LOCAL_DB for the embedded one, FLYK_API_URL for `flyk local serve`)."""

    def __init__(
        self,
        store: Store,
        launcher: Launcher,
        *,
        timing: Callable[[], Timing] = Timing.instant,
        clock: Callable[[], float] = time.time,
        address: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.launcher = launcher
        self.clock = clock
        self.timing = timing
        self.address = dict(address or {"FLYK_LOCAL_DB": str(store.path)})
        self.home = store.path.parent / f"{store.path.stem}.machines"

    # --- paths -------------------------------------------------------------------------------

    def machine_dir(self, machine_id: str) -> Path:
        return self.home / machine_id

    def log_path(self, machine_id: str) -> Path:
        return self.machine_dir(machine_id) / "machine.log"

    def volume_dir(self, volume_id: str) -> Path:
        return self.home / "volumes" / volume_id

    # --- adoption (at create and update) -------------------------------------------------------

    def adopt(self, conn: sqlite3.Connection, m: MachineRecord) -> None:
        """Record a machine this runtime will run, and publish its service ports."""
        found = self.launcher(m.config)
        if found is None:
            conn.execute("DELETE FROM processes WHERE machine_id = ? AND pid = 0", (m.id,))
            return
        conn.execute(
            "INSERT OR IGNORE INTO processes (machine_id, app, pid, start_ticks, spawned_ms)"
            " VALUES (?,?,0,0,0)",
            (m.id, m.app),
        )
        for service in m.config.get("services") or []:
            if isinstance(service, dict) and isinstance(service.get("internal_port"), int):
                self.publish(conn, m.app, service["internal_port"])
        for port in Launch(*found).exposed:
            self.publish(conn, m.app, port)

    def publish(self, conn: sqlite3.Connection, app: str, port: int) -> int:
        """The loopback port that stands for `port` of `app`'s services (made once, kept)."""
        row = conn.execute(
            "SELECT host_port FROM published_ports WHERE app = ? AND port = ?", (app, port)
        ).fetchone()
        if row is not None:
            return int(row["host_port"])
        host_port = free_port()
        conn.execute(
            "INSERT INTO published_ports (app, port, host_port) VALUES (?,?,?)",
            (app, port, host_port),
        )
        return host_port

    def published(self, conn: sqlite3.Connection, app: str) -> dict[int, int]:
        rows = conn.execute(
            "SELECT port, host_port FROM published_ports WHERE app = ?", (app,)
        ).fetchall()
        return {int(r["port"]): int(r["host_port"]) for r in rows}

    # --- reconciliation ------------------------------------------------------------------------

    def sync(self) -> None:
        """Make every recorded machine's processes match its state."""
        with self.store.transaction(write=False) as conn:
            if conn.execute("SELECT 1 FROM processes LIMIT 1").fetchone() is None:
                return
        with self.store.transaction() as conn:
            for row in conn.execute("SELECT * FROM processes").fetchall():
                self._sync_one(conn, ProcessRow.from_row(row))

    def _sync_one(self, conn: sqlite3.Connection, row: ProcessRow) -> None:
        found = conn.execute("SELECT * FROM machines WHERE id = ?", (row.machine_id,)).fetchone()
        if found is None:
            self._kill(row)
            conn.execute("DELETE FROM processes WHERE machine_id = ?", (row.machine_id,))
            return
        m = MachineRecord.from_row(found)
        now = round(self.clock() * 1000)
        timing = self.timing()
        advance(conn, m, now, timing)
        alive = _alive(row)
        if m.state in ("destroying", "destroyed"):
            self._kill(row)
            if m.state == "destroyed":
                conn.execute("DELETE FROM processes WHERE machine_id = ?", (m.id,))
                shutil.rmtree(self.machine_dir(m.id), ignore_errors=True)
            return
        if m.state == "suspended":
            if alive and not _stopped(row.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(row.pid, signal.SIGSTOP)
            return
        if m.state not in ("starting", "started"):
            if alive:
                self._stop(row, m)
            self._set_pid(conn, m.id, 0, 0, row.spawned_ms)
            return
        if alive and self._restarted_since(conn, m.id, row.spawned_ms):
            self._stop(row, m)
            alive = False
            row = ProcessRow(m.id, m.app, 0, 0, row.spawned_ms)
        if alive:
            if _stopped(row.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(row.pid, signal.SIGCONT)
            return
        if row.pid > 0:  # it ran and died by itself: an exit, and Fly's restart policy
            code = self._exit_code(m.id)
            events = m.sim.exited(now, code, m.workload(), timing)
            save_machine(conn, m, events)
            self._set_pid(conn, m.id, 0, 0, row.spawned_ms)
            if m.state not in ("starting", "started"):
                return
        self._spawn(conn, m, now)

    def _restarted_since(self, conn: sqlite3.Connection, machine_id: str, since: int) -> bool:
        marks = ",".join("?" * len(RESTART_EVENTS))
        return (
            conn.execute(
                f"SELECT 1 FROM events WHERE machine_id = ? AND timestamp > ? AND type IN ({marks})"
                " LIMIT 1",
                (machine_id, since, *RESTART_EVENTS),
            ).fetchone()
            is not None
        )

    def _set_pid(
        self, conn: sqlite3.Connection, machine_id: str, pid: int, ticks: int, spawned: int
    ) -> None:
        conn.execute(
            "UPDATE processes SET pid = ?, start_ticks = ?, spawned_ms = ? WHERE machine_id = ?",
            (pid, ticks, spawned, machine_id),
        )

    def _exit_code(self, machine_id: str) -> int:
        path = self.machine_dir(machine_id) / "exit-code"
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return UNKNOWN_EXIT
        finally:
            path.unlink(missing_ok=True)

    # --- processes -----------------------------------------------------------------------------

    def _spawn(self, conn: sqlite3.Connection, m: MachineRecord, now: int) -> None:
        launch = self.launcher(m.config)
        if launch is None:
            return
        argv, image_env, _exposed = Launch(*launch)
        directory = self.machine_dir(m.id)
        root = directory / "root"
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        secrets = {
            r["name"]: r["value"]
            for r in conn.execute("SELECT name, value FROM secrets WHERE app = ?", (m.app,))
        }
        self._write_files(root, m.config.get("files") or [], secrets)
        self._link_mounts(root, m)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/"),
            **image_env,
            **secrets,
            **{str(k): str(v) for k, v in (m.config.get("env") or {}).items()},
            **self.address,
            ROOT_ENV: str(root),
            EXIT_FILE_ENV: str(directory / "exit-code"),
            RUNTIME_ENV_VAR: "0",
            "FLY_MACHINE_ID": m.id,
            "FLY_APP_NAME": m.app,
            "FLY_REGION": m.region,
            "FLY_PRIVATE_IP": m.private_ip,
        }
        for port, host_port in self.published(conn, m.app).items():
            env[PORT_ENV.format(port=port)] = str(host_port)
        with open(self.log_path(m.id), "ab") as log:
            process = subprocess.Popen(
                argv,
                env=env,
                cwd=root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives the CLI; its group is stopped as one
            )
        _CHILDREN[process.pid] = process
        ticks = _start_ticks(process.pid) or 0
        self._set_pid(conn, m.id, process.pid, ticks, now)

    def _write_files(self, root: Path, files: list[Any], secrets: Mapping[str, str]) -> None:
        import base64

        for item in files:
            if not isinstance(item, dict) or not item.get("guest_path"):
                continue
            raw: str | None = item.get("raw_value")
            if item.get("secret_name"):
                raw = secrets.get(str(item["secret_name"]))
            if raw is None:
                continue
            path = root / str(item["guest_path"]).lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            mode = int(item.get("mode") or 0o644)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(base64.b64decode(raw))
            os.chmod(path, mode)

    def _link_mounts(self, root: Path, m: MachineRecord) -> None:
        for mount in m.config.get("mounts") or []:
            if not isinstance(mount, dict) or not mount.get("volume") or not mount.get("path"):
                continue
            target = self.volume_dir(str(mount["volume"]))
            target.mkdir(parents=True, exist_ok=True)
            os.chmod(target, 0o700)
            link = root / str(mount["path"]).lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                if link.is_symlink() and link.resolve() == target.resolve():
                    continue
                if link.is_symlink():
                    link.unlink()
                else:
                    shutil.rmtree(link)
            link.symlink_to(target, target_is_directory=True)

    def forget_volume(self, volume_id: str) -> None:
        """A destroyed volume's directory goes with it."""
        shutil.rmtree(self.volume_dir(volume_id), ignore_errors=True)

    def _stop(self, row: ProcessRow, m: MachineRecord) -> None:
        """SIGTERM (or the machine's stop signal) to the process, SIGKILL to its group after
        the stop timeout."""
        stop = m.config.get("stop_config") or {}
        name = str(stop.get("signal") or "SIGTERM")
        signum = getattr(signal, name, signal.SIGTERM)
        timeout = _seconds(stop.get("timeout"), DEFAULT_STOP_SECONDS)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(row.pid, signal.SIGCONT)
            os.kill(row.pid, signum)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(row):
            time.sleep(0.05)
        self._kill(row)
        with contextlib.suppress(OSError):
            (self.machine_dir(m.id) / "exit-code").unlink()

    def _kill(self, row: ProcessRow) -> None:
        if row.pid <= 0:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if _alive(row):
                os.killpg(row.pid, signal.SIGKILL)
        # Whatever the group left behind (children of a process that was SIGKILLed).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(row.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _start_ticks(row.pid) == row.start_ticks:
            time.sleep(0.02)

    def stop_all(self) -> None:
        """Stop every process this backend runs (`flyk local reset`)."""
        with self.store.transaction() as conn:
            for found in conn.execute("SELECT * FROM processes").fetchall():
                row = ProcessRow.from_row(found)
                self._kill(row)
            conn.execute("DELETE FROM processes")
            conn.execute("DELETE FROM published_ports")
        shutil.rmtree(self.home, ignore_errors=True)

    def status(self) -> list[dict[str, Any]]:
        """What runs for real: machine, app, pid (0: not running), log file."""
        with self.store.transaction(write=False) as conn:
            rows = [ProcessRow.from_row(r) for r in conn.execute("SELECT * FROM processes")]
            ports = {r.app: self.published(conn, r.app) for r in rows}
        return [
            {
                "machine_id": r.machine_id,
                "app": r.app,
                "pid": r.pid if _alive(r) else 0,
                "running": _alive(r),
                "log": str(self.log_path(r.machine_id)),
                "ports": {str(k): v for k, v in ports[r.app].items()},
            }
            for r in rows
        ]


def _seconds(value: Any, default: float) -> float:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        with contextlib.suppress(ValueError):
            if text.endswith("ms"):
                return float(text[:-2]) / 1000
            if text.endswith("s"):
                return float(text[:-1])
            if text.endswith("m"):
                return float(text[:-1]) * 60
            return float(text)
    return default
