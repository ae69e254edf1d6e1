"""Create, list, status, kubeconfig and delete against the in-process local backend."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509

from flyk.api import FlyClient, MachineConfig, RateLimiter, RetryPolicy
from flyk.errors import (
    AlreadyExistsError,
    CapacityError,
    ConfigError,
    ConflictError,
    FlykError,
    Interrupted,
    MachineStateError,
    NotFoundError,
    UsageError,
    WaitTimeoutError,
)
from flyk.k8s import cluster, records
from flyk.k8s import controlplane as cp
from flyk.k8s.pki import TLS_FILES
from flyk.k8s.plan import ClusterSpec
from flyk.k8s.progress import RecordingProgress
from flyk.local import LocalBackend, Timing
from tests.k8s.conftest import CountingTransport, InterruptingTransport, make_client

KUBECTL = "/usr/bin/kubectl"


def spec(name: str = "demo", **overrides: Any) -> ClusterSpec:
    values: dict[str, Any] = {"name": name, "org": "personal", "region": "iad"}
    values.update(overrides)
    return ClusterSpec(**values)


def options(tmp_path: Path, **overrides: Any) -> cluster.CreateOptions:
    kube = cluster.KubeconfigOptions(path=str(tmp_path / "kubeconfig"))
    values: dict[str, Any] = {"timeout": 60.0, "kubeconfig": kube, "kubelet_token": "tok"}
    values.update(overrides)
    return cluster.CreateOptions(**values)


def kube_options(tmp_path: Path) -> cluster.KubeconfigOptions:
    return cluster.KubeconfigOptions(path=str(tmp_path / "kubeconfig"))


def footprint(client: FlyClient, org: str = "personal") -> dict[str, Any]:
    """Everything the org holds, for before/after comparisons."""
    apps = sorted(a.name for a in client.apps.list(org))
    return {
        app: {
            "machines": sorted(m.id for m in client.machines.list(app)),
            "volumes": sorted(
                v.id for v in client.volumes.list(app) if v.state not in ("destroyed", "destroying")
            ),
            "ips": sorted(ip.ip for ip in client.ips.list(app)),
            "secrets": sorted(s.name for s in client.secrets.list(app)),
        }
        for app in apps
    }


def kubectl_view(path: Path) -> dict[str, Any]:
    result = subprocess.run(
        [KUBECTL, "config", "view", "--raw", "-o", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": str(path)},
        check=True,
    )
    data: dict[str, Any] = json.loads(result.stdout)
    return data


# -- create ---------------------------------------------------------------------------------


def test_create_makes_every_resource_and_a_real_kubeconfig(
    client: FlyClient, tmp_path: Path
) -> None:
    progress = RecordingProgress()
    result = cluster.create(client, spec(), options(tmp_path), progress)
    app = "flyk-demo-personal"
    assert result.plan.app_name == app
    (machine,) = client.machines.list(app)
    assert machine.state == "started" and machine.region == "iad"
    meta = machine.metadata
    assert meta[records.META_CLUSTER] == "demo" and meta[records.META_ORG] == "personal"
    assert meta[records.META_REGION] == "iad" and meta[records.META_VERSION]
    assert meta[records.META_ROLE] == "control-plane"
    config = machine.config
    assert config is not None and config.mounts[0].volume == result.volume.id
    assert config.restart is not None and config.restart.policy == "always"
    secrets = {s.name for s in client.secrets.list(app)}
    assert cp.KUBELET_TOKEN_SECRET in secrets and "FLYK_PKI_CLIENT_CA_KEY" in secrets
    assert [ip.ip for ip in client.ips.list(app)]
    assert any(
        f"--tls-san={ip.ip}" in (config.init.cmd if config.init else ()) for ip in result.ips
    )
    view = kubectl_view(tmp_path / "kubeconfig")
    assert view["current-context"] == "flyk-demo"
    # the loopback port the local backend publishes for the app's API (Fly: <app>.fly.dev:6443)
    assert re.fullmatch(r"https://127\.0\.0\.1:\d+", view["clusters"][0]["cluster"]["server"])
    assert all(step.startswith("✓") for step in progress.steps) and len(progress.steps) == 5
    assert (tmp_path / "kubeconfig").stat().st_mode & 0o777 == 0o600


def test_second_create_says_so_and_changes_nothing(client: FlyClient, tmp_path: Path) -> None:
    cluster.create(client, spec(), options(tmp_path))
    before = footprint(client)
    kubeconfig_before = (tmp_path / "kubeconfig").read_bytes()
    with pytest.raises(AlreadyExistsError, match="already exists"):
        cluster.create(client, spec(), options(tmp_path))
    assert footprint(client) == before
    assert (tmp_path / "kubeconfig").read_bytes() == kubeconfig_before


def test_capacity_failure_creates_nothing_and_names_alternatives(
    backend: LocalBackend, tmp_path: Path
) -> None:
    transport = CountingTransport(backend.transport())
    client = make_client(transport)
    backend.capacity.set("iad", 0)
    with pytest.raises(CapacityError) as info:
        cluster.create(client, spec(), options(tmp_path))
    assert [w for w in transport.writes() if "placements" not in w[1]] == []
    error = info.value
    assert error.region == "iad" and error.exit_code == 8
    assert error.alternatives and "iad" not in error.alternatives
    assert error.hint and f"-r {error.alternatives[0]}" in error.hint
    assert footprint(client) == {}
    assert not (tmp_path / "kubeconfig").exists()


class OptimisticPlacements(httpx.BaseTransport):
    """Placements that claim room the region does not have (a race with another tenant)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/platform/placements"):
            region = json.loads(request.content)["region"]
            return httpx.Response(200, json={"regions": [{"region": region, "count": 1}]})
        return self.inner.handle_request(request)


