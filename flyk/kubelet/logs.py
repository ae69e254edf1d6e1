"""`/containerLogs/{ns}/{pod}/{container}`: `kubectl logs` from Fly's logs API.

The lines are the pod's machine's only (the logs API's `instance` filter: FKS showed the whole
namespace's), and only the workload's own (`meta.event.provider` `app`): the platform's lines
(image pulls, "Machine started", exits) are dropped, as Events already tell the pod's story.

What each query parameter does (the API server passes kubectl's flags through):

- `tailLines`, `sinceSeconds`, `sinceTime`, `timestamps`, `limitBytes`: applied here to the lines
  the logs API gives. Without `follow`, that is its newest page (Fly keeps a window of recent
  lines; older ones are not reachable through this API) and whatever arrived since.
- `follow`: after those, the logs API is polled from the last cursor, as flyctl polls it: at
  once while lines come, then 64 ms doubling to 4 s while quiet. It ends when the client goes
  away (kubectl interrupted: the API server closes its connection) or after
  `FOLLOW_ERRORS` failed polls in a row.
- `previous`: refused with a message: Fly's logs do not keep a restarted container's earlier
  run apart from the current one (its lines are in the same stream; `--since` reaches them).
- the container: Fly's log lines do not say which container of a multi-container machine
  wrote them, so every container of the pod shows the machine's lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flyk.api import FlyClient
from flyk.api.logs import LogEntry, LogPage
from flyk.errors import FlykError
from flyk.kubelet.server import ClientGone, Exchange, Request

log = logging.getLogger("flyk.kubelet.logs")

MIN_POLL = 0.064
MAX_POLL = 4.096
FOLLOW_ERRORS = 10  # as flyctl gives up


class BadLogRequest(ValueError):
    pass


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    tail_lines: int | None = None
    since: datetime | None = None
    timestamps: bool = False
    limit_bytes: int | None = None
    previous: bool = False

    @classmethod
    def parse(cls, request: Request, now: datetime) -> LogOptions:
        def number(name: str) -> int | None:
            raw = request.param(name)
            if raw is None or raw == "":
                return None
            try:
                value = int(raw)
            except ValueError:
                raise BadLogRequest(f"{name}={raw!r} is not a number") from None
            if value < 0:
                raise BadLogRequest(f"{name} must not be negative")
            return value

        seconds = number("sinceSeconds")
        since_time = request.param("sinceTime")
        if seconds is not None and since_time:
            raise BadLogRequest("at most one of sinceSeconds or sinceTime may be given")
        since: datetime | None = None
        if seconds is not None:
            since = now - timedelta(seconds=seconds)
        elif since_time:
            since = parse_time(since_time)
            if since is None:
                raise BadLogRequest(f"sinceTime={since_time!r} is not an RFC 3339 time")
        return cls(
            follow=request.flag("follow"),
            tail_lines=number("tailLines"),
            since=since,
            timestamps=request.flag("timestamps"),
            limit_bytes=number("limitBytes"),
            previous=request.flag("previous"),
        )


def parse_time(text: str) -> datetime | None:
    """RFC 3339 with any fraction (Fly's are nanoseconds, which datetime cannot hold)."""
    raw = text.strip().replace("z", "Z")
    if raw.endswith("Z"):
        raw = raw[:-1] + "+00:00"
    head, dot, rest = raw.partition(".")
    if dot:
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits) :]
        raw = f"{head}.{(digits + '000000')[:6]}{zone}"
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_line(entry: LogEntry, timestamps: bool) -> bytes:
    text = entry.message if entry.message.endswith("\n") else entry.message + "\n"
    if timestamps:
        moment = parse_time(entry.timestamp)
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if moment else entry.timestamp
        text = f"{stamp} {text}"
    return text.encode("utf-8", "replace")


class LogStream:
    """One `kubectl logs` answer: the lines of one machine, filtered, maybe followed."""

    def __init__(
        self,
        fly: FlyClient,
        app: str,
        machine_id: str,
        options: LogOptions,
        *,
        call: Callable[..., Awaitable[LogPage]],
    ) -> None:
        self._fly = fly
        self._app = app
        self._machine = machine_id
        self._options = options
        self._call = call
        self._sent = 0
        self._token = ""

    def _page(self, token: str) -> LogPage:
        return self._fly.logs.page(self._app, instance=self._machine, next_token=token)

    def _wanted(self, entry: LogEntry) -> bool:
        if not entry.from_app or (entry.instance and entry.instance != self._machine):
            return False
        if self._options.since is not None:
            moment = parse_time(entry.timestamp)
            if moment is not None and moment < self._options.since:
                return False
        return True

    async def _history(self) -> list[LogEntry]:
        """The newest page: one call (a `follow` goes on from its cursor)."""
        page = await self._call(self._page, "")
        self._token = page.next_token
        wanted = [e for e in page.entries if self._wanted(e)]
        if self._options.tail_lines is not None:
            wanted = wanted[-self._options.tail_lines :] if self._options.tail_lines else []
        return wanted

    async def _emit(self, exchange: Exchange, entries: list[LogEntry]) -> bool:
        """Send lines; False once `limitBytes` is reached."""
        limit = self._options.limit_bytes
        chunk = bytearray()
        done = False
        for entry in entries:
            line = format_line(entry, self._options.timestamps)
            if limit is not None and self._sent + len(chunk) + len(line) >= limit:
                chunk.extend(line[: max(0, limit - self._sent - len(chunk))])
                done = True
                break
            chunk.extend(line)
        self._sent += len(chunk)
        await exchange.send(bytes(chunk))
        return not done

    async def serve(self, exchange: Exchange) -> None:
        history = await self._history()
        await exchange.start_stream()
        if not await self._emit(exchange, history) or not self._options.follow:
            await exchange.end()
            return
        await self._follow(exchange)

    async def _follow(self, exchange: Exchange) -> None:
        gone = exchange.peer_gone()
        delay, errors = MIN_POLL, 0
        while True:
            poll = asyncio.ensure_future(self._call(self._page, self._token))
            finished, _ = await asyncio.wait({poll, gone}, return_when=asyncio.FIRST_COMPLETED)
            if gone in finished:
                poll.cancel()
                return
            try:
                page = poll.result()
            except FlykError as error:
                errors += 1
                if errors >= FOLLOW_ERRORS:
                    log.warning(
                        "logs of %s: giving up after %d errors: %s", self._machine, errors, error
                    )
                    with contextlib.suppress(ClientGone):
                        await exchange.end()
                    return
                delay = min(MAX_POLL, delay * 2)
            else:
                errors = 0
                self._token = page.next_token or self._token
                wanted = [e for e in page.entries if self._wanted(e)]
                if not await self._emit(exchange, wanted):
                    await exchange.end()
                    return
                delay = 0.0 if page.entries else min(MAX_POLL, max(MIN_POLL, delay * 2))
            if delay:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(gone), delay)
                if gone.done():
                    return


def now_utc() -> datetime:
    return datetime.now(UTC)
