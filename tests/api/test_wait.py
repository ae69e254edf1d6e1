"""`machines.wait`: repeated long-polls to a deadline, 408 = not yet, 404 rules."""

from __future__ import annotations

import pytest

from flyk.api import FlyClient
from flyk.errors import (
    InvalidRequestError,
    MachineStateError,
    NotFoundError,
    WaitTimeoutError,
)

from .helpers import FakeClock, Script, machine_json, reply

WAIT = "GET /apps/a/machines/m1/wait"


def _advance(clock: FakeClock, seconds: float, status: int, body: object = None):  # type: ignore[no-untyped-def]
    """A responder that takes `seconds` of (fake) server time, like a long-poll."""
    respond = reply(status, body)

    def handler(request):  # type: ignore[no-untyped-def]
        clock.now += seconds
        return respond(request)

    return handler


def test_returns_the_state_reached(client: FlyClient, script: Script) -> None:
    script.on(WAIT, reply(200, {"ok": True, "state": "started"}))
    assert client.machines.wait("a", "m1", "started", timeout=30) == "started"
    params = script.sent(WAIT)[0].url.params
    # "settled" too: a machine that comes to rest elsewhere (failed, stopped) ends the poll
    assert params.get_list("state") == ["started", "settled"] and params["timeout"] == "30"


def test_408_repeats_until_reached(client: FlyClient, script: Script, clock: FakeClock) -> None:
    script.on(
        WAIT, _advance(clock, 60, 408), _advance(clock, 60, 408), reply(200, {"state": "stopped"})
    )
    assert client.machines.wait("a", "m1", "stopped", version="01V2", timeout=300) == "stopped"
    sent = script.sent(WAIT)
    assert len(sent) == 3
    assert [r.url.params["timeout"] for r in sent] == ["60", "60", "60"]
    assert all(r.url.params["version"] == "01V2" for r in sent)
    assert clock.sleeps == []  # no sleeping between long-polls


def test_instant_408s_back_off_instead_of_spinning(
    client: FlyClient, script: Script, clock: FakeClock
) -> None:
    # a server (or proxy) answering 408 at once: each early 408 is followed by a backoff
    script.on(WAIT, reply(408))
    with pytest.raises(WaitTimeoutError, match="within 10 s"):
        client.machines.wait("a", "m1", timeout=10)
    sent = len(script.sent(WAIT))
    assert len(clock.sleeps) == sent - 1  # a pause between each two polls
    assert all(pause > 0 for pause in clock.sleeps)
    assert 5 <= sent <= 15  # backoff up to 2 s over 10 s, not thousands


def test_a_late_408_resets_the_backoff(client: FlyClient, script: Script, clock: FakeClock) -> None:
    script.on(
        WAIT,
        reply(408),
        _advance(clock, 60, 408),
        reply(408),
        reply(200, {"state": "started"}),
    )
    assert client.machines.wait("a", "m1", timeout=300) == "started"
    assert len(clock.sleeps) == 2
    assert clock.sleeps[1] <= 0.25  # the first backoff again, not the second


def test_per_call_timeout_shrinks_to_the_deadline(
    client: FlyClient, script: Script, clock: FakeClock
) -> None:
    script.on(WAIT, _advance(clock, 60, 408), _advance(clock, 30, 408))
    with pytest.raises(WaitTimeoutError, match="did not reach started within 90 s") as raised:
        client.machines.wait("a", "m1", timeout=90)
    assert [r.url.params["timeout"] for r in script.sent(WAIT)] == ["60", "30"]
    # the library names no CLI flag or command: the caller knows how its user waits longer
    assert raised.value.hint is None and "--" not in raised.value.message


def test_404_is_reached_when_waiting_for_destroyed(client: FlyClient, script: Script) -> None:
    script.on(WAIT, reply(404, {"error": "machine not found"}))
    assert client.machines.wait("a", "m1", "destroyed") == "destroyed"


def test_404_is_retried_briefly_for_a_new_machine(
    client: FlyClient, script: Script, clock: FakeClock
) -> None:
    script.on(
        WAIT,
        reply(404, {"error": "not found"}),
        reply(404, {"error": "not found"}),
        reply(200, {"state": "started"}),
    )
    assert client.machines.wait("a", "m1") == "started"
    assert len(clock.sleeps) == 2


def test_404_that_persists_is_not_found(client: FlyClient, script: Script) -> None:
    script.on(WAIT, reply(404, {"error": "not found"}))
    with pytest.raises(NotFoundError):
        client.machines.wait("a", "m1", timeout=300)


def test_server_errors_back_off_and_retry(
    client: FlyClient, script: Script, clock: FakeClock
) -> None:
    script.on(WAIT, reply(503), reply(200, {"state": "started"}))
    assert client.machines.wait("a", "m1") == "started"
    assert len(clock.sleeps) == 1


def test_400_is_fatal(client: FlyClient, script: Script) -> None:
    script.on(WAIT, reply(400, {"error": "invalid state"}))
    with pytest.raises(InvalidRequestError):
        client.machines.wait("a", "m1")


