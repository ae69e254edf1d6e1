"""One poller of Fly's logs API per app, shared by every `kubectl logs -f` of that app's pods.

Fly's logs API is per app (a machine is a filter), so the kubelet follows an app once and hands
each line to the streams of its machine: the calls it makes grow with the namespaces being
followed, not with the streams. The poller polls as flyctl does (at once while lines come, then
64 ms doubling to 4 s while quiet), starts with the first stream of its app and stops with the
last one. Lives on the kubelet API's event loop; nothing here needs a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from flyk.api import FlyClient
from flyk.api.logs import LogEntry, LogPage
from flyk.errors import FlykError

log = logging.getLogger("flyk.kubelet.tails")

MIN_POLL = 0.064
MAX_POLL = 4.096
FOLLOW_ERRORS = 10  # failed polls in a row before the streams are ended, as flyctl gives up

Call = Callable[..., Awaitable[LogPage]]


class TailEnded(Exception):
    """The app's poller gave up (the logs API kept failing)."""


@dataclass(eq=False)
class Subscription:
    machine: str
    queue: asyncio.Queue[LogEntry | TailEnded] = field(default_factory=asyncio.Queue)


class AppTail:
    def __init__(self, fly: FlyClient, app: str, call: Call, on_done: Callable[[], None]) -> None:
        self._fly = fly
        self.app = app
        self._call = call
        self._on_done = on_done
        self.subscriptions: set[Subscription] = set()
        self.ready = asyncio.Event()  # the poller's cursor is set: lines after now will come
        self.polls = 0
        self._task = asyncio.ensure_future(self._run())

    def _page(self, token: str) -> LogPage:
        return self._fly.logs.page(self.app, next_token=token)

    async def _run(self) -> None:
        token, errors, delay = "", 0, 0.0
        try:
            while self.subscriptions:
                try:
                    page = await self._call(self._page, token)
                except FlykError as error:
                    errors += 1
                    if errors >= FOLLOW_ERRORS:
                        log.warning("logs of %s: giving up after %d errors: %s", self.app,
                                    errors, error)  # fmt: skip
                        self._end(TailEnded(str(error)))
                        return
                    delay = min(MAX_POLL, max(MIN_POLL, delay * 2))
                else:
                    self.polls += 1
                    errors = 0
                    if self.ready.is_set():  # the first page is history: each stream has its own
                        self._deliver(page.entries)
                    token = page.next_token or token
                    self.ready.set()
                    delay = 0.0 if page.entries else min(MAX_POLL, max(MIN_POLL, delay * 2))
                if delay:
                    await asyncio.sleep(delay)
        finally:
            self.ready.set()  # nobody waits for a cursor that will never come
            self._on_done()

    def _deliver(self, entries: list[LogEntry]) -> None:
        for entry in entries:
            for subscription in self.subscriptions:
                if subscription.machine == entry.instance:
                    subscription.queue.put_nowait(entry)

    def _end(self, why: TailEnded) -> None:
        for subscription in self.subscriptions:
            subscription.queue.put_nowait(why)

    def stop(self) -> None:
        self._task.cancel()


class AppTails:
    """The pollers, by app."""

    def __init__(self, fly: FlyClient, call: Call) -> None:
        self._fly = fly
        self._call = call
        self._tails: dict[str, AppTail] = {}

    def __len__(self) -> int:
        return len(self._tails)

    async def subscribe(self, app: str, machine: str) -> tuple[AppTail, Subscription]:
        """Lines of `machine` from the moment this returns (the poller's cursor is set)."""
        tail = self._tails.get(app)
        subscription = Subscription(machine)
        if tail is None:
            tail = AppTail(self._fly, app, self._call, lambda: self._forget(app, tail))
            self._tails[app] = tail
        tail.subscriptions.add(subscription)
        await tail.ready.wait()
        return tail, subscription

    def unsubscribe(self, tail: AppTail, subscription: Subscription) -> None:
        tail.subscriptions.discard(subscription)
        if not tail.subscriptions:
            tail.stop()
            self._forget(tail.app, tail)  # now: a stream arriving next starts a new poller

    def _forget(self, app: str, tail: AppTail | None) -> None:
        if self._tails.get(app) is tail:
            del self._tails[app]

    def stop(self) -> None:
        for tail in list(self._tails.values()):
            with contextlib.suppress(RuntimeError):
                tail.stop()
