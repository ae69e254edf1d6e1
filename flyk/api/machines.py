"""`client.machines`: the machine lifecycle, waits, metadata, events and leases."""

from __future__ import annotations

import builtins
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import replace
from functools import partial
from types import MappingProxyType
from typing import Any

from flyk.api._constants import LAUNCH_ID_KEY, MAX_WAIT_SECONDS
from flyk.api._http import Call, path
from flyk.api._leases import LeaseKeeper
from flyk.api._resource import Resource, as_list, as_mapping, pause
from flyk.api._retry import backoff
from flyk.api.models import (
    ExecResult,
    Lease,
    Machine,
    MachineConfig,
    MachineEvent,
    MachineVersion,
    go_duration,
)
from flyk.errors import (
    ConflictError,
    FlykError,
    InvalidRequestError,
    LeaseHeldError,
    MachineStateError,
    NetworkError,
    NotFoundError,
    ServerError,
    WaitTimeoutError,
)

log = logging.getLogger("flyk.api")

# Failures after which a create may or may not have happened (reference §10).
_AMBIGUOUS = (ServerError, NetworkError, WaitTimeoutError)
# How long a just-created machine may answer 404 before we believe it (reference §4).
_NEW_MACHINE_GRACE = 10.0
# How long `machines.lease()` waits for a lease someone else holds (flyctl waits too): a
# command run while another finishes gets its turn instead of failing.
LEASE_WAIT_SECONDS = 30.0
# Slack on top of the server-side wait timeout before the HTTP read gives up.
_WAIT_READ_SLACK = 15.0
# The nonces of the leases held by `with machines.lease(...)` blocks, by (app, machine id):
# a mutation of that machine inside the block sends its nonce when the caller passed none. A
# context variable, so another thread (or task) is not given a lease it does not hold.
_HELD_NONCES: ContextVar[Mapping[tuple[str, str], str]] = ContextVar(
    "flyk_held_nonces", default=MappingProxyType({})
)
# The states the API's list filter takes (the spec's `state` parameter).
_API_LIST_STATES = frozenset({"created", "started", "stopped", "suspended"})
# States a machine stays in until someone acts (a failed start, an exit with no restart coming).
_DEAD_ENDS = frozenset({"failed", "stopped", "destroyed"})
# how each dead end reads in a sentence ("machine X failed and will not reach started")
_HAS_COME_TO = {"failed": "failed", "stopped": "stopped", "destroyed": "was destroyed"}


def _nonce_for(app: str, machine_id: str, nonce: str | None) -> str | None:
    """The nonce a mutation sends: the caller's, else that of a lease block holding it."""
    return nonce if nonce is not None else _HELD_NONCES.get().get((app, machine_id))


def new_launch_id() -> str:
    """128 random bits in hex (as uuid4().hex, without importing uuid and platform)."""
    return os.urandom(16).hex()


def _with_settled(states: builtins.list[str]) -> builtins.list[str]:
    """The states to ask the API for: `states` and "settled", so that a machine coming to rest
    elsewhere (failed, stopped) ends the long-poll instead of running out the clock. Not when
    waiting for "destroyed" (a machine rests in stopped on its way there) or already settled.
    """
    if "settled" in states or "destroyed" in states:
        return states
    return [*states, "settled"]


def _states(state: str | Sequence[str]) -> builtins.list[str]:
    if isinstance(state, str):
        return [part.strip() for part in state.split(",") if part.strip()]
    return list(state)


