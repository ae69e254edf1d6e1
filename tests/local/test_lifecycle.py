"""The machine state machine: transitions computed from timestamps, events, restart policies."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from flyk.local import LocalBackend, Timing
from tests.local.conftest import FakeClock, checked_client, make_app, make_machine

SLOW = Timing(boot=2.0, stop=1.0, suspend=1.5, destroy=0.5, restart_delay=1.0)


@pytest.fixture
def slow(clocked: Callable[..., LocalBackend]) -> Iterator[httpx.Client]:
    with checked_client(clocked(SLOW).transport()) as c:
        make_app(c)
        yield c


def state(client: httpx.Client, machine_id: str) -> str:
    value: str = client.get(f"/apps/demo/machines/{machine_id}").json()["state"]
    return value


def events(client: httpx.Client, machine_id: str) -> list[dict[str, Any]]:
    """Oldest first."""
    body: list[dict[str, Any]] = client.get(f"/apps/demo/machines/{machine_id}/events").json()
    return list(reversed(body))


def sim_env(**env: str) -> dict[str, Any]:
    return {"image": "busybox", "env": env}


def test_boot_progresses_with_the_clock(slow: httpx.Client, clock: FakeClock) -> None:
    machine = make_machine(slow)
    assert machine["state"] == "starting"
    clock.advance(1.9)
    assert state(slow, machine["id"]) == "starting"
    clock.advance(0.2)
    assert state(slow, machine["id"]) == "started"
    kinds = [(e["type"], e["status"]) for e in events(slow, machine["id"])]
    assert kinds == [("launch", "created"), ("start", "starting"), ("start", "started")]
    started = events(slow, machine["id"])[-1]
    assert started["timestamp"] == round((clock.now - 0.1) * 1000)  # when it was due, in ms


def test_skip_launch_stays_created_until_started(slow: httpx.Client, clock: FakeClock) -> None:
    machine = make_machine(slow, skip_launch=True)
    clock.advance(10)
    assert state(slow, machine["id"]) == "created"
    assert slow.post(f"/apps/demo/machines/{machine['id']}/start").json()["previous_state"] == (
        "created"
    )
    clock.advance(2)
    assert state(slow, machine["id"]) == "started"


def test_stop_records_an_exit_event(slow: httpx.Client, clock: FakeClock) -> None:
    machine = make_machine(slow)
    clock.advance(2)
    assert slow.post(f"/apps/demo/machines/{machine['id']}/stop", json={"timeout": "5s"}).is_success
    assert state(slow, machine["id"]) == "stopping"
    clock.advance(1)
    assert state(slow, machine["id"]) == "stopped"
    exit_event = events(slow, machine["id"])[-1]
    assert exit_event["type"] == "exit" and exit_event["status"] == "stopped"
    detail = exit_event["request"]["exit_event"]
    assert detail["exit_code"] == 0 and detail["requested_stop"] is True
    assert detail["oom_killed"] is False


def test_sigkill_stop_exits_137(slow: httpx.Client, clock: FakeClock) -> None:
    machine = make_machine(slow)
    clock.advance(2)
    slow.post(f"/apps/demo/machines/{machine['id']}/stop", json={"signal": "SIGKILL"})
    assert state(slow, machine["id"]) == "stopped"
    assert events(slow, machine["id"])[-1]["request"]["exit_event"]["exit_code"] == 137


def test_suspend_and_resume(slow: httpx.Client, clock: FakeClock) -> None:
    machine = make_machine(slow)
    base = f"/apps/demo/machines/{machine['id']}"
    clock.advance(2)
    slow.post(f"{base}/suspend")
    assert state(slow, machine["id"]) == "suspending"
    clock.advance(1.5)
    assert state(slow, machine["id"]) == "suspended"
    slow.post(f"{base}/start")
    clock.advance(2)
    assert state(slow, machine["id"]) == "started"


def test_restart_goes_through_stopping_and_starting(slow: httpx.Client, clock: FakeClock) -> None:
    machine = make_machine(slow)
    base = f"/apps/demo/machines/{machine['id']}"
    clock.advance(2)
    assert slow.post(f"{base}/restart").is_success
    assert state(slow, machine["id"]) == "stopping"
    clock.advance(1)
    assert state(slow, machine["id"]) == "starting"
    clock.advance(2)
    assert state(slow, machine["id"]) == "started"
    restarted = [e for e in events(slow, machine["id"]) if e["type"] == "exit"][-1]
    assert restarted["request"]["exit_event"]["restarting"] is True


def test_destroy_goes_through_destroying(slow: httpx.Client, clock: FakeClock) -> None:
    machine = make_machine(slow)
    base = f"/apps/demo/machines/{machine['id']}"
    clock.advance(2)
    assert slow.delete(base).status_code == 412
    assert slow.delete(base, params={"kill": "true"}).is_success
    assert state(slow, machine["id"]) == "destroying"
    clock.advance(0.5)
    assert state(slow, machine["id"]) == "destroyed"
    assert slow.post(f"{base}/start").status_code == 404


def test_workload_exit_with_policy_no(slow: httpx.Client, clock: FakeClock) -> None:
    config = {
        **sim_env(FLYK_SIM_RUN_SECONDS="5", FLYK_SIM_EXIT_CODE="3"),
        "restart": {"policy": "no"},
    }
    machine = make_machine(slow, config=config)
    clock.advance(6.9)
    assert state(slow, machine["id"]) == "started"
    clock.advance(0.2)
    assert state(slow, machine["id"]) == "stopped"
    detail = events(slow, machine["id"])[-1]["request"]["exit_event"]
    assert detail["exit_code"] == 3 and detail["requested_stop"] is False
    assert detail["restarting"] is False


def test_exit_zero_is_not_restarted_on_failure_policy(slow: httpx.Client, clock: FakeClock) -> None:
    machine = make_machine(slow, config=sim_env(FLYK_SIM_RUN_SECONDS="1"))
    clock.advance(3)
    assert state(slow, machine["id"]) == "stopped"  # default policy on-failure, exit 0


def test_on_failure_restarts_up_to_max_retries(slow: httpx.Client, clock: FakeClock) -> None:
    config = {
        **sim_env(FLYK_SIM_RUN_SECONDS="1", FLYK_SIM_EXIT_CODE="1"),
        "restart": {"policy": "on-failure", "max_retries": 2},
    }
    machine = make_machine(slow, config=config)
    clock.advance(2 + 1)  # boot, run: first exit, restart
    assert state(slow, machine["id"]) == "starting"
    clock.advance(100)
    assert state(slow, machine["id"]) == "stopped"
    exits = [e for e in events(slow, machine["id"]) if e["type"] == "exit"]
    assert [e["request"]["exit_event"]["restarting"] for e in exits] == [True, True, False]
    assert exits[-1]["request"]["restart_count"] == 2


def test_always_restarts_forever_and_fast_forwards(slow: httpx.Client, clock: FakeClock) -> None:
    config = {**sim_env(FLYK_SIM_RUN_SECONDS="1"), "restart": {"policy": "always"}}
    machine = make_machine(slow, config=config)
    clock.advance(30 * 24 * 3600)  # a month of a 4 s crash loop: computed, not replayed
    assert state(slow, machine["id"]) in {"starting", "started"}
    last_exit = [e for e in events(slow, machine["id"]) if e["type"] == "exit"][-1]
    assert last_exit["request"]["restart_count"] > 600_000


def test_auto_destroy_after_exit(slow: httpx.Client, clock: FakeClock) -> None:
    config = {**sim_env(FLYK_SIM_EXIT_CODE="0"), "auto_destroy": True, "restart": {"policy": "no"}}
    machine = make_machine(slow, config=config)
    clock.advance(2)
    assert state(slow, machine["id"]) == "destroying"
    clock.advance(0.5)
    assert state(slow, machine["id"]) == "destroyed"


def test_oom_kill(slow: httpx.Client, clock: FakeClock) -> None:
    config = {**sim_env(FLYK_SIM_OOM="1", FLYK_SIM_RUN_SECONDS="1"), "restart": {"policy": "no"}}
    machine = make_machine(slow, config=config)
    clock.advance(3)
    detail = events(slow, machine["id"])[-1]["request"]["exit_event"]
    assert detail["oom_killed"] is True and detail["exit_code"] == 137


def test_terminating_signal_exits_with_128_plus_signal(
    slow: httpx.Client, clock: FakeClock
) -> None:
    machine = make_machine(slow, config={"image": "x", "restart": {"policy": "no"}})
    base = f"/apps/demo/machines/{machine['id']}"
    clock.advance(2)
    assert slow.post(f"{base}/signal", json={"signal": "SIGUSR1"}).is_success
    assert state(slow, machine["id"]) == "started"  # handled by the simulated workload
    assert slow.post(f"{base}/signal", json={"signal": "SIGTERM"}).is_success
    assert state(slow, machine["id"]) == "stopped"
    detail = events(slow, machine["id"])[-1]["request"]["exit_event"]
    assert detail["exit_code"] == 143 and detail["requested_stop"] is False


def test_update_replaces_and_reboots(slow: httpx.Client, clock: FakeClock) -> None:
    machine = make_machine(slow)
    base = f"/apps/demo/machines/{machine['id']}"
    clock.advance(2)
    updated = slow.post(base, json={"config": {"image": "nginx:1.28"}}).json()
    assert updated["state"] == "replacing"
    assert updated["instance_id"] != machine["instance_id"]
    clock.advance(1)
    assert state(slow, machine["id"]) == "starting"
    clock.advance(2)
    assert state(slow, machine["id"]) == "started"


def test_update_with_skip_launch_of_a_stopped_machine_keeps_it_stopped(
    slow: httpx.Client, clock: FakeClock
) -> None:
    machine = make_machine(slow)
    base = f"/apps/demo/machines/{machine['id']}"
    clock.advance(2)
    slow.post(f"{base}/stop")
    clock.advance(1)
    updated = slow.post(base, json={"config": {"image": "nginx:2"}, "skip_launch": True}).json()
    assert updated["state"] == "stopped"
    assert updated["config"]["image"] == "nginx:2"


def test_checks_pass_once_started(slow: httpx.Client, clock: FakeClock) -> None:
    config = {"image": "x", "checks": {"http": {"type": "http", "port": 80, "path": "/"}}}
    machine = make_machine(slow, config=config)
    assert [c["status"] for c in machine["checks"]] == ["critical"]
    clock.advance(2)
    checks = slow.get(f"/apps/demo/machines/{machine['id']}").json()["checks"]
    assert [(c["name"], c["status"]) for c in checks] == [("http", "passing")]


def test_start_of_a_transient_machine_is_refused(slow: httpx.Client, clock: FakeClock) -> None:
    machine = make_machine(slow)
    clock.advance(2)
    slow.post(f"/apps/demo/machines/{machine['id']}/stop")
    response = slow.post(f"/apps/demo/machines/{machine['id']}/start")
    assert response.status_code == 412
    assert "stopping" in response.json()["error"]


def test_summary_list_omits_config_and_filters_by_state(
    slow: httpx.Client, clock: FakeClock
) -> None:
    a = make_machine(slow)
    b = make_machine(slow, skip_launch=True)
    clock.advance(2)
    listed = slow.get("/apps/demo/machines", params={"summary": "true"}).json()
    assert {m["id"] for m in listed} == {a["id"], b["id"]}
    assert all("config" not in m for m in listed)
    created = slow.get("/apps/demo/machines", params={"state": "created"}).json()
    assert [m["id"] for m in created] == [b["id"]]
    both = slow.get("/apps/demo/machines", params={"state": "created,started"}).json()
    assert len(both) == 2
    assert slow.get("/apps/demo/machines", params={"region": "lhr"}).json() == []


def test_events_limit_and_versions(slow: httpx.Client, clock: FakeClock) -> None:
    machine = make_machine(slow)
    base = f"/apps/demo/machines/{machine['id']}"
    clock.advance(2)
    assert len(slow.get(f"{base}/events", params={"limit": 2}).json()) == 2
    slow.post(base, json={"config": {"image": "nginx:2"}})
    versions = slow.get(f"{base}/versions").json()
    assert len(versions) == 2
    assert versions[0]["user_config"]["image"] == "nginx:2"
    assert versions[1]["version"] == machine["instance_id"]


def test_current_version_mismatch_is_409(client: httpx.Client) -> None:
    make_app(client)
    machine = make_machine(client)
    base = f"/apps/demo/machines/{machine['id']}"
    first = client.post(
        base, json={"config": {"image": "a"}, "current_version": machine["instance_id"]}
    )
    assert first.status_code == 200
    stale = client.post(
        base, json={"config": {"image": "b"}, "current_version": machine["instance_id"]}
    )
    assert stale.status_code == 409
    assert client.post(base, json={"config": {"image": "b"}, "region": "lhr"}).status_code == 400


def test_exec_is_simulated(client: httpx.Client) -> None:
    make_app(client)
    files = [{"guest_path": "/etc/motd", "raw_value": "aGVsbG8K"}]
    machine = make_machine(client, config={"image": "x", "env": {"A": "1"}, "files": files})
    base = f"/apps/demo/machines/{machine['id']}/exec"
    assert client.post(base, json={"command": ["echo", "hi"]}).json()["stdout"] == "hi\n"
    assert client.post(base, json={"command": ["cat", "/etc/motd"]}).json()["stdout"] == "hello\n"
    assert "A=1\n" in client.post(base, json={"command": ["env"]}).json()["stdout"]
    missing = client.post(base, json={"command": ["kubectl", "get", "pods"]}).json()
    assert missing["exit_code"] == 127 and "not run" in missing["stderr"]


def test_cordon_and_uncordon(client: httpx.Client) -> None:
    make_app(client)
    machine = make_machine(client)
    base = f"/apps/demo/machines/{machine['id']}"
    assert client.post(f"{base}/cordon").is_success
    assert client.post(f"{base}/uncordon").is_success
    kinds = [e["type"] for e in client.get(f"{base}/events").json()[:2]]
    assert kinds == ["uncordon", "cordon"]


def test_a_failing_start_ends_in_failed(slow: httpx.Client, clock: FakeClock) -> None:
    machine = make_machine(slow, config=sim_env(FLYK_SIM_START_FAILS="1"))
    clock.advance(2)
    assert state(slow, machine["id"]) == "failed"
    assert events(slow, machine["id"])[-1]["status"] == "failed"
    base = f"/apps/demo/machines/{machine['id']}"
    assert slow.get(f"{base}/wait", params={"state": "settled", "timeout": 0}).status_code == 200
    assert slow.delete(base).status_code == 200  # a failed machine can be destroyed


def test_event_history_is_bounded(slow: httpx.Client, clock: FakeClock) -> None:
    config = {**sim_env(FLYK_SIM_RUN_SECONDS="1"), "restart": {"policy": "always"}}
    machine = make_machine(slow, config=config)
    for _ in range(30):
        clock.advance(60)  # about 15 restarts a minute, 3 events each
        state(slow, machine["id"])
    assert len(events(slow, machine["id"])) == 500


def test_stop_during_a_restart_stops(slow: httpx.Client, clock: FakeClock) -> None:
    machine = make_machine(slow)
    base = f"/apps/demo/machines/{machine['id']}"
    clock.advance(2)
    slow.post(f"{base}/restart")
    slow.post(f"{base}/stop")
    clock.advance(10)
    assert state(slow, machine["id"]) == "stopped"


def test_container_healthchecks_are_reported_with_the_machines_checks(
    slow: httpx.Client, clock: FakeClock
) -> None:
    """A multi-container machine's `containers[].healthchecks` show up in `checks[]` (the
    spec's only check status), each following its own container's simulated status."""
    tcp = {"kind": "readiness", "tcp": {"port": 80}, "interval": 5, "timeout": 2}
    config = {
        "image": "x",
        "containers": [
            {"name": "web", "image": "nginx", "healthchecks": [{**tcp, "name": "web-ready"}]},
            {
                "name": "log",
                "image": "fluent-bit",
                "env": {"FLYK_SIM_CHECK_STATUS": "warning"},
                "healthchecks": [{**tcp, "name": "log-ready"}],
            },
        ],
    }
    machine = make_machine(slow, config=config)
    assert [(c["name"], c["status"]) for c in machine["checks"]] == [
        ("web-ready", "critical"),
        ("log-ready", "critical"),
    ]
    clock.advance(2)
    checks = slow.get(f"/apps/demo/machines/{machine['id']}").json()["checks"]
    assert [(c["name"], c["status"]) for c in checks] == [
        ("web-ready", "passing"),
        ("log-ready", "warning"),
    ]
