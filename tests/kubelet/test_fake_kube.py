"""The fake API server keeps the semantics the kubelet relies on (checked through the kubelet's
own client, `flyk.kubelet.kube.KubeApi`, so both sides of the seam are exercised)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from flyk.kubelet.kube import KubeApi, KubeError

from .conftest import eventually
from .fake_kube import FakeKube, make_pod


@pytest.fixture
def api(kubeconfig: str) -> Iterator[KubeApi]:
    client = KubeApi(kubeconfig)
    yield client
    client.close()


def test_field_selector_and_monotonic_resource_versions(kube: FakeKube, api: KubeApi) -> None:
    ours = kube.create("pods", make_pod("a", node="n1"), "default")
    kube.create("pods", make_pod("b", node="n2"), "default")
    other_ns = kube.create("pods", make_pod("c", node="n1", namespace="shop"), "shop")
    pods, version = api.list_pods("n1")
    assert sorted(p["metadata"]["name"] for p in pods) == ["a", "c"]
    assert (
        int(version)
        >= int(other_ns["metadata"]["resourceVersion"])
        > int(ours["metadata"]["resourceVersion"])
    )
    assert ours["metadata"]["uid"] != other_ns["metadata"]["uid"]


def test_watch_resumes_after_a_version_and_410_when_compacted(kube: FakeKube, api: KubeApi) -> None:
    kube.create("pods", make_pod("a", node="n1"), "default")
    _, version = api.list_pods("n1")
    kube.create("pods", make_pod("x", node="other"), "default")  # filtered out
    kube.create("pods", make_pod("b", node="n1"), "default")
    events = api.watch_pods("n1", version, server_timeout=5, read_timeout=30)
    kind, pod = next(events)
    assert (kind, pod["metadata"]["name"]) == ("ADDED", "b")
    events.close()
    kube.store.compact()
    with pytest.raises(KubeError) as gone:
        next(api.watch_pods("n1", version, server_timeout=5, read_timeout=30))
    assert gone.value.code == 410


def test_status_subresource_changes_only_status(kube: FakeKube, api: KubeApi) -> None:
    kube.create("pods", make_pod("a", node="n1"), "default")
    uid = kube.get("pods", "a", "default")["metadata"]["uid"]  # type: ignore[index]
    api.patch_pod_status("default", "a", uid, {"phase": "Running", "podIP": "fdaa::1"})
    api.patch_pod_status("default", "a", uid, {"podIP": None})
    pod = kube.get("pods", "a", "default")
    assert pod is not None
    assert pod["status"] == {"phase": "Running"}  # null removed podIP
    assert pod["spec"]["containers"][0]["image"] == "nginx:1.27"
    api.patch_pod_annotations("default", "a", {"k": "v"})
    pod = kube.get("pods", "a", "default")
    assert pod is not None and pod["metadata"]["annotations"] == {"k": "v"}
    assert pod["status"]["phase"] == "Running"


def test_status_patches_merge_conditions_by_type_and_pod_ips_by_ip(
    kube: FakeKube, api: KubeApi
) -> None:
    """The strategic merge the kubelet sends: a condition someone else wrote stays."""
    pod = make_pod("a", node="n1")
    gate = {"type": "example.com/gate", "status": "True"}
    ready = {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}
    pod["status"] = {"phase": "Pending", "conditions": [gate, ready]}
    uid = kube.create("pods", pod, "default")["metadata"]["uid"]
    ips = [{"ip": "fdaa::1"}]
    patch = {"conditions": [{"type": "Ready", "status": "True", "reason": None}], "podIPs": ips}
    api.patch_pod_status("default", "a", uid, patch)
    status = kube.get("pods", "a", "default")["status"]  # type: ignore[index]
    assert status["conditions"] == [gate, {"type": "Ready", "status": "True"}]
    moved = [{"ip": "fdaa::2"}, {"ip": "fdaa::1", "$patch": "delete"}]
    api.patch_pod_status("default", "a", uid, {"podIPs": moved})
    status = kube.get("pods", "a", "default")["status"]  # type: ignore[index]
    assert status["podIPs"] == [{"ip": "fdaa::2"}]


def test_a_status_patch_for_a_pod_created_again_under_its_name_conflicts(
    kube: FakeKube, api: KubeApi
) -> None:
    """metadata.uid in the patch is a precondition: the old pod's status never lands on the
    new pod of the same name."""
    old = kube.create("pods", make_pod("a", node="n1"), "default")
    kube.store.remove("pods", "default", "a")
    kube.create("pods", make_pod("a", node="n1"), "default")
    with pytest.raises(KubeError) as conflict:
        api.patch_pod_status("default", "a", old["metadata"]["uid"], {"phase": "Failed"})
    assert conflict.value.code == 409
    assert kube.get("pods", "a", "default")["status"] == {"phase": "Pending"}  # type: ignore[index]


def test_graceful_delete_marks_then_uid_precondition_guards_the_final_delete(
    kube: FakeKube, api: KubeApi
) -> None:
    old = kube.create("pods", make_pod("a", node="n1"), "default")
    httpx.request(
        "DELETE", f"{kube.url}/api/v1/namespaces/default/pods/a", json={"gracePeriodSeconds": 30}
    )
    marked = kube.get("pods", "a", "default")
    assert marked is not None and marked["metadata"]["deletionGracePeriodSeconds"] == 30
    assert marked["metadata"]["deletionTimestamp"]
    api.delete_pod("default", "a", old["metadata"]["uid"])
    assert kube.get("pods", "a", "default") is None
    new = kube.create("pods", make_pod("a", node="n1"), "default")  # same name, new pod
    with pytest.raises(KubeError) as conflict:
        api.delete_pod("default", "a", old["metadata"]["uid"])
    assert conflict.value.code == 409
    still = kube.get("pods", "a", "default")
    assert still is not None and still["metadata"]["uid"] == new["metadata"]["uid"]


def test_lease_replace_with_a_stale_version_conflicts(kube: FakeKube, api: KubeApi) -> None:
    body = {
        "metadata": {"name": "n1", "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": "n1"},
    }
    created = api.create_lease(body)
    api.replace_lease({**created, "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}})
    with pytest.raises(KubeError) as conflict:
        api.replace_lease(created)  # its resourceVersion is now stale
    assert conflict.value.code == 409


def test_a_client_that_resets_its_connection_prints_nothing(
    kube: FakeKube, capfd: pytest.CaptureFixture[str]
) -> None:
    """Clients closing while the server reads (at shutdown, in the benchmark) are not errors
    worth a traceback in the output a person reads."""
    import socket
    import struct
    from urllib.parse import urlsplit

    url = urlsplit(kube.url)
    client = socket.create_connection((url.hostname, url.port))
    client.sendall(b"GET /api/v1/nodes HTTP/1.1\r\nHost: x\r\n")  # headers never finished
    # SO_LINGER 0: close with a reset, as a client torn down mid-request does
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    eventually(lambda: kube.clients_gone >= 1, what="the reset seen by the server")
    assert "Traceback" not in capfd.readouterr().err
