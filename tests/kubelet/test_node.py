# ruff: noqa: E501  (long assertions read better on one line)
"""Node registration, Lease renewal and node status against the real control plane."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from flyk.kubelet.config import Intervals, KubeletConfig, Taint
from flyk.kubelet.kube import KubeApi
from flyk.kubelet.node import Health, NodeController

from .conftest import eventually
from .realkube import Kube, Traffic

FAST = Intervals(lease=0.02, node_status=0.05, ping=0.02)


class Ping:
    """The Machines API's reachability, as the test decides it."""

    def __init__(self) -> None:
        self.health = Health(reachable=True)
        self.surprises = 0  # calls still to fail with an exception nobody expects

    def __call__(self) -> Health:
        if self.surprises:
            self.surprises -= 1
            raise RuntimeError("a bug in the ping")
        return self.health


def config(kube: Kube, **overrides: object) -> KubeletConfig:
    values: dict[str, object] = {
        "cluster": "demo",
        "org": "personal",
        "region": "iad",
        "node_name": kube.node,
        "node_ip": "fdaa::2",
        "intervals": FAST,
    }
    values.update(overrides)
    return KubeletConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
def traffic() -> Traffic:
    return Traffic()


@pytest.fixture
def running(kube: Kube, kubeconfig: str, traffic: Traffic) -> Iterator[tuple[NodeController, Ping]]:
    api = traffic.attach(KubeApi(kubeconfig))
    ping = Ping()
    controller = NodeController(
        api, config(kube, taints=(Taint("flyk.io/only", "", "NoSchedule"),)), ping
    )
    stop = threading.Event()
    thread = threading.Thread(target=controller.run, args=(stop,), daemon=True)
    thread.start()
    yield controller, ping
    stop.set()
    controller.notify()
    thread.join(5)
    api.close()


def ours(node: dict[str, Any]) -> list[dict[str, str]]:
    """The node's taints less the node lifecycle controller's (`node.kubernetes.io/*`: a new
    node is `not-ready` until the controller has seen it Ready). An empty value is left out by
    the API server."""
    taints = node["spec"].get("taints") or []
    return [t for t in taints if not t["key"].startswith("node.kubernetes.io/")]


def ready(kube: Kube) -> dict[str, str] | None:
    node = kube.get("nodes", kube.node)
    if node is None:
        return None
    return next(c for c in node["status"]["conditions"] if c["type"] == "Ready")


def test_registers_the_node(kube: Kube, running: tuple[NodeController, Ping]) -> None:
    controller, _ = running
    eventually(controller.registered.is_set, what="registration")
    node = kube.get("nodes", kube.node)
    assert node is not None
    labels = node["metadata"]["labels"]
    assert labels["type"] == "virtual-kubelet"
    assert "kubernetes.io/role" not in labels  # NodeRestriction: not a node's to set
    assert labels["kubernetes.io/os"] == "linux"
    assert ours(node) == [{"key": "flyk.io/only", "effect": "NoSchedule"}]
    status = node["status"]
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    assert {"type": "InternalIP", "address": "fdaa::2"} in status["addresses"]
    assert (
        status["capacity"]["pods"] == status["allocatable"]["pods"] == "5k"
    )  # as the server writes 5000
    assert ready(kube) == {**ready(kube), "status": "True", "reason": "KubeletReady"}  # type: ignore[dict-item]


def test_renews_its_lease(kube: Kube, running: tuple[NodeController, Ping]) -> None:
    lease = eventually(lambda: kube.get("leases", kube.node, "kube-node-lease"), what="lease")
    node = kube.get("nodes", kube.node)
    assert node is not None
    assert lease["spec"]["holderIdentity"] == kube.node
    assert lease["spec"]["leaseDurationSeconds"] == 40
    owner = lease["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "Node",
        kube.node,
        node["metadata"]["uid"],
    )
    first = int(lease["metadata"]["resourceVersion"])

    def renewed_twice() -> bool:
        now = kube.get("leases", kube.node, "kube-node-lease")
        return now is not None and int(now["metadata"]["resourceVersion"]) > first + 1

    eventually(renewed_twice, what="two renewals")


