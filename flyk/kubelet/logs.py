"""`/containerLogs/{ns}/{pod}/{container}`: `kubectl logs` from Fly's logs API.

The lines are the pod's machine's only (the logs API's `instance` filter: FKS showed the whole
namespace's), and only the workload's own (`meta.event.provider` `app`): the platform's lines
(image pulls, "Machine started", exits) are dropped, as Events already tell the pod's story.

What each query parameter does (the API server passes kubectl's flags through):

- `tailLines`, `sinceSeconds`, `sinceTime`, `timestamps`, `limitBytes`: applied here to the lines
  the logs API gives. Without `follow`, that is its newest page (Fly keeps a window of recent
  lines; older ones are not reachable through this API) and whatever arrived since.
- `follow`: after those, the lines that come, from one poller per app shared by every follow of
  its pods (tails.py). It ends when the client goes away (kubectl interrupted: the API server
  closes its connection) or when the poller gives up (10 failed polls in a row).
- `previous`: refused with a message: Fly's logs do not keep a restarted container's earlier
  run apart from the current one (its lines are in the same stream; `--since` reaches them).
- the container: Fly's log lines do not say which container of a multi-container machine
  wrote them, so every container of the pod shows the machine's lines.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flyk.api import FlyClient
from flyk.api.logs import LogEntry, LogPage
from flyk.kubelet.server import Exchange, Request
from flyk.kubelet.tails import AppTails, Subscription, TailEnded

log = logging.getLogger("flyk.kubelet.logs")


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
        tails: AppTails | None = None,
    ) -> None:
        self._tails = tails
        self._fly = fly
        self._app = app
        self._machine = machine_id
        self._options = options
        self._call = call
        self._sent = 0

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

    async def _history(self) -> tuple[list[LogEntry], list[LogEntry]]:
        """The newest page, one call: the lines to show, and all it had."""
        page = await self._call(self._page, "")
        wanted = [e for e in page.entries if self._wanted(e)]
        if self._options.tail_lines is not None:
            wanted = wanted[-self._options.tail_lines :] if self._options.tail_lines else []
        return wanted, page.entries

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
        if not self._options.follow or self._tails is None:
            history, _ = await self._history()
            await exchange.start_stream()
            await self._emit(exchange, history)
            await exchange.end()
            return
        # Subscribed before the history is read: a line written in between comes from both,
        # and is dropped once (`_not_after`); none falls between them.
        tail, subscription = await self._tails.subscribe(self._app, self._machine)
        try:
            history, page = await self._history()
            await exchange.start_stream()
            if not await self._emit(exchange, history):
                await exchange.end()
                return
            await self._follow(exchange, subscription, page)
        finally:
            self._tails.unsubscribe(tail, subscription)

    async def _follow(
        self, exchange: Exchange, subscription: Subscription, seen: list[LogEntry]
    ) -> None:
        """Lines from the app's shared poller (tails.py), less those the history had."""
        gone = exchange.peer_gone()
        last = _newest(seen)
        while True:
            line = asyncio.ensure_future(subscription.queue.get())
            finished, _ = await asyncio.wait({line, gone}, return_when=asyncio.FIRST_COMPLETED)
            if gone in finished:
                line.cancel()
                return
            entry = line.result()
            if isinstance(entry, TailEnded):
                await exchange.end()
                return
            if last is not None and _not_after(entry, last):
                continue
            last = None  # past the history: everything from here on is new
            if self._wanted(entry) and not await self._emit(exchange, [entry]):
                await exchange.end()
                return


def _newest(entries: list[LogEntry]) -> tuple[datetime, set[str]] | None:
    """The history's newest time and the ids of its lines at that time."""
    times = [(parse_time(e.timestamp), e.id) for e in entries]
    known = [(t, i) for t, i in times if t is not None]
    if not known:
        return None
    newest = max(t for t, _ in known)
    return newest, {i for t, i in known if t == newest}


def _not_after(entry: LogEntry, last: tuple[datetime, set[str]]) -> bool:
    """Whether the history already had `entry` (the poller's cursor may be behind it)."""
    moment = parse_time(entry.timestamp)
    if moment is None:
        return False
    return moment < last[0] or (moment == last[0] and entry.id in last[1])


def now_utc() -> datetime:
    return datetime.now(UTC)
