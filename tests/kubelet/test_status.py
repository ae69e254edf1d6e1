# ruff: noqa: E501  (the tables read best one case per line)
"""Per-container status of multi-container pods, init containers included: pure, table-driven.

The Machines API gives state per machine only, so app containers share it and init containers
are Completed once the machine has started (docs/kubernetes.md "Machine → Pod status").
"""

from __future__ import annotations

from typing import Any

import pytest

from flyk.kubelet import status as st

INITS = [{"name": "migrate", "image": "tool:1"}, {"name": "seed", "image": "tool:2"}]
APPS = [{"name": "web", "image": "nginx:1.27"}, {"name": "log", "image": "fluent-bit:3"}]


def multi_pod(status: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": "multi", "namespace": "shop", "uid": "u-1"},
        "spec": {"initContainers": INITS, "containers": APPS, "restartPolicy": "Never"},
    }
    if status is not None:
        body["status"] = status
    return body


def machine(state: str, *events: dict[str, Any], checks: tuple[dict[str, str], ...] = ()):
    return {
        "id": "m1",
        "state": state,
        "private_ip": "fdaa::9",
        "created_at": "2026-11-25T10:00:00Z",
        "events": list(events),
        "checks": list(checks),
    }


def exit_event(code: int, *, restarting: bool = False, at: int = 2000) -> dict[str, Any]:
    request = {"exit_event": {"exit_code": code, "oom_killed": False, "restarting": restarting}}
    return {"type": "exit", "status": "stopped", "timestamp": at, "request": request}


START = {"type": "start", "status": "started", "timestamp": 1000}


def brief(container: dict[str, Any]) -> tuple[str, str | None, int | None]:
    """(state, reason, exit code) of one container status."""
    ((kind, detail),) = container["state"].items()
    return kind, detail.get("reason"), detail.get("exitCode")


def condition(status: dict[str, Any], kind: str) -> str:
    return next(c["status"] for c in status["conditions"] if c["type"] == kind)


TABLE = [
    # machine, phase, each init container, each app container, Initialized
    (machine("created"), "Pending", ("waiting", "PodInitializing", None), ("waiting", "PodInitializing", None), "False"),
    (machine("starting"), "Pending", ("waiting", "PodInitializing", None), ("waiting", "PodInitializing", None), "False"),
    # starting again after a run (a restart): still Running, the init containers did complete
    (machine("starting", START, exit_event(1, restarting=True)), "Running", ("terminated", "Completed", 0), ("waiting", "ContainerCreating", None), "True"),
    (machine("started", START), "Running", ("terminated", "Completed", 0), ("running", None, None), "True"),
    (machine("stopping", START), "Running", ("terminated", "Completed", 0), ("running", None, None), "True"),
    (machine("stopped", START, exit_event(0)), "Succeeded", ("terminated", "Completed", 0), ("terminated", "Completed", 0), "True"),
    (machine("stopped", START, exit_event(3)), "Failed", ("terminated", "Completed", 0), ("terminated", "Error", 3), "True"),
    (machine("stopped"), "Failed", ("terminated", "Completed", 0), ("terminated", "Stopped", 143), "True"),
    (machine("failed", START, exit_event(2)), "Failed", ("terminated", "Completed", 0), ("terminated", "Error", 2), "True"),
    # never started: nothing ran, every container carries the machine's failure
    (machine("failed"), "Failed", ("terminated", "StartError", 128), ("terminated", "StartError", 128), "False"),
    (machine("launch_failed"), "Failed", ("terminated", "StartError", 128), ("terminated", "StartError", 128), "False"),
]  # fmt: skip


@pytest.mark.parametrize(("m", "phase", "init", "app", "initialized"), TABLE)
def test_init_and_app_container_states(m, phase: str, init, app, initialized: str) -> None:
    status = st.pod_status(multi_pod(), m, host_ip="fdaa::2")
    assert status["phase"] == phase
    inits, apps = status["initContainerStatuses"], status["containerStatuses"]
    assert [(c["name"], c["image"]) for c in inits] == [("migrate", "tool:1"), ("seed", "tool:2")]
    assert [(c["name"], c["image"]) for c in apps] == [
        ("web", "nginx:1.27"),
        ("log", "fluent-bit:3"),
    ]
    assert [brief(c) for c in inits] == [init, init]
    assert [brief(c) for c in apps] == [app, app]
    assert condition(status, "Initialized") == initialized
    completed = init == ("terminated", "Completed", 0)
    assert all(c["ready"] is completed and c["restartCount"] == 0 for c in inits)
    assert all(c["started"] is False for c in inits)
    assert all(c["started"] is (app[0] == "running") for c in apps)


PROBE = {"readinessProbe": {"tcpSocket": {"port": 8080}}}


def probed_pod() -> dict[str, Any]:
    pod = multi_pod()
    pod["spec"]["containers"] = [{**c, **PROBE} for c in APPS]
    return pod