def test_capacity_failure_at_machine_create_rolls_back_and_names_alternatives(
    backend: LocalBackend, tmp_path: Path
) -> None:
    client = make_client(OptimisticPlacements(backend.transport()), RetryPolicy.never())
    backend.capacity.set("iad", 0)
    with pytest.raises(CapacityError) as info:
        cluster.create(client, spec(), options(tmp_path))
    assert info.value.region == "iad"
    assert info.value.alternatives and "iad" not in info.value.alternatives
    assert footprint(client) == {}


def test_a_failing_placements_hint_does_not_fail_the_create(
    backend: LocalBackend, tmp_path: Path
) -> None:
    client = make_client(backend.transport(), RetryPolicy.never())
    backend.faults.add("server_error", method="POST", path=r"/platform/placements$", times=None)
    result = cluster.create(client, spec(), options(tmp_path))
    assert result.machine.state == "started"


class AppNotVisibleYet(httpx.BaseTransport):
    """Fly's eventual consistency: the first call on a new app after POST /apps gets a 404."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []
        self.hidden: set[str] = set()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path))
        kind = request.url.path.rsplit("/", 1)[-1]
        if request.method == "POST" and kind in self.hidden:
            self.hidden.discard(kind)
            return httpx.Response(404, json={"error": "app not found"})
        if request.method == "POST" and request.url.path == "/v1/apps":
            self.hidden = {"volumes", "secrets", "ip_assignments"}
        return self.inner.handle_request(request)


def test_create_does_not_read_the_new_app_back_and_retries_a_404_on_it(
    backend: LocalBackend, tmp_path: Path
) -> None:
    slept: list[float] = []
    transport = AppNotVisibleYet(backend.transport())
    client = make_client(transport, RetryPolicy(sleep=slept.append))
    cluster.create(client, spec(), options(tmp_path))
    after_create = transport.calls[transport.calls.index(("POST", "/v1/apps")) + 1 :]
    assert ("GET", "/v1/apps/flyk-demo-personal") not in after_create
    assert transport.hidden == set() and len(slept) == 3  # each 404 retried once, paced
    app = "flyk-demo-personal"
    assert [v.name for v in client.volumes.list(app)] == ["flyk_data"]
    assert client.ips.list(app) and client.secrets.list(app)


def test_failure_rolls_back_everything(backend: LocalBackend, tmp_path: Path) -> None:
    client = make_client(backend.transport(), RetryPolicy.never())
    backend.faults.add("server_error", method="POST", path=r"/machines$", times=None)
    with pytest.raises(FlykError):
        cluster.create(client, spec(), options(tmp_path))
    assert footprint(client) == {}
    assert not (tmp_path / "kubeconfig").exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", r"/apps/[^/]+/volumes$"),
        ("POST", r"/apps/[^/]+/machines$"),
        ("GET", r"/machines/[^/]+/wait$"),
    ],
    ids=["during-volume", "during-machine-create", "during-wait"],
)
def test_ctrl_c_rolls_back(backend: LocalBackend, tmp_path: Path, method: str, path: str) -> None:
    client = make_client(InterruptingTransport(backend.transport(), method, path))
    with pytest.raises(Interrupted) as info:
        cluster.create(client, spec(), options(tmp_path))
    assert info.value.exit_code == 130
    assert info.value.message == "interrupted; what this run created has been removed"
    assert footprint(make_client(backend.transport())) == {}
    assert not (tmp_path / "kubeconfig").exists()


def test_ctrl_c_before_any_write_says_nothing_was_created(
    backend: LocalBackend, tmp_path: Path
) -> None:
    client = make_client(InterruptingTransport(backend.transport(), "GET", r"/platform/regions"))
    with pytest.raises(Interrupted, match="before anything was created"):
        cluster.create(client, spec(), options(tmp_path))
    assert footprint(make_client(backend.transport())) == {}


def test_keep_on_failure_keeps_and_says_how_to_clean_up(
    backend: LocalBackend, tmp_path: Path
) -> None:
    client = make_client(backend.transport(), RetryPolicy.never())
    backend.faults.add("server_error", method="POST", path=r"/machines$", times=None)
    with pytest.raises(FlykError) as info:
        cluster.create(client, spec(), options(tmp_path, keep_on_failure=True))
    assert "flyk-demo-personal" in footprint(client)
    assert (
        info.value.hint
        and (
            "resume with flyk ext k8s create demo (same flags), "
            "or clean up with flyk ext k8s delete demo --yes"
        )
        in info.value.hint
    )
    # What the hint promises works on the remains: status says what it is, delete removes it.
    backend.faults.clear()
    state = cluster.status(client, "demo", "personal", probe_api=False)
    assert state.summary.state == "incomplete" and "delete" in state.api.detail
    plan = cluster.plan_deletion(client, "demo", "personal")
    assert cluster.delete(client, plan, kubeconfig=kube_options(tmp_path)).leftovers == ()
    assert footprint(client) == {}


def test_an_unrelated_app_with_the_cluster_app_name_is_not_a_cluster(client: FlyClient) -> None:
    client.apps.create("flyk-demo-personal", "personal")
    client.secrets.set("flyk-demo-personal", {"DATABASE_URL": "x"})
    with pytest.raises(NotFoundError):
        cluster.plan_deletion(client, "demo", "personal")


def test_unknown_region_is_refused_before_anything_is_created(
    client: FlyClient, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="unknown region 'zzz'"):
        cluster.create(client, spec(region="zzz"), options(tmp_path))
    assert footprint(client) == {}


def test_unknown_org_is_refused_before_anything_is_created(
    client: FlyClient, tmp_path: Path
) -> None:
    with pytest.raises(NotFoundError, match="unknown organization 'nope'") as info:
        cluster.create(client, spec(org="nope"), options(tmp_path))
    assert info.value.exit_code == 3
    assert info.value.hint and "flyk auth whoami" in info.value.hint
    with pytest.raises(NotFoundError, match="unknown organization"):
        cluster.list_clusters(client, ["nope"])
    assert footprint(client) == {}


def test_malformed_kubeconfig_is_refused_before_anything_is_created(
    counting: Callable[[], tuple[FlyClient, CountingTransport]], tmp_path: Path
) -> None:
    client, transport = counting()
    target = tmp_path / "kubeconfig"
    target.write_text("clusters: {oops\n")
    with pytest.raises(ConfigError, match="malformed"):
        cluster.create(client, spec(), options(tmp_path))
    assert transport.calls == []
    assert target.read_text() == "clusters: {oops\n"


def test_a_held_kubeconfig_lock_is_refused_before_anything_is_created(
    counting: Callable[[], tuple[FlyClient, CountingTransport]], tmp_path: Path
) -> None:
    client, transport = counting()
    (tmp_path / "kubeconfig.lock").write_text("")
    with pytest.raises(ConfigError, match=r"kubeconfig\.lock exists") as info:
        cluster.create(client, spec(), options(tmp_path))
    assert info.value.exit_code == 2
    assert transport.calls == []


def test_an_unwritable_kubeconfig_place_is_refused_before_anything_is_created(
    counting: Callable[[], tuple[FlyClient, CountingTransport]], tmp_path: Path
) -> None:
    client, transport = counting()
    kube = cluster.KubeconfigOptions(path="/proc/flyk-no-such.yaml")
    with pytest.raises(ConfigError, match=r"cannot write kubeconfig /proc/flyk-no-such\.yaml"):
        cluster.create(client, spec(), options(tmp_path, kubeconfig=kube))
    assert transport.calls == []


class SpoilsTheKubeconfig(httpx.BaseTransport):
    """Breaks the kubeconfig file once the control plane is being waited for: a file that
    changes between the pre-provisioning check and the write."""

    def __init__(self, inner: httpx.BaseTransport, target: Path) -> None:
        self.inner = inner
        self.target = target

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/wait"):
            self.target.write_text("clusters: {oops\n")
        return self.inner.handle_request(request)


def test_a_kubeconfig_write_failing_after_provisioning_keeps_the_healthy_cluster(
    backend: LocalBackend, tmp_path: Path
) -> None:
    target = tmp_path / "kubeconfig"
    client = make_client(SpoilsTheKubeconfig(backend.transport(), target))
    with pytest.raises(ConfigError, match="cluster demo is ready, but its kubeconfig") as info:
        cluster.create(client, spec(), options(tmp_path))
    assert info.value.hint and "flyk ext k8s kubeconfig demo" in info.value.hint
    assert target.read_text() == "clusters: {oops\n"
    ref = cluster.find_cluster(client, "demo", "personal")
    assert ref.machine is not None and ref.machine.state == "started"
    # What the hint says works once the file is fixed.
    target.unlink()
    kube_options(tmp_path).merge(cluster.rebuild_kubeconfig(client, "demo", "personal"))
    assert kubectl_view(target)["current-context"] == "flyk-demo"


def test_parallel_creates_never_corrupt_the_kubeconfig(client: FlyClient, tmp_path: Path) -> None:
    names = [f"par{i}" for i in range(4)]
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            cluster.create(client, spec(name), options(tmp_path))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    contexts = {c["name"] for c in kubectl_view(tmp_path / "kubeconfig")["contexts"]}
    assert contexts == {f"flyk-{n}" for n in names}


def _writes_besides_placements(transport: CountingTransport) -> list[tuple[str, str]]:
    """Placements is a POST that only reads (where a machine would fit)."""
    return [w for w in transport.writes() if not w[1].endswith("/platform/placements")]


def test_dry_run_plan_writes_nothing(
    counting: Callable[[], tuple[FlyClient, CountingTransport]], tmp_path: Path
) -> None:
    client, transport = counting()
    checked = cluster.dry_run(client, spec(), options(tmp_path))
    assert checked.plan.describe()["resources"][-1]["config"]["image"]
    assert checked.resuming is None
    assert ("GET", "/v1/apps/flyk-demo-personal") in transport.calls  # it did check
    assert _writes_besides_placements(transport) == []
    assert footprint(client) == {} and not (tmp_path / "kubeconfig").exists()


def test_dry_run_gives_the_errors_a_create_would_and_writes_nothing(
    backend: LocalBackend,
    counting: Callable[[], tuple[FlyClient, CountingTransport]],
    tmp_path: Path,
) -> None:
    client, transport = counting()
    with pytest.raises(NotFoundError) as unknown_org:
        cluster.dry_run(client, spec(org="nope"), options(tmp_path))
    with pytest.raises(NotFoundError) as real_org:
        cluster.create(client, spec(org="nope"), options(tmp_path))
    assert unknown_org.value.exit_code == real_org.value.exit_code == 3
    assert unknown_org.value.message == real_org.value.message
    cluster.create(client, spec(), options(tmp_path))
    before, kube_before = footprint(client), (tmp_path / "kubeconfig").read_bytes()
    transport.calls.clear()
    with pytest.raises(AlreadyExistsError):
        cluster.dry_run(client, spec(), options(tmp_path))
    backend.capacity.set("ams", 0)
    with pytest.raises(CapacityError) as full:
        cluster.dry_run(client, spec("other", region="ams"), options(tmp_path))
    assert full.value.exit_code == 8 and full.value.region == "ams"
    assert full.value.alternatives and "ams" not in full.value.alternatives
    assert _writes_besides_placements(transport) == []
    assert footprint(client) == before
    assert (tmp_path / "kubeconfig").read_bytes() == kube_before


# -- list, status, kubeconfig -------------------------------------------------------------


def test_list_reads_the_platform(client: FlyClient, tmp_path: Path) -> None:
    assert cluster.list_clusters(client, ["personal"]) == []
    cluster.create(client, spec("one"), options(tmp_path))
    cluster.create(client, spec("two", private=True), options(tmp_path))
    client.apps.create("unrelated", "personal")
    found = cluster.list_clusters(client, ["personal"])
    assert [(c.name, c.org, c.region, c.state) for c in found] == [
        ("one", "personal", "iad", "started"),
        ("two", "personal", "iad", "started"),
    ]
    assert re.fullmatch(r"https://127\.0\.0\.1:\d+", found[1].api_endpoint)
    assert json.dumps([c.to_json() for c in found])


def test_status_on_the_local_backend_says_the_api_is_simulated(
    client: FlyClient, tmp_path: Path
) -> None:
    cluster.create(client, spec(), options(tmp_path))
    result = cluster.status(client, "demo", "personal", probe_api=False)
    assert result.summary.state == "started"
    assert not result.api.reachable and "simulated" in result.api.detail
    assert dict(result.checks).get(cp.CHECK_NAME) == "passing"


def test_kubeconfig_is_rebuilt_from_the_secrets_with_a_fresh_admin_cert(
    client: FlyClient, tmp_path: Path
) -> None:
    created = cluster.create(client, spec(), options(tmp_path))
    original = kubectl_view(tmp_path / "kubeconfig")["users"][0]["user"]
    entry = cluster.rebuild_kubeconfig(client, "demo", "personal")
    assert entry.server == created.plan.api_endpoint
    fresh = x509.load_pem_x509_certificate(entry.client_cert_pem)
    assert fresh.subject.rfc4514_string() == "CN=flyk-admin,O=system:masters"
    other = tmp_path / "elsewhere"
    cluster.KubeconfigOptions(output=str(other)).merge(entry)
    rebuilt = kubectl_view(other)
    assert (
        rebuilt["clusters"][0]["cluster"]["certificate-authority-data"]
        == (
            kubectl_view(tmp_path / "kubeconfig")["clusters"][0]["cluster"][
                "certificate-authority-data"
            ]
        )
    )
    assert (
        rebuilt["users"][0]["user"]["client-certificate-data"]
        != (original["client-certificate-data"])
    )


def test_unknown_cluster_is_not_found(client: FlyClient) -> None:
    for call in (
        lambda: cluster.status(client, "ghost", "personal", probe_api=False),
        lambda: cluster.rebuild_kubeconfig(client, "ghost", "personal"),
        lambda: cluster.plan_deletion(client, "ghost", "personal"),
    ):
        with pytest.raises(NotFoundError, match="no cluster ghost"):
            call()


# -- delete ---------------------------------------------------------------------------------


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


def test_create_then_delete_then_create_again(client: FlyClient, tmp_path: Path) -> None:
    cluster.create(client, spec(), options(tmp_path))
    cluster.delete(
        client, cluster.plan_deletion(client, "demo", "personal"), kubeconfig=kube_options(tmp_path)
    )
    cluster.create(client, spec(), options(tmp_path))
    assert [c.name for c in cluster.list_clusters(client, ["personal"])] == ["demo"]


def test_secret_values_never_reach_the_verbose_log(backend: LocalBackend, tmp_path: Path) -> None:
    """What `--verbose` prints is what the client's `on_exchange` hook is handed."""
    token = "fm2_verbose-log-token"
    logged: list[str] = []

    def log(request: Any, response: Any) -> None:
        logged.append(f"> {request.method} {request.url} {dict(request.headers)}")
        logged.append(request.content.decode(errors="replace"))
        logged.append(f"< {response.status_code} {dict(response.headers)}")
        logged.append(response.content.decode(errors="replace"))

    client = FlyClient(
        base_url="http://local.flyk",
        token=token,
        transport=backend.transport(),
        rate_limiter=RateLimiter.unlimited(),
        on_exchange=log,
    )
    cluster.create(client, spec(), options(tmp_path, kubelet_token="TOKEN-VALUE"))
    entry = cluster.rebuild_kubeconfig(client, "demo", "personal")
    cluster.status(client, "demo", "personal", probe_api=False)
    assert entry.cluster == "demo"  # the values did reach the caller
    text = "\n".join(logged)
    # the secrets were written, and read back with their values, through the hook
    assert "/secrets?show_secrets=true" in text
    assert '"value":"<redacted>"' in text
    for needle in ("LS0tLS1CRUdJTi", "PRIVATE KEY", "TOKEN-VALUE", token):
        assert needle not in text


