"""The one place flyk writes to the terminal (and the only module allowed to import Rich).

stdout carries data: borderless tables with upper-case headers, or JSON with ``--json``.
stderr carries people's text: notices, warnings, progress steps, prompts, errors.
Nothing on stdout is decoration, so ``flyk … | cut`` and ``flyk … --json | jq`` just work.

Progress (spinners and ``✓ step  1.2s`` lines) appears only when stderr is a terminal; colour
only when, in addition, ``NO_COLOR`` is unset, ``CLICOLOR`` is not 0 and ``TERM`` is not
``dumb``. Prompts appear only when stdin and stdout are terminals; otherwise a missing answer
is an error naming the flag that supplies it. Rich is imported only when a spinner is shown,
to keep start-up fast.

Streams are looked up at write time (``sys.stdout``), not captured at construction, so a
test runner that swaps them sees everything.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import IO, TYPE_CHECKING, Any, NoReturn

from flyk.errors import Interrupted, UsageError

if TYPE_CHECKING:
    import httpx

REDACTED = "<redacted>"
DECLINED_EXIT_CODE = 0  # a "no" at a confirmation prompt: nothing done, as asked
_SENSITIVE_HEADERS = {"authorization", "fly-machine-lease-nonce", "cookie", "set-cookie"}
_RED, _YELLOW, _GREEN, _DIM, _RESET = "\x1b[31m", "\x1b[33m", "\x1b[32m", "\x1b[2m", "\x1b[0m"


def _isatty(stream: IO[Any]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def format_cell(value: object) -> str:
    """How one value looks in a table cell: empty for None, ISO time, enums by value."""
    if value is None:
        return ""
    if isinstance(value, Enum):
        return str(value.value)
    if (iso := _iso_time(value)) is not None:
        return iso
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ",".join(format_cell(v) for v in value)
    return str(value)


def render_table(rows: Iterable[Sequence[object]], columns: Sequence[str]) -> str:
    """Left-aligned columns two spaces apart, upper-case headers, no borders, no wrapping."""
    cells = [[format_cell(v) for v in row] for row in rows]
    header = [c.upper() for c in columns]
    widths = [len(h) for h in header]
    for row in cells:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    lines = [
        "  ".join(text.ljust(widths[i]) for i, text in enumerate(line)).rstrip()
        for line in (header, *cells)
    ]
    return "\n".join(lines) + "\n"


def _iso_time(value: object) -> str | None:
    """ISO 8601 (``Z`` for UTC) when ``value`` is a datetime, else None."""
    # not imported up front: if nothing imported datetime, there are no datetimes to format
    module = sys.modules.get("datetime")
    if module is None or not isinstance(value, module.datetime):
        return None
    return str(value.isoformat()).replace("+00:00", "Z")


def _json_default(value: object) -> object:
    if (iso := _iso_time(value)) is not None:
        return iso
    if isinstance(value, Enum):
        return value.value
    to_api = getattr(value, "to_api", None)
    if callable(to_api):
        return to_api()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dump_json(obj: object) -> str:
    """JSON as flyk prints it: 4-space indent (flyctl's), keys in the order given."""
    import json as jsonlib

    return jsonlib.dumps(obj, indent=4, default=_json_default, ensure_ascii=False) + "\n"


@dataclass
class Step:
    """A unit of long work; ``update()`` changes its label (e.g. once an id is known)."""

    message: str
    started: float = field(default_factory=time.monotonic)
    _on_update: Callable[[str], None] | None = None

    def update(self, message: str) -> None:
        self.message = message
        if self._on_update is not None:
            self._on_update(message)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


class Output:
    """Writes data to stdout and people's text to stderr; the CLI's only terminal object."""

    def __init__(self, *, json: bool = False, verbose: bool = False) -> None:
        self.json_mode = json
        self.verbose = verbose
        self._secrets: set[str] = set()

    # -- terminal facts -----------------------------------------------------------------------

    @property
    def stdout(self) -> IO[str]:
        return sys.stdout

    @property
    def stderr(self) -> IO[str]:
        return sys.stderr

    @property
    def interactive(self) -> bool:
        """Prompts are allowed: a person is at both ends (flyctl's rule)."""
        return _isatty(sys.stdin) and _isatty(sys.stdout)

    @property
    def progress(self) -> bool:
        return _isatty(self.stderr)

    @property
    def color(self) -> bool:
        if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
            return False
        if os.environ.get("CLICOLOR") == "0":  # the older convention (BSD ls, git): no colour
            return False
        return self.progress

    def _paint(self, code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if self.color else text

    # -- data (stdout) ------------------------------------------------------------------------

    def data_table(
        self,
        rows: Iterable[Sequence[object]],
        columns: Sequence[str],
        *,
        empty: str | None = None,
    ) -> None:
        """A table on stdout; with no rows, nothing on stdout and ``empty`` as a notice."""
        rows = list(rows)
        if not rows and empty is not None:
            self.notice(empty)
            return
        self.stdout.write(render_table(rows, columns))
        self.stdout.flush()

    def detail(self, fields: Sequence[tuple[str, object]]) -> None:
        """A vertical key/value view of one object (``show``/``status`` commands)."""
        width = max((len(name) for name, _ in fields), default=0)
        for name, value in fields:
            self.stdout.write(f"{name.ljust(width)}  {format_cell(value)}".rstrip() + "\n")
        self.stdout.flush()

    def json(self, obj: object) -> None:
        self.stdout.write(dump_json(obj))
        self.stdout.flush()

    def line(self, text: str) -> None:
        """One line of data on stdout (an id, a token the user asked for, a script)."""
        self.stdout.write(text if text.endswith("\n") else text + "\n")
        self.stdout.flush()

    def emit(self, data: object, table: Callable[[], None]) -> None:
        """JSON when ``--json`` was given, else whatever ``table`` renders."""
        if self.json_mode:
            self.json(data)
        else:
            table()

    # -- people's text (stderr) ---------------------------------------------------------------

    def _err(self, text: str) -> None:
        self.stderr.write(self.redact(text) + "\n")
        self.stderr.flush()

    def notice(self, message: str) -> None:
        self._err(message)

    def success(self, message: str) -> None:
        self._err(f"{self._paint(_GREEN, '✓')} {message}" if self.color else message)

    def warn(self, message: str) -> None:
        self._err(f"{self._paint(_YELLOW, 'Warning:')} {message}")

    def error(
        self, message: str, *, hint: str | None = None, request_id: str | None = None
    ) -> None:
        suffix = f" (Request ID: {request_id})" if request_id else ""
        self._err(f"{self._paint(_RED, 'Error:')} {message}{suffix}")
        if hint:
            for hint_line in hint.splitlines():
                self._err(f"       {hint_line}")

    # -- progress -----------------------------------------------------------------------------

    @contextmanager
    def step(self, message: str) -> Iterator[Step]:
        """Long work: a spinner while it runs, then ``✓ message  1.2s`` (``✗`` if it failed).

        Silent when stderr is not a terminal: scripts get results, not animation.
        """
        if not self.progress:
            yield Step(message)
            return
        from rich.console import Console

        console = Console(file=self.stderr, no_color=not self.color, highlight=False)
        status = console.status(message)
        step = Step(message, _on_update=lambda text: status.update(text))
        status.start()
        ok = False
        try:
            yield step
            ok = True
        finally:
            status.stop()
            mark = self._paint(_GREEN, "✓") if ok else self._paint(_RED, "✗")
            elapsed = self._paint(_DIM, f"{step.elapsed:.1f}s")
            self._err(f"{mark} {step.message}  {elapsed}")

    # -- questions ----------------------------------------------------------------------------

    def confirm(self, question: str, *, yes: bool, yes_flag_name: str = "--yes") -> bool:
        """True to go ahead. Non-interactive runs must say ``--yes``; they are never asked.

        y/yes goes ahead; Enter, n/no or the end of input (Ctrl-D) is no; anything else is
        asked again. Ctrl-C is Interrupted, saying nothing was done."""
        if yes:
            return True
        if not self.interactive:
            raise UsageError(
                f"{yes_flag_name} must be given to confirm when not running interactively",
                hint=f"{question} Re-run with {yes_flag_name} to go ahead.",
            )
        while True:
            try:
                self.stderr.write(f"{question} [y/N] ")
                self.stderr.flush()
                line = sys.stdin.readline()
            except KeyboardInterrupt:
                # no lease is held at a question, and nothing was done: say that (the
                # generic Ctrl-C message speaks of leases released)
                self.stderr.write("\n")
                raise Interrupted(
                    "interrupted (Ctrl-C) at the question; nothing was done"
                ) from None
            if not line.endswith("\n"):  # Ctrl-D (end of input) echoes no newline: add one
                self.stderr.write("\n")
            answer = line.strip().lower()
            if answer in {"y", "yes"}:
                return True
            if answer in {"", "n", "no"} or not line:  # the default, a no, or no more input
                return False
            self.stderr.write("Please answer y or n.\n")  # "maybe" is neither: ask again

    def declined(self, notice: str) -> NoReturn:
        """The person answered no: say what was left alone and exit 0 (nothing failed).

        flyctl (``fly apps destroy``) and kubectl (``delete --interactive``) do the same.
        Scripts never get here: without a terminal, ``confirm`` wants ``--yes`` (exit 2).
        """
        import typer

        self.notice(notice)
        raise typer.Exit(DECLINED_EXIT_CODE)

    def ask_secret(self, question: str) -> str:
        """A hidden prompt; callers check ``interactive`` first and name their flag if not."""
        import getpass

        return getpass.getpass(f"{question}: ", stream=sys.stderr)

    # -- secrets and --verbose ----------------------------------------------------------------

    def add_secret(self, value: str | None) -> None:
        """A value never to be shown on stderr (tokens); replaced by ``<redacted>``."""
        if value and len(value) >= 4:
            self._secrets.add(value)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def log_exchange(self, request: httpx.Request, response: httpx.Response | None) -> None:
        """``--verbose``: one request and its response on stderr, credentials redacted."""
        if not self.verbose:
            return
        lines = [f"> {request.method} {request.url}"]
        lines += [f"> {name}: {self._header_value(name, v)}" for name, v in request.headers.items()]
        body = _body_text(request.content if _has_content(request) else b"")
        if body:
            lines.append(f"> {body}")
        if response is None:
            lines.append("< (no response)")
        else:
            lines.append(f"< {response.status_code} {response.reason_phrase}")
            lines += [
                f"< {name}: {self._header_value(name, v)}" for name, v in response.headers.items()
            ]
            text = _body_text(_response_bytes(response))
            if text:
                lines.append(f"< {text}")
        self._err("\n".join(lines))

    @staticmethod
    def _header_value(name: str, value: str) -> str:
        if name.lower() not in _SENSITIVE_HEADERS:
            return value
        scheme, _, rest = value.partition(" ")
        return f"{scheme} {REDACTED}" if rest else REDACTED


_BODY_LIMIT = 2000


def _has_content(request: httpx.Request) -> bool:
    try:
        request.content  # noqa: B018 - raises for a streaming body not yet read
    except Exception:
        return False
    return True


def _response_bytes(response: httpx.Response) -> bytes:
    try:
        return response.content
    except Exception:  # a streamed body not yet read: do not consume it for a log line
        return b""


def _body_text(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return text if len(text) <= _BODY_LIMIT else text[:_BODY_LIMIT] + f"… ({len(text)} chars)"