def test_lease_written_by_someone_else_is_taken_over(
    kube: Kube, running: tuple[NodeController, Ping]
) -> None:
    eventually(lambda: kube.get("leases", kube.node, "kube-node-lease"), what="lease")
    kube.modify(
        "leases",
        "kube-node-lease",
        kube.node,
        lambda lease: {**lease, "spec": {**lease["spec"], "holderIdentity": "intruder"}},
    )
    eventually(
        lambda: (kube.get("leases", kube.node, "kube-node-lease") or {}).get("spec", {}).get("holderIdentity") == kube.node,
        what="lease back in our hands",
    )  # fmt: skip


def test_ready_condition_follows_the_machines_api(
    kube: Kube, running: tuple[NodeController, Ping], traffic: Traffic
) -> None:
    controller, ping = running
    eventually(controller.registered.is_set)
    ping.health = Health(False, "MachinesAPIUnreachable", "Machines API: connection refused")
    condition = eventually(
        lambda: (c := ready(kube)) and c["status"] == "False" and c, what="NotReady"
    )
    assert condition["reason"] == "MachinesAPIUnreachable"
    assert "connection refused" in condition["message"]
    ping.health = Health(reachable=True)
    eventually(lambda: (c := ready(kube)) and c["status"] == "True", what="Ready again")
    # the lease kept being renewed all along: the kubelet itself never went away
    assert traffic.count("PUT", f"/leases/{kube.node}") > 0


def test_a_deleted_node_is_registered_again(
    kube: Kube, running: tuple[NodeController, Ping]
) -> None:
    """`kubectl delete node` (the garbage collector takes the Lease along): the kubelet
    registers the Node again, and its Lease, owned by the new Node."""
    eventually(lambda: kube.get("leases", kube.node, "kube-node-lease"), what="lease")
    old_uid = kube.get("nodes", kube.node)["metadata"]["uid"]  # type: ignore[index]
    kube.delete("nodes", kube.node)

    def registered_again() -> dict[str, object] | None:
        node = kube.get("nodes", kube.node)
        return node if node and node["metadata"]["uid"] != old_uid else None

    node = eventually(registered_again, what="the node registered again")
    assert ours(node) == [{"key": "flyk.io/only", "effect": "NoSchedule"}]  # type: ignore[arg-type]
    eventually(lambda: (c := ready(kube)) and c["status"] == "True", what="Ready")

    def owned_by_the_new_node() -> bool:
        lease = kube.get("leases", kube.node, "kube-node-lease")
        owners = (lease or {}).get("metadata", {}).get("ownerReferences") or [{}]
        return bool(owners[0].get("uid") == node["metadata"]["uid"])  # type: ignore[index]

    eventually(owned_by_the_new_node, what="the lease owned by the new node")


def test_a_deleted_node_is_noticed_before_its_status_is_due(kube: Kube, kubeconfig: str) -> None:
    """Node status is written once a minute, and the pod garbage collector deletes the pods
    of a missing node after 40 s: the Lease going with the Node is what tells the kubelet."""
    api = KubeApi(kubeconfig)
    slow_status = Intervals(lease=0.02, node_status=3600.0, ping=3600.0)
    controller = NodeController(api, config(kube, intervals=slow_status), Ping())
    stop = threading.Event()
    thread = threading.Thread(target=controller.run, args=(stop,), daemon=True)
    thread.start()
    try:
        eventually(lambda: kube.get("leases", kube.node, "kube-node-lease"), what="lease")
        kube.delete("nodes", kube.node)
        eventually(lambda: kube.get("nodes", kube.node), what="the node registered again")
    finally:
        stop.set()
        controller.notify()
        thread.join(5)
        api.close()


