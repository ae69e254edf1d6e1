"""SQLite storage: one file, safe for several processes (WAL, busy timeout, immediate transactions).

Each transaction opens its own connection and closes it, so no connection outlives a request or
crosses threads. Writers serialise on `BEGIN IMMEDIATE`; readers never block under WAL.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["DB_ENV_VAR", "LocalDatabaseError", "LocalStorageError", "Store", "dumps", "loads"]

DB_ENV_VAR = "FLYK_LOCAL_DB"

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orgs (
    slug TEXT PRIMARY KEY, name TEXT NOT NULL, numeric_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS apps (
    name TEXT PRIMARY KEY, id TEXT NOT NULL, org_slug TEXT NOT NULL, network TEXT NOT NULL,
    numeric_id INTEGER NOT NULL, secrets_version INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS machines (
    id TEXT PRIMARY KEY, app TEXT NOT NULL, name TEXT NOT NULL, region TEXT NOT NULL,
    state TEXT NOT NULL, instance_id TEXT NOT NULL, private_ip TEXT NOT NULL,
    config TEXT NOT NULL, sim TEXT NOT NULL, cordoned INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS machines_app ON machines (app);
CREATE TABLE IF NOT EXISTS machine_versions (
    machine_id TEXT NOT NULL, version TEXT NOT NULL, config TEXT NOT NULL,
    created_ms INTEGER NOT NULL, PRIMARY KEY (machine_id, version)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, machine_id TEXT NOT NULL,
    type TEXT NOT NULL, status TEXT NOT NULL, source TEXT NOT NULL, timestamp INTEGER NOT NULL,
    request TEXT
);
CREATE INDEX IF NOT EXISTS events_machine ON events (machine_id, seq);
CREATE TABLE IF NOT EXISTS leases (
    machine_id TEXT PRIMARY KEY, nonce TEXT NOT NULL, expires_ms INTEGER NOT NULL,
    owner TEXT NOT NULL, description TEXT NOT NULL, version TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS volumes (
    id TEXT PRIMARY KEY, app TEXT NOT NULL, name TEXT NOT NULL, region TEXT NOT NULL,
    zone TEXT NOT NULL, size_gb INTEGER NOT NULL, state TEXT NOT NULL,
    encrypted INTEGER NOT NULL, fstype TEXT NOT NULL, auto_backup_enabled INTEGER NOT NULL,
    snapshot_retention INTEGER NOT NULL, attached_machine_id TEXT, created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS volumes_app ON volumes (app);
CREATE TABLE IF NOT EXISTS secrets (
    app TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, digest TEXT NOT NULL,
    created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, PRIMARY KEY (app, name)
);
CREATE TABLE IF NOT EXISTS processes (
    machine_id TEXT PRIMARY KEY, app TEXT NOT NULL, pid INTEGER NOT NULL,
    start_ticks INTEGER NOT NULL, spawned_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS published_ports (
    app TEXT NOT NULL, port INTEGER NOT NULL, host_port INTEGER NOT NULL,
    PRIMARY KEY (app, port)
);
CREATE TABLE IF NOT EXISTS machine_memory (
    machine_id TEXT PRIMARY KEY, limit_mb INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    id TEXT PRIMARY KEY, volume_id TEXT NOT NULL, size INTEGER NOT NULL,
    volume_size INTEGER NOT NULL, digest TEXT NOT NULL, retention_days INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS secret_keys (
    app TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL, key TEXT NOT NULL,
    created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, PRIMARY KEY (app, name)
);
CREATE TABLE IF NOT EXISTS certificates (
    app TEXT NOT NULL, hostname TEXT NOT NULL, acme INTEGER NOT NULL, custom TEXT,
    validated INTEGER NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,
    PRIMARY KEY (app, hostname)
);
CREATE TABLE IF NOT EXISTS ips (
    app TEXT NOT NULL, ip TEXT NOT NULL, type TEXT NOT NULL, region TEXT NOT NULL,
    shared INTEGER NOT NULL, service_name TEXT NOT NULL, network TEXT NOT NULL,
    created_ms INTEGER NOT NULL, PRIMARY KEY (app, ip)
);
"""

_DATA_TABLES = (
    "apps", "machines", "machine_versions", "events", "leases", "volumes", "secrets", "ips", "orgs",
    "machine_memory", "snapshots", "secret_keys", "certificates", "processes", "published_ports",
)  # fmt: skip