@pytest.mark.served
def test_create_and_delete_over_real_http(backend: LocalBackend, tmp_path: Path) -> None:
    served = backend.serve()
    try:
        client = FlyClient(base_url=served.url, rate_limiter=RateLimiter.unlimited())
        created = cluster.create(client, spec(), options(tmp_path))
        assert created.machine.state == "started"
        plan = cluster.plan_deletion(client, "demo", "personal")
        assert cluster.delete(client, plan, kubeconfig=kube_options(tmp_path)).leftovers == ()
        assert footprint(client) == {}
        client.close()
    finally:
        served.close()


def test_timeout_rolls_back_and_exits_6(tmp_path: Path) -> None:
    slow = LocalBackend(tmp_path / "slow", timing=Timing(boot=30.0))
    client = make_client(slow.transport())
    with pytest.raises(WaitTimeoutError) as info:
        cluster.create(client, spec(), options(tmp_path, timeout=0.5))
    assert info.value.exit_code == 6
    assert info.value.message == "the control plane did not start within --timeout 0.5s"
    assert info.value.hint and "--timeout 1m" in info.value.hint
    assert footprint(client) == {}


class Clock:
    """Seconds that move only when told (the client's policy clock, shared with its sleeps)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SlowCall(httpx.BaseTransport):
    """Makes one kind of call take `seconds` on the clock."""

    def __init__(self, inner: httpx.BaseTransport, clock: Clock, path: str, seconds: float):
        self.inner, self.clock, self.path, self.seconds = inner, clock, path, seconds

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and request.url.path.endswith(self.path):
            self.clock.advance(self.seconds)
        return response


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/platform/placements", "the checks before creating anything did not finish"),
        ("/volumes", "creating the app, volume, API address and secrets did not finish"),
    ],
)
def test_timeout_bounds_the_steps_before_the_wait_and_names_the_step(
    backend: LocalBackend, tmp_path: Path, path: str, message: str
) -> None:
    clock = Clock()
    retry = RetryPolicy(clock=clock, sleep=clock.advance)
    client = make_client(SlowCall(backend.transport(), clock, path, 95.0), retry)
    with pytest.raises(WaitTimeoutError) as info:
        cluster.create(client, spec(), options(tmp_path, timeout=90.0))
    assert info.value.message == f"{message} within --timeout 1m30s"
    assert info.value.hint and "--timeout 3m" in info.value.hint
    assert footprint(client) == {}


def test_durations_read_as_people_write_them() -> None:
    shown = [cluster.format_duration(s) for s in (0.5, 1.80689, 45, 90, 600, 3600, 5400.4)]
    assert shown == ["0.5s", "1.8s", "45s", "1m30s", "10m", "1h", "1h30m"]


def test_every_call_of_every_workflow_matches_the_machines_api_spec(
    backend: LocalBackend, tmp_path: Path
) -> None:
    from tests.spec_check import SpecCheckingTransport

    client = make_client(SpecCheckingTransport(backend.transport()))
    cluster.create(client, spec(), options(tmp_path))
    cluster.create(client, spec("private", private=True, dedicated_ipv4=False), options(tmp_path))
    cluster.list_clusters(client, ["personal"])
    cluster.status(client, "demo", "personal", probe_api=False)
    cluster.rebuild_kubeconfig(client, "demo", "personal")
    for name in ("demo", "private"):
        plan = cluster.plan_deletion(client, name, "personal")
        cluster.delete(client, plan, kubeconfig=kube_options(tmp_path))
    backend.capacity.set("iad", 0)
    with pytest.raises(CapacityError):
        cluster.create(client, spec("full"), options(tmp_path))


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


def test_output_to_a_foreign_file_is_refused_before_anything_is_created(
    counting: Callable[[], tuple[FlyClient, CountingTransport]], tmp_path: Path
) -> None:
    client, transport = counting()
    target = tmp_path / "shared"
    target.write_text("apiVersion: v1\nkind: Config\ncurrent-context: prod\n")
    kube = cluster.KubeconfigOptions(output=str(target))
    with pytest.raises(ConfigError, match="already holds"):
        cluster.create(client, spec(), options(tmp_path, kubeconfig=kube))
    assert transport.calls == []
    assert target.read_text() == "apiVersion: v1\nkind: Config\ncurrent-context: prod\n"
    with pytest.raises(UsageError, match="give one"):
        cluster.KubeconfigOptions(path=str(target), output=str(tmp_path / "x"))


def _secret_values(client: FlyClient, app: str) -> dict[str, str]:
    return {s.name: s.value or "" for s in client.secrets.list(app, show_secrets=True)}


def test_keep_on_failure_then_create_resumes_with_the_same_cas(
    backend: LocalBackend, tmp_path: Path
) -> None:
    client = make_client(backend.transport(), RetryPolicy.never())
    backend.faults.add("server_error", method="POST", path=r"/machines$", times=None)
    with pytest.raises(FlykError):
        cluster.create(client, spec(), options(tmp_path, keep_on_failure=True))
    backend.faults.clear()
    app = "flyk-demo-personal"
    kept = footprint(client)[app]
    stored = _secret_values(client, app)
    assert [c.to_json()["state"] for c in cluster.list_clusters(client, ["personal"])] == [
        "incomplete"
    ]
    progress = RecordingProgress()
    result = cluster.create(client, spec(), options(tmp_path), progress)
    assert any("Resuming the incomplete cluster demo" in n for n in progress.notices)
    now = footprint(client)[app]
    assert now["volumes"] == kept["volumes"] and now["ips"] == kept["ips"]
    assert len(now["machines"]) == 1
    after = _secret_values(client, app)
    assert {k: after[k] for k in TLS_FILES.values()} == {k: stored[k] for k in TLS_FILES.values()}
    view = kubectl_view(tmp_path / "kubeconfig")
    assert view["current-context"] == "flyk-demo"
    assert result.machine.state == "started"
    assert [(c.name, c.state) for c in cluster.list_clusters(client, ["personal"])] == [
        ("demo", "started")
    ]
    # complete now: a further create changes nothing
    before = footprint(client)
    with pytest.raises(AlreadyExistsError):
        cluster.create(client, spec(), options(tmp_path))
    assert footprint(client) == before


def test_resume_reuses_a_kept_control_plane_machine(backend: LocalBackend, tmp_path: Path) -> None:
    client = make_client(backend.transport(), RetryPolicy.never())
    backend.faults.add("server_error", method="GET", path=r"/wait$", times=None)
    with pytest.raises(FlykError):
        cluster.create(client, spec(), options(tmp_path, keep_on_failure=True))
    backend.faults.clear()
    (machine_id,) = footprint(client)["flyk-demo-personal"]["machines"]
    client.machines.stop("flyk-demo-personal", machine_id)
    client.machines.wait("flyk-demo-personal", machine_id, "stopped")
    result = cluster.create(client, spec(), options(tmp_path))
    assert result.machine.id == machine_id and result.machine.state == "started"
    assert footprint(client)["flyk-demo-personal"]["machines"] == [machine_id]


def test_a_failed_resume_keeps_the_cluster_resumable(backend: LocalBackend, tmp_path: Path) -> None:
    client = make_client(backend.transport(), RetryPolicy.never())
    backend.faults.add("server_error", method="POST", path=r"/machines$", times=None)
    with pytest.raises(FlykError):
        cluster.create(client, spec(), options(tmp_path, keep_on_failure=True))
    kept = footprint(client)
    with pytest.raises(FlykError) as info:
        cluster.create(client, spec(), options(tmp_path))  # no --keep-on-failure: still kept
    assert footprint(client) == kept
    assert info.value.hint and "resume with flyk ext k8s create demo" in info.value.hint


class VolumeStillInUse(httpx.BaseTransport):
    """Fly releases a volume a moment after its machine is destroyed: the first deletes of a
    volume answer 412 "in use", as the API does meanwhile."""

    def __init__(self, inner: httpx.BaseTransport, refusals: int) -> None:
        self.inner = inner
        self.refusals = refusals

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE" and "/volumes/" in request.url.path and self.refusals:
            self.refusals -= 1
            return httpx.Response(412, json={"error": "volume is in use"})
        return self.inner.handle_request(request)


class CheckNotYetPassing(httpx.BaseTransport):
    """The control plane's check is `critical` for the first reads of the machine."""

    def __init__(self, inner: httpx.BaseTransport, reads: int) -> None:
        self.inner = inner
        self.reads = reads

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        parts = request.url.path.split("/")
        if request.method == "GET" and parts[-2:-1] == ["machines"] and self.reads:
            self.reads -= 1
            body = json.loads(response.read())
            for check in body.get("checks") or []:
                check["status"] = "critical"
            return httpx.Response(response.status_code, json=body)
        return response