def test_each_app_container_is_ready_by_its_own_readiness_check() -> None:
    checks = (
        {"name": "readiness-web", "status": "passing"},
        {"name": "readiness-log", "status": "critical"},
    )
    status = st.pod_status(probed_pod(), machine("started", START, checks=checks), host_ip="h")
    assert {c["name"]: c["ready"] for c in status["containerStatuses"]} == {
        "web": True,
        "log": False,
    }
    assert condition(status, "ContainersReady") == "False"
    assert condition(status, "Ready") == "False"
    passing = (
        {"name": "readiness-web", "status": "passing"},
        {"name": "readiness-log", "status": "passing"},
    )
    status = st.pod_status(probed_pod(), machine("started", START, checks=passing), host_ip="h")
    assert condition(status, "Ready") == "True"


@pytest.mark.parametrize(
    "checks",
    [
        (),  # nothing reported yet (a started machine whose checks have not run)
        ({"name": "readiness-web", "status": "passing"},),  # one of two reported
        ({"name": "liveness-web", "status": "passing"},),  # another kind's check
    ],
)
def test_a_readiness_check_not_reported_is_not_passing(checks: tuple[dict[str, str], ...]) -> None:
    """The checks a pod expects come from its spec: one the machine does not report keeps its
    container unready (no Ready pod before its probe has passed)."""
    status = st.pod_status(probed_pod(), machine("started", START, checks=checks), host_ip="h")
    assert status["containerStatuses"][1] == {**status["containerStatuses"][1], "ready": False}
    assert condition(status, "Ready") == "False"


def test_only_probes_that_became_checks_are_waited_for() -> None:
    """No probe, or an exec probe (not a check: reported unsupported), leaves the container
    ready once the machine runs."""
    pod = multi_pod()
    pod["spec"]["containers"] = [
        APPS[0],
        {**APPS[1], "readinessProbe": {"exec": {"command": ["true"]}}},
    ]
    status = st.pod_status(pod, machine("started", START), host_ip="h")
    assert [c["ready"] for c in status["containerStatuses"]] == [True, True]
    assert condition(status, "Ready") == "True"


def test_app_containers_share_the_machines_restarts_and_init_containers_never_restart() -> None:
    m = machine(
        "started", START, exit_event(2, restarting=True, at=1500), {**START, "timestamp": 1600}
    )
    status = st.pod_status(multi_pod(), m, host_ip="h")
    assert [c["restartCount"] for c in status["containerStatuses"]] == [1, 1]
    assert all(c["lastState"]["terminated"]["exitCode"] == 2 for c in status["containerStatuses"])
    assert [c["restartCount"] for c in status["initContainerStatuses"]] == [0, 0]
    assert all("lastState" not in c for c in status["initContainerStatuses"])


def test_a_pending_pod_gives_its_reason_to_init_containers_too() -> None:
    status = st.pending_status(
        multi_pod(), host_ip="h", reason="InsufficientCapacity", message="full"
    )
    for container in [*status["initContainerStatuses"], *status["containerStatuses"]]:
        assert container["state"] == {
            "waiting": {"reason": "InsufficientCapacity", "message": "full"}
        }
        assert container["ready"] is False


def test_a_lost_machine_keeps_init_containers_seen_completed() -> None:
    fresh = st.pod_status(multi_pod(), None, host_ip="h")
    assert [brief(c) for c in fresh["initContainerStatuses"]] == [
        ("terminated", "NotFound", -137)
    ] * 2
    ran = st.pod_status(multi_pod(), machine("started", START), host_ip="h")
    lost = st.pod_status(multi_pod(ran), None, host_ip="h")
    assert [brief(c) for c in lost["initContainerStatuses"]] == [("terminated", "Completed", 0)] * 2
    assert [brief(c) for c in lost["containerStatuses"]] == [("terminated", "NotFound", -137)] * 2


def test_a_pod_without_init_containers_has_no_init_statuses_and_is_initialized() -> None:
    single = {
        "metadata": {"name": "p", "namespace": "n", "uid": "u"},
        "spec": {"containers": APPS[:1]},
    }
    for m in (machine("created"), machine("started", START), None):
        status = st.pod_status(single, m, host_ip="h")
        assert "initContainerStatuses" not in status
    pending = st.pod_status(single, machine("starting"), host_ip="h")
    assert brief(pending["containerStatuses"][0]) == ("waiting", "ContainerCreating", None)
    assert condition(pending, "Initialized") == "True"
    assert "initContainerStatuses" not in st.pending_status(
        single, host_ip="h", reason="R", message="m"
    )


def test_a_restarting_machine_keeps_the_pod_running_with_the_last_exit() -> None:
    """Kubernetes never moves a pod from Running back to Pending."""
    single = {
        "metadata": {"name": "p", "namespace": "n", "uid": "u"},
        "spec": {"containers": APPS[:1]},
    }
    m = machine("starting", START, exit_event(1, restarting=True, at=1500))
    status = st.pod_status(single, m, host_ip="h")
    assert status["phase"] == "Running"
    (container,) = status["containerStatuses"]
    assert brief(container) == ("waiting", "ContainerCreating", None)
    assert container["ready"] is False and container["restartCount"] == 1
    assert container["lastState"]["terminated"]["exitCode"] == 1
    assert condition(status, "Ready") == "False"


