"""Start-up reconcile, kubelet restarts, watch expiry, and injected Machines API faults."""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

import httpx2
import pytest

from flyk.api import MachineConfig, RateLimiter
from flyk.kubelet import status as st
from flyk.kubelet import translate as tr
from flyk.kubelet.pods import MACHINE_ID_ANNOTATION
from flyk.local import LocalBackend

from .conftest import eventually
from .harness import FAST, ORG, Exchange, Harness
from .realkube import Kube, Traffic


@pytest.fixture
def harness(kube: Kube, kubeconfig: str, backend: LocalBackend) -> Iterator[Harness]:
    h = Harness(kube, kubeconfig, backend)
    yield h
    h.close()


def gone(harness: Harness, namespace: str) -> None:
    """Delete the namespace and wait until the namespace controller has removed it (its pods
    first: they are bound to the node, so force-deleted as a kubelet that is away would not)."""
    for pod in harness.kube.list("pods", namespace):
        harness.kube.delete("pods", pod["metadata"]["name"], namespace, gracePeriodSeconds=0)
    harness.kube.delete("namespaces", namespace)
    eventually(lambda: harness.kube.get("namespaces", namespace) is None, what="namespace gone")


def one_machine_per_pod(harness: Harness, namespace: str = "default") -> dict[str, str]:
    """pod uid -> machine id, failing on any duplicate or any machine without a pod."""
    pods = {p["metadata"]["uid"] for p in harness.kube.list("pods", namespace)}
    seen: dict[str, str] = {}
    for machine in harness.machines(namespace):
        uid = machine["config"]["metadata"]["flyk_pod_uid"]
        assert uid not in seen, f"two machines for pod {uid}"
        assert uid in pods, f"machine {machine['id']} has no pod"
        seen[uid] = machine["id"]
    return seen


def test_start_up_destroys_machines_whose_pods_are_gone(harness: Harness) -> None:
    harness.ns("old")
    app = harness.app("old")
    harness.fly.apps.create(app, ORG)
    config = MachineConfig.from_api(
        {"image": "nginx", "metadata": {"flyk_cluster": "demo", "flyk_pod_uid": "gone"}}
    )
    orphan = harness.fly.machines.create(app, config, region="iad")
    harness.start()  # no pod at all is bound to the node
    eventually(lambda: harness.machines("old") == [], what="orphan destroyed")
    eventually(lambda: harness.calls.matching("DELETE", f"/machines/{orphan.id}"))


@pytest.mark.parametrize("recorded", ["status", "annotation"])
@pytest.mark.parametrize(("policy", "recreated"), [("Always", True), ("Never", False)])
def test_pods_whose_machine_vanished_follow_their_restart_policy(
    harness: Harness, policy: str, recreated: bool, recorded: str
) -> None:
    """The machine the pod's status names (`containerID` fly://<id>) is gone while the kubelet
    was away; or the annotation of a flyk before names it, still read."""
    if recorded == "annotation":
        harness.create_pod("web", restartPolicy=policy, annotations={MACHINE_ID_ANNOTATION: "gone"})
    else:
        harness.create_pod("web", restartPolicy=policy)
        statuses = [{"name": "app", "image": "nginx:1.27", "ready": False, "restartCount": 0,
                     "containerID": "fly://gone", "state": {"running": {}}}]  # fmt: skip
        status = {"phase": "Running", "containerStatuses": statuses}
        written = harness.kube.patch("pods", "web", {"status": status}, "default", sub="status")
        assert written.status_code == 200, written.text
    harness.start()
    (event,) = eventually(lambda: harness.events("web", "MachineLost"))
    assert "gone" in event["message"]
    if recreated:
        pod = eventually(
            lambda: (p := harness.pod("web")) and st.machine_id_of(p) not in (None, "gone") and p,
            what="the new machine in the status",
        )
        assert pod["status"]["phase"] == "Running"
    else:
        pod = harness.wait_phase("web", "Failed")
        assert pod["status"]["reason"] == "NotFound"
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert terminated["exitCode"] == -137
        assert harness.machines() == []