def test_waits_are_paced_by_the_client_policy_not_fixed_sleeps(
    backend: LocalBackend, tmp_path: Path
) -> None:
    slept: list[float] = []
    retry = RetryPolicy(sleep=slept.append)
    transport = CheckNotYetPassing(VolumeStillInUse(backend.transport(), refusals=2), reads=3)
    client = make_client(transport, retry)
    cluster.create(client, spec(), options(tmp_path))
    assert len(slept) == 3  # the check was read again three times, paced by the policy
    assert all(0 < s <= retry.max_delay for s in slept)
    slept.clear()
    plan = cluster.plan_deletion(client, "demo", "personal")
    assert cluster.delete(client, plan, kubeconfig=kube_options(tmp_path)).leftovers == ()
    assert len(slept) == 2  # each 412 "in use" was retried after the policy's backoff
    assert footprint(client) == {}
    # a volume that stays in use is given up on after the policy's attempts (the app's
    # delete then removes it with the app)
    stuck = VolumeStillInUse(backend.transport(), refusals=100)
    client = make_client(stuck, RetryPolicy(max_attempts=3, sleep=slept.append))
    cluster.create(client, spec(), options(tmp_path))
    plan = cluster.plan_deletion(client, "demo", "personal")
    cluster.delete(client, plan, kubeconfig=kube_options(tmp_path))
    assert stuck.refusals == 100 - 3