class MachinesResource(Resource):
    # -- reading ----------------------------------------------------------------------------

    def list(
        self,
        app: str,
        *,
        region: str | None = None,
        state: str | Sequence[str] | None = None,
        include_deleted: bool = False,
        metadata: Mapping[str, str] | None = None,
        summary: bool | None = None,
    ) -> builtins.list[Machine]:
        """Machines of an app; `metadata` keeps those whose config metadata has every pair.

        `state` is sent as the API's filter when the API documents every state asked for
        (created, started, stopped, suspended); else (failed, …) flyk filters the list.
        """
        states = _states(state) if state else []
        by_api = bool(states) and set(states) <= _API_LIST_STATES
        params: dict[str, Any] = {
            "region": region,
            "state": ",".join(states) if by_api else None,
            "include_deleted": True if include_deleted else None,
            "summary": summary,
        }
        data = self._core.json(
            Call(
                "GET",
                path("apps", app, "machines"),
                params=params,
                idempotent=True,
                limit=("machine_list", app),
            )
        )
        machines = [Machine.from_api(item) for item in as_list(data, "machines")]
        if states and not by_api:
            machines = [m for m in machines if m.state in states]
        if metadata:
            wanted = dict(metadata)
            machines = [m for m in machines if _has_metadata(m, wanted)]
        return machines

    def get(self, app: str, machine_id: str) -> Machine:
        data = self._core.json(
            Call(
                "GET",
                path("apps", app, "machines", machine_id),
                idempotent=True,
                limit=("machine_get", _key(app, machine_id)),
            )
        )
        return Machine.from_api(as_mapping(data))

    def events(
        self, app: str, machine_id: str, *, limit: int | None = None
    ) -> builtins.list[MachineEvent]:
        data = self._core.json(
            self._action("GET", app, machine_id, "events", params={"limit": limit})
        )
        return [MachineEvent.from_api(item) for item in as_list(data, "events")]

    def versions(self, app: str, machine_id: str) -> builtins.list[MachineVersion]:
        data = self._core.json(self._action("GET", app, machine_id, "versions"))
        return [MachineVersion.from_api(item) for item in as_list(data, "versions")]

    # -- create and update ------------------------------------------------------------------

    def create(
        self,
        app: str,
        config: MachineConfig,
        *,
        name: str | None = None,
        region: str | None = None,
        skip_launch: bool = False,
        lease_ttl: int | None = None,
        min_secrets_version: int | None = None,
        skip_service_registration: bool = False,
        skip_secrets: bool = False,
    ) -> Machine:
        """Create a machine, never twice.

        The config carries a launch id in `metadata[flyk_launch_id]` (kept if the caller set
        one, so a caller's own retry is deduplicated too). After an ambiguous failure (5xx,
        408, a connection dropped after the request left) the app's machines are listed and
        the one with that id is returned before anything is sent again. A machine found that
        way carries no nonce: with `lease_ttl` a lease is acquired on it (see `_found`).
        """
        if not config.launch_id:
            config = config.with_metadata(**{LAUNCH_ID_KEY: new_launch_id()})
        launch_id = config.launch_id
        assert launch_id is not None
        body = _machine_body(
            config,
            name=name,
            region=region,
            skip_launch=skip_launch,
            lease_ttl=lease_ttl,
            min_secrets_version=min_secrets_version,
            skip_service_registration=skip_service_registration,
            skip_secrets=skip_secrets,
        )
        call = Call(
            "POST",
            path("apps", app, "machines"),
            json=body,
            limit=("machine_create", app),
            region=region,
        )
        deadline = self._core.retry.clock() + self._core.retry.deadline
        attempt = 0
        while True:
            attempt += 1
            try:
                made = Machine.from_api(as_mapping(self._core.json(call)))
            except _AMBIGUOUS:
                existing = self.find_launched(app, launch_id)
                if existing is not None:
                    return self._found(app, existing, lease_ttl, deadline)
                if attempt >= self._core.retry.max_attempts or not pause(
                    self._core, attempt, deadline
                ):
                    raise
                # Look again after the pause: a list may lag the write it follows.
                existing = self.find_launched(app, launch_id)
                if existing is not None:
                    return self._found(app, existing, lease_ttl, deadline)
                continue
            except ConflictError:
                # A retry refused as a duplicate (a taken name): the first attempt made it.
                existing = self.find_launched(app, launch_id) if attempt > 1 else None
                if existing is None:
                    raise
                return self._found(app, existing, lease_ttl, deadline)
            if not made.id:
                raise FlykError(f"the API created a machine in {app} but did not say its id")
            return made

    def _found(self, app: str, machine: Machine, lease_ttl: int | None, deadline: float) -> Machine:
        """The machine a create made but whose answer was lost, leased if `lease_ttl` asks.

        A listed machine carries no nonce, so the lease is acquired here. When it is held,
        it is most likely the lease the lost create took for us; but nothing proves that, and
        two holders of one lease would defeat it, so it is never adopted: we wait until it
        expires (its `expires_at`, or the backoff if it does not say) and acquire our own.
        Should that not fit before the create's deadline, the machine is returned without a
        nonce and a warning is logged: the caller learns of the machine it made (raising
        would make a retry create another), and its first mutation meets the conflict.
        """
        if lease_ttl is None:
            return machine
        policy = self._core.retry
        attempt = 0
        while True:
            attempt += 1
            try:
                lease = self.acquire_lease(app, machine.id, ttl=lease_ttl)
                return replace(machine, nonce=lease.nonce)
            except LeaseHeldError:
                held = self.get_lease(app, machine.id)
                expires_at = held.expires_at if held is not None else None
                # expires_at is in whole seconds: one more makes sure it has passed
                wait = expires_at + 1 - policy.wall_clock() if expires_at is not None else 0.0
                if wait > 0 and policy.clock() + wait < deadline:
                    policy.sleep(wait)
                    continue
                if wait <= 0 and pause(self._core, attempt, deadline):
                    continue
                reason = "it is still leased (the lease the lost create took, most likely)"
            except _AMBIGUOUS as exc:
                # the acquire may have worked: the next attempt then meets our own lease
                if pause(self._core, attempt, deadline):
                    continue
                reason = f"the lease could not be acquired ({exc.message})"
            log.warning(
                "machine %s of %s was created (its create's answer was lost) but %s: "
                "it is returned without a lease nonce",
                machine.id,
                app,
                reason,
            )
            return machine

    def find_launched(self, app: str, launch_id: str) -> Machine | None:
        """The machine a create with this launch id made, if it made one."""
        found = self.list(app, metadata={LAUNCH_ID_KEY: launch_id})
        return found[0] if found else None

    def update(
        self,
        app: str,
        machine_id: str,
        config: MachineConfig,
        *,
        nonce: str | None = None,
        current_version: str | None = None,
        min_secrets_version: int | None = None,
        skip_launch: bool = False,
        lease_ttl: int | None = None,
        skip_secrets: bool = False,
    ) -> Machine:
        """Replace the machine's config (a new version; a running machine reboots).

        `current_version` makes it conditional: ConflictError if the machine moved on.
        """
        body = _machine_body(
            config,
            skip_launch=skip_launch,
            lease_ttl=lease_ttl,
            min_secrets_version=min_secrets_version,
            skip_secrets=skip_secrets,
        )
        if current_version is not None:
            body["current_version"] = current_version
        data = self._core.json(
            Call(
                "POST",
                path("apps", app, "machines", machine_id),
                json=body,
                nonce=_nonce_for(app, machine_id, nonce),
                limit=("machine_update", _key(app, machine_id)),
            )
        )
        return Machine.from_api(as_mapping(data))

    # -- lifecycle actions ------------------------------------------------------------------

    def start(self, app: str, machine_id: str, *, nonce: str | None = None) -> None:
        self._core.send(self._action("POST", app, machine_id, "start", nonce=nonce))

    def stop(
        self,
        app: str,
        machine_id: str,
        *,
        signal: str | None = None,
        timeout: float | None = None,
        nonce: str | None = None,
    ) -> None:
        """Stop; `timeout` (seconds) is how long the machine gets before it is killed."""
        body: dict[str, Any] = {}
        if signal is not None:
            body["signal"] = signal
        if timeout is not None:
            body["timeout"] = go_duration(timeout)
        self._core.send(self._action("POST", app, machine_id, "stop", json=body, nonce=nonce))

    def restart(
        self,
        app: str,
        machine_id: str,
        *,
        signal: str | None = None,
        timeout: float | None = None,
        nonce: str | None = None,
    ) -> None:
        params = {
            "signal": signal,
            "timeout": go_duration(timeout) if timeout is not None else None,
        }
        self._core.send(
            self._action(
                "POST", app, machine_id, "restart", params=params, nonce=nonce, idempotent=False
            )
        )

    def suspend(self, app: str, machine_id: str, *, nonce: str | None = None) -> None:
        self._core.send(
            self._action("POST", app, machine_id, "suspend", nonce=nonce, idempotent=False)
        )

    def signal(self, app: str, machine_id: str, signal: str, *, nonce: str | None = None) -> None:
        self._core.send(
            self._action(
                "POST",
                app,
                machine_id,
                "signal",
                json={"signal": signal},
                nonce=nonce,
                idempotent=False,
            )
        )

    def cordon(self, app: str, machine_id: str, *, nonce: str | None = None) -> None:
        self._core.send(self._action("POST", app, machine_id, "cordon", nonce=nonce))

    def uncordon(self, app: str, machine_id: str, *, nonce: str | None = None) -> None:
        self._core.send(self._action("POST", app, machine_id, "uncordon", nonce=nonce))

    def destroy(
        self, app: str, machine_id: str, *, force: bool = False, nonce: str | None = None
    ) -> None:
        """Destroy (with `force`, kill it if running). The spec's `force`, not fly-go's `kill`."""
        self._core.send(
            Call(
                "DELETE",
                path("apps", app, "machines", machine_id),
                params={"force": True if force else None},
                nonce=_nonce_for(app, machine_id, nonce),
                idempotent=True,
                limit=("machine_destroy", _key(app, machine_id)),
            )
        )

    def exec(
        self,
        app: str,
        machine_id: str,
        command: Sequence[str],
        *,
        timeout: int | None = None,
        stdin: str | None = None,
        container: str | None = None,
    ) -> ExecResult:
        """Run a command in the machine and return its output (`timeout` in seconds)."""
        body: dict[str, Any] = {"command": list(command)}
        if timeout is not None:
            body["timeout"] = timeout
        if stdin is not None:
            body["stdin"] = stdin
        if container is not None:
            body["container"] = container
        read_timeout = (timeout or 60) + _WAIT_READ_SLACK
        data = self._core.json(
            self._action(
                "POST",
                app,
                machine_id,
                "exec",
                json=body,
                idempotent=False,
                read_timeout=read_timeout,
            )
        )
        return ExecResult.from_api(as_mapping(data))

    # -- waiting ----------------------------------------------------------------------------

    def wait(
        self,
        app: str,
        machine_id: str,
        state: str | Sequence[str] = "started",
        *,
        version: str | None = None,
        timeout: float = 300.0,
        from_event_id: str | None = None,
    ) -> str:
        """Block until the machine reaches one of `state`; return the state reached.

        Repeats the server's long-poll (at most 60 s per call) until `timeout`, then raises
        WaitTimeoutError. 408 means "not yet"; 404 means reached when waiting for
        "destroyed", and is retried for a short while otherwise (a new machine may not be
        visible yet). Pass `version` when waiting for "stopped" so that the stop of an older
        version does not count. A machine that comes to rest elsewhere for good (failed, or
        stopped with no restart coming) raises MachineStateError at once, naming its exit code.
        `timeout=0` still polls once.
        """
        states = _states(state)
        if not states:
            raise ValueError("wait() needs a state to wait for")
        if version is None and "stopped" in states:
            # The API wants the version when waiting for "stopped" (reference §4); the current
            # one is what a stop we just asked for will stop.
            version = self._current_version(app, machine_id)
        core = self._core
        clock = core.retry.clock
        start = clock()
        deadline = start + timeout
        asked = _with_settled(states)
        attempt = 0
        early_408s = 0
        polled = False
        while True:
            remaining = deadline - clock()
            # Poll at least once: a machine already there has reached it, even with timeout 0.
            if remaining <= 0 and polled:
                raise self._wait_timeout(machine_id, states, timeout)
            polled = True
            poll = max(1, min(MAX_WAIT_SECONDS, int(remaining)))
            sent_at = clock()
            params: dict[str, Any] = {
                "state": asked,
                "timeout": poll,
                "version": version,
                "from_event_id": from_event_id,
            }
            try:
                response = core.send(
                    Call(
                        "GET",
                        path("apps", app, "machines", machine_id, "wait"),
                        params=params,
                        idempotent=True,
                        accept=frozenset({404, 408}),
                        read_timeout=poll + _WAIT_READ_SLACK,
                        deadline=deadline,
                    )
                )
            except InvalidRequestError as exc:
                # flyctl retries this one: the version we wait on is being replaced right now
                if "currently replaced" not in exc.message:
                    raise
                attempt += 1
                if not pause(core, attempt, deadline):
                    # no time left for a pause: asking again at once would spin until then
                    raise self._wait_timeout(machine_id, states, timeout) from exc
                continue
            if response.status_code == 408:
                # A 408 long before the poll time (a proxy's, a server that does not
                # long-poll) would make this loop spin: back off as for any retry.
                if clock() - sent_at >= poll / 2:
                    early_408s = 0
                    continue
                early_408s += 1
                if not pause(core, early_408s, deadline):
                    raise self._wait_timeout(machine_id, states, timeout)
                continue
            if response.status_code == 404:
                if "destroyed" in states:
                    return "destroyed"
                attempt += 1
                if clock() - start > _NEW_MACHINE_GRACE or not pause(core, attempt, deadline):
                    # no hint: which command lists them (and with which app) is the caller's
                    raise NotFoundError(f"machine {machine_id} not found in app {app}")
                continue
            reached = as_mapping(response.json() if response.content.strip() else {})
            reached_state = str(reached.get("state") or states[0])
            # `asked == states`: "settled" was not added, so whatever answered is what the
            # caller asked for (a "settled" wait returns the state it settled in)
            if reached_state in states or asked == states:
                return reached_state
            # It settled elsewhere: give up if it stays there by itself, else wait for its
            # next transition (`from_event_id`), backing off should the API not honour that.
            self._raise_if_stuck(app, machine_id, states)
            event_id = reached.get("event_id")
            if isinstance(event_id, str) and event_id and event_id != from_event_id:
                from_event_id = event_id
                continue
            attempt += 1
            if not pause(core, attempt, deadline):
                raise self._wait_timeout(machine_id, states, timeout)

    def _raise_if_stuck(self, app: str, machine_id: str, states: Sequence[str]) -> None:
        """MachineStateError when the machine rests in a state it will not leave by itself.

        That is `failed`, `destroyed`, or `stopped` after an exit with no restart coming. A
        newer event than the one that put it there (a start asked for, a restart under way)
        means it is moving on, and so does a state it has left since the wait answered.
        """
        try:
            machine = self.get(app, machine_id)
        except NotFoundError:
            machine = Machine(id=machine_id, state="destroyed")
        state = machine.state or ""
        if state not in _DEAD_ENDS:
            return
        events = sorted(machine.events, key=lambda event: event.timestamp or 0, reverse=True)
        newest = events[0] if events else None
        if newest is not None and (
            newest.status != state or bool(newest.exit_event.get("restarting"))
        ):
            return
        exit = next((event for event in events if event.type == "exit"), None)
        how = ""
        if exit is not None and exit.exit_code is not None:
            how = f" (exit code {exit.exit_code}{', OOM killed' if exit.oom_killed else ''})"
        raise MachineStateError(
            f"machine {machine_id} {_HAS_COME_TO[state]}{how} and will not reach "
            f"{' or '.join(states)} by itself",
            state=state,
            machine_exit_code=exit.exit_code if exit is not None else None,
        )

    @staticmethod
    def _wait_timeout(machine_id: str, states: Sequence[str], timeout: float) -> WaitTimeoutError:
        return WaitTimeoutError(
            f"machine {machine_id} did not reach {' or '.join(states)} within {timeout:g} s"
        )

    def _current_version(self, app: str, machine_id: str) -> str | None:
        try:
            return self.get(app, machine_id).version
        except NotFoundError:
            return None  # gone, or not visible yet: the wait loop decides what 404 means

    # -- metadata ---------------------------------------------------------------------------

    def metadata(self, app: str, machine_id: str) -> dict[str, str]:
        data = self._core.json(self._action("GET", app, machine_id, "metadata"))
        return {str(key): str(value) for key, value in as_mapping(data).items()}

    def set_metadata(self, app: str, machine_id: str, key: str, value: str) -> None:
        self._core.send(
            Call(
                "POST",
                path("apps", app, "machines", machine_id, "metadata", key),
                json={"value": value},
                idempotent=True,
                limit=("machine_metadata", _key(app, machine_id)),
            )
        )

    def delete_metadata(self, app: str, machine_id: str, key: str) -> None:
        self._core.send(
            Call(
                "DELETE",
                path("apps", app, "machines", machine_id, "metadata", key),
                idempotent=True,
                limit=("machine_metadata", _key(app, machine_id)),
            )
        )

    # -- leases -----------------------------------------------------------------------------

    def acquire_lease(
        self,
        app: str,
        machine_id: str,
        *,
        ttl: int = 120,
        description: str | None = None,
        wait: float = 0.0,
        on_wait: Callable[[Lease | None], None] | None = None,
    ) -> Lease:
        """Take the lease; LeaseHeldError (409) when someone else holds it after `wait` s.

        While it is held, the acquire is tried again (backing off up to 2 s, never sleeping
        past the holder's `expires_at`, when the lease is free again) until `wait` seconds
        have passed, as flyctl waits. `on_wait(holder)` is called once, when the waiting
        begins, with the holder's lease (None if it could not be read), so that a caller
        can say whom it waits for.
        """
        policy = self._core.retry
        deadline = policy.clock() + wait
        attempt = 0
        while True:
            try:
                return self._acquire_once(app, machine_id, ttl, description)
            except LeaseHeldError as exc:
                attempt += 1
                holder = self.get_lease(app, machine_id) if wait > 0 else None
                delay = self._lease_retry_delay(attempt, holder, deadline)
                if delay is None:
                    if attempt == 1:
                        raise
                    raise LeaseHeldError(
                        f"{exc.message} (waited {wait:g} s for it)",
                        hint=exc.hint,
                        details=exc.details,
                    ) from exc
                if attempt == 1 and on_wait is not None:
                    _notify(on_wait, holder)
                policy.sleep(delay)

    def _lease_retry_delay(
        self, attempt: int, holder: Lease | None, deadline: float
    ) -> float | None:
        """How long to sleep before acquiring again; None when the deadline has passed."""
        policy = self._core.retry
        left = deadline - policy.clock()
        if left <= 0:
            return None
        delay = backoff(attempt, policy.rng, initial=policy.initial_delay, maximum=2.0)
        if holder is not None and holder.expires_at is not None:
            # expires_at is in whole seconds: one more makes sure it has passed
            until_free = holder.expires_at + 1 - policy.wall_clock()
            delay = min(delay, until_free) if until_free > 0 else delay
        return min(delay, left)  # the last try comes at the deadline

    def _acquire_once(self, app: str, machine_id: str, ttl: int, description: str | None) -> Lease:
        body: dict[str, Any] = {"ttl": ttl}
        if description is not None:
            body["description"] = description
        # not repeated blindly: a retry after our own success would find the lease held
        data = self._core.json(
            self._action("POST", app, machine_id, "lease", json=body, idempotent=False)
        )
        return _lease(data)

    def refresh_lease(self, app: str, machine_id: str, nonce: str, *, ttl: int = 120) -> Lease:
        """Extend a lease we hold; the nonce stays the same."""
        data = self._core.json(
            self._action(
                "POST", app, machine_id, "lease", json={"ttl": ttl}, nonce=nonce, idempotent=True
            )
        )
        return _lease(data)

    def release_lease(
        self, app: str, machine_id: str, nonce: str, *, deadline: float | None = None
    ) -> None:
        """Give the lease back; a lease that already expired counts as released."""
        try:
            self._core.send(
                self._action(
                    "DELETE",
                    app,
                    machine_id,
                    "lease",
                    nonce=nonce,
                    idempotent=True,
                    deadline=deadline,
                )
            )
        except NotFoundError:
            pass

    def get_lease(self, app: str, machine_id: str) -> Lease | None:
        """The current lease, or None when the machine is not leased."""
        try:
            data = self._core.json(self._action("GET", app, machine_id, "lease"))
        except NotFoundError:
            return None
        lease = _lease(data, required=False)
        return lease if lease.nonce or lease.owner else None

    def lease(
        self,
        app: str,
        machine_id: str,
        *,
        ttl: int = 120,
        description: str | None = None,
        refresh_every: float | None = None,
        wait: float = LEASE_WAIT_SECONDS,
        on_wait: Callable[[Lease | None], None] | None = None,
    ) -> AbstractContextManager[Lease]:
        """Hold the machine's lease for the `with` block: acquire, refresh, always release.

        A lease someone else holds is waited for, up to `wait` seconds (see `acquire_lease`;
        `on_wait` is told whom it waits for); then LeaseHeldError.

        Mutations of this machine made inside the block (in this thread or task) send the
        lease's nonce by themselves; a `nonce=` passed explicitly wins. The lease is refreshed
        in a background thread every ~ttl/3 and released in `finally`, also on Ctrl-C.
        """
        acquire = partial(
            self.acquire_lease,
            app,
            machine_id,
            ttl=ttl,
            description=description,
            wait=wait,
            on_wait=on_wait,
        )
        return _held(self, app, machine_id, ttl, acquire, refresh_every)

    # -- helpers ----------------------------------------------------------------------------

    def _action(
        self,
        method: str,
        app: str,
        machine_id: str,
        action: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        nonce: str | None = None,
        idempotent: bool = True,
        read_timeout: float | None = None,
        deadline: float | None = None,
    ) -> Call:
        """A call on `/apps/{app}/machines/{id}/{action}`, throttled per action and machine.

        A mutation (not a read, not the lease's own calls) inside a lease block sends its nonce.
        """
        if method != "GET" and action != "lease":
            nonce = _nonce_for(app, machine_id, nonce)
        return Call(
            method,
            path("apps", app, "machines", machine_id, action),
            json=json,
            params=params,
            nonce=nonce,
            idempotent=idempotent,
            limit=(f"machine_{action}", _key(app, machine_id)),
            read_timeout=read_timeout,
            deadline=deadline,
        )