def test_a_failed_registration_after_a_delete_is_tried_again_soon(
    kube: Kube, kubeconfig: str
) -> None:
    """The Node is deleted and registering it again fails once: the kubelet tries again at
    the Lease's pace, not at the next status write a minute later. (The refusal, a 500, is
    played in the kubelet's client: the real server would accept the registration.)"""
    traffic = Traffic()
    api = traffic.attach(KubeApi(kubeconfig))
    slow_status = Intervals(lease=0.02, node_status=3600.0, ping=3600.0)
    controller = NodeController(api, config(kube, intervals=slow_status), Ping())
    stop = threading.Event()
    thread = threading.Thread(target=controller.run, args=(stop,), daemon=True)
    thread.start()
    try:
        eventually(lambda: kube.get("leases", kube.node, "kube-node-lease"), what="lease")
        refused = traffic.fail("POST", r"^/api/v1/nodes(\?|$)", 500)
        kube.delete("nodes", kube.node)
        eventually(lambda: refused.fired == 1, what="the first registration refused")
        eventually(lambda: kube.get("nodes", kube.node), what="the node registered again")
    finally:
        stop.set()
        controller.notify()
        thread.join(5)
        api.close()


def test_a_restarted_kubelet_takes_over_its_node_and_keeps_its_taints(
    kube: Kube, kubeconfig: str
) -> None:
    """Row 10 of the audit, confirmed and fixed: a kubelet start used to reset the node's
    taints to its `--taint` flags, wiping `kubectl taint`'s. Now the taints are set when the
    node is registered and are the node's own after that (NodeRestriction would refuse a node
    changing them anyway)."""
    api = KubeApi(kubeconfig)
    first = NodeController(
        api, config(kube, taints=(Taint("flyk.io/only", "", "NoSchedule"),)), Ping()
    )
    first.register()
    uid = kube.get("nodes", kube.node)["metadata"]["uid"]  # type: ignore[index]

    def admin_taint(
        node: dict[str, Any],
    ) -> dict[str, Any]:  # `kubectl taint nodes … k=v:NoExecute`
        taint = {"key": "example.com/maintenance", "value": "yes", "effect": "NoExecute"}
        node["spec"]["taints"] = [*(node["spec"].get("taints") or []), taint]
        return node

    kube.modify("nodes", "", kube.node, admin_taint)
    second = NodeController(api, config(kube, node_ip="fdaa::3"), Ping())  # no --taint now
    second.register()
    node = kube.get("nodes", kube.node)
    assert node is not None and node["metadata"]["uid"] == uid
    assert {"type": "InternalIP", "address": "fdaa::3"} in node["status"]["addresses"]
    assert ours(node) == [
        {"key": "flyk.io/only", "effect": "NoSchedule"},
        {"key": "example.com/maintenance", "value": "yes", "effect": "NoExecute"},
    ]
    api.close()


def test_machines_api_reachability_comes_from_real_calls() -> None:
    from flyk.api import FlyClient, RetryPolicy
    from flyk.kubelet.pods import MachinesHealth

    nowhere = FlyClient(base_url="http://127.0.0.1:9", retry=RetryPolicy.never())
    health = MachinesHealth(nowhere, "personal", freshness=0.0)()
    nowhere.close()
    assert not health.reachable
    assert health.reason == "MachinesAPIUnreachable"