def test_list_names_an_incomplete_cluster_whose_app_name_is_hashed(
    backend: LocalBackend, tmp_path: Path
) -> None:
    org = "a-rather-long-organization-slug"
    backend.add_org(org, "Long")
    name = "a-cluster-name-long-enough-to-be-hashed"
    client = make_client(backend.transport(), RetryPolicy.never())
    backend.faults.add("server_error", method="POST", path=r"/machines$", times=None)
    with pytest.raises(FlykError):
        cluster.create(client, spec(name, org=org), options(tmp_path, keep_on_failure=True))
    backend.faults.clear()
    (found,) = cluster.list_clusters(client, [org])
    assert found.app != f"flyk-{name}-{org}"  # hashed: the name is not in it
    assert (found.name, found.org, found.state) == (name, org, "incomplete")


def test_an_incomplete_cluster_is_known_by_the_markers_on_its_app_not_its_name(
    backend: LocalBackend, tmp_path: Path
) -> None:
    client = make_client(backend.transport(), RetryPolicy.never())
    backend.faults.add("server_error", method="POST", path=r"/machines$", times=None)
    with pytest.raises(FlykError):
        cluster.create(client, spec("kept"), options(tmp_path, keep_on_failure=True))
    backend.faults.clear()
    values = {s.name: s.value for s in client.secrets.list("flyk-kept-personal", show_secrets=True)}
    assert values[records.MARKER_CLUSTER] == "kept" and values[records.MARKER_ORG] == "personal"
    # An app that merely looks like a cluster's by its name is not one.
    client.apps.create("flyk-lookalike-personal", "personal")
    found = cluster.list_clusters(client, ["personal"])
    assert [(c.name, c.org, c.state) for c in found] == [("kept", "personal", "incomplete")]