def _held(
    machines: MachinesResource,
    app: str,
    machine_id: str,
    ttl: int,
    acquire: Callable[[], Lease],
    refresh_every: float | None,
) -> AbstractContextManager[Lease]:
    @contextmanager
    def hold() -> Iterator[Lease]:
        lease = acquire()
        keeper = LeaseKeeper(
            refresh=lambda: machines.refresh_lease(app, machine_id, lease.nonce, ttl=ttl),
            nonce=lease.nonce,
            every=refresh_every if refresh_every is not None else max(1.0, (ttl - 1) / 3),
            name=f"lease-{machine_id}",
        )
        keeper.start()
        held = _HELD_NONCES.set({**_HELD_NONCES.get(), (app, machine_id): lease.nonce})
        try:
            yield lease
        except BaseException as exc:
            # The block's own error goes on unchanged; if the lease was lost meanwhile (the
            # likely cause of a conflict inside the block), the error says so in a note.
            keeper.stop()
            if keeper.error is not None:
                exc.add_note(f"The lease on machine {machine_id} was lost: {keeper.error}")
            raise
        finally:
            _HELD_NONCES.reset(held)
            keeper.stop()
            # A block that ended normally does not raise for a lost lease: what it did was
            # accepted under the nonce; the loss was logged when the refresh noticed it.
            keeper.release(
                lambda deadline: machines.release_lease(
                    app, machine_id, keeper.nonce, deadline=deadline
                ),
                clock=machines._core.retry.clock,
            )

    return hold()


