"""Delete: what goes, in which order, what is left on Ctrl-C."""

from __future__ import annotations

from pathlib import Path

import pytest

from flyk.api import FlyClient, MachineConfig
from flyk.errors import (
    Interrupted,
    NotFoundError,
    UsageError,
)
from flyk.k8s import cluster, records
from flyk.k8s.pki import TLS_FILES
from flyk.k8s.progress import RecordingProgress
from flyk.local import LocalBackend, Timing
from tests.k8s.cluster.helpers import footprint, kube_options, kubectl_view, options, spec
from tests.k8s.conftest import InterruptingTransport, make_client


def _namespace_app(client: FlyClient, cluster_name: str, app: str, pods: int) -> None:
    """What the kubelet makes for a namespace: an app whose machines name the cluster."""
    client.apps.create(app, "personal")
    for index in range(pods):
        config = MachineConfig(
            image="nginx",
            metadata={"flyk_cluster": cluster_name, "flyk_namespace": app, "flyk_pod": f"p{index}"},
        )
        client.machines.create(app, config, region="iad")


def test_delete_leaves_nothing_behind(client: FlyClient, tmp_path: Path) -> None:
    client.apps.create("bystander", "personal")
    before = footprint(client)
    cluster.create(client, spec(), options(tmp_path))
    _namespace_app(client, "demo", "flyk-demo-default", 2)
    _namespace_app(client, "other", "flyk-other-default", 1)  # another cluster's: untouched
    # An emptied namespace app, known only by the kubelet's marker secrets.
    client.apps.create("flyk-demo-empty-1", "personal")
    client.secrets.set("flyk-demo-empty-1", {"FLYK_CLUSTER": "demo", "FLYK_ORG": "personal"})
    client.apps.create("flyk-lookalike", "personal")  # no machines, no markers: untouched
    client.apps.create("flyk-other-empty", "personal")
    client.secrets.set("flyk-other-empty", {"FLYK_CLUSTER": "other", "FLYK_ORG": "personal"})
    untouched = {
        app: footprint(client)[app]
        for app in ("flyk-other-default", "flyk-lookalike", "flyk-other-empty")
    }
    plan = cluster.plan_deletion(client, "demo", "personal")
    assert sorted((n.app, n.machines) for n in plan.namespace_apps) == [
        ("flyk-demo-default", 2),
        ("flyk-demo-empty-1", 0),
    ]
    assert "2 namespace apps (2 machines)" in plan.describe()
    result = cluster.delete(client, plan, kubeconfig=kube_options(tmp_path))
    assert result.leftovers == ()
    assert footprint(client) == {**before, **untouched}
    assert result.kubeconfig and result.kubeconfig.current_context_cleared
    view = kubectl_view(tmp_path / "kubeconfig")
    assert view["current-context"] == "" and not view.get("contexts")
    with pytest.raises(NotFoundError):
        cluster.plan_deletion(client, "demo", "personal")


def test_delete_keep_volumes_keeps_the_volume_and_its_cas_and_create_resumes(
    client: FlyClient, tmp_path: Path
) -> None:
    created = cluster.create(client, spec(), options(tmp_path))
    ca_before = kubectl_view(tmp_path / "kubeconfig")["clusters"][0]["cluster"]
    plan = cluster.plan_deletion(client, "demo", "personal")
    result = cluster.delete(client, plan, keep_volumes=True, kubeconfig=kube_options(tmp_path))
    left = footprint(client)["flyk-demo-personal"]
    assert left["volumes"] == [created.volume.id]
    assert left["machines"] == [] and left["ips"] == []
    # the CAs stay with the volume (K3s keeps its CAs there); the kubelet's token goes
    assert set(left["secrets"]) == {*TLS_FILES.values(), records.MARKER_CLUSTER, records.MARKER_ORG}
    # kept on purpose, not "left behind" (which says what could not be removed)
    assert result.leftovers == ()
    assert result.kept == (f"volume {created.volume.id} in app flyk-demo-personal",)
    assert result.to_json()["kept"] == list(result.kept)
    assert [(c.name, c.state) for c in cluster.list_clusters(client, ["personal"])] == [
        ("demo", "incomplete")
    ]
    progress = RecordingProgress()
    again = cluster.create(client, spec(), options(tmp_path), progress)
    assert again.volume.id == created.volume.id  # the kept data is used again
    assert any("Resuming the incomplete cluster demo" in n for n in progress.notices)
    ca_after = kubectl_view(tmp_path / "kubeconfig")["clusters"][0]["cluster"]
    assert ca_after["certificate-authority-data"] == ca_before["certificate-authority-data"]
    # a kept volume in another region is not silently abandoned
    cluster.delete(
        client,
        cluster.plan_deletion(client, "demo", "personal"),
        keep_volumes=True,
        kubeconfig=kube_options(tmp_path),
    )
    before = footprint(client)
    with pytest.raises(UsageError, match="in iad, not ams") as info:
        cluster.create(client, spec(region="ams"), options(tmp_path))
    assert info.value.hint and "-r iad" in info.value.hint
    assert footprint(client) == before