class InterruptedAfterSending(httpx.BaseTransport):
    """Ctrl-C arriving while a call was in flight: the API did it, the run never heard."""

    def __init__(self, inner: httpx.BaseTransport, method: str, path: str) -> None:
        self.inner, self.method, self.path = inner, method, path

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == self.method and request.url.path.endswith(self.path):
            raise KeyboardInterrupt
        return response


def test_resume_after_ctrl_c_during_the_machine_create_only_writes_the_kubeconfig(
    backend: LocalBackend, tmp_path: Path
) -> None:
    client = make_client(InterruptedAfterSending(backend.transport(), "POST", "/machines"))
    with pytest.raises(Interrupted) as info:
        cluster.create(client, spec(), options(tmp_path, keep_on_failure=True))
    assert info.value.hint and "resume with flyk ext k8s create demo" in info.value.hint
    client = make_client(backend.transport())
    before = footprint(client)
    assert cluster.find_cluster(client, "demo", "personal").machine is not None
    progress = RecordingProgress()
    result = cluster.create(client, spec(), options(tmp_path), progress)
    assert "already exists and is healthy" in progress.notices[0]
    assert "nothing on Fly was changed" in progress.notices[0] and result.existed
    assert footprint(client) == before
    view = kubectl_view(tmp_path / "kubeconfig")
    assert view["current-context"] == "flyk-demo" and result.kubeconfig.files
    # Now the cluster is complete: a further create says so and changes nothing.
    with pytest.raises(AlreadyExistsError):
        cluster.create(client, spec(), options(tmp_path))


