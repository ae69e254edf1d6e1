"""The API server's semantics the kubelet relies on, checked on the real control plane
through the kubelet's own client (`flyk.kubelet.kube.KubeApi`), so both sides of the seam are
exercised."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from lightkube.resources.core_v1 import Pod

from flyk.kubelet.kube import KubeApi, KubeError
from flyk.kubelet.pods import stale_uid

from .conftest import eventually
from .harness import make_pod
from .realkube import Kube


@pytest.fixture
def api(kubeconfig: str) -> Iterator[KubeApi]:
    client = KubeApi(kubeconfig)
    yield client
    client.close()


def pod(kube: Kube, name: str, node: str | None = None, namespace: str = "default") -> dict:
    return kube.create("pods", make_pod(name, namespace=kube.ns(namespace), node=node or kube.node))


def test_field_selector_and_resource_versions(kube: Kube, api: KubeApi) -> None:
    ours = pod(kube, "a")
    pod(kube, "b", node=f"{kube.node}-other")
    other_ns = pod(kube, "c", namespace="shop")
    pods, version = api.list_pods(kube.node)
    assert sorted(p["metadata"]["name"] for p in pods) == ["a", "c"]
    assert int(version) >= int(other_ns["metadata"]["resourceVersion"])
    assert int(other_ns["metadata"]["resourceVersion"]) > int(ours["metadata"]["resourceVersion"])


def test_a_watch_resumes_after_a_version_and_is_gone_from_one_too_old(
    kube: Kube, api: KubeApi
) -> None:
    """Row 9 of the audit: a watch from a version the server no longer keeps is refused with
    410 Gone (the kubelet then lists again, test_reconcile.py)."""
    pod(kube, "a")
    _, version = api.list_pods(kube.node)
    pod(kube, "x", node=f"{kube.node}-other")  # filtered out
    pod(kube, "b")
    events = api.watch_pods(kube.node, version, server_timeout=5, read_timeout=30)
    kind, first = next(events)
    assert (kind, first["metadata"]["name"]) == ("ADDED", "b")
    events.close()
    with pytest.raises(KubeError) as gone:
        next(api.watch_pods(kube.node, "1", server_timeout=5, read_timeout=30))
    assert gone.value.code == 410


def test_a_pod_bound_by_the_scheduler_arrives_as_added(kube: Kube, api: KubeApi) -> None:
    """Row 9: a pod created unbound is not in the node's list; once bound (here by a Binding,
    as the scheduler does) it arrives on the node's watch as ADDED."""
    _, version = api.list_pods(kube.node)
    created = kube.create("pods", make_pod("late", namespace=kube.ns("default"), node=None))
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "late"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": kube.node},
    }
    path = f"{kube.path('pods', 'default', 'late')}/binding"
    kube.http.post(path, json=binding).raise_for_status()
    events = api.watch_pods(kube.node, version, server_timeout=5, read_timeout=30)
    kind, bound = next(events)
    events.close()
    assert (kind, bound["metadata"]["uid"]) == ("ADDED", created["metadata"]["uid"])


def test_status_subresource_changes_only_status(kube: Kube, api: KubeApi) -> None:
    uid = pod(kube, "a")["metadata"]["uid"]
    namespace = kube.ns("default")
    api.patch_pod_status(namespace, "a", uid, {"phase": "Running", "podIP": "fdaa::1"})
    found = kube.get("pods", "a", "default")
    assert found is not None
    # (the server keeps podIP and podIPs as one: podIP is podIPs[0])
    assert found["status"]["phase"] == "Running"
    assert found["status"]["podIPs"] == [{"ip": "fdaa::1"}]
    assert found["spec"]["containers"][0]["image"] == "nginx:1.27"
    # a status patch carrying a spec changes nothing of the spec
    other = {"containers": [{"name": "app", "image": "evil"}]}
    api._patch(Pod.Status, "a", {"status": {"phase": "Running"}, "spec": other}, namespace)
    assert kube.get("pods", "a", "default")["spec"]["containers"][0]["image"] == "nginx:1.27"  # type: ignore[index]


def test_status_patches_merge_conditions_by_type_and_pod_ips_by_ip(
    kube: Kube, api: KubeApi
) -> None:
    """The strategic merge the kubelet sends: a condition someone else wrote stays."""
    uid = pod(kube, "a")["metadata"]["uid"]
    namespace = kube.ns("default")
    gate = {"type": "example.com/gate", "status": "True"}
    api.patch_pod_status(namespace, "a", uid, {"conditions": [gate]})
    ips = [{"ip": "fdaa::1"}]
    ready = {"type": "Ready", "status": "True", "reason": None}
    api.patch_pod_status(namespace, "a", uid, {"conditions": [ready], "podIPs": ips})
    status = kube.get("pods", "a", "default")["status"]  # type: ignore[index]
    assert sorted((c["type"], c["status"]) for c in status["conditions"]) == [
        ("Ready", "True"),
        ("example.com/gate", "True"),
    ]
    # A new address (a replacement machine): podIP and podIPs go together, as status.py sends
    # them; the server takes podIP as the authority when the two disagree.
    moved = [{"ip": "fdaa::2"}, {"ip": "fdaa::1", "$patch": "delete"}]
    api.patch_pod_status(namespace, "a", uid, {"podIPs": moved})
    status = kube.get("pods", "a", "default")["status"]  # type: ignore[index]
    assert status["podIPs"] == [{"ip": "fdaa::1"}]  # podIPs alone: reverted to podIP
    api.patch_pod_status(namespace, "a", uid, {"podIP": "fdaa::2", "podIPs": moved})
    status = kube.get("pods", "a", "default")["status"]  # type: ignore[index]
    assert (status["podIP"], status["podIPs"]) == ("fdaa::2", [{"ip": "fdaa::2"}])