def test_a_restarted_kubelet_loses_nothing(harness: Harness) -> None:
    harness.start()
    for name in ("a", "b"):
        harness.create_pod(name)
    for name in ("a", "b"):
        harness.wait_phase(name, "Running")
    before = one_machine_per_pod(harness)
    harness.stop()
    # while it is away: a pod is deleted gracefully, another is created
    harness.delete_pod("a", grace=5)
    harness.create_pod("c")
    assert harness.pod("a") is not None  # bound pods wait for their kubelet
    harness.start()
    harness.wait_phase("c", "Running")
    eventually(lambda: harness.pod("a") is None, what="a removed")
    after = one_machine_per_pod(harness)
    b_uid = harness.pod("b")["metadata"]["uid"]  # type: ignore[index]
    assert after[b_uid] == before[b_uid]  # b kept its machine
    assert len(after) == 2


def test_a_watch_too_old_to_resume_lists_again(
    kube: Kube, kubeconfig: str, backend: LocalBackend
) -> None:
    """The API server answers a watch from a resourceVersion older than it keeps with 410
    (here the kubelet's next watch is sent from version 1, which the real server has long
    compacted away): the kubelet lists again, and loses no pod and makes no second machine."""
    harness = Harness(kube, kubeconfig, backend, intervals=replace(FAST, watch_timeout=1))
    try:
        harness.start()
        harness.create_pod("first")
        harness.wait_phase("first", "Running")
        traffic = harness.traffic
        before = traffic.lists()
        expired = Expire(traffic)
        eventually(lambda: expired.answers, what="a watch from an expired version")
        harness.create_pod("second")
        harness.wait_phase("second", "Running")
        assert expired.answers and all(code == 410 for code in expired.answers)
        assert traffic.lists() > before
        assert len(one_machine_per_pod(harness)) == 2
        assert len(harness.fly.machines.list(harness.app(), include_deleted=True)) == 2
    finally:
        harness.close()


class Expire:
    """Sends the kubelet's next watch of pods from resourceVersion 1, and records the real
    server's answer."""

    def __init__(self, traffic: Traffic) -> None:
        self.answers: list[int] = []
        self.armed = True
        original = traffic.handle

        def handle(request: httpx2.Request, real: httpx2.BaseTransport) -> httpx2.Response:
            path = request.url.raw_path.decode()
            if self.armed and "watch=" in path and path.startswith("/api/v1/pods"):
                self.armed = False
                params = dict(request.url.params)
                params["resourceVersion"] = "1"
                request = httpx2.Request(
                    request.method,
                    request.url.copy_with(params=params),
                    headers=request.headers,
                    extensions=request.extensions,
                )
                response = original(request, real)
                response.read()
                first = response.content.split(b"\n", 1)[0]
                self.answers.append(
                    response.status_code
                    if response.status_code != 200
                    else int(json.loads(first)["object"]["code"])
                )
                return httpx2.Response(
                    response.status_code,
                    headers=response.headers,
                    content=response.content,
                    request=request,
                )
            return original(request, real)

        traffic.handle = handle  # type: ignore[method-assign]


def test_a_closed_watch_resumes_by_resource_version_without_listing(
    kube: Kube, kubeconfig: str, backend: LocalBackend
) -> None:
    """The API server ends each watch after its timeout (here a second): the kubelet watches
    again from the last resourceVersion it saw, so pods created meanwhile arrive as events and
    the pods are not listed again."""
    harness = Harness(kube, kubeconfig, backend, intervals=replace(FAST, watch_timeout=1))
    try:
        harness.start()
        harness.create_pod("first")
        harness.wait_phase("first", "Running")
        traffic = harness.traffic
        before, watches = traffic.lists(), traffic.count("GET", "watch=")
        eventually(lambda: traffic.count("GET", "watch=") > watches + 1, what="watches closed")
        harness.create_pod("second")
        harness.wait_phase("second", "Running")
        assert traffic.lists() == before  # resumed, not listed again
    finally:
        harness.close()