def one(policy: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "n", "uid": "u"},
        "spec": {"containers": APPS[:1], "restartPolicy": policy},
    }


STOPPED = [
    # policy, machine, phase, container state (kind, reason, exit code), lastState exit code
    ("Always", machine("stopped", START, exit_event(0)), "Running", ("waiting", "ContainerCreating", None), 0),
    ("Always", machine("stopped", START, exit_event(3)), "Running", ("waiting", "ContainerCreating", None), 3),
    ("Always", machine("stopped", START), "Running", ("waiting", "ContainerCreating", None), 143),
    ("Always", machine("suspended", START), "Running", ("waiting", "ContainerCreating", None), 143),
    ("OnFailure", machine("stopped", START, exit_event(0)), "Succeeded", ("terminated", "Completed", 0), None),
    ("OnFailure", machine("stopped", START, exit_event(3)), "Running", ("waiting", "ContainerCreating", None), 3),
    ("OnFailure", machine("stopped", START), "Running", ("waiting", "ContainerCreating", None), 143),
    ("Never", machine("stopped", START, exit_event(0)), "Succeeded", ("terminated", "Completed", 0), None),
    ("Never", machine("stopped", START, exit_event(3)), "Failed", ("terminated", "Error", 3), None),
    # a failed machine is not a stopped one: Failed whatever the policy
    ("Always", machine("failed", START, exit_event(2)), "Failed", ("terminated", "Error", 2), None),
]  # fmt: skip


@pytest.mark.parametrize(("policy", "m", "phase", "state", "last"), STOPPED)
def test_a_stopped_machine_follows_the_restart_policy(policy: str, m, phase, state, last) -> None:
    pod = one(policy)
    status = st.pod_status(pod, m, host_ip="h")
    assert status["phase"] == phase
    (container,) = status["containerStatuses"]
    assert brief(container) == state
    assert st.restarts_when_stopped(pod, m) is (phase == "Running")
    if last is None:
        assert "lastState" not in container
    else:
        assert container["lastState"]["terminated"]["exitCode"] == last
        assert container["ready"] is False


def test_an_exit_followed_by_a_start_is_a_restart() -> None:
    """The kubelet started a stopped machine again: that exit counts, as Fly's own restarts
    (`restarting`) do, and each once."""
    m = machine(
        "started",
        START,
        exit_event(0, at=1500),  # stopped by someone, started again by the kubelet
        {**START, "timestamp": 1600},
        exit_event(1, restarting=True, at=1700),  # Fly's own restart
        {**START, "timestamp": 1800},
        exit_event(0, at=1900),  # stopped, not started again (yet)
    )
    assert st.restart_count(m) == 2


def test_the_status_patch_sends_only_what_changed_and_leaves_others_conditions() -> None:
    running = st.with_transition_times(
        st.pod_status(probed_pod(), machine("started", START), host_ip="h"), None, "T1"
    )
    gate = {"type": "example.com/gate", "status": "True"}
    held = {**running, "conditions": [*running["conditions"], gate], "qosClass": "BestEffort"}
    assert st.status_patch(running, held) == {}  # others' condition and fields: no write
    passing = (
        {"name": "readiness-web", "status": "passing"},
        {"name": "readiness-log", "status": "passing"},
    )
    ready = st.with_transition_times(
        st.pod_status(probed_pod(), machine("started", START, checks=passing), host_ip="h"),
        held,
        "T2",
    )
    patch = st.status_patch(ready, held)
    assert {c["type"] for c in patch["conditions"]} == {"ContainersReady", "Ready"}
    (ready_condition,) = [c for c in patch["conditions"] if c["type"] == "Ready"]
    assert ready_condition == {
        "type": "Ready",
        "status": "True",
        "reason": None,  # Ready=False had one: it goes
        "lastTransitionTime": "T2",
    }
    assert "podIPs" not in patch and "phase" not in patch


def test_a_pod_ip_no_longer_held_is_deleted_from_pod_ips() -> None:
    before = st.pod_status(probed_pod(), machine("started", START), host_ip="h")
    after = {**before, "podIP": "fdaa::10", "podIPs": [{"ip": "fdaa::10"}]}
    patch = st.status_patch(after, before)
    assert patch["podIP"] == "fdaa::10"
    assert patch["podIPs"] == [{"ip": "fdaa::10"}, {"ip": "fdaa::9", "$patch": "delete"}]


def test_container_statuses_as_the_api_server_gives_them_back_are_not_written_again() -> None:
    """The server adds `lastState: {}` and fields of its own, and writes times the kubelet
    left out as null: none of that is a change (a restarted kubelet would write every pod)."""
    before = st.pod_status(probed_pod(), machine("started", START), host_ip="h")
    stored = {
        **before,
        "containerStatuses": [
            {**c, "lastState": {}, "volumeMounts": [{"name": "x", "mountPath": "/x"}]}
            for c in before["containerStatuses"]
        ],
    }
    assert st.status_patch(before, stored) == {}
    changed = {**stored, "containerStatuses": [{**c, "ready": not c["ready"]} for c in stored["containerStatuses"]]}  # fmt: skip
    assert "containerStatuses" in st.status_patch(before, changed)