class _ChangeSignal:
    """A condition plus a counter of committed writes, so a waiter cannot miss a notification
    that lands between its check and its sleep."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.generation = 0


# One signal per database file in this process: a wait sleeps on it and every committed write
# wakes it, so long-polls answer at once for writes made by any backend on the same file.
_SIGNALS: dict[str, _ChangeSignal] = {}
_SIGNALS_LOCK = threading.Lock()


def _signal_for(path: Path) -> _ChangeSignal:
    with _SIGNALS_LOCK:
        return _SIGNALS.setdefault(str(path), _ChangeSignal())


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def loads(text: str) -> Any:
    return json.loads(text)


def _create_private_file(path: Path) -> None:
    """Create the file readable by its owner only; an existing file keeps its mode (it may be
    a file FLYK_LOCAL_DB names by mistake, that is not ours to change)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    except FileExistsError:
        return
    os.close(fd)
    os.chmod(path, 0o600)  # whatever the umask


class LocalDatabaseError(Exception):
    """The database file cannot be used: not SQLite, not creatable, not writable.

    A user's error (a wrong FLYK_LOCAL_DB, most likely), not the backend's: the message names
    the file and the variable, and `path` holds the file. flyk.local imports nothing of flyk,
    so this is not a FlykError; the CLI maps it to a configuration error (exit 2).
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"cannot use {path} as the local backend's database: {reason} "
            f"({DB_ENV_VAR} sets its path)"
        )
        self.path = path
        self.reason = reason


class LocalStorageError(LocalDatabaseError):
    """A write the database file's storage refused (disk full, an I/O error, read-only). The
    transaction was rolled back, so nothing was changed; repeating it would be refused again.
    """

    def __init__(self, path: Path, reason: str) -> None:
        Exception.__init__(
            self,
            f"cannot write the local backend's database {path}: {reason}; nothing was changed",
        )
        self.path = path
        self.reason = reason

    @property
    def disk_full(self) -> bool:
        return "full" in self.reason


# SQLite's result codes that mean the file's storage refused, not a busy lock or a bug.
_STORAGE_ERRORS = frozenset(
    {"SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM"}
)


def _is_storage_error(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    return "_".join(name.split("_")[:2]) in _STORAGE_ERRORS


class Store:
    """The database file and its transactions."""

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser().absolute()
        try:
            self.path = self.path.resolve()
            self._signal = _signal_for(self.path)
            _create_private_file(self.path)
            self._repair_sidecars()
            self._init_schema()
        except OSError as exc:
            raise LocalDatabaseError(self.path, exc.strerror or str(exc)) from exc
        except sqlite3.Error as exc:
            raise LocalDatabaseError(self.path, str(exc)) from exc

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _sidecars(self) -> list[Path]:
        return [self.path.with_name(self.path.name + suffix) for suffix in ("-wal", "-shm")]

    def _repair_sidecars(self) -> None:
        """SQLite makes its -wal and -shm files with the database file's mode: opened while
        the file was read-only (0400), they stay read-only after its mode is restored, and
        SQLite then keeps the database read-only. A database we may write gets them back."""
        if not os.access(self.path, os.W_OK):
            return
        for sidecar in self._sidecars():
            if sidecar.exists() and not os.access(sidecar, os.W_OK):
                with contextlib.suppress(OSError):  # not ours to change: SQLite will say so
                    os.chmod(sidecar, 0o600)

    def _init_schema(self) -> None:
        conn = self._connect()
        try:
            # journal_mode needs no transaction; WAL lets readers run beside the one writer.
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            conn.execute("COMMIT")
        finally:
            conn.close()
        for sidecar in self._sidecars():
            if sidecar.exists():
                os.chmod(sidecar, 0o600)

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction: immediate (a writer) unless `write` is False. Commits on success.

        A write the storage refuses (disk full, I/O error, read-only file) is rolled back and
        raised as LocalStorageError, which names the file."""
        try:
            conn = self._connect()
        except sqlite3.Error as exc:
            raise self._storage_error(exc) from exc
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            committed_changes = conn.total_changes
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:  # a COMMIT the disk refused leaves it open
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise self._storage_error(exc) from exc
        finally:
            conn.close()
        if write and committed_changes:
            self.notify()

    def _storage_error(self, exc: sqlite3.Error) -> Exception:
        """The storage's refusal as LocalStorageError; any other SQLite error as it was."""
        if _is_storage_error(exc):
            return LocalStorageError(self.path, str(exc))
        return exc

    def notify(self) -> None:
        with self._signal.condition:
            self._signal.generation += 1
            self._signal.condition.notify_all()

    def generation(self) -> int:
        """A number that changes whenever a write commits in this process."""
        with self._signal.condition:
            return self._signal.generation

    def wait_for_change(self, seconds: float, seen_generation: int) -> None:
        """Sleep up to `seconds`, waking early when a write commits in this process (or has
        committed since `seen_generation` was read)."""
        if seconds <= 0:
            return
        with self._signal.condition:
            if self._signal.generation == seen_generation:
                self._signal.condition.wait(seconds)

    def reset(self) -> None:
        with self.transaction() as conn:
            for table in _DATA_TABLES:
                conn.execute(f"DELETE FROM {table}")