def test_steady_state_calls_follow_the_namespaces_not_the_pods(harness: Harness) -> None:
    """With every pod idle, each resync is one machine list per namespace app and nothing
    else: six times the pods in the same two namespaces make no more calls per resync."""
    harness.start()
    namespaces = ("a", "b")
    lists = {f"/apps/{harness.app(namespace)}/machines" for namespace in namespaces}

    def lists_of_a() -> int:
        return len(harness.calls.matching("GET", f"/apps/{harness.app('a')}/machines"))

    def idle_window(pods_per_namespace: int) -> list[Exchange]:
        """The calls made over five resyncs of namespace a, once its pods have settled."""
        for namespace in namespaces:
            for index in range(pods_per_namespace):
                if harness.pod(f"p{index}", namespace) is None:
                    harness.create_pod(f"p{index}", namespace)
        for namespace in namespaces:
            for index in range(pods_per_namespace):
                harness.wait_phase(f"p{index}", "Running", namespace)
        settled = lists_of_a() + 3
        eventually(lambda: lists_of_a() >= settled, what="settled resyncs")
        start, first = len(harness.calls.calls), lists_of_a()
        eventually(lambda: lists_of_a() >= first + 5, what="five resyncs")
        with harness.calls.lock:
            return harness.calls.calls[start:]

    for pods in (1, 6):
        window = idle_window(pods)
        # Only lists of the namespace apps: never a call about one machine.
        assert {(c.method, c.path) for c in window} <= {("GET", path) for path in lists}
        resyncs = Counter(c.path for c in window)[f"/apps/{harness.app('a')}/machines"]
        assert len(window) <= len(namespaces) * (resyncs + 1), (
            pods,
            Counter(c.path for c in window),
        )


def test_a_watch_on_a_half_open_connection_is_dropped_and_resumed(
    kube: Kube, kubeconfig: str, backend: LocalBackend
) -> None:
    """A watch that gets its headers and then nothing, past the time the server would have
    closed it, is taken for dead: the kubelet watches again from where it was (no list).
    The half-open connection is played in the kubelet's client (`Traffic.stall`): a real
    server always closes its watches on time."""
    intervals = replace(FAST, watch_timeout=1, watch_read_grace=0.5)
    harness = Harness(kube, kubeconfig, backend, intervals=intervals)
    try:
        harness.start()
        harness.create_pod("first")
        harness.wait_phase("first", "Running")
        traffic = harness.traffic
        before = traffic.lists()
        stall = traffic.stall("GET", r"^/api/v1/pods\?.*watch=")
        eventually(lambda: stall.fired == 1, what="the stalled watch under way")
        harness.create_pod("second")  # only a live watch brings it
        harness.wait_phase("second", "Running")
        assert traffic.lists() == before  # resumed by resourceVersion, not listed again
    finally:
        harness.close()


def test_the_workers_of_a_namespace_list_its_machines_once_at_start_up(
    kube: Kube, kubeconfig: str, backend: LocalBackend
) -> None:
    """Eight workers start on eight pods of one namespace at once: one of them lists the
    machines, the others find them listed. (At most 3 lists in all: that one, the first
    resync's, and the start-up look for machines of deleted namespaces; resyncs are an hour
    apart here.)"""
    intervals = replace(FAST, resync=3600.0, fast_resync=3600.0)
    harness = Harness(kube, kubeconfig, backend, intervals=intervals, workers=8)
    try:
        names = [f"p{i}" for i in range(8)]
        for name in names:
            harness.create_pod(name)
        harness.start()
        for name in names:
            harness.wait_phase(name, "Running")
        assert len(harness.calls.matching("GET", f"/apps/{harness.app()}/machines")) <= 3
    finally:
        harness.close()


def test_under_faults_every_pod_converges_without_duplicates_or_leaks(harness: Harness) -> None:
    faults = harness.backend.faults
    rules = [
        faults.add("rate_limit", path=r"/machines", times=6, retry_after=0),
        faults.add("server_error", method="POST", path=r"/machines$", times=3, status=503),
        faults.add("drop_after_commit", method="POST", path=r"/machines$", times=3),
        faults.add("drop_after_commit", method="POST", path=r"/stop$", times=2),
        faults.add("drop_after_commit", method="DELETE", path=r"/machines/[^/]+$", times=2),
        faults.add("server_error", method="GET", path=r"/machines$", times=2, status=502),
    ]
    harness.start()
    names = [f"p{i}" for i in range(8)]
    for index, name in enumerate(names):
        harness.create_pod(name, namespace=("x", "y")[index % 2])
    for index, name in enumerate(names):
        harness.wait_phase(name, "Running", ("x", "y")[index % 2])
    for namespace in ("x", "y"):
        assert len(one_machine_per_pod(harness, namespace)) == 4
    for index, name in enumerate(names):
        harness.delete_pod(name, ("x", "y")[index % 2], grace=3)
    for namespace in ("x", "y"):
        eventually(lambda ns=namespace: harness.kube.list("pods", ns) == [], what="pods gone")
        eventually(lambda ns=namespace: harness.machines(ns) == [], what="machines gone")
    assert [rule.fired for rule in rules] == [rule.times for rule in rules]  # all injected
    # No duplicate was ever made, not even one destroyed again along the way (the kubelet
    # destroys the newer of two machines for one pod, which the checks above cannot see).
    for namespace in ("x", "y"):
        ever = harness.fly.machines.list(harness.app(namespace), include_deleted=True)
        assert len(ever) == 4, [m.metadata.get("flyk_pod") for m in ever]


