"""Pods become machines: the real control plane, the local backend in-process."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flyk.api import MachineConfig
from flyk.kubelet import status as st
from flyk.local import LocalBackend, Timing

from .conftest import eventually
from .harness import FAST, Harness, make_pod
from .realkube import Kube


@pytest.fixture
def harness(kube: Kube, kubeconfig: str, backend: LocalBackend) -> Iterator[Harness]:
    h = Harness(kube, kubeconfig, backend)
    yield h
    h.close()


def phases_written(kube: Kube, name: str) -> list[str]:
    """Every phase the pod went through, as the API server told its watchers."""
    return kube.phases(name)


def sim_env(**values: str) -> list[dict[str, str]]:
    return [{"name": f"FLYK_SIM_{k.upper()}", "value": v} for k, v in values.items()]


@pytest.mark.parametrize(
    ("env", "phase", "exit_code", "reason"),
    [
        (sim_env(run_seconds="0.8", exit_code="0"), "Succeeded", 0, "Completed"),
        (sim_env(run_seconds="0.8", exit_code="3"), "Failed", 3, "Error"),
        (sim_env(run_seconds="0.8", oom="1"), "Failed", 137, "OOMKilled"),
    ],
)
def test_a_pods_life(harness: Harness, env, phase: str, exit_code: int, reason: str) -> None:
    harness.start()
    containers = [{"name": "job", "image": "busybox", "env": env}]
    harness.create_pod("job", containers=containers, restartPolicy="Never")
    pod = harness.wait_phase("job", phase)
    (container,) = pod["status"]["containerStatuses"]
    assert container["state"]["terminated"]["exitCode"] == exit_code
    assert container["state"]["terminated"]["reason"] == reason
    assert phases_written(harness.kube, "job") == ["Pending", "Running", phase]
    machine = harness.machine_of("job")
    assert machine is not None
    # the machine is named in the status (a node may not write the pod's metadata)
    assert {c["containerID"] for c in pod["status"]["containerStatuses"]} == {
        f"fly://{machine['id']}"
    }
    assert "fly.io/machine-id" not in (pod["metadata"].get("annotations") or {})
    assert pod["status"]["podIP"] == machine["private_ip"]
    assert machine["config"]["restart"] == {"policy": "no"}
    meta = machine["config"]["metadata"]
    assert (meta["flyk_cluster"], meta["flyk_namespace"], meta["flyk_pod"]) == (
        "demo",
        harness.ns(),
        "job",
    )
    assert meta["flyk_pod_uid"] == pod["metadata"]["uid"]


def test_running_pod_is_ready_and_namespace_app_is_marked(harness: Harness) -> None:
    harness.start()
    harness.create_pod("web", namespace="shop")
    pod = harness.wait_phase("web", "Running", "shop")
    conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conditions == {
        "PodScheduled": "True",
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "True",
    }
    secrets = {s.name for s in harness.fly.secrets.list(harness.app("shop"))}
    assert {"FLYK_CLUSTER", "FLYK_NAMESPACE", "FLYK_ORG"} <= secrets
    (created,) = eventually(lambda: harness.events("web", "Created", "shop"))
    assert "shared-cpu-1x:256MB" in created["message"]


def test_delete_stops_within_the_grace_period_destroys_and_removes_the_pod(
    harness: Harness,
) -> None:
    harness.start()
    harness.create_pod("web", terminationGracePeriodSeconds=20)
    uid = harness.wait_phase("web", "Running")["metadata"]["uid"]
    machine = harness.machine_of("web")
    assert machine is not None
    harness.delete_pod("web", grace=7)
    eventually(lambda: harness.pod("web") is None, what="pod removed")
    assert harness.machine_of("web") is None
    machine_path = f"/machines/{machine['id']}"
    order = [
        (c.method, c.path.rsplit("/", 1)[-1])
        for c in harness.calls.calls
        if machine_path in c.path and c.method in ("POST", "DELETE")
    ]
    assert order == [("POST", "stop"), ("DELETE", machine["id"])]
    (stop,) = harness.calls.matching("POST", f"{machine_path}/stop")
    assert stop.body == {"timeout": "7s"}
    # the pod object was removed with grace 0 and its UID as precondition
    kubelet = harness.traffic.sent("DELETE", "/pods/web")[0]
    assert kubelet["gracePeriodSeconds"] == 0
    assert kubelet["preconditions"] == {"uid": uid}


def test_env_and_files_are_resolved_from_secrets_config_maps_and_the_downward_api(
    harness: Harness,
) -> None:
    kube = harness.kube
    secret_data = {"password": base64.b64encode(b"hunter2").decode()}
    kube.create("secrets", {"metadata": {"name": "db"}, "data": secret_data}, "default")
    kube.create("configmaps", {"metadata": {"name": "conf"}, "data": {"app.ini": "[x]"}}, "default")
    harness.start()
    container = {
        "name": "app",
        "image": "app:1",
        "env": [
            {
                "name": "DB_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
            },
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        ],
        "volumeMounts": [{"name": "conf", "mountPath": "/etc/app"}],
    }
    volumes = [{"name": "conf", "configMap": {"name": "conf"}}]
    harness.create_pod("app", containers=[container], volumes=volumes)
    harness.wait_phase("app", "Running")
    machine = harness.machine_of("app")
    assert machine is not None
    config = machine["config"]
    assert config["env"] == {"DB_PASSWORD": "hunter2", "POD": "app"}
    assert config["processes"][0]["env_from"] == [{"env_var": "IP", "field_ref": "private_ip"}]
    assert config["files"] == [
        {
            "guest_path": "/etc/app/app.ini",
            "raw_value": base64.b64encode(b"[x]").decode(),
            "mode": 0o644,  # the API server's defaultMode
        }
    ]


def test_a_missing_secret_keeps_the_pod_pending_until_it_appears(harness: Harness) -> None:
    harness.start()
    env = [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "late", "key": "k"}}}]
    harness.create_pod("app", containers=[{"name": "app", "image": "app:1", "env": env}])
    eventually(
        lambda: (
            (harness.pod("app") or {}).get("status", {}).get("reason")
            == "CreateContainerConfigError"
        )
    )
    assert harness.machine_of("app") is None
    data = {"k": base64.b64encode(b"v").decode()}
    harness.kube.create("secrets", {"metadata": {"name": "late"}, "data": data}, "default")
    pod = harness.wait_phase("app", "Running")
    assert "reason" not in pod["status"]


def test_several_containers_run_in_one_machine(harness: Harness) -> None:
    harness.start()
    containers = [{"name": "web", "image": "nginx"}, {"name": "log", "image": "fluent-bit"}]
    init = [{"name": "migrate", "image": "tool"}]
    harness.create_pod("multi", containers=containers, initContainers=init)
    pod = harness.wait_phase("multi", "Running")
    assert [c["name"] for c in pod["status"]["containerStatuses"]] == ["web", "log"]
    assert all("running" in c["state"] for c in pod["status"]["containerStatuses"])
    (migrate,) = pod["status"]["initContainerStatuses"]
    assert (migrate["name"], migrate["image"], migrate["ready"]) == ("migrate", "tool", True)
    # (the API server writes the times the kubelet leaves out as null)
    assert {k: v for k, v in migrate["state"]["terminated"].items() if v is not None} == {
        "exitCode": 0,
        "reason": "Completed",
    }
    machine = harness.machine_of("multi")
    assert machine is not None
    assert [c["name"] for c in machine["config"]["containers"]] == ["migrate", "web", "log"]


def ready_condition(harness: Harness, name: str) -> str | None:
    pod = harness.pod(name)
    conditions = (pod or {}).get("status", {}).get("conditions") or []
    return next((c["status"] for c in conditions if c["type"] == "Ready"), None)


def test_each_container_of_a_multi_container_pod_is_ready_by_its_own_probe(
    harness: Harness,
) -> None:
    """Readiness probes of a multi-container pod become container healthchecks; the pod is
    Ready only once every one of them reports passing (here `log` never does)."""
    harness.start()
    probe = {"readinessProbe": {"tcpSocket": {"port": 8080}}}
    containers = [
        {"name": "web", "image": "nginx", **probe},
        {"name": "log", "image": "fluent-bit", "env": sim_env(check_status="critical"), **probe},
    ]
    harness.create_pod("multi", containers=containers)
    harness.wait_phase("multi", "Running")
    pod = eventually(
        lambda: (
            (p := harness.pod("multi"))
            and all("running" in c["state"] for c in p["status"]["containerStatuses"])
            and p
        )
    )
    assert {c["name"]: c["ready"] for c in pod["status"]["containerStatuses"]} == {
        "web": True,
        "log": False,
    }
    assert ready_condition(harness, "multi") == "False"
    machine = harness.machine_of("multi")
    assert machine is not None
    assert {c["name"]: c["status"] for c in machine["checks"]} == {
        "readiness-web": "passing",
        "readiness-log": "critical",
    }


def test_a_failing_liveness_probe_of_a_multi_container_pod_restarts_its_machine(
    harness: Harness,
) -> None:
    harness.start()
    containers = [
        {"name": "web", "image": "nginx"},
        {
            "name": "log",
            "image": "fluent-bit",
            "env": sim_env(check_status="critical"),
            "livenessProbe": {"tcpSocket": {"port": 8080}},
        },
    ]
    harness.create_pod("multi", containers=containers)
    harness.wait_phase("multi", "Running")
    (event,) = eventually(lambda: harness.events("multi", "Unhealthy"))
    assert event["message"] == "liveness check liveness-log failed; restarting the machine"
    machine = harness.machine_of("multi")
    assert machine is not None
    eventually(lambda: harness.calls.matching("POST", f"/machines/{machine['id']}/restart"))


def test_unsupported_fields_are_reported_as_warning_events(harness: Harness) -> None:
    harness.start()
    container = {
        "name": "app",
        "image": "app:1",
        "securityContext": {"runAsUser": 1000},
        "workingDir": "/srv",
    }
    harness.create_pod("app", containers=[container], hostNetwork=True)
    harness.wait_phase("app", "Running")
    messages = sorted(e["message"] for e in harness.events("app", "UnsupportedField"))
    (token,) = [m for m in messages if "the service account token" in m]  # admission adds it
    assert token.startswith("spec.volumes[0] (kube-api-access-")
    messages.remove(token)
    assert messages == [
        "spec.containers[0].securityContext is not supported yet",
        "spec.containers[0].workingDir is not supported yet",
        "spec.hostNetwork is not supported yet",
    ]
    assert all(e["type"] == "Warning" for e in harness.events("app", "UnsupportedField"))


def test_no_capacity_keeps_the_pod_pending_with_an_event_and_retries(harness: Harness) -> None:
    harness.backend.capacity.set("iad", 0)
    harness.start()
    harness.create_pod("web")
    (event,) = eventually(lambda: harness.events("web", "InsufficientCapacity"))
    assert event["type"] == "Warning"
    assert "no capacity in iad" in event["message"] and "insufficient" in event["message"]
    assert "Regions that could serve: " in event["message"] and "none found" not in event["message"]
    pod = eventually(lambda: (p := harness.pod("web")) and p["status"].get("reason") and p)
    assert pod["status"]["phase"] == "Pending"
    assert pod["status"]["reason"] == "InsufficientCapacity"
    attempts = len(harness.calls.matching("POST", "/machines"))
    eventually(lambda: len(harness.calls.matching("POST", "/machines")) > attempts, what="a retry")
    assert harness.machines() == []  # never placed elsewhere
    harness.backend.capacity.set("iad", 1_000_000)
    pod = harness.wait_phase("web", "Running")
    machine = harness.machine_of("web")
    assert machine is not None and machine["region"] == "iad"


def test_a_region_list_allows_fallback(harness: Harness) -> None:
    harness.backend.capacity.set("iad", 0)
    harness.start()
    harness.create_pod("web", annotations={"fly.io/region": "iad,ord"})
    harness.wait_phase("web", "Running")
    machine = harness.machine_of("web")
    assert machine is not None and machine["region"] == "ord"


def test_a_changed_spec_updates_the_machine_under_a_lease(harness: Harness) -> None:
    harness.start()
    harness.create_pod("web")
    harness.wait_phase("web", "Running")
    machine = harness.machine_of("web")
    assert machine is not None

    def new_image(pod: dict) -> dict:
        pod["spec"]["containers"][0]["image"] = "nginx:1.28"
        return pod

    harness.kube.modify("pods", "default", "web", new_image)
    eventually(
        lambda: (harness.machine_of("web") or {}).get("config", {}).get("image") == "nginx:1.28"
    )
    # the backend has the update before the client's hook records the exchange: wait for it
    eventually(lambda: harness.calls.matching("POST", f"/machines/{machine['id']}/lease"))
    machine_path = f"/apps/{harness.app()}/machines/{machine['id']}"
    updates = eventually(
        lambda: [c for c in harness.calls.matching("POST") if c.path == machine_path]
    )
    (update,) = updates
    assert update.status == 200
    eventually(lambda: harness.calls.matching("DELETE", f"/machines/{machine['id']}/lease"))
    eventually(lambda: harness.events("web", "Updated"))


def test_steady_state_lists_once_per_namespace_and_never_gets_each_pod(harness: Harness) -> None:
    harness.start()
    for index in range(6):
        harness.create_pod(f"p{index}", namespace=("a", "b")[index % 2])
    for index in range(6):
        harness.wait_phase(f"p{index}", "Running", ("a", "b")[index % 2])
    before = len(harness.calls.calls)
    lists_before = len(harness.calls.matching("GET", "/machines"))
    eventually(
        lambda: len(harness.calls.matching("GET", "/machines")) >= lists_before + 6, what="lists"
    )
    idle = harness.calls.calls[before:]
    # nothing but one list per namespace app (and, rarely, the health ping)
    assert {(c.method, c.path) for c in idle} <= {
        ("GET", f"/apps/{harness.app('a')}/machines"),
        ("GET", f"/apps/{harness.app('b')}/machines"),
        ("GET", "/apps"),
    }
    pod_status_writes = pod_status_patches(harness)
    eventually(
        lambda: len(harness.calls.matching("GET", "/machines")) >= lists_before + 12, what="lists"
    )
    assert pod_status_patches(harness) == pod_status_writes  # unchanged: not written


def pod_status_patches(harness: Harness) -> int:
    with harness.traffic.lock:
        requests = list(harness.traffic.requests)
    return sum(1 for m, p, _ in requests if m == "PATCH" and "/pods/" in p and "/status" in p)


@pytest.mark.parametrize(("check_status", "ready"), [("passing", "True"), ("critical", "False")])
def test_readiness_probes_become_checks_that_drive_ready(
    harness: Harness, check_status: str, ready: str
) -> None:
    harness.start()
    container = {
        "name": "web",
        "image": "nginx",
        "env": sim_env(check_status=check_status),
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
        "livenessProbe": {"tcpSocket": {"port": 8080}},
    }
    harness.create_pod("web", containers=[container])
    pod = harness.wait_phase("web", "Running")
    pod = eventually(
        lambda: (
            (p := harness.pod("web"))
            and {c["type"]: c["status"] for c in p["status"]["conditions"]}["Ready"] == ready
            and p
        )
    )
    assert pod["status"]["containerStatuses"][0]["ready"] is (ready == "True")
    machine = harness.machine_of("web")
    assert machine is not None
    assert set(machine["config"]["checks"]) == {"readiness-web", "liveness-web"}


def test_a_running_pod_whose_secret_vanished_keeps_running_and_is_told(harness: Harness) -> None:
    data = {"k": base64.b64encode(b"v").decode()}
    harness.kube.create("secrets", {"metadata": {"name": "s"}, "data": data}, "default")
    harness.start()
    env = [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
    harness.create_pod("app", containers=[{"name": "app", "image": "app:1", "env": env}])
    harness.wait_phase("app", "Running")
    harness.kube.delete("secrets", "s", "default")

    def touch(pod: dict) -> dict:
        pod["metadata"].setdefault("annotations", {})["touched"] = "yes"
        return pod

    harness.kube.modify("pods", "default", "app", touch)  # something makes it reconcile
    (event,) = eventually(lambda: harness.events("app", "FailedUpdate"))
    assert "Secret 's' not found" in event["message"]
    assert harness.phase("app") == "Running"


def test_a_failing_liveness_check_restarts_the_machine_with_backoff(harness: Harness) -> None:
    harness.start()
    container = {
        "name": "web",
        "image": "nginx",
        "env": sim_env(check_status="critical"),
        "livenessProbe": {"tcpSocket": {"port": 8080}},
    }
    harness.create_pod("web", containers=[container])
    harness.wait_phase("web", "Running")
    (event,) = eventually(lambda: harness.events("web", "Unhealthy"))
    assert event["message"] == "liveness check liveness-web failed; restarting the machine"
    machine = harness.machine_of("web")
    assert machine is not None
    restarts = eventually(
        lambda: (
            len(harness.calls.matching("POST", f"/machines/{machine['id']}/restart")) >= 2
            and harness.calls.matching("POST", "/restart")
        )
    )
    assert all(call.status == 200 for call in restarts)


def test_a_liveness_check_that_fails_later_is_noticed_at_the_probes_pace(
    kube: Kube, kubeconfig: str, backend: LocalBackend
) -> None:
    """A settled namespace is listed at its liveness probes' pace, not at the slow resync
    (here an hour, so only the probe's pace can notice the failure)."""
    intervals = dataclasses.replace(FAST, resync=3600.0, liveness_floor=0.05)
    harness = Harness(kube, kubeconfig, backend, intervals=intervals)
    try:
        harness.start()
        probe = {"tcpSocket": {"port": 8080}, "periodSeconds": 1, "failureThreshold": 1}
        container = {"name": "web", "image": "nginx", "livenessProbe": probe}
        harness.create_pod("web", containers=[container])
        harness.wait_phase("web", "Running")
        lists = harness.calls.matching("GET", f"/apps/{harness.app()}/machines")
        # One more list once Running: the namespace has settled (the create's fast resync
        # is over), so what comes next is paced by the settled interval.
        eventually(
            lambda: (
                len(harness.calls.matching("GET", f"/apps/{harness.app()}/machines")) > len(lists)
            )
        )
        machine = harness.machine_of("web")
        assert machine is not None and machine["checks"][0]["status"] == "passing"
        # The workload turns unhealthy behind the kubelet's back (same spec hash: no revert).
        config = dict(machine["config"])
        config["env"] = {**(config.get("env") or {}), "FLYK_SIM_CHECK_STATUS": "critical"}
        harness.fly.machines.update(harness.app(), machine["id"], MachineConfig.from_api(config))
        (event,) = eventually(lambda: harness.events("web", "Unhealthy"))
        assert event["message"] == "liveness check liveness-web failed; restarting the machine"
        assert not harness.calls.matching("GET", f"/machines/{machine['id']}")  # lists only
    finally:
        harness.close()


def test_a_create_refused_by_the_api_is_told_on_the_pod_and_retried(harness: Harness) -> None:
    """A config the Machines API refuses (400; here a file at a relative path, which Kubernetes
    accepts as a mountPath): a Warning Event `FailedCreate` with the API's message, once, and
    Pending with reason ProviderFailed, while the create is retried."""
    harness.kube.create("configmaps", {"metadata": {"name": "c"}, "data": {"k": "v"}}, "default")
    harness.start()
    container = {
        "name": "app",
        "image": "app:1",
        "volumeMounts": [{"name": "c", "mountPath": "etc"}],
    }
    volumes = [{"name": "c", "configMap": {"name": "c"}}]
    harness.create_pod("bad", containers=[container], volumes=volumes)
    pod = eventually(
        lambda: (p := harness.pod("bad")) and p["status"].get("reason") == "ProviderFailed" and p,
        what="ProviderFailed",
    )
    assert pod["status"]["phase"] == "Pending"
    assert "guest_path" in pod["status"]["message"]
    (state,) = [c["state"] for c in pod["status"]["containerStatuses"]]
    assert state["waiting"]["reason"] == "ProviderFailed"
    (event,) = harness.events("bad", "FailedCreate")
    assert event["type"] == "Warning"
    assert event["message"] == pod["status"]["message"]
    refused = [c for c in harness.calls.matching("POST", "/machines") if c.status == 400]
    eventually(
        lambda: (
            len([c for c in harness.calls.matching("POST", "/machines") if c.status == 400])
            > len(refused)
        ),
        what="a retry",
    )
    assert len(harness.events("bad", "FailedCreate")) == 1  # not one per attempt
    assert harness.machines() == []


def test_an_always_pod_whose_machine_is_stopped_by_someone_else_keeps_running(
    harness: Harness,
) -> None:
    harness.start()
    harness.create_pod("web", restartPolicy="Always")
    harness.wait_phase("web", "Running")
    machine = harness.machine_of("web")
    assert machine is not None
    harness.fly.machines.stop(harness.app(), machine["id"])
    (event,) = eventually(lambda: harness.events("web", "MachineStopped"))
    assert event["type"] == "Warning" and "restartPolicy Always" in event["message"]

    def restarted() -> dict | None:
        pod = harness.pod("web") or {}
        (container,) = pod.get("status", {}).get("containerStatuses") or [{}]
        return container if container.get("restartCount") == 1 and container["ready"] else None

    container = eventually(restarted, what="running again after one restart")
    assert "running" in container["state"]
    assert container["lastState"]["terminated"]["exitCode"] == 0
    assert harness.calls.matching("POST", f"/machines/{machine['id']}/start")
    assert (harness.machine_of("web") or {})["state"] == "started"
    assert "Succeeded" not in phases_written(harness.kube, "web")
    assert harness.phase("web") == "Running"


def test_an_on_failure_pod_is_started_again_after_fly_gives_up(harness: Harness) -> None:
    """Fly's `on-failure` stops retrying after `max_retries`; Kubernetes would go on (with
    backoff), so the kubelet starts the machine again and the pod never turns Failed."""
    harness.start()
    env = sim_env(run_seconds="0.02", exit_code="3")
    harness.create_pod(
        "job", restartPolicy="OnFailure", containers=[{"name": "job", "image": "x", "env": env}]
    )
    machine = eventually(lambda: harness.machine_of("job"))
    assert machine["config"]["restart"]["policy"] == "on-failure"
    eventually(lambda: harness.events("job", "MachineStopped"), what="Fly gave up")
    eventually(
        lambda: harness.calls.matching("POST", f"/machines/{machine['id']}/start"),
        what="started again",
    )
    pod = harness.pod("job")
    assert pod is not None and pod["status"]["phase"] == "Running"
    assert "Failed" not in phases_written(harness.kube, "job")
    (container,) = pod["status"]["containerStatuses"]
    assert container["restartCount"] >= 1


def test_an_app_that_lacks_its_marker_secrets_gets_them(harness: Harness) -> None:
    """The app exists without the markers (a create that stopped between the two): the kubelet
    sets them, so that `flyk ext k8s delete` still finds the app once its machines are gone."""
    harness.fly.apps.create(harness.app("shop"), "personal")
    harness.start()
    harness.create_pod("web", namespace="shop")
    harness.wait_phase("web", "Running", "shop")
    secrets = {s.name for s in harness.fly.secrets.list(harness.app("shop"))}
    assert {"FLYK_CLUSTER", "FLYK_NAMESPACE", "FLYK_ORG"} <= secrets


def test_regions_with_room_are_asked_again_once_stale(
    kube: Kube, kubeconfig: str, backend: LocalBackend
) -> None:
    """A pod waiting on capacity is told current alternatives: the placement query's answer
    is kept `placements_ttl` (here nothing), not for the kubelet's life."""
    harness = Harness(
        kube, kubeconfig, backend, intervals=dataclasses.replace(FAST, placements_ttl=0.0)
    )
    try:
        backend.capacity.set("iad", 0)
        harness.start()
        harness.create_pod("web")
        eventually(lambda: harness.events("web", "InsufficientCapacity"))
        eventually(
            lambda: len(harness.calls.matching("POST", "/platform/placements")) >= 2,
            what="a second placement query",
        )
    finally:
        harness.close()


def test_pods_waiting_on_capacity_together_ask_for_placements_once(harness: Harness) -> None:
    """Pods of four namespaces (four workers, no lock of a namespace in common) meet a
    capacity error at once while the placement query is slow: one query answers them all
    (the answer is shared under a lock, not raced for)."""
    harness.backend.capacity.set("iad", 0)
    harness.backend.faults.add("latency", path=r"/platform/placements", seconds=0.5, times=None)
    namespaces = [f"ns{i}" for i in range(4)]
    for namespace in namespaces:
        harness.create_pod("web", namespace)
    harness.start()
    for namespace in namespaces:
        eventually(
            lambda ns=namespace: [
                e for e in harness.kube.list("events", ns) if e["reason"] == "InsufficientCapacity"
            ],
            what=namespace,
        )
    assert len(harness.calls.matching("POST", "/platform/placements")) == 1


def test_conditions_written_by_others_survive_the_kubelets_status_writes(
    harness: Harness,
) -> None:
    """A readiness gate's condition, set by its controller before the pod ran, is still there
    once the kubelet has written Pending, Running and Ready (merged by type, not replaced), and
    it does not make the kubelet write the status again at every resync."""
    uid = harness.create_pod("web")["metadata"]["uid"]
    gate = {"type": "example.com/gate", "status": "True"}
    patched = harness.kube.patch(
        "pods",
        "web",
        {"status": {"conditions": [gate]}},
        "default",
        sub="status",
        kind="strategic-merge-patch",
    )
    assert patched.status_code == 200, patched.text
    harness.start()
    harness.wait_phase("web", "Running")
    eventually(lambda: ready_condition(harness, "web") == "True", what="Ready")
    conditions = harness.pod("web")["status"]["conditions"]  # type: ignore[index]
    assert gate in [{"type": c["type"], "status": c["status"]} for c in conditions]
    writes = harness.traffic.sent("PATCH", "/pods/web/status")
    assert all(body["metadata"] == {"uid": uid} for body in writes)  # the UID precondition
    resyncs = len(harness.calls.matching("GET", f"/apps/{harness.app()}/machines"))
    eventually(
        lambda: len(harness.calls.matching("GET", f"/apps/{harness.app()}/machines")) > resyncs + 2,
        what="resyncs",
    )
    assert len(harness.traffic.sent("PATCH", "/pods/web/status")) == len(writes)


def test_a_status_for_a_pod_created_again_under_its_name_is_dropped(harness: Harness) -> None:
    """Rows 3 and 8 of the audit: the kubelet writes a status for a pod that was deleted and
    created again under the same name before its watch told it (the cache still has the old
    one): the real server refuses it (422, the uid is immutable), the kubelet drops it without
    an error, and the new pod keeps its own status."""
    kubelet = harness.start().kubelet
    assert kubelet is not None
    old = harness.create_pod("web")
    harness.wait_phase("web", "Running")
    harness.delete_pod("web", grace=0)
    eventually(lambda: harness.pod("web") is None, what="web removed")
    harness.stop()  # no watch: the kubelet below still has the old pod in mind
    harness.create_pod("web", restartPolicy="Never")
    failed = {"phase": "Failed", "reason": "Stale"}
    harness.start()
    pods = harness.kubelet.pods  # type: ignore[union-attr]
    before = len(harness.traffic.sent("PATCH", "/pods/web/status"))
    pods._pod = lambda namespace, name: None  # type: ignore[method-assign]
    pods._write_status(old, failed)  # no exception
    assert len(harness.traffic.sent("PATCH", "/pods/web/status")) == before + 1
    assert ("PATCH", "422") in {
        (m, str(c)) for m, p, c in harness.traffic.answers if "/pods/web/status" in p
    }
    assert harness.pod("web")["status"].get("reason") != "Stale"  # type: ignore[index]


def scheduled_pod(harness: Harness, name: str, **spec: Any) -> dict[str, Any]:
    """A pod left to the scheduler (no nodeName), which may only choose this test's node."""
    pod = make_pod(name, namespace=harness.ns(), node=None, **spec)
    pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": harness.node}
    return harness.kube.create("pods", pod)


def test_pods_requesting_ephemeral_storage_are_scheduled(harness: Harness) -> None:
    """Row 13 of the audit, confirmed and fixed: the node advertises `ephemeral-storage` (a
    machine's root filesystem), so the scheduler places pods that request it (charts often
    do) instead of leaving them Pending with "Insufficient ephemeral-storage"."""
    harness.start()
    resources = {"requests": {"cpu": "100m", "memory": "128Mi", "ephemeral-storage": "1Gi"}}
    containers = [{"name": "app", "image": "app:1", "resources": resources}]
    scheduled_pod(harness, "web", containers=containers)
    pod = harness.wait_phase("web", "Running")
    assert pod["spec"]["nodeName"] == harness.node
    node = harness.kube.get("nodes", harness.node)
    assert node is not None and node["status"]["allocatable"]["ephemeral-storage"] == "100Ti"


def test_a_job_pod_deleted_while_running_is_counted_and_replaced(harness: Harness) -> None:
    """Row 5 of the audit, confirmed and fixed: a Job with a `podFailurePolicy` keeps the
    `batch.kubernetes.io/job-tracking` finalizer on its pods until they are Succeeded or
    Failed. The kubelet writes the deleted pod's terminal phase (from its machine's exit, here
    0: the simulated workload exits cleanly when stopped) before its final delete, so the pod
    does not stay Terminating: the Job counts it and lets it go."""
    harness.start()
    containers = [{"name": "job", "image": "x", "env": sim_env(run_seconds="600")}]
    template = {
        "spec": {
            "containers": containers,
            "restartPolicy": "Never",
            "nodeSelector": {"kubernetes.io/hostname": harness.node},
            "terminationGracePeriodSeconds": 1,
        }
    }
    policy = {
        "rules": [
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
        ]
    }
    job = {
        "metadata": {"name": "work"},
        "spec": {"backoffLimit": 3, "podFailurePolicy": policy, "template": template},
    }
    harness.kube.create("jobs", job, "default")

    def job_pods() -> list[dict[str, Any]]:
        return harness.kube.list("pods", "default", labelSelector="job-name=work")

    (first,) = eventually(
        lambda: [p for p in job_pods() if p["status"].get("phase") == "Running"],
        timeout=60,
        what="the Job's pod Running",
    )
    name = first["metadata"]["name"]
    assert "batch.kubernetes.io/job-tracking" in first["metadata"]["finalizers"]
    harness.delete_pod(name, grace=1)
    eventually(lambda: harness.pod(name) is None, timeout=60, what="the deleted pod gone")
    assert harness.kube.phases(name)[-2:] == ["Running", "Succeeded"]
    status = eventually(
        lambda: (
            (j := harness.kube.get("jobs", "work", "default"))
            and j["status"].get("succeeded")
            and j["status"]
        ),
        what="the Job counting the pod",
    )
    assert status["succeeded"] == 1 and not status.get("failed")
    assert harness.machines() == []


def test_an_on_failure_pod_with_init_containers_whose_machine_is_lost_gets_a_new_one(
    harness: Harness,
) -> None:
    """Row 4 of the audit, confirmed and fixed: the API server refuses (422) a status in which
    a terminated init container is waiting again, unless restartPolicy is Always. The kubelet
    keeps the init containers' terminated state while the replacement machine starts, and
    every status write lands."""
    harness.start()
    init = [{"name": "migrate", "image": "tool"}]
    harness.create_pod("web", restartPolicy="OnFailure", initContainers=init)
    pod = harness.wait_phase("web", "Running")
    lost = st.machine_id_of(pod)
    assert lost is not None
    eventually(
        lambda: "terminated" in harness.pod("web")["status"]["initContainerStatuses"][0]["state"],  # type: ignore[index]
        what="the init container terminated",
    )
    harness.fly.machines.destroy(harness.app(), lost, force=True)
    pod = eventually(
        lambda: (
            (p := harness.pod("web"))
            and st.machine_id_of(p) not in (None, lost)
            and p["status"]["containerStatuses"][0]["ready"]
            and p
        ),
        what="the pod Running on a new machine",
    )
    assert "terminated" in pod["status"]["initContainerStatuses"][0]["state"]
    assert harness.traffic.refused(422) == []


def test_a_shortened_grace_reaches_the_machine(kube: Kube, kubeconfig: str, tmp_path: Path) -> None:
    """Row 6 of the audit, confirmed and fixed: `kubectl delete --grace-period=1` after a delete
    with a long grace shortens the wait for a machine that does not stop (here: stopping takes
    ten minutes): it is destroyed once the new grace is over, not the first one's."""
    slow = LocalBackend(tmp_path / "slow.db", Timing(stop=600.0), orgs=["personal"])
    harness = Harness(kube, kubeconfig, slow)
    try:
        harness.start()
        harness.create_pod("web", terminationGracePeriodSeconds=300)
        harness.wait_phase("web", "Running")
        machine = harness.machine_of("web")
        assert machine is not None
        harness.delete_pod("web", grace=300)
        eventually(lambda: harness.events("web", "Killing"), what="the machine stopping")
        assert (harness.machine_of("web") or {}).get("state") == "stopping"
        harness.delete_pod("web", grace=1)
        eventually(lambda: harness.pod("web") is None, what="the pod gone")
        assert harness.machine_of("web") is None
        assert harness.calls.matching("DELETE", f"/machines/{machine['id']}")
    finally:
        harness.close()


def test_a_terminal_pod_deleted_is_gone_at_once_and_its_machine_follows(harness: Harness) -> None:
    """Row 6: the API server removes a Succeeded pod at once on a graceful delete; the kubelet
    sees only DELETED and destroys the machine at its next resync."""
    harness.start()
    env = sim_env(run_seconds="0.2", exit_code="0")
    harness.create_pod(
        "job", restartPolicy="Never", containers=[{"name": "j", "image": "x", "env": env}]
    )
    harness.wait_phase("job", "Succeeded")
    assert harness.machine_of("job") is not None
    harness.delete_pod("job", grace=30)
    assert harness.pod("job") is None  # no Terminating: gone
    eventually(lambda: harness.machine_of("job") is None, what="its machine destroyed")


def test_a_forced_delete_destroys_the_machine(harness: Harness) -> None:
    """`kubectl delete pod --force` (grace 0): the pod is gone from the API at once; its
    machine, which nothing stopped, is destroyed as an orphan."""
    harness.start()
    harness.create_pod("web", terminationGracePeriodSeconds=300)
    harness.wait_phase("web", "Running")
    machine = harness.machine_of("web")
    assert machine is not None
    harness.delete_pod("web", grace=0)
    assert harness.pod("web") is None
    eventually(lambda: harness.machine_of("web") is None, what="the machine destroyed")
    eventually(lambda: harness.calls.matching("DELETE", f"/machines/{machine['id']}"))
    # (the watch may show the pod with its deletionTimestamp just before it is gone: the
    # kubelet may then ask a stop with timeout 0 first)
    assert all(c.body == {"timeout": "0s"} for c in harness.calls.matching("POST", "/stop"))


def test_a_pod_is_running_once_its_machine_boots_without_waiting_for_a_resync(
    kube: Kube, kubeconfig: str, tmp_path: Path
) -> None:
    """Machines take a second to boot here, and resyncs are an hour apart: the pod still turns
    Running, because the machine made is waited on (`/wait`) and its namespace listed when it
    has started (flyk/kubelet/boots.py)."""
    booting = LocalBackend(tmp_path / "boot.db", Timing(boot=1.0), orgs=["personal"])
    intervals = dataclasses.replace(FAST, resync=3600.0, fast_resync=3600.0)
    harness = Harness(kube, kubeconfig, booting, intervals=intervals)
    try:
        harness.start()
        harness.create_pod("web")
        eventually(lambda: harness.machine_of("web"), what="the machine made")
        harness.wait_phase("web", "Running")
        machine = harness.machine_of("web")
        assert machine is not None
        assert harness.calls.matching("GET", f"/machines/{machine['id']}/wait")
    finally:
        harness.close()