def test_a_hanging_machines_api_does_not_stop_lease_renewal(kube: Kube, kubeconfig: str) -> None:
    """The ping's call hangs (as a Machines API that accepts and never answers): the node
    still registers, and its Lease keeps being renewed meanwhile."""
    import httpx

    from flyk.api import FlyClient, RetryPolicy
    from flyk.kubelet.pods import MachinesHealth

    release = threading.Event()
    asked = threading.Event()

    def hang(request: httpx.Request) -> httpx.Response:
        asked.set()
        release.wait(60)
        return httpx.Response(503)

    fly = FlyClient(transport=httpx.MockTransport(hang), retry=RetryPolicy.never())
    api = KubeApi(kubeconfig)
    controller = NodeController(api, config(kube), MachinesHealth(fly, "personal", freshness=0.0))
    stop = threading.Event()
    thread = threading.Thread(target=controller.run, args=(stop,), daemon=True)
    thread.start()
    try:
        eventually(asked.is_set, what="the ping under way")
        lease = eventually(lambda: kube.get("leases", kube.node, "kube-node-lease"), what="lease")
        first = int(lease["metadata"]["resourceVersion"])

        def renewed_twice() -> bool:
            now = kube.get("leases", kube.node, "kube-node-lease")
            return now is not None and int(now["metadata"]["resourceVersion"]) > first + 1

        eventually(renewed_twice, what="renewals while the ping hangs")
        assert not release.is_set()  # the ping never answered meanwhile
    finally:
        release.set()
        stop.set()
        controller.notify()
        thread.join(5)
        api.close()
        fly.close()


def test_a_hanging_machines_api_turns_ready_false_without_waiting_for_retries(
    kube: Kube, kubeconfig: str
) -> None:
    """The ping's call hangs (and its client would retry for a minute): Ready turns False
    while it still hangs, and True again once the API answers."""
    import httpx

    from flyk.api import FlyClient, RetryPolicy
    from flyk.kubelet.pods import MachinesHealth

    release = threading.Event()

    def hang(request: httpx.Request) -> httpx.Response:
        release.wait(60)
        return httpx.Response(200, json={"total_apps": 0, "apps": []})

    fly = FlyClient(transport=httpx.MockTransport(hang), retry=RetryPolicy(deadline=60.0))
    api = KubeApi(kubeconfig)
    health = MachinesHealth(fly, "personal", freshness=0.0, timeout=0.05)
    controller = NodeController(api, config(kube), health)
    health.on_change = controller.notify
    stop = threading.Event()
    thread = threading.Thread(target=controller.run, args=(stop,), daemon=True)
    thread.start()
    try:
        condition = eventually(
            lambda: (c := ready(kube)) and c["status"] == "False" and c, what="NotReady"
        )
        assert not release.is_set()  # the ping never answered meanwhile
        assert condition["reason"] == "MachinesAPIUnreachable"
        assert "no answer" in condition["message"]
        release.set()
        eventually(lambda: (c := ready(kube)) and c["status"] == "True", what="Ready again")
    finally:
        release.set()
        stop.set()
        controller.notify()
        thread.join(5)
        api.close()
        fly.close()


def test_a_surprise_in_the_ping_does_not_end_the_node_thread(
    kube: Kube, running: tuple[NodeController, Ping]
) -> None:
    controller, ping = running
    eventually(controller.registered.is_set)
    ping.surprises = 1
    eventually(lambda: ping.surprises == 0, what="the ping raised")
    ping.health = Health(False, "MachinesAPIUnreachable", "Machines API: connection refused")
    eventually(lambda: (c := ready(kube)) and c["status"] == "False", what="Ready still followed")


def test_an_answer_that_is_not_json_does_not_end_lease_renewal(
    kube: Kube, running: tuple[NodeController, Ping], traffic: Traffic
) -> None:
    """A renewal answered by a page that is not JSON (a proxy in trouble, played in the
    kubelet's client: a real API server never answers so)."""
    lease = eventually(lambda: kube.get("leases", kube.node, "kube-node-lease"), what="lease")
    garbled = traffic.garble("PUT", f"/leases/{kube.node}")
    eventually(lambda: garbled.fired == 1, what="a renewal answered with a page, not JSON")
    seen = traffic.count("PUT", f"/leases/{kube.node}")
    eventually(
        lambda: traffic.count("PUT", f"/leases/{kube.node}") > seen + 1, what="renewals go on"
    )
    now = kube.get("leases", kube.node, "kube-node-lease")
    assert now is not None
    assert int(now["metadata"]["resourceVersion"]) > int(lease["metadata"]["resourceVersion"])