def test_a_pods_launch_id_holds_across_reconciles_and_moves_on_when_its_machine_is_lost(
    harness: Harness,
) -> None:
    """Creates refused with 503 more times than one create call retries: the reconcile's own
    retry sends the same launch id (the client's list-before-retry finds a machine any try
    made). Only a machine known lost gives the pod a new one."""
    rule = harness.backend.faults.add(
        "server_error", method="POST", path=r"/machines$", times=10, status=503
    )
    harness.start()
    uid = harness.create_pod("web")["metadata"]["uid"]
    first = harness.wait_phase("web", "Running")
    assert rule.fired == 10

    def launch_ids() -> list[str]:
        posts = harness.calls.matching("POST", f"/apps/{harness.app()}/machines")
        return [c.body["config"]["metadata"]["flyk_launch_id"] for c in posts if c.body]

    assert len(launch_ids()) == 11 and set(launch_ids()) == {f"{uid}-first"}
    lost = st.machine_id_of(first)
    assert lost is not None
    harness.fly.machines.destroy(harness.app(), lost, force=True)
    eventually(lambda: len(launch_ids()) == 12, what="the machine made again")
    assert launch_ids()[-1] == f"{uid}-{lost}"
    ever = harness.fly.machines.list(harness.app(), include_deleted=True)
    assert len(ever) == 2


def test_the_node_says_when_the_machines_api_fails_and_when_it_is_back(harness: Harness) -> None:
    def ready() -> dict | None:
        node = harness.kube.get("nodes", harness.node)
        conditions = (node or {}).get("status", {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "Ready"), None)

    harness.start()
    harness.create_pod("web")
    harness.wait_phase("web", "Running")
    eventually(lambda: (ready() or {}).get("status") == "True", what="Ready")
    rule = harness.backend.faults.add("server_error", status=503, times=None)
    condition = eventually(lambda: (c := ready()) and c["status"] == "False" and c, what="NotReady")
    assert condition["reason"] == "MachinesAPIUnreachable"
    harness.backend.faults.clear()
    eventually(lambda: (ready() or {}).get("status") == "True", what="Ready again")
    assert rule.fired > 0
    assert harness.phase("web") == "Running"  # an outage is not a reason to touch pods


def test_with_flys_limits_enforced_the_kubelet_gets_no_429(
    kube: Kube, kubeconfig: str, backend: LocalBackend
) -> None:
    backend.rate_limits.enable()  # the backend answers 429 past Fly's documented limits
    harness = Harness(kube, kubeconfig, backend, rate_limiter=RateLimiter())  # Fly's limits
    try:
        harness.start()
        for index in range(5):
            harness.create_pod(f"p{index}")
        for index in range(5):
            harness.wait_phase(f"p{index}", "Running")
        for index in range(5):
            harness.delete_pod(f"p{index}", grace=1)
        eventually(lambda: harness.kube.list("pods", "default") == [], what="pods gone")
        assert [c for c in harness.calls.calls if c.status == 429] == []
    finally:
        harness.close()