def _notify(on_wait: Callable[[Lease | None], None], holder: Lease | None) -> None:
    try:
        on_wait(holder)
    except Exception:  # a notice must never break the acquire
        log.exception("on_wait hook failed")


def _lease(data: Any, *, required: bool = True) -> Lease:
    lease = Lease.from_api(as_mapping(data))
    if required and not lease.nonce:
        raise FlykError("the API granted a lease without a nonce")
    return lease


def _key(app: str, machine_id: str) -> str:
    return f"{app}/{machine_id}"


def _has_metadata(machine: Machine, wanted: Mapping[str, str]) -> bool:
    metadata = machine.metadata
    return all(metadata.get(key) == value for key, value in wanted.items())


def _machine_body(
    config: MachineConfig,
    *,
    name: str | None = None,
    region: str | None = None,
    skip_launch: bool = False,
    lease_ttl: int | None = None,
    min_secrets_version: int | None = None,
    skip_service_registration: bool = False,
    skip_secrets: bool = False,
) -> dict[str, Any]:
    body: dict[str, Any] = {"config": config.to_api()}
    optional: dict[str, Any] = {
        "name": name,
        "region": region,
        "lease_ttl": lease_ttl,
        "min_secrets_version": min_secrets_version,
        "skip_launch": skip_launch or None,
        "skip_service_registration": skip_service_registration or None,
        "skip_secrets": skip_secrets or None,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    return body
