"""Create against the in-process local backend: provisioning, checks, rollback, resume, timeouts."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from flyk.api import FlyClient, RetryPolicy
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
from flyk.k8s.progress import RecordingProgress
from flyk.local import LocalBackend, Timing
from tests.k8s.cluster.helpers import footprint, kube_options, kubectl_view, options, spec
from tests.k8s.conftest import CountingTransport, InterruptingTransport, make_client


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


def _contexts(path: Path) -> dict[str, dict[str, Any]]:
    """Cluster entries by name, as kubectl reads the file."""
    return {c["name"]: c["cluster"] for c in kubectl_view(path)["clusters"]}


def test_clusters_of_one_name_in_two_orgs_get_entries_of_their_own(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "db", timing=Timing.instant(), orgs=("acme",))
    client = make_client(backend.transport())
    personal = cluster.create(client, spec("same"), options(tmp_path))
    acme = cluster.create(client, spec("same", org="acme"), options(tmp_path))
    assert (personal.kubeconfig.context, acme.kubeconfig.context) == ("flyk-same", "flyk-same@acme")
    entries = _contexts(tmp_path / "kubeconfig")
    assert set(entries) == {"flyk-same", "flyk-same@acme"}
    assert entries["flyk-same"] != entries["flyk-same@acme"]  # two CAs
    assert acme.to_json()["context"] == "flyk-same@acme"
    plan = cluster.plan_deletion(client, "same", "personal", kube_options(tmp_path))
    cluster.delete(client, plan, kubeconfig=kube_options(tmp_path))
    assert set(_contexts(tmp_path / "kubeconfig")) == {"flyk-same@acme"}  # acme's stays


def test_an_entry_of_the_name_for_another_cluster_is_refused_before_anything_is_created(
    client: FlyClient, tmp_path: Path
) -> None:
    """The same name on another target (or an earlier cluster deleted behind flyk's back)."""
    cluster.create(client, spec(), options(tmp_path))
    kube = (tmp_path / "kubeconfig").read_bytes()
    elsewhere = make_client(LocalBackend(tmp_path / "other", timing=Timing.instant()).transport())
    for attempt in (cluster.dry_run, cluster.create):
        with pytest.raises(ConflictError) as info:
            attempt(elsewhere, spec(), options(tmp_path))
        assert info.value.exit_code == 5
        assert "already has an entry flyk-demo for another cluster" in info.value.message
        assert info.value.hint and "kubectl config delete-context flyk-demo" in info.value.hint
    assert footprint(elsewhere) == {}
    assert (tmp_path / "kubeconfig").read_bytes() == kube
    cluster.create(elsewhere, spec(), options(tmp_path / "own"))
    entry = cluster.rebuild_kubeconfig(elsewhere, "demo", "personal")
    for kube_options_ in (
        cluster.KubeconfigOptions(path=str(tmp_path / "kubeconfig")),
        cluster.KubeconfigOptions(output=str(tmp_path / "kubeconfig")),
    ):
        with pytest.raises(ConflictError):  # nor by a kubeconfig rebuilt for the other cluster
            kube_options_.merge(entry)
    assert (tmp_path / "kubeconfig").read_bytes() == kube