def test_a_machine_from_a_flyk_that_hashed_the_config_is_not_restarted(harness: Harness) -> None:
    """Before the pod-spec hash, `flyk_spec_hash` was the config's hash. A machine carrying it
    whose config is what this flyk would send gets the pod's hash recorded by a metadata write,
    not an update (which would restart it)."""
    harness.start()
    harness.create_pod("web")
    pod = harness.wait_phase("web", "Running")
    machine = harness.machine_of("web")
    assert machine is not None
    node = tr.NodeFacts(
        cluster=harness.config.cluster,
        node_name=harness.config.node_name,
        node_ip=harness.config.node_ip,
        region=harness.config.region,
    )
    plan = tr.build_plan(pod, tr.Sources(), node)
    assert machine["config"]["metadata"]["flyk_spec_hash"] == plan.spec_hash != plan.config_hash
    harness.stop()
    # What the previous flyk stored.
    harness.fly.machines.set_metadata(
        harness.app(), machine["id"], "flyk_spec_hash", plan.config_hash
    )
    calls_before = len(harness.calls.calls)
    harness.start()
    eventually(
        lambda: (
            harness.fly.machines.metadata(harness.app(), machine["id"]).get("flyk_spec_hash")
            == plan.spec_hash
        ),
        what="the pod's hash recorded",
    )
    since = harness.calls.calls[calls_before:]
    machine_path = f"/apps/{harness.app()}/machines/{machine['id']}"
    assert not [c for c in since if c.method == "POST" and c.path == machine_path]  # no update
    assert not [c for c in since if c.path.startswith(machine_path + "/lease")]
    assert not harness.events("web", "Updated")
    after = harness.machine_of("web")
    assert after is not None and after["state"] == "started"
    assert after["instance_id"] == machine["instance_id"]  # the same version: never restarted


def test_the_machine_id_is_written_again_when_the_first_write_failed(harness: Harness) -> None:
    """The status write after the create fails (the API server down a moment, played in the
    kubelet's client): the retry writes it, the `Created` Event is told, and a machine
    destroyed later is noticed."""
    failure = harness.traffic.fail("PATCH", rf"/namespaces/{harness.ns()}/pods/web/status", 503)
    harness.start()
    harness.create_pod("web", restartPolicy="Never")
    harness.wait_phase("web", "Running")
    machine = harness.machine_of("web")
    assert machine is not None
    assert failure.fired == 1
    assert st.machine_id_of(harness.pod("web") or {}) == machine["id"]
    (created,) = eventually(lambda: harness.events("web", "Created"))
    assert machine["id"] in created["message"] and "shared-cpu-1x:256MB" in created["message"]
    harness.fly.machines.destroy(harness.app(), machine["id"], force=True)
    pod = harness.wait_phase("web", "Failed")
    assert pod["status"]["reason"] == "NotFound"