def test_several_states_are_repeated_params(client: FlyClient, script: Script) -> None:
    script.on(WAIT, reply(200, {"state": "failed"}))
    assert client.machines.wait("a", "m1", ["started", "failed"]) == "failed"
    assert script.sent(WAIT)[0].url.params.get_list("state") == ["started", "failed", "settled"]


def test_waiting_for_stopped_pins_the_current_version(client: FlyClient, script: Script) -> None:
    script.on("GET /apps/a/machines/m1", reply(200, machine_json(instance_id="01CURRENT")))
    script.on(WAIT, reply(200, {"state": "stopped"}))
    assert client.machines.wait("a", "m1", "stopped") == "stopped"
    assert script.sent(WAIT)[0].url.params["version"] == "01CURRENT"


def test_waiting_for_started_does_not_look_up_the_version(
    client: FlyClient, script: Script
) -> None:
    script.on(WAIT, reply(200, {"state": "started"}))
    client.machines.wait("a", "m1", "started")
    assert [r.url.path for r in script.requests] == ["/v1/apps/a/machines/m1/wait"]
    assert "version" not in script.requests[0].url.params


GET = "GET /apps/a/machines/m1"


def _event(type_: str, status: str, at: int, **exit_event: object) -> dict[str, object]:
    event: dict[str, object] = {"id": f"ev{at}", "type": type_, "status": status, "timestamp": at}
    if exit_event:
        event["request"] = {"exit_event": exit_event}
    return event


def test_a_machine_at_rest_elsewhere_for_good_ends_the_wait(
    client: FlyClient, script: Script
) -> None:
    script.on(WAIT, reply(200, {"state": "stopped", "event_id": "ev2"}))
    events = [
        _event("exit", "stopped", 2, exit_code=3, oom_killed=True, restarting=False),
        _event("start", "started", 1),
    ]
    script.on(GET, reply(200, machine_json(state="stopped", events=events)))
    with pytest.raises(MachineStateError, match=r"stopped \(exit code 3, OOM killed\)") as raised:
        client.machines.wait("a", "m1", "started", timeout=300)
    assert raised.value.machine_exit_code == 3 and len(script.sent(WAIT)) == 1


def test_a_machine_moving_on_is_waited_for_after_its_last_event(
    client: FlyClient, script: Script
) -> None:
    # stopped, but a start was asked for since (its event is the newest): not a dead end
    script.on(
        WAIT,
        reply(200, {"state": "stopped", "event_id": "ev2"}),
        reply(200, {"state": "started", "event_id": "ev3"}),
    )
    events = [_event("start", "starting", 2), _event("exit", "stopped", 1, exit_code=0)]
    script.on(GET, reply(200, machine_json(state="stopped", events=events)))
    assert client.machines.wait("a", "m1", "started", timeout=300) == "started"
    sent = script.sent(WAIT)
    assert "from_event_id" not in sent[0].url.params
    assert sent[1].url.params["from_event_id"] == "ev2"


def test_a_server_ignoring_from_event_id_does_not_make_the_wait_spin(
    client: FlyClient, script: Script, clock: FakeClock
) -> None:
    script.on(WAIT, reply(200, {"state": "created"}))  # no event id, at once, every time
    script.on(GET, reply(200, machine_json(state="created")))
    with pytest.raises(WaitTimeoutError):
        client.machines.wait("a", "m1", "started", timeout=10)
    assert len(clock.sleeps) == len(script.sent(WAIT)) - 1 <= 15


def test_timeout_zero_polls_once(client: FlyClient, script: Script) -> None:
    script.on(WAIT, reply(200, {"state": "started"}))
    assert client.machines.wait("a", "m1", "started", timeout=0) == "started"
    assert script.sent(WAIT)[0].url.params["timeout"] == "1"


def test_timeout_zero_polls_once_then_times_out(client: FlyClient, script: Script) -> None:
    script.on(WAIT, reply(408))
    with pytest.raises(WaitTimeoutError):
        client.machines.wait("a", "m1", "started", timeout=0)
    assert len(script.sent(WAIT)) == 1


def test_currently_replaced_backs_off_and_never_spins(
    client: FlyClient, script: Script, clock: FakeClock
) -> None:
    # The version waited on is being replaced, answer after answer. Near the deadline no
    # backoff fits any more: the wait must time out then, not ask again at once (the fake
    # clock stands still without sleeps, so a loop that does not sleep would not end; this
    # server gives in after 100 answers to make such a loop fail instead of hang).
    answers = {"count": 0}
    replaced = reply(400, {"error": "machine ID m1 is currently replaced"})
    started = reply(200, {"state": "started"})

    def handler(request):  # type: ignore[no-untyped-def]
        answers["count"] += 1
        return (replaced if answers["count"] <= 100 else started)(request)

    script.on(WAIT, handler)
    with pytest.raises(WaitTimeoutError):
        client.machines.wait("a", "m1", "started", timeout=3)
    assert answers["count"] == len(clock.sleeps) + 1 < 20
