"""`LocalBackend`: the Machines API served from a SQLite file, in-process or over HTTP."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flyk.local.admin import AdminApi
from flyk.local.context import Settings
from flyk.local.core import Core
from flyk.local.knobs import Capacity, Faults, RateLimits, Timing, strict_from_env
from flyk.local.runtime import Launcher, Runtime
from flyk.local.store import DB_ENV_VAR, Store

if TYPE_CHECKING:
    import httpx

    from flyk.local.server import ServedBackend

__all__ = ["DB_ENV_VAR", "DEFAULT_ORGS", "LocalBackend", "default_path"]

DEFAULT_ORGS: dict[str, str] = {"personal": "Personal"}


def default_path() -> Path:
    """`FLYK_LOCAL_DB` when set, else `<platformdirs user data dir>/flyk/local.db`."""
    override = os.environ.get(DB_ENV_VAR)
    if override:
        return Path(override).expanduser()
    import platformdirs  # only needed for the default path; keeps `import flyk.local` light

    return Path(platformdirs.user_data_dir("flyk", appauthor=False)) / "local.db"


class LocalBackend:
    """An embedded Machines API.

    `path`: the SQLite file (None: `default_path()`). `timing`: how long transitions take.
    `orgs`: organizations the backend knows besides `personal` (slug, or slug -> display name).
    `clock`: unix seconds, injectable for tests (lease expiry, transitions, rate limits).
    `sleep`: how latency faults wait, injectable for tests.
    `strict`: refuse request fields the spec does not name (None: `FLYK_LOCAL_STRICT`); by
    default they are ignored, as the real API ignores them. `.strict` may be changed later.
    `launcher`: runs the machines whose image it knows as local processes (runtime.py); every
    other machine's workload is simulated. Without one, nothing runs for real.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        timing: Timing | None = None,
        *,
        orgs: Iterable[str] | dict[str, str] = (),
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        strict: bool | None = None,
        launcher: Launcher | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.strict = strict_from_env() if strict is None else strict
        self._timing = timing or Timing.instant()
        self._timing_lock = threading.Lock()
        self.capacity = Capacity()
        self.faults = Faults()
        self.rate_limits = RateLimits()
        self.clock = clock
        self._store = Store(self.path)
        extra = orgs if isinstance(orgs, dict) else {slug: slug for slug in orgs}
        self._default_orgs = {**DEFAULT_ORGS, **extra}
        self._ensure_orgs()
        self.runtime = (
            None
            if launcher is None
            else Runtime(self._store, launcher, timing=lambda: self.timing, clock=self._now)
        )
        settings = Settings(
            store=self._store,
            timing=lambda: self.timing,
            capacity=self.capacity,
            clock=self._now,
            strict=lambda: self.strict,
            runtime=self.runtime,
        )
        if self.runtime is not None:
            self.runtime.sync()  # bring back what a reboot or a crash took down
        self._core = Core(settings, self.faults, self.rate_limits, AdminApi(self), sleep=sleep)

    @property
    def store(self) -> Store:
        return self._store

    def _now(self) -> float:
        return self.clock()

    @property
    def timing(self) -> Timing:
        with self._timing_lock:
            return self._timing

    @timing.setter
    def timing(self, value: Timing) -> None:
        with self._timing_lock:
            self._timing = value

    @property
    def core(self) -> Core:
        return self._core

    def transport(self) -> httpx.BaseTransport:
        """An in-process httpx transport (base URL: any host; paths under /v1)."""
        from flyk.local.transport import LocalTransport  # httpx only when a transport is made

        return LocalTransport(self._core)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> ServedBackend:
        """Serve over HTTP on a background thread; `.url` is e.g. http://127.0.0.1:PORT."""
        from flyk.local.server import ServedBackend  # the HTTP stack only when serving

        return ServedBackend(self._core, host, port)

    def close(self) -> None:
        """Nothing to release: every request opens and closes its own SQLite connection.
        Present so a backend can be used like other closable resources."""

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def reset(self) -> None:
        """Forget all state (apps, machines, volumes, …) and the knobs' settings, stopping
        every machine that runs for real first."""
        (self.runtime or Runtime(self._store, lambda _config: None)).stop_all()
        self._store.reset()
        self._ensure_orgs()
        self.capacity.reset()
        self.faults.reset()
        self.rate_limits.reset()

    # --- routing -------------------------------------------------------------------------------

    def routes(self, address: str, port: int, protocol: str = "tcp") -> dict[str, Any]:
        """Where Fly Proxy would send a connection to `address`:`port` (routing.py): the
        address's app and service_name (empty when no app holds it) and the machines."""
        from flyk.local import routing

        now_ms = round(self._now() * 1000)
        with self._store.transaction() as conn:  # a write: the machines' states advance
            row = routing.find_address(conn, address)
            found = routing.route(conn, address, port, protocol, now_ms=now_ms, timing=self.timing)
        return {
            "address": address,
            "port": port,
            "protocol": protocol,
            "app": row["app"] if row is not None else "",
            "service_name": row["service_name"] if row is not None else "",
            "machines": [r.to_json() for r in found],
        }

    # --- organizations -------------------------------------------------------------------------

    def add_org(self, slug: str, name: str | None = None) -> None:
        with self._store.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO orgs (slug, name, numeric_id) VALUES (?,?,?)",
                (slug, name or slug, secrets.randbelow(10**6)),
            )

    def orgs(self) -> list[dict[str, Any]]:
        with self._store.transaction(write=False) as conn:
            rows = conn.execute("SELECT slug, name FROM orgs ORDER BY slug").fetchall()
        return [{"slug": row["slug"], "name": row["name"]} for row in rows]

    def _ensure_orgs(self) -> None:
        for slug, name in self._default_orgs.items():
            self.add_org(slug, name)