def test_a_machine_listed_while_its_create_was_being_prepared_is_recorded_on_the_pod(
    harness: Harness,
) -> None:
    """The pod's machine turns up in a list after its reconcile began (here while the pod's
    Secret is read slowly): the create stands down, and still writes the machine id on the
    pod with the `Created` Event."""
    harness.start()
    harness.create_pod("other")
    harness.wait_phase("other", "Running")  # the namespace's machines are listed
    data = {"k": base64.b64encode(b"v").decode()}
    harness.kube.create("secrets", {"metadata": {"name": "s"}, "data": data}, "default")
    harness.traffic.delay("GET", "/secrets/s", 2.0)
    env = [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
    uid = harness.create_pod("web", containers=[{"name": "app", "image": "app:1", "env": env}])[
        "metadata"
    ]["uid"]
    eventually(lambda: harness.traffic.count("GET", "/secrets/s"), what="the reconcile under way")
    # A machine made for the pod by an earlier try (its answer lost), found by the next list.
    metadata = {"flyk_cluster": "demo", "flyk_namespace": harness.ns(), "flyk_pod": "web"}
    config = MachineConfig.from_api(
        {"image": "app:1", "metadata": {**metadata, "flyk_pod_uid": uid}}
    )
    made = harness.fly.machines.create(harness.app(), config, region="iad")
    eventually(
        lambda: st.machine_id_of(harness.pod("web") or {}) == made.id,
        what="the machine id written",
    )
    (created,) = eventually(lambda: harness.events("web", "Created"))
    assert made.id in created["message"]
    assert len(harness.machines()) == 2  # nothing made twice


def test_a_lost_machine_is_noticed_even_if_its_id_could_never_be_written(
    harness: Harness,
) -> None:
    """Every status write refused (played in the kubelet's client) while the machine is made
    and lost: what the kubelet saw itself is enough to tell the pod lost, not new."""
    refused = harness.traffic.fail(
        "PATCH", rf"/namespaces/{harness.ns()}/pods/web/status", 503, times=None
    )
    harness.start()
    harness.create_pod("web", restartPolicy="Never")
    machine = eventually(lambda: harness.machine_of("web"), what="the machine")
    assert st.machine_id_of(harness.pod("web") or {}) is None
    harness.fly.machines.destroy(harness.app(), machine["id"], force=True)
    eventually(lambda: harness.events("web", "MachineLost"), what="the machine noticed lost")
    refused.times = refused.fired  # the API server is back
    pod = harness.wait_phase("web", "Failed")
    assert pod["status"]["reason"] == "NotFound"
    (lost,) = harness.events("web", "MachineLost")
    assert machine["id"] in lost["message"]


def test_one_pod_whose_status_is_refused_does_not_hold_up_its_namespace(
    harness: Harness,
) -> None:
    refused = harness.traffic.fail(
        "PATCH", rf"/namespaces/{harness.ns()}/pods/bad/status", 422, times=None
    )
    harness.start()
    harness.create_pod("bad")  # first in the namespace: its refresh comes first
    eventually(lambda: harness.machine_of("bad"), what="bad's machine")
    env = [{"name": "FLYK_SIM_RUN_SECONDS", "value": "0.3"}]
    harness.create_pod(
        "good", restartPolicy="Never", containers=[{"name": "job", "image": "x", "env": env}]
    )
    harness.wait_phase("good", "Succeeded")
    assert refused.fired >= 2  # tried again, not given up on
    assert harness.phase("bad") == "Pending"  # never written


def test_machines_of_a_namespace_deleted_while_the_kubelet_was_away_are_destroyed(
    harness: Harness,
) -> None:
    harness.ns("tmp")
    # Another cluster's namespace app of the same org, with its marker and a machine: not ours.
    other = "flyk-other-tmp-00000000"
    harness.fly.apps.create(other, ORG)
    harness.fly.secrets.set(other, {"FLYK_CLUSTER": "other", "FLYK_ORG": ORG})
    config = MachineConfig.from_api(
        {"image": "nginx", "metadata": {"flyk_cluster": "other", "flyk_pod_uid": "x"}}
    )
    harness.fly.machines.create(other, config, region="iad")
    harness.start()
    harness.create_pod("web", namespace="tmp")
    harness.wait_phase("web", "Running", "tmp")
    harness.stop()
    # While it is away: the namespace goes, with its pods.
    gone(harness, "tmp")
    harness.start()
    eventually(lambda: harness.machines("tmp") == [], what="the machine destroyed")
    # The app stays, empty and still marked, as after a namespace deleted while running.
    secrets = {s.name for s in harness.fly.secrets.list(harness.app("tmp"))}
    assert {"FLYK_CLUSTER", "FLYK_NAMESPACE", "FLYK_ORG"} <= secrets
    assert [m.state for m in harness.fly.machines.list(other)] == ["started"]


def test_an_unreadable_answer_at_start_up_is_retried(harness: Harness) -> None:
    """The namespaces list at start-up comes back as a page that is not JSON (a proxy in
    trouble): it is an API error like any other, retried, and the start-up cleanup happens."""
    harness.start()
    harness.create_pod("web", namespace="tmp")
    harness.wait_phase("web", "Running", "tmp")
    harness.stop()
    gone(harness, "tmp")
    garbled = harness.traffic.garble("GET", "^/api/v1/namespaces$")
    harness.start()
    eventually(lambda: harness.machines("tmp") == [], what="the machine destroyed")
    assert garbled.fired == 1


def test_nothing_is_kept_about_pods_that_are_gone(harness: Harness) -> None:
    """Per-pod records (statuses written, events told, machines seen) go with the pod: a
    force-deleted pod (its machine then destroyed as an orphan) and a deleted one alike."""
    kubelet = harness.start().kubelet
    assert kubelet is not None
    for name in ("a", "b"):
        harness.create_pod(name)
    for name in ("a", "b"):
        harness.wait_phase(name, "Running")
    uids = {harness.pod(n)["metadata"]["uid"] for n in ("a", "b")}  # type: ignore[index]
    assert uids <= kubelet.pods.tracked()
    harness.delete_pod("a", grace=0)  # force: the pod object is gone at once
    harness.delete_pod("b", grace=1)
    eventually(lambda: harness.machines() == [], what="both machines destroyed")
    eventually(lambda: harness.pod("b") is None, what="b removed")
    eventually(lambda: not kubelet.pods.tracked() & uids, what="nothing kept")


def test_nothing_is_kept_about_a_pod_told_of_after_it_was_forgotten(harness: Harness) -> None:
    """A worker that is still busy with a pod when the pod is force-deleted (here: its
    machine's create is slow) tells of it afterwards (the `Created` Event); what it remembers
    about it then is swept, not kept for as long as the kubelet runs."""
    slow = harness.backend.faults.add("latency", method="POST", path=r"/machines$", seconds=1.0)
    kubelet = harness.start().kubelet
    assert kubelet is not None
    uid = harness.create_pod("app")["metadata"]["uid"]
    eventually(lambda: slow.fired, what="the create under way")
    harness.delete_pod("app", grace=0)
    eventually(lambda: harness.events("app", "Created"), what="told after the delete")
    eventually(lambda: harness.machines() == [], what="its machine destroyed as an orphan")
    eventually(lambda: uid not in kubelet.pods.tracked(), what="nothing kept")


def test_a_deleted_namespace_loses_its_workers_and_its_lists(harness: Harness) -> None:
    harness.start()
    harness.create_pod("web")
    harness.create_pod("job", namespace="tmp")
    harness.wait_phase("web", "Running")
    harness.wait_phase("job", "Running", "tmp")

    def workers(namespace: str) -> list[str]:
        prefix = f"flyk-{harness.ns(namespace)}-"
        return [t.name for t in threading.enumerate() if t.name.startswith(prefix)]

    assert workers("tmp") and workers("default")
    # The namespace is deleted: its pods first (the kubelet destroys their machines), then it.
    harness.delete_pod("job", "tmp", grace=0)
    eventually(lambda: harness.machines("tmp") == [], what="tmp's machine destroyed")
    gone(harness, "tmp")
    eventually(lambda: not workers("tmp"), what="tmp's workers stopped")
    tmp_lists = len(harness.calls.matching("GET", f"/apps/{harness.app('tmp')}/machines"))
    default_lists = len(harness.calls.matching("GET", f"/apps/{harness.app()}/machines"))
    eventually(
        lambda: (
            len(harness.calls.matching("GET", f"/apps/{harness.app()}/machines"))
            >= default_lists + 5
        ),
        what="default listed on",
    )
    assert len(harness.calls.matching("GET", f"/apps/{harness.app('tmp')}/machines")) == tmp_lists
    assert workers("default")  # an existing namespace keeps its workers, empty or not
    # A namespace of that name made again starts afresh.
    harness.kube.forget("tmp")
    harness.create_pod("again", namespace="tmp")
    harness.wait_phase("again", "Running", "tmp")


def test_a_restarted_kubelet_writes_no_status_for_settled_pods(harness: Harness) -> None:
    """Row 8 of the audit: the API server gives back a status that is not exactly what was
    written (`lastState: {}`, times as null, quantities canonical); a restarted kubelet
    comparing against it must still find nothing to write for pods that did not change."""
    harness.start()
    names = [f"p{i}" for i in range(3)]
    for name in names:
        harness.create_pod(name)
    for name in names:
        eventually(
            lambda n=name: (
                (p := harness.pod(n))
                and (p["status"].get("containerStatuses") or [{}])[0].get("ready")
            ),
            what=f"{name} ready",
        )
    harness.stop()
    before = pod_status_writes(harness)
    mark = len(harness.traffic.requests)
    harness.start()
    lists = len(harness.calls.matching("GET", f"/apps/{harness.app()}/machines"))
    eventually(
        lambda: len(harness.calls.matching("GET", f"/apps/{harness.app()}/machines")) > lists + 3,
        what="resyncs after the restart",
    )
    after = [b for m, p, b in harness.traffic.requests[mark:] if m == "PATCH" and "/pods/" in p]
    assert pod_status_writes(harness) == before, json.dumps(after)


def pod_status_writes(harness: Harness) -> int:
    with harness.traffic.lock:
        return sum(
            1
            for m, p, _ in harness.traffic.requests
            if m == "PATCH" and "/pods/" in p and "/status" in p
        )


def test_watches_survive_an_api_server_restart(harness: Harness) -> None:
    """Row 9: the API server is killed and started again (by the supervisor) under a running
    kubelet: its watch resumes or it lists again; a pod created afterwards runs, and no pod
    gets a second machine."""
    harness.start()
    harness.create_pod("before")
    harness.wait_phase("before", "Running")
    harness.kube.plane.restart_apiserver()
    harness.create_pod("after")
    harness.wait_phase("after", "Running")
    assert len(one_machine_per_pod(harness)) == 2
    assert len(harness.fly.machines.list(harness.app(), include_deleted=True)) == 2
    node = harness.kube.get("nodes", harness.node)
    assert node is not None


def test_deleting_a_namespace_removes_its_pods_and_machines_and_nothing_else(
    harness: Harness,
) -> None:
    """Row 14 and the namespace controller: the namespace's pods are deleted gracefully, the
    kubelet stops and destroys their machines and removes them (its Events in a terminating
    namespace are refused, 403, and only logged); the other namespace is untouched."""
    harness.start()
    for name in ("a", "b"):
        harness.create_pod(name, namespace="doomed")
    harness.create_pod("kept")
    for name in ("a", "b"):
        harness.wait_phase(name, "Running", "doomed")
    harness.wait_phase("kept", "Running")
    harness.kube.delete("namespaces", "doomed")
    eventually(
        lambda: harness.kube.get("namespaces", "doomed") is None, timeout=60, what="namespace gone"
    )
    assert harness.machines("doomed") == []
    assert harness.phase("kept") == "Running" and harness.machine_of("kept") is not None
    # The Events about the doomed pods (`Killing`) were refused by NamespaceLifecycle, and
    # nothing else was.
    refused = harness.traffic.refused(403)
    doomed_events = f"/namespaces/{harness.ns('doomed')}/events"
    assert refused and all(
        m == "POST" and p.startswith(f"/api/v1{doomed_events}") for m, p in refused
    ), refused


def test_a_deleted_node_is_registered_again_and_its_pods_survive(harness: Harness) -> None:
    """Row 12 of the audit: `kubectl delete node` while pods run. The garbage collector and the
    pod garbage collector act asynchronously on the real server (the latter after 40 s); the
    kubelet registers the node again first (within a Lease interval), so its pods, their
    machines and their phases stay as they were."""
    harness.start()
    harness.create_pod("web")
    pod = harness.wait_phase("web", "Running")
    old = harness.kube.get("nodes", harness.node)
    assert old is not None
    harness.kube.delete("nodes", harness.node)
    eventually(
        lambda: (
            (n := harness.kube.get("nodes", harness.node))
            and n["metadata"]["uid"] != old["metadata"]["uid"]
        ),
        what="the node registered again",
    )
    again = harness.pod("web")
    assert again is not None and again["metadata"]["uid"] == pod["metadata"]["uid"]
    assert again["status"]["phase"] == "Running" and harness.machine_of("web") is not None


def test_fields_of_the_servers_version_reach_the_kubelet(harness: Harness) -> None:
    """Row 15 of the audit: the reflector reads pods through lightkube's models, which drop
    fields they do not know. With models of the server's version (1.37) a recent pod field
    (pod-level `resources`, beta since 1.34) arrives, and is told as unsupported rather than
    silently ignored."""
    harness.start()
    resources = {"limits": {"cpu": "1", "memory": "512Mi"}}
    harness.create_pod("web", resources=resources)
    harness.wait_phase("web", "Running")
    kubelet = harness.kubelet
    assert kubelet is not None
    (cached,) = [p for p in kubelet.pods.pods(harness.ns()) if p["metadata"]["name"] == "web"]
    assert cached["spec"]["resources"]["limits"] == resources["limits"]  # requests defaulted
    messages = [e["message"] for e in harness.events("web", "UnsupportedField")]
    assert any(m.startswith("spec.resources") for m in messages), messages
