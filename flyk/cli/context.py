"""The context object every command gets: global options, the Output, and a lazy client.

The root callback builds one ``AppContext`` and stores it in ``ctx.obj``; commands fetch it
with ``app_context(ctx)``. Nothing here talks to the network until a command asks for
``.client``, so ``--help``, completion of static words and ``version`` stay fast and offline.

Tests reach the client through the one seam the client has, its transport:
``flyk.cli.main.run(args, transport=httpx.MockTransport(handler))``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from flyk import config
from flyk.cli.output import Output
from flyk.errors import ConfigError, FlykError

if TYPE_CHECKING:
    from pathlib import Path

    import httpx
    import typer

    from flyk.api import FlyClient

LOCAL_BASE_URL = "http://local.flyk"
COMPLETION_DEADLINE = 2.0  # seconds a TAB may wait for the API


@dataclass
class GlobalOptions:
    access_token: str | None = None
    verbose: bool = False
    local: bool = False


class AppContext:
    """Settings, terminal and services for one flyk invocation."""

    def __init__(
        self,
        options: GlobalOptions | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self.options = GlobalOptions()
        self.output = Output()
        self._transport = transport
        self._client_options = client_options or {}
        self._client: FlyClient | None = None
        self._local_backend: Any = None
        self.announce = True  # say so on stderr when the local backend is chosen implicitly
        self.completing = False  # a shell is waiting: fail fast, say nothing
        self._retry_noticed = False
        self.configure(options or GlobalOptions())

    def configure(self, options: GlobalOptions) -> None:
        """Apply the global options (the root callback calls this once they are parsed)."""
        self.options = options
        self.output.verbose = options.verbose
        self.output.add_secret(options.access_token)

    def use_json(self, json: bool) -> Output:
        """The Output for a command, switched to JSON when the command's ``--json`` says so."""
        self.output.json_mode = json
        return self.output

    @cached_property
    def target(self) -> config.Target:
        target = config.resolve_target(
            access_token=self.options.access_token, force_local=self.options.local
        )
        if target.token is not None:
            self.output.add_secret(target.token.value)
        return target

    @property
    def client(self) -> FlyClient:
        if self._client is None:
            self._client = self._build_client()
        return self._client

    def _build_client(self) -> FlyClient:
        from flyk.api import FlyClient

        target = self.target
        on_exchange = self.output.log_exchange if self.options.verbose else None
        options = dict(self._client_options)
        if self.completing:  # a shell is waiting on us: one quick try, then no suggestions
            from flyk.api import RetryPolicy

            options.setdefault("retry", RetryPolicy(deadline=COMPLETION_DEADLINE, max_attempts=1))
        else:
            options.setdefault("on_retry", self._notice_retry)
        if target.is_local:
            transport = self._transport or self.local_backend().transport()
            if target.implicit and self.announce:
                self.output.notice(
                    f"Using the local backend (no Fly.io token found); data in {target.local_db}"
                )
            return FlyClient(
                base_url=LOCAL_BASE_URL,
                transport=transport,
                on_exchange=on_exchange,
                **options,
            )
        token = target.require_token()
        return FlyClient(
            base_url=target.base_url,
            token=token.value if token else None,
            transport=self._transport,
            on_exchange=on_exchange,
            **options,
        )

    def _notice_retry(self, attempt: int, reason: str, _delay: float) -> None:
        """One line on stderr when the first retry starts, so a slow failure is not silent."""
        if self._retry_noticed:
            return
        self._retry_noticed = True
        self.output.notice(f"Retrying: {reason} (attempt {attempt})…")

    def force_local(self) -> None:
        """Talk to the embedded backend whatever the environment says (``flyk local …``)."""
        if self._client is not None:
            raise RuntimeError("force_local() after the client was built")
        self.options = replace(self.options, local=True)
        self.__dict__.pop("target", None)  # resolved again on next use

    def local_backend(self) -> Any:
        """The embedded backend for the local target (``flyk local …`` uses it directly)."""
        if self._local_backend is None:
            path = self.target.local_db if self.target.is_local else config.local_db_path()
            self._local_backend = open_local_backend(path or config.local_db_path())
        return self._local_backend

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
        backend, self._local_backend = self._local_backend, None
        close = getattr(backend, "close", None)
        if callable(close):
            close()


def _launcher() -> Any:
    """What the local backend runs for real: flyk's control-plane image (flyk/k8s/
    local_launch.py), unless this process was itself started by the local backend (the
    kubelet inside a control plane), which must never manage its own parent."""
    if os.environ.get("FLYK_LOCAL_RUNTIME") == "0":
        return None
    from flyk.k8s.local_launch import launcher

    return launcher


def open_local_backend(path: Path, timing: Any = None) -> Any:
    """The embedded backend on ``path``; a file it cannot use is a ConfigError (exit 2).

    The database is the user's to fix (a directory that cannot hold it, a file that is not
    SQLite), so the error names the file and FLYK_LOCAL_DB, which moves it.
    """
    import sqlite3

    from flyk.local import LocalBackend, LocalDatabaseError

    try:
        return LocalBackend(path=path, timing=timing, launcher=_launcher())
    except ConfigError as error:
        error.hint = error.hint or _local_db_hint()
        raise
    except (LocalDatabaseError, sqlite3.Error, OSError, FlykError) as error:
        reason = (
            getattr(error, "reason", None)
            or getattr(error, "message", None)
            or (error.strerror if isinstance(error, OSError) else None)
            or str(error)
        )
        named = f" ({config.EnvVar.LOCAL_DB})" if os.environ.get(config.EnvVar.LOCAL_DB) else ""
        raise ConfigError(
            f"cannot use {path}{named} for the local backend's data: {reason}",
            hint=_local_db_hint(),
        ) from error


def local_storage_error(error: BaseException) -> ConfigError | None:
    """The embedded backend's database refused a write in the middle of a command (a full
    disk, an I/O error, a read-only file): a ConfigError naming the file, or None for any
    other error. The backend rolled the write back and it is not retried."""
    from flyk.local import LocalStorageError

    if not isinstance(error, LocalStorageError):
        return None
    if error.disk_full:
        hint = (
            "Free some space on its filesystem, "
            f"or set {config.EnvVar.LOCAL_DB} to a file on another one."
        )
    else:
        hint = (
            "Check that the file and its directory are writable and the disk is healthy, "
            f"or set {config.EnvVar.LOCAL_DB} to another file."
        )
    return ConfigError(str(error), hint=hint)


def _local_db_hint() -> str:
    if os.environ.get(config.EnvVar.LOCAL_DB):
        return f"{config.EnvVar.LOCAL_DB} names that file: point it at a writable SQLite file."
    return f"Move that file away, or set {config.EnvVar.LOCAL_DB} to use another one."


def app_context(ctx: typer.Context) -> AppContext:
    """The AppContext of this invocation (the root callback always sets one)."""
    root = ctx.find_root()
    obj = root.obj
    if not isinstance(obj, AppContext):  # a sub-app invoked on its own, as in some tests
        obj = AppContext(GlobalOptions())
        root.obj = obj
    return obj