def test_a_status_patch_for_a_pod_created_again_under_its_name_is_refused_with_422(
    kube: Kube, api: KubeApi
) -> None:
    """Row 3 of the audit, confirmed: metadata.uid in the patch does not act as a precondition
    (a PATCH has none); the changed uid fails validation as an immutable field, 422, not 409.
    The old pod's status never lands on the new pod of the same name either way."""
    old = pod(kube, "a")
    kube.delete("pods", "a", "default", gracePeriodSeconds=0)
    eventually(lambda: kube.get("pods", "a", "default") is None, what="a removed")
    pod(kube, "a")
    with pytest.raises(KubeError) as refused:
        api.patch_pod_status(kube.ns("default"), "a", old["metadata"]["uid"], {"phase": "Failed"})
    assert refused.value.code == 422
    assert "metadata.uid" in refused.value.message and "immutable" in refused.value.message
    assert stale_uid(refused.value)  # what the kubelet takes for "a new pod of that name"
    assert kube.get("pods", "a", "default")["status"]["phase"] == "Pending"  # type: ignore[index]


def test_graceful_delete_marks_then_uid_precondition_guards_the_final_delete(
    kube: Kube, api: KubeApi
) -> None:
    old = pod(kube, "a")
    namespace = kube.ns("default")
    kube.delete("pods", "a", "default", gracePeriodSeconds=30)
    marked = kube.get("pods", "a", "default")
    assert marked is not None and marked["metadata"]["deletionGracePeriodSeconds"] == 30
    assert marked["metadata"]["deletionTimestamp"]
    api.delete_pod(namespace, "a", old["metadata"]["uid"])
    assert kube.get("pods", "a", "default") is None
    new = pod(kube, "a")  # same name, new pod
    with pytest.raises(KubeError) as conflict:
        api.delete_pod(namespace, "a", old["metadata"]["uid"])
    assert conflict.value.code == 409
    still = kube.get("pods", "a", "default")
    assert still is not None and still["metadata"]["uid"] == new["metadata"]["uid"]


def test_a_second_delete_may_shorten_the_grace_never_lengthen_it(kube: Kube) -> None:
    """Row 6: `kubectl delete --grace-period=1` after a 30 s delete shortens the grace (the
    watch sees the pod MODIFIED with the new deletionGracePeriodSeconds); a longer one is
    ignored."""
    pod(kube, "a")
    kube.delete("pods", "a", "default", gracePeriodSeconds=30)
    kube.delete("pods", "a", "default", gracePeriodSeconds=60)
    assert kube.get("pods", "a", "default")["metadata"]["deletionGracePeriodSeconds"] == 30  # type: ignore[index]
    kube.delete("pods", "a", "default", gracePeriodSeconds=1)
    assert kube.get("pods", "a", "default")["metadata"]["deletionGracePeriodSeconds"] == 1  # type: ignore[index]


def test_a_terminal_or_unbound_pod_is_removed_at_once_by_a_graceful_delete(
    kube: Kube, api: KubeApi
) -> None:
    """Row 6: the API server deletes Succeeded/Failed pods (and unbound ones) at once, whatever
    the grace: the kubelet sees only DELETED for them."""
    uid = pod(kube, "done")["metadata"]["uid"]
    api.patch_pod_status(kube.ns("default"), "done", uid, {"phase": "Succeeded"})
    kube.delete("pods", "done", "default", gracePeriodSeconds=30)
    assert kube.get("pods", "done", "default") is None
    kube.create("pods", make_pod("unbound", namespace=kube.ns("default"), node=None))
    kube.delete("pods", "unbound", "default", gracePeriodSeconds=30)
    assert kube.get("pods", "unbound", "default") is None


def test_lease_replace_with_a_stale_version_conflicts(kube: Kube, api: KubeApi) -> None:
    body = {
        "metadata": {"name": kube.node, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": kube.node},
    }
    created = api.create_lease(body)
    spec = {"holderIdentity": kube.node, "leaseDurationSeconds": 40}
    api.replace_lease({**created, "spec": spec})
    with pytest.raises(KubeError) as conflict:
        api.replace_lease(created)  # its resourceVersion is now stale
    assert conflict.value.code == 409


@pytest.mark.parametrize("micro", [0, 1, 999_999])
def test_a_lease_renewed_at_any_microsecond_is_accepted(
    kube: Kube, api: KubeApi, micro: int
) -> None:
    """Row 7: the API server parses renewTime strictly as RFC 3339 with microseconds; the
    kubelet's renewals at microsecond 0 (one in a million) must not be refused."""
    from flyk.kubelet.node import _micro_stamp

    moment = datetime(2026, 1, 2, 3, 4, 5, micro, tzinfo=UTC)
    body = {
        "metadata": {"name": kube.node, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": kube.node, "renewTime": _micro_stamp(moment)},
    }
    created = api.create_lease(body)
    renewed = api.replace_lease({**created, "spec": {**created["spec"]}})
    stored = kube.get("leases", kube.node, "kube-node-lease")
    assert stored is not None
    assert stored["spec"]["renewTime"] == f"2026-01-02T03:04:05.{micro:06d}Z"
    assert renewed["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