def test_a_lease_renewed_again_after_failures_has_the_status_written_at_once(
    kube: Kube, kubeconfig: str
) -> None:
    """Row 11 of the audit, confirmed and fixed: while the Lease is not renewed the node
    lifecycle controller writes Ready=Unknown and taints the node unreachable; only a status
    write of the kubelet's clears that. The first renewal after failures has the status
    written at once, not at the next write (an hour away here)."""
    traffic = Traffic()
    api = traffic.attach(KubeApi(kubeconfig))
    slow_status = Intervals(lease=0.05, node_status=3600.0, ping=3600.0)
    controller = NodeController(api, config(kube, intervals=slow_status), Ping())
    stop = threading.Event()
    thread = threading.Thread(target=controller.run, args=(stop,), daemon=True)
    thread.start()
    try:
        eventually(lambda: kube.get("leases", kube.node, "kube-node-lease"), what="lease")
        eventually(lambda: traffic.count("PATCH", "/status") >= 1, what="the first status")
        refused = traffic.fail("PUT", f"/leases/{kube.node}", 503, times=5)
        eventually(lambda: refused.fired == 5, what="renewals refused")
        writes = traffic.count("PATCH", "/status")
        eventually(lambda: traffic.count("PATCH", "/status") > writes, what="status written")
    finally:
        stop.set()
        controller.notify()
        thread.join(5)
        api.close()


def test_a_lapsed_lease_leaves_the_node_unknown_and_tainted_until_its_first_renewal(
    kube: Kube, kubeconfig: str
) -> None:
    """Row 11 on the real node lifecycle controller: the Lease's renewals are refused until
    the controller (after its grace period, 50 s) has marked the node Ready=Unknown and
    tainted it `node.kubernetes.io/unreachable`. Once renewals go through again the status is
    written at once (the periodic write is an hour away here), and the controller clears the
    condition and the taint from that write alone."""
    traffic = Traffic()
    api = traffic.attach(KubeApi(kubeconfig))
    slow_status = Intervals(lease=0.2, node_status=3600.0, ping=3600.0)
    controller = NodeController(api, config(kube, intervals=slow_status), Ping())
    stop = threading.Event()
    thread = threading.Thread(target=controller.run, args=(stop,), daemon=True)
    thread.start()

    def ready() -> str | None:
        node = kube.get("nodes", kube.node) or {}
        conditions = (node.get("status") or {}).get("conditions") or []
        return next((c["status"] for c in conditions if c["type"] == "Ready"), None)

    def unreachable() -> bool:
        node = kube.get("nodes", kube.node) or {}
        taints = (node.get("spec") or {}).get("taints") or []
        return any(t["key"] == "node.kubernetes.io/unreachable" for t in taints)

    try:
        eventually(lambda: ready() == "True", what="the node Ready")
        lapse = traffic.fail("PUT", f"/leases/{kube.node}", 503, times=None)
        eventually(lambda: ready() == "Unknown" and unreachable(), timeout=120, what="Unknown")
        writes = traffic.count("PATCH", "/status")
        with traffic.lock:
            lapse.times = lapse.fired  # renewals go through again
        eventually(lambda: ready() == "True" and not unreachable(), what="Ready, untainted")
        assert traffic.count("PATCH", "/status") == writes + 1  # one write did it
    finally:
        stop.set()
        controller.notify()
        thread.join(5)
        api.close()


def test_the_node_reports_the_control_planes_kubernetes_version(
    kube: Kube, running: tuple[NodeController, Ping]
) -> None:
    from flyk.k8s.controlplane import KUBERNETES_VERSION

    controller, _ = running
    eventually(controller.registered.is_set, what="registration")
    node = kube.get("nodes", kube.node)
    assert node is not None
    version = node["status"]["nodeInfo"]["kubeletVersion"]
    assert version.startswith(f"{KUBERNETES_VERSION}-flyk.")
    with kube.plane.admin() as admin:
        assert admin.get("/version").json()["gitVersion"] == KUBERNETES_VERSION