def test_delete_also_removes_namespaces_made_after_the_prompt(
    client: FlyClient, tmp_path: Path
) -> None:
    cluster.create(client, spec(), options(tmp_path))
    plan = cluster.plan_deletion(client, "demo", "personal")
    assert plan.namespace_apps == ()
    _namespace_app(client, "demo", "flyk-demo-late", 1)  # the kubelet was still running
    progress = RecordingProgress()
    result = cluster.delete(client, plan, kubeconfig=kube_options(tmp_path), progress=progress)
    assert result.leftovers == () and footprint(client) == {}
    assert progress.steps[0].startswith("✓ Stopped the control plane")


def test_ctrl_c_during_delete_says_what_is_left_and_status_names_both_ways_on(
    backend: LocalBackend, tmp_path: Path
) -> None:
    client = make_client(backend.transport())
    cluster.create(client, spec(), options(tmp_path))
    interrupting = make_client(InterruptingTransport(backend.transport(), "DELETE", r"/volumes/"))
    plan = cluster.plan_deletion(interrupting, "demo", "personal", kube_options(tmp_path))
    with pytest.raises(Interrupted) as info:
        cluster.delete(interrupting, plan, kubeconfig=kube_options(tmp_path))
    error = info.value
    assert error.message == (
        "interrupted; cluster demo is partly deleted; left, possibly in part: "
        "app flyk-demo-personal with its volume, IPs and secrets; "
        "the kubeconfig entries (context flyk-demo)"
    )
    assert error.hint and "finish with flyk ext k8s delete demo --yes" in error.hint
    (listed,) = cluster.list_clusters(client, ["personal"])
    assert listed.state == "incomplete"
    detail = cluster.status(client, "demo", "personal", probe_api=False).api.detail
    assert "or a delete stopped after removing it" in detail
    assert "resume with flyk ext k8s create demo" in detail
    assert "clean up with flyk ext k8s delete demo --yes" in detail
    plan = cluster.plan_deletion(client, "demo", "personal", kube_options(tmp_path))
    assert cluster.delete(client, plan, kubeconfig=kube_options(tmp_path)).leftovers == ()
    assert footprint(client) == {}


def test_the_delete_prompt_says_what_goes_and_what_keep_volumes_keeps(
    client: FlyClient, tmp_path: Path
) -> None:
    cluster.create(client, spec("kv"), options(tmp_path))
    plan = cluster.plan_deletion(client, "kv", "personal", kube_options(tmp_path))
    machine = plan.cluster.machine
    assert machine is not None
    kubeconfig = tmp_path / "kubeconfig"
    assert plan.describe() == (
        f"control-plane machine {machine.id}, 1 IP, 1 volume, app flyk-kv-personal, "
        f"context flyk-kv in {kubeconfig}"
    )
    assert plan.describe(keep_volumes=True) == (
        f"control-plane machine {machine.id}, 1 IP, the kubelet's token, "
        f"context flyk-kv in {kubeconfig}; keep 1 volume and app flyk-kv-personal "
        "(with its CA secrets, so create resumes it)"
    )
    assert plan.to_json()["kubeconfig_files"] == [str(kubeconfig)]


def test_delete_keeps_an_entry_of_the_name_that_is_another_clusters(
    client: FlyClient, tmp_path: Path
) -> None:
    cluster.create(client, spec(), options(tmp_path))
    kube = (tmp_path / "kubeconfig").read_bytes()
    elsewhere = make_client(LocalBackend(tmp_path / "other", timing=Timing.instant()).transport())
    cluster.create(elsewhere, spec(), options(tmp_path / "own"))
    plan = cluster.plan_deletion(elsewhere, "demo", "personal", kube_options(tmp_path))
    assert plan.kubeconfig_files == () and plan.other_cluster_entry == tmp_path / "kubeconfig"
    assert "is another cluster's and stays" in plan.describe()
    result = cluster.delete(elsewhere, plan, kubeconfig=kube_options(tmp_path))
    assert result.kubeconfig is not None and result.kubeconfig.files == ()
    assert (tmp_path / "kubeconfig").read_bytes() == kube