def test_create_again_without_private_is_refused_and_writes_no_wrong_server(
    client: FlyClient, tmp_path: Path
) -> None:
    standalone = tmp_path / "p3.yaml"
    made = cluster.KubeconfigOptions(output=str(standalone))
    cluster.create(client, spec("p3", private=True), options(tmp_path, kubeconfig=made))
    before, kept = footprint(client), standalone.read_bytes()
    other = cluster.KubeconfigOptions(path=str(standalone))
    with pytest.raises(AlreadyExistsError) as info:
        cluster.create(client, spec("p3"), options(tmp_path, kubeconfig=other))
    assert re.search(r"private \(--private\) API, at https://127\.0\.0\.1:\d+", str(info.value))
    assert "nothing was changed" in str(info.value)
    assert footprint(client) == before and standalone.read_bytes() == kept
    cluster.create(client, spec("p4"), options(tmp_path))
    with pytest.raises(AlreadyExistsError, match=r"public \(created without --private\)"):
        cluster.create(client, spec("p4", private=True), options(tmp_path / "elsewhere"))


def test_create_again_elsewhere_writes_the_recorded_entry_and_changes_nothing_on_fly(
    client: FlyClient, tmp_path: Path
) -> None:
    first = tmp_path / "laptop1"
    cluster.create(client, spec("p3", private=True), options(tmp_path / "laptop1"))
    before = footprint(client)
    progress = RecordingProgress()
    again = cluster.create(
        client, spec("p3", private=True), options(tmp_path / "laptop2"), progress
    )
    assert footprint(client) == before and again.existed
    (notice,) = progress.notices
    assert "already exists and is healthy" in notice and "nothing on Fly was changed" in notice
    assert "had no entry for it" in notice and "recorded state" in notice
    server = kubectl_view(tmp_path / "laptop2" / "kubeconfig")["clusters"][0]["cluster"]
    assert re.fullmatch(r"https://127\.0\.0\.1:\d+", server["server"])
    assert kubectl_view(first / "kubeconfig")["clusters"][0]["cluster"] == server
    assert again.to_json()["already_existed"] is True


def test_a_second_ctrl_c_during_the_rollback_says_what_may_be_left_and_how_to_clean_up(
    backend: LocalBackend, tmp_path: Path
) -> None:
    during_rollback = InterruptingTransport(backend.transport(), "DELETE", r"/volumes/")
    client = make_client(InterruptingTransport(during_rollback, "POST", r"/machines$"))
    with pytest.raises(Interrupted) as info:
        cluster.create(client, spec(), options(tmp_path))
    error = info.value
    assert error.exit_code == 130 and not during_rollback.armed
    assert "interrupted while removing what this run created" in error.message
    assert "app flyk-demo-personal" in error.message
    assert error.hint == "clean up with flyk ext k8s delete demo --yes"
    # What the hint says works: the remains are an incomplete cluster, and delete clears them.
    client = make_client(backend.transport())
    state = cluster.status(client, "demo", "personal", probe_api=False)
    assert state.summary.state == "incomplete"
    plan = cluster.plan_deletion(client, "demo", "personal", kube_options(tmp_path))
    assert cluster.delete(client, plan, kubeconfig=kube_options(tmp_path)).leftovers == ()
    assert footprint(client) == {}


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


def test_a_failing_placements_hint_is_not_asked_again_for_alternatives(
    backend: LocalBackend, tmp_path: Path
) -> None:
    transport = CountingTransport(backend.transport())
    client = make_client(transport, RetryPolicy(sleep=lambda _s: None))
    backend.faults.add("server_error", method="POST", path=r"/platform/placements$", times=None)
    backend.capacity.set("iad", 0)
    with pytest.raises(CapacityError) as info:
        cluster.create(client, spec(), options(tmp_path))
    first_write = transport.calls.index(("POST", "/v1/apps"))
    asked = [i for i, call in enumerate(transport.calls) if call[1].endswith("/placements")]
    assert asked and max(asked) < first_write  # only the preflight hint, with its retries
    assert info.value.alternatives and "iad" not in info.value.alternatives
    assert footprint(client) == {}


