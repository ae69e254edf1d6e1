"""Leases: acquire, refresh in the background, release on exception and on Ctrl-C."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from flyk.api import FlyClient, Lease, MachineConfig
from flyk.errors import LeaseHeldError

from .helpers import FakeClock, Script, machine_json, reply

LEASE = "/apps/a/machines/m1/lease"
GRANT = {
    "status": "success",
    "data": {"nonce": "n1", "expires_at": 1, "owner": "me", "version": "v1"},
}


def _lease_script(script: Script) -> Script:
    return script.on(f"POST {LEASE}", reply(201, GRANT)).on(
        f"DELETE {LEASE}", reply(200, {"ok": True})
    )


def test_lease_acquires_with_ttl_body_and_releases_with_nonce(
    client: FlyClient, script: Script
) -> None:
    _lease_script(script).on("POST /apps/a/machines/m1", reply(200, machine_json()))
    with client.machines.lease("a", "m1", ttl=30, description="flyk test") as lease:
        assert lease.nonce == "n1"
        client.machines.update("a", "m1", MachineConfig(image="x"), nonce=lease.nonce)
    assert script.bodies(f"POST {LEASE}") == [{"ttl": 30, "description": "flyk test"}]
    (release,) = script.sent(f"DELETE {LEASE}")
    assert release.headers["fly-machine-lease-nonce"] == "n1"
    assert script.sent("POST /apps/a/machines/m1")[0].headers["fly-machine-lease-nonce"] == "n1"


def test_lease_is_released_when_the_block_raises(client: FlyClient, script: Script) -> None:
    _lease_script(script)
    with pytest.raises(RuntimeError, match="boom"), client.machines.lease("a", "m1"):
        raise RuntimeError("boom")
    assert len(script.sent(f"DELETE {LEASE}")) == 1


def test_lease_is_released_on_keyboard_interrupt(client: FlyClient, script: Script) -> None:
    _lease_script(script)
    with pytest.raises(KeyboardInterrupt), client.machines.lease("a", "m1"):
        raise KeyboardInterrupt
    assert len(script.sent(f"DELETE {LEASE}")) == 1


def test_a_failing_release_does_not_hide_the_original_error(
    client: FlyClient, script: Script
) -> None:
    script.on(f"POST {LEASE}", reply(201, GRANT)).on(
        f"DELETE {LEASE}", reply(500, {"error": "down"})
    )
    with pytest.raises(KeyboardInterrupt), client.machines.lease("a", "m1"):
        raise KeyboardInterrupt


def test_an_expired_lease_counts_as_released(client: FlyClient, script: Script) -> None:
    script.on(f"POST {LEASE}", reply(201, GRANT)).on(
        f"DELETE {LEASE}", reply(404, {"error": "lease not found"})
    )
    with client.machines.lease("a", "m1"):
        pass
    assert len(script.sent(f"DELETE {LEASE}")) == 1


def test_held_lease_is_lease_held_error(client: FlyClient, script: Script) -> None:
    script.on(f"POST {LEASE}", reply(409, {"error": "machine already has a lease"}))
    with pytest.raises(LeaseHeldError), client.machines.lease("a", "m1", wait=0):
        pytest.fail("must not enter the block")
    assert len(script.sent(f"POST {LEASE}")) == 1  # a conflict is never retried blindly
    assert script.sent(f"DELETE {LEASE}") == []


def test_lease_is_refreshed_in_the_background_with_its_nonce() -> None:
    refreshed = threading.Event()
    refreshes: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and "fly-machine-lease-nonce" in request.headers:
            refreshes.append(request)
            refreshed.set()
            return httpx.Response(201, json=GRANT["data"])
        if request.method == "POST":
            return httpx.Response(201, json=GRANT)
        return httpx.Response(200, json={})

    from .helpers import make_client

    with make_client(handler) as fly:
        with fly.machines.lease("a", "m1", ttl=13, refresh_every=0.001):
            assert refreshed.wait(timeout=10)
    assert refreshes[0].headers["fly-machine-lease-nonce"] == "n1"
    assert json.loads(refreshes[0].content) == {"ttl": 13}


def test_raw_lease_calls(client: FlyClient, script: Script) -> None:
    script.on(f"GET {LEASE}", reply(200, GRANT["data"]))
    script.on(f"POST {LEASE}", reply(201, GRANT))
    script.on(f"DELETE {LEASE}", reply(200))
    lease = client.machines.get_lease("a", "m1")
    assert lease is not None and lease.owner == "me"
    assert client.machines.acquire_lease("a", "m1", ttl=5).nonce == "n1"
    assert client.machines.refresh_lease("a", "m1", "n1", ttl=5).nonce == "n1"
    client.machines.release_lease("a", "m1", "n1")


def test_no_lease_is_none(client: FlyClient, script: Script) -> None:
    script.on(f"GET {LEASE}", reply(404, {"error": "lease not found"}))
    assert client.machines.get_lease("a", "m1") is None


class RefreshScript:
    """Grants n1, answers each refresh as told, records releases; `refreshed` is set once the
    first refresh has been answered."""

    def __init__(self, refresh: httpx.Response, release_status: int = 200) -> None:
        self.refresh = refresh
        self.release_status = release_status
        self.refreshed = threading.Event()
        self.released: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        nonce = request.headers.get("fly-machine-lease-nonce")
        if request.method == "POST" and nonce is None:
            return httpx.Response(201, json=GRANT)
        if request.method == "POST":
            self.refreshed.set()
            return self.refresh
        if request.method == "DELETE":
            self.released.append(nonce or "")
            return httpx.Response(self.release_status, json={})
        return httpx.Response(404, json={"error": "not in this script"})


def _hold_until_refreshed(api: RefreshScript) -> None:
    from .helpers import make_client

    with make_client(api) as fly, fly.machines.lease("a", "m1", ttl=13, refresh_every=0.001):
        assert api.refreshed.wait(timeout=10)


def test_a_failed_refresh_is_logged_and_the_lease_still_released(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = RefreshScript(httpx.Response(409, json={"error": "machine already has a lease"}))
    _hold_until_refreshed(api)  # a block that ended normally does not raise
    assert "could not refresh the lease" in caplog.text
    assert api.released == ["n1"]


def test_a_refresh_answered_with_another_nonce_releases_that_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = RefreshScript(httpx.Response(201, json={"nonce": "n2", "expires_at": 1, "owner": "me"}))
    _hold_until_refreshed(api)
    assert "lease lapsed" in caplog.text
    assert api.released == ["n2"]  # ours now: not left to lock the machine until its TTL


def test_an_error_in_the_block_after_the_lease_was_lost_says_so() -> None:
    from .helpers import make_client

    api = RefreshScript(httpx.Response(409, json={"error": "machine already has a lease"}), 409)
    with (
        make_client(api) as fly,
        pytest.raises(LeaseHeldError, match="update refused") as caught,
        fly.machines.lease("a", "m1", refresh_every=0.001),
    ):
        assert api.refreshed.wait(timeout=10)
        raise LeaseHeldError("update refused")
    notes = getattr(caught.value, "__notes__", [])
    assert len(notes) == 1 and "lease on machine m1 was lost" in notes[0]
    assert api.released == ["n1"]  # tried; its 409 is logged, never raised over the error


HELD = {"error": "machine m1 is already leased by someone"}


def _holder(clock: FakeClock, expires_in: int) -> dict[str, object]:
    expires_at = int(clock.wall()) + expires_in
    return {"nonce": "theirs", "owner": "ops@example.com", "expires_at": expires_at}


def test_a_held_lease_is_waited_for(client: FlyClient, script: Script, clock: FakeClock) -> None:
    script.on(f"POST {LEASE}", reply(409, HELD), reply(409, HELD), reply(201, GRANT))
    script.on(f"GET {LEASE}", reply(200, _holder(clock, 100)))
    script.on(f"DELETE {LEASE}", reply(200, {"ok": True}))
    seen: list[Lease | None] = []
    with client.machines.lease("a", "m1", on_wait=seen.append) as lease:
        assert lease.nonce == "n1"
    assert len(script.sent(f"POST {LEASE}")) == 3
    # told once, with the holder, when the waiting began
    assert len(seen) == 1 and seen[0] is not None and seen[0].owner == "ops@example.com"
    assert len(clock.sleeps) == 2 and all(0 < pause <= 2.0 for pause in clock.sleeps)


def test_the_wait_gives_up_at_its_deadline(
    client: FlyClient, script: Script, clock: FakeClock
) -> None:
    script.on(f"POST {LEASE}", reply(409, HELD))
    script.on(f"GET {LEASE}", reply(200, _holder(clock, 1000)))
    start = clock()
    with pytest.raises(LeaseHeldError, match=r"waited 5 s"):
        client.machines.acquire_lease("a", "m1", wait=5)
    assert clock() - start == pytest.approx(5)  # the last try came at the deadline, not after
    assert all(pause <= 2.0 for pause in clock.sleeps)  # backing off, not spinning
    assert len(script.sent(f"POST {LEASE}")) == len(clock.sleeps) + 1 <= 12


def test_the_wait_does_not_sleep_past_the_holders_expiry(
    client: FlyClient, script: Script, clock: FakeClock
) -> None:
    # the backoff grows past what is left of the holder's lease: no sleep overshoots it
    script.on(f"POST {LEASE}", *[reply(409, HELD)] * 6, reply(201, GRANT))
    script.on(f"GET {LEASE}", reply(200, _holder(clock, 1)))
    free_at = clock() + 2  # expires_at, plus one for its whole seconds
    start = clock()
    client.machines.acquire_lease("a", "m1", wait=30)
    for pause in clock.sleeps:
        if start < free_at - 1e-6:  # (the wall clock is a float near 1.7e9: ~1e-7 apart)
            assert start + pause <= free_at + 1e-6
        start += pause
    assert any(pause > 1.0 for pause in clock.sleeps[-2:])  # the backoff did grow past it


def test_a_failing_on_wait_does_not_break_the_acquire(
    client: FlyClient, script: Script, clock: FakeClock
) -> None:
    script.on(f"POST {LEASE}", reply(409, HELD), reply(201, GRANT))
    script.on(f"GET {LEASE}", reply(200, _holder(clock, 100)))

    def broken(_: Lease | None) -> None:
        raise RuntimeError("the terminal went away")

    assert client.machines.acquire_lease("a", "m1", wait=10, on_wait=broken).nonce == "n1"
