"""Keeping a lease alive in the background, and letting go of it whatever happens."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from flyk.api.models import Lease
from flyk.errors import FlykError

log = logging.getLogger("flyk.api")

# How long a release may take on the way out (Ctrl-C included) before we let the TTL do it.
RELEASE_BUDGET = 5.0


class LeaseKeeper:
    """Refreshes a lease every `every` seconds on a daemon thread until stopped.

    The thread waits on an Event, so `stop()` ends it at once. When a refresh goes wrong the
    refreshing ends, the reason is logged (warning) and kept in `error`, and `nonce` says which
    lease to release on the way out:

    - the refresh fails (the API refused it, e.g. 409 because someone else holds the lease now,
      or it could not be reached within the retry deadline): `nonce` stays ours. The lease may
      be lost; the holder's next mutation is refused with a conflict.
    - the refresh answers with another nonce: our lease had lapsed and the API granted a new
      one, to us. Mutations with the old nonce will be refused, so refreshing stops; `nonce`
      becomes the new one, so that the release frees the machine instead of leaving it
      locked until the new lease's TTL.
    """

    def __init__(
        self, *, refresh: Callable[[], Lease], nonce: str, every: float, name: str
    ) -> None:
        self._refresh = refresh
        self._every = every
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.nonce = nonce  # the lease to release: the one we hold last we heard
        self.refreshes = 0
        self.error: Exception | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop refreshing; once it returns, `error` and `nonce` no longer change."""
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=RELEASE_BUDGET)

    def _run(self) -> None:
        while not self._stopped.wait(self._every):
            try:
                lease = self._refresh()
            except FlykError as exc:
                log.warning("could not refresh the lease (it may be lost): %s", exc.message)
                self.error = exc
                return
            if lease.nonce and lease.nonce != self.nonce:
                self.error = FlykError(
                    "the lease lapsed and the API granted a new one in its place: mutations "
                    "with the old nonce will be refused"
                )
                log.warning("%s", self.error)
                self.nonce = lease.nonce
                return
            self.refreshes += 1

    @staticmethod
    def release(release: Callable[[float], None], *, clock: Callable[[], float]) -> None:
        """Release within RELEASE_BUDGET; failures are logged, never raised.

        This runs in `finally`: raising here would hide the error (or Ctrl-C) that got us
        here, and a lease we could not release expires with its TTL anyway.
        """
        try:
            release(clock() + RELEASE_BUDGET)
        except FlykError as exc:
            log.warning("could not release the lease (it expires with its TTL): %s", exc.message)