def test_a_full_volume_budget_is_named_as_such(backend: LocalBackend, tmp_path: Path) -> None:
    client = make_client(backend.transport(), RetryPolicy.never())
    backend.capacity.set_volumes("iad", 0)
    with pytest.raises(CapacityError) as info:
        cluster.create(client, spec(), options(tmp_path))
    error = info.value
    assert error.exit_code == 8
    assert error.message.startswith("iad has no capacity for a 1 GB volume right now (")
    assert "shared-cpu" not in error.message
    assert error.alternatives and "iad" not in error.alternatives
    assert error.hint and "Regions with room for the machine and its volume now" in error.hint
    assert footprint(client) == {}


def test_a_timeout_with_keep_on_failure_does_not_suggest_the_flag_again(
    backend: LocalBackend, tmp_path: Path
) -> None:
    clock = Clock()
    retry = RetryPolicy(clock=clock, sleep=clock.advance)
    client = make_client(SlowCall(backend.transport(), clock, "/volumes", 95.0), retry)
    with pytest.raises(WaitTimeoutError) as info:
        cluster.create(client, spec(), options(tmp_path, timeout=90.0, keep_on_failure=True))
    hint = info.value.hint or ""
    assert "--timeout 3m" in hint and "or with --keep-on-failure" not in hint
    assert "resume with flyk ext k8s create demo" in hint


def test_an_incomplete_cluster_is_listed_in_its_volume_region(
    backend: LocalBackend, tmp_path: Path
) -> None:
    client = make_client(backend.transport(), RetryPolicy.never())
    backend.faults.add("server_error", method="POST", path=r"/machines$", times=None)
    with pytest.raises(FlykError):
        cluster.create(client, spec(region="ams"), options(tmp_path, keep_on_failure=True))
    (listed,) = cluster.list_clusters(client, ["personal"])
    assert (listed.state, listed.region) == ("incomplete", "ams")
    assert cluster.status(client, "demo", "personal", probe_api=False).summary.region == "ams"


class SecondCreateMeanwhile(httpx.BaseTransport):
    """Runs `meanwhile` (another create of the same name) just before the first machine
    create is sent: the moment two creates of one name started together would overlap."""

    def __init__(self, inner: httpx.BaseTransport, meanwhile: Callable[[], object]) -> None:
        self.inner, self.meanwhile = inner, meanwhile
        self.outcome: BaseException | object | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if (
            self.outcome is None
            and request.method == "POST"
            and request.url.path.endswith("/machines")
        ):
            try:
                self.outcome = self.meanwhile()
            except FlykError as exc:
                self.outcome = exc
        return self.inner.handle_request(request)


def test_a_second_create_of_a_cluster_being_built_is_refused_not_resumed(
    backend: LocalBackend, tmp_path: Path
) -> None:
    other = make_client(backend.transport())
    transport = SecondCreateMeanwhile(
        backend.transport(),
        lambda: cluster.create(other, spec(), options(tmp_path / "second")),
    )
    first = cluster.create(make_client(transport), spec(), options(tmp_path))
    refused = transport.outcome
    assert isinstance(refused, ConflictError) and refused.exit_code == 5
    assert str(refused).startswith("another create of cluster demo is running")
    assert refused.hint and "retry after" in refused.hint
    (machine,) = other.machines.list("flyk-demo-personal")  # one control plane, the first's
    assert machine.id == first.machine.id
    assert not (tmp_path / "second" / "kubeconfig").exists()


def test_a_kept_failure_clears_its_marker_so_create_resumes_at_once(
    backend: LocalBackend, tmp_path: Path
) -> None:
    client = make_client(backend.transport(), RetryPolicy.never())
    backend.faults.add("server_error", method="POST", path=r"/machines$", times=None)
    with pytest.raises(FlykError):
        cluster.create(client, spec(), options(tmp_path, keep_on_failure=True))
    names = {s.name for s in client.secrets.list("flyk-demo-personal")}
    assert records.MARKER_CREATING not in names
    backend.faults.clear()
    assert cluster.create(client, spec(), options(tmp_path)).machine.state == "started"


def test_a_finished_create_clears_its_marker_so_a_stopped_cluster_resumes_at_once(
    client: FlyClient, tmp_path: Path
) -> None:
    first = cluster.create(client, spec(), options(tmp_path))
    names = {s.name for s in client.secrets.list("flyk-demo-personal")}
    assert records.MARKER_CREATING not in names
    # Stopped (or its check failing) minutes later: create NAME restarts it, rather than
    # "another create of cluster demo is running" until the first create's --timeout ends.
    client.machines.stop("flyk-demo-personal", first.machine.id)
    client.machines.wait("flyk-demo-personal", first.machine.id, "stopped", timeout=30)
    again = cluster.create(client, spec(), options(tmp_path / "again"))
    assert again.machine.id == first.machine.id and again.machine.state == "started"


class StopsBeforeFirstCheck(httpx.BaseTransport):
    """Stops the control plane (as someone might) just before create first reads its check."""

    def __init__(self, inner: httpx.BaseTransport, other: FlyClient) -> None:
        self.inner, self.other, self.done = inner, other, False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.rstrip("/").split("/")
        if not self.done and request.method == "GET" and parts[-2] == "machines":
            self.done = True
            self.other.machines.stop(parts[-3], parts[-1])
            self.other.machines.wait(parts[-3], parts[-1], "stopped", timeout=30)
        return self.inner.handle_request(request)


def test_a_control_plane_stopped_during_the_check_wait_is_a_dead_end_exit_10(
    backend: LocalBackend, tmp_path: Path
) -> None:
    other = make_client(backend.transport())
    client = make_client(StopsBeforeFirstCheck(backend.transport(), other))
    with pytest.raises(MachineStateError) as caught:
        cluster.create(client, spec(), options(tmp_path))
    assert caught.value.exit_code == 10  # as every wait of flyk's that cannot end well
    assert caught.value.hint and "flyk machine status" in caught.value.hint
    assert footprint(other) == {}  # rolled back
