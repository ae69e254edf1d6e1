"""The client against the embedded local backend: in-process and over real HTTP.

Every request and response is checked against the OpenAPI spec (`SpecCheckingTransport`), so
a bug shared by the client and the backend cannot pass both. The backend is written from the
spec, never from this client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flyk.api import (
    LAUNCH_ID_KEY,
    FlyClient,
    GuestConfig,
    MachineConfig,
    RateLimiter,
    RestartConfig,
    RetryPolicy,
    StopConfig,
)
from flyk.errors import (
    CapacityError,
    ConflictError,
    LeaseHeldError,
    MachineStateError,
    NotFoundError,
    RateLimitedError,
    WaitTimeoutError,
)

local = pytest.importorskip("flyk.local")
spec_check = pytest.importorskip("spec_check")

LocalBackend: Any = getattr(local, "LocalBackend", None)
Timing: Any = getattr(local, "Timing", None)
if LocalBackend is None or Timing is None:  # the backend package exists but is not wired yet
    pytest.skip("flyk.local.LocalBackend is not available yet", allow_module_level=True)

ORG = "personal"
GUEST = GuestConfig(cpu_kind="shared", cpus=1, memory_mb=256)
IMAGE = "registry-1.docker.io/library/nginx:latest"


def _config(**metadata: str) -> MachineConfig:
    return MachineConfig(image=IMAGE, guest=GUEST, metadata=metadata)


class SkewClock:
    """Real time plus a skew that "sleeping" adds to: the backend and the client's rate
    limiter share it, so a limiter wait moves both forward without sleeping for real.

    `freeze()` stops real time counting: then only "sleeping" moves the clock, and the client
    and the backend read the same instant however long a request takes to get there (a loaded
    machine's stall between the limiter and the backend would otherwise shift their buckets)."""

    def __init__(self) -> None:
        self.skew = 0.0
        self._frozen: tuple[float, float] | None = None

    def freeze(self) -> None:
        self._frozen = (time.time(), time.monotonic())

    def wall(self) -> float:
        return (self._frozen[0] if self._frozen else time.time()) + self.skew

    def monotonic(self) -> float:
        return (self._frozen[1] if self._frozen else time.monotonic()) + self.skew

    def sleep(self, seconds: float) -> None:
        self.skew += seconds


@pytest.fixture
def skew() -> SkewClock:
    return SkewClock()


@pytest.fixture
def backend(tmp_path: Path, skew: SkewClock) -> Iterator[Any]:
    instance = LocalBackend(path=tmp_path / "local.db", timing=Timing.instant(), clock=skew.wall)
    yield instance
    close = getattr(instance, "close", None)
    if close is not None:
        close()


ClientFactory = Callable[..., FlyClient]


@pytest.fixture(params=["in-process", pytest.param("served", marks=pytest.mark.served)])
def make(request: pytest.FixtureRequest, backend: Any) -> Iterator[ClientFactory]:
    """Builds clients on the chosen target, each wrapped in the spec checker."""
    served = backend.serve() if request.param == "served" else None
    clients: list[FlyClient] = []

    def factory(**options: Any) -> FlyClient:
        if served is not None:
            inner: httpx.BaseTransport = httpx.HTTPTransport()
            base_url = served.url
        else:
            inner = backend.transport()
            base_url = "http://local.flyk"
        options.setdefault("rate_limiter", RateLimiter.unlimited())
        client = FlyClient(
            base_url, None, transport=spec_check.SpecCheckingTransport(inner), **options
        )
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()
    if served is not None:
        served.close()


@pytest.fixture
def client(make: ClientFactory) -> FlyClient:
    return make()


@pytest.fixture
def app(client: FlyClient) -> str:
    return client.apps.create("flyk-test-app", ORG).name


def test_apps_lifecycle(client: FlyClient) -> None:
    made = client.apps.create("flyk-apps", ORG)
    assert made.name == "flyk-apps"
    assert "flyk-apps" in [a.name for a in client.apps.list(ORG)]
    assert client.apps.get("flyk-apps").name == "flyk-apps"
    client.apps.delete("flyk-apps")
    with pytest.raises(NotFoundError):
        client.apps.get("flyk-apps")


def test_machine_lifecycle(client: FlyClient, app: str) -> None:
    machine = client.machines.create(app, _config(role="web"), region="ord", name="web-1")
    assert machine.metadata[LAUNCH_ID_KEY]
    assert client.machines.wait(app, machine.id, "started", timeout=30) == "started"
    got = client.machines.get(app, machine.id)
    assert got.state == "started" and got.config is not None and got.config.image == IMAGE
    assert [m.id for m in client.machines.list(app, metadata={"role": "web"})] == [machine.id]
    assert client.machines.list(app, metadata={"role": "db"}) == []

    client.machines.stop(app, machine.id, signal="SIGTERM", timeout=5)
    client.machines.wait(app, machine.id, "stopped", version=got.version, timeout=30)
    client.machines.start(app, machine.id)
    client.machines.wait(app, machine.id, "started", timeout=30)

    assert got.config is not None
    updated = client.machines.update(
        app,
        machine.id,
        got.config.with_metadata(role="web", tier="front"),
        current_version=got.version,
    )
    assert updated.metadata["tier"] == "front"
    assert updated.metadata[LAUNCH_ID_KEY] == machine.metadata[LAUNCH_ID_KEY]
    assert len(client.machines.versions(app, machine.id)) >= 2
    assert client.machines.events(app, machine.id)

    client.machines.destroy(app, machine.id, force=True)
    assert client.machines.wait(app, machine.id, "destroyed", timeout=30) == "destroyed"


def test_actions_and_metadata(client: FlyClient, app: str) -> None:
    machine = client.machines.create(
        app,
        MachineConfig(
            image=IMAGE, guest=GUEST, stop_config=StopConfig(signal="SIGINT", timeout="5s")
        ),
    )
    client.machines.wait(app, machine.id, "started", timeout=30)
    client.machines.cordon(app, machine.id)
    client.machines.uncordon(app, machine.id)
    client.machines.set_metadata(app, machine.id, "flyk_pod", "p1")
    assert client.machines.metadata(app, machine.id)["flyk_pod"] == "p1"
    client.machines.delete_metadata(app, machine.id, "flyk_pod")
    assert "flyk_pod" not in client.machines.metadata(app, machine.id)
    client.machines.restart(app, machine.id, timeout=5)
    client.machines.wait(app, machine.id, "started", timeout=30)
    client.machines.signal(app, machine.id, "SIGUSR1")
    client.machines.suspend(app, machine.id)
    client.machines.wait(app, machine.id, "suspended", timeout=30)
    client.machines.destroy(app, machine.id, force=True)


def test_leases(client: FlyClient, app: str) -> None:
    machine = client.machines.create(app, _config())
    with client.machines.lease(app, machine.id, ttl=30, description="test") as lease:
        assert lease.nonce
        with pytest.raises(LeaseHeldError):
            client.machines.acquire_lease(app, machine.id, ttl=30)
        held = client.machines.get_lease(app, machine.id)
        assert held is not None and held.description == "test"
        client.machines.stop(app, machine.id, nonce=lease.nonce)
    assert client.machines.get_lease(app, machine.id) is None
    # released: anyone may take it now
    lease = client.machines.acquire_lease(app, machine.id, ttl=30)
    client.machines.release_lease(app, machine.id, lease.nonce)


def test_mutations_inside_a_lease_block_send_its_nonce(client: FlyClient, app: str) -> None:
    leased = client.machines.create(app, _config())
    other = client.machines.create(app, _config())
    other_lease = client.machines.acquire_lease(app, other.id, ttl=30)
    refused: list[Exception] = []

    def stop_from_another_thread() -> None:
        try:
            client.machines.stop(app, leased.id)
        except ConflictError as exc:
            refused.append(exc)

    with client.machines.lease(app, leased.id, ttl=30):
        client.machines.stop(app, leased.id)  # no nonce passed: the block's is sent
        client.machines.wait(app, leased.id, "stopped", timeout=30)
        client.machines.start(app, leased.id)
        # the block holds this machine's lease only, and only in its own thread
        with pytest.raises(ConflictError, match="no nonce was sent"):
            client.machines.stop(app, other.id)
        worker = threading.Thread(target=stop_from_another_thread)
        worker.start()
        worker.join()
        assert len(refused) == 1
        # an explicit nonce wins over the block's
        with pytest.raises(ConflictError, match="does not match"):
            client.machines.stop(app, leased.id, nonce="not-the-nonce")
    client.machines.stop(app, other.id, nonce=other_lease.nonce)
    client.machines.release_lease(app, other.id, other_lease.nonce)
    # after the block the lease is released, and no stale nonce is sent
    client.machines.acquire_lease(app, leased.id, ttl=30)
    with pytest.raises(ConflictError, match="no nonce was sent"):
        client.machines.stop(app, leased.id)


def test_create_with_lease_ttl_returns_a_nonce(client: FlyClient, app: str) -> None:
    machine = client.machines.create(app, _config(), lease_ttl=30)
    assert machine.nonce
    client.machines.release_lease(app, machine.id, machine.nonce)


def test_volumes(client: FlyClient, app: str) -> None:
    volume = client.volumes.create(app, "data", "ord", 1, compute=GUEST)
    assert client.volumes.get(app, volume.id).size_gb == 1
    assert [v.id for v in client.volumes.list(app)] == [volume.id]
    extended = client.volumes.extend(app, volume.id, 3)
    assert extended.volume is not None and extended.volume.size_gb == 3
    client.volumes.delete(app, volume.id)


def test_secrets_version_feeds_min_secrets_version(client: FlyClient, app: str) -> None:
    version = client.secrets.set(app, {"A": "1", "B": "2"})
    assert sorted(s.name for s in client.secrets.list(app)) == ["A", "B"]
    later = client.secrets.set(app, {"B": None})
    assert later > version
    assert [s.name for s in client.secrets.list(app)] == ["A"]
    client.machines.create(app, _config(), min_secrets_version=later)
    assert client.secrets.delete(app, "A") > later


def test_secret_values_are_read_back_only_when_asked_for(client: FlyClient, app: str) -> None:
    version = client.secrets.set(app, {"A": "one", "B": "two"})
    assert [s.value for s in client.secrets.list(app)] == [None, None]
    shown = client.secrets.list(app, show_secrets=True, min_version=version)
    assert {s.name: s.value for s in shown} == {"A": "one", "B": "two"}
    assert client.secrets.get(app, "B").value is None
    assert client.secrets.get(app, "B", show_secrets=True).value == "two"
    with pytest.raises(NotFoundError):
        client.secrets.get(app, "C")


def test_ips(client: FlyClient, app: str) -> None:
    ip = client.ips.create(app, "v6")
    assert ip.ip in [i.ip for i in client.ips.list(app)]
    client.ips.delete(app, ip.ip)
    assert client.ips.list(app) == []


def test_platform(client: FlyClient) -> None:
    regions = client.platform.regions()
    assert "ord" in regions.codes()
    placements = client.platform.placements(ORG, region="ord", compute=GUEST, count=2)
    assert placements and placements[0].region


def test_capacity_error_names_the_region(backend: Any, client: FlyClient, app: str) -> None:
    backend.capacity.set("ams", 0)
    with pytest.raises(CapacityError) as caught:
        client.machines.create(app, _config(), region="ams")
    assert caught.value.region == "ams"
    assert client.machines.list(app) == []


def test_a_volume_without_room_is_a_capacity_error(
    backend: Any, client: FlyClient, app: str
) -> None:
    backend.capacity.set_volumes("ams", 0)
    with pytest.raises(CapacityError) as caught:
        client.volumes.create(app, "data", "ams", 1)
    assert caught.value.region == "ams"
    assert client.volumes.list(app) == []


def test_dropped_connections_after_commit_never_duplicate(
    backend: Any, make: ClientFactory
) -> None:
    client = make(retry=RetryPolicy(initial_delay=0.001, max_delay=0.01))
    app = client.apps.create("flyk-drops", ORG).name
    backend.faults.add("drop_after_commit", method="POST", path=r"/machines$", times=None)
    backend.faults.add("server_error", method="POST", path=r"/machines$", times=5, status=502)
    made = [client.machines.create(app, _config(n=str(n))) for n in range(25)]
    listed = client.machines.list(app)
    assert len({m.id for m in made}) == 25
    assert len(listed) == 25
    launch_ids = [m.metadata[LAUNCH_ID_KEY] for m in listed]
    assert len(set(launch_ids)) == 25


def test_a_create_with_lease_ttl_whose_answer_is_dropped_still_returns_a_held_lease(
    backend: Any, make: ClientFactory, skew: SkewClock
) -> None:
    acquires: list[int] = []

    def record(request: httpx.Request, response: httpx.Response) -> None:
        if request.method == "POST" and request.url.path.endswith("/lease"):
            acquires.append(response.status_code)

    client = make(
        retry=RetryPolicy(clock=skew.monotonic, wall_clock=skew.wall, sleep=skew.sleep),
        on_exchange=record,
    )
    app = client.apps.create("flyk-lease-drop", ORG).name
    backend.faults.add("drop_after_commit", method="POST", path=r"/machines$", times=1)
    machine = client.machines.create(app, _config(), lease_ttl=5)
    assert [m.id for m in client.machines.list(app)] == [machine.id]
    # the create's own lease (its nonce was lost with the answer) was waited out, not adopted
    assert acquires == [409, 201]
    held = client.machines.get_lease(app, machine.id)
    assert machine.nonce and held is not None and held.nonce == machine.nonce
    client.machines.stop(app, machine.id, nonce=machine.nonce)
    client.machines.release_lease(app, machine.id, machine.nonce)
    assert client.machines.get_lease(app, machine.id) is None


def test_rate_limiter_keeps_a_burst_under_the_backends_limits(
    backend: Any, make: ClientFactory, skew: SkewClock
) -> None:
    skew.freeze()  # the limiter's arithmetic against the backend's, without real-time jitter
    statuses: list[int] = []
    client = make(
        rate_limiter=RateLimiter(clock=skew.monotonic, sleep=skew.sleep),
        retry=RetryPolicy.never(),
        on_exchange=lambda request, response: statuses.append(response.status_code),
    )
    app = client.apps.create("flyk-burst", ORG).name
    machine = client.machines.create(app, _config())
    backend.rate_limits.enable()
    for _ in range(5):
        client.machines.cordon(app, machine.id)
    for _ in range(14):
        client.machines.get(app, machine.id)
    assert 429 not in statuses
    assert len(statuses) >= 21
    assert skew.skew >= 2.0  # the limiter did make us wait: 5 cordons at 1/s after a burst of 3


def test_without_the_limiter_the_same_burst_is_refused(
    backend: Any, make: ClientFactory, skew: SkewClock
) -> None:
    """The control for the test above: the backend's limits are real."""
    skew.freeze()
    client = make(rate_limiter=RateLimiter.unlimited(), retry=RetryPolicy.never())
    app = client.apps.create("flyk-burst", ORG).name
    machine = client.machines.create(app, _config())
    backend.rate_limits.enable()
    with pytest.raises(RateLimitedError):
        for _ in range(5):
            client.machines.cordon(app, machine.id)


def test_exec_events_and_filters(client: FlyClient, app: str) -> None:
    machine = client.machines.create(app, _config(), region="ord")
    client.machines.wait(app, machine.id, "started", timeout=30)
    result = client.machines.exec(app, machine.id, ["echo", "hello"], timeout=10)
    assert result.exit_code is not None
    assert [m.id for m in client.machines.list(app, state="started", region="ord")] == [machine.id]
    assert client.machines.list(app, state=["stopped", "suspended"]) == []
    assert client.machines.list(app, summary=True)[0].id == machine.id
    client.machines.destroy(app, machine.id, force=True)
    client.machines.wait(app, machine.id, "destroyed", timeout=30)
    assert client.machines.list(app) == []
    assert [m.id for m in client.machines.list(app, include_deleted=True)] == [machine.id]
    kinds = [event.type for event in client.machines.events(app, machine.id)]
    assert "launch" in kinds or "start" in kinds


def test_wait_for_any_of_several_states(client: FlyClient, app: str) -> None:
    machine = client.machines.create(app, _config())
    assert client.machines.wait(app, machine.id, ["failed", "started"], timeout=30) == "started"


def test_wait_times_out_with_the_deadline(client: FlyClient, app: str) -> None:
    machine = client.machines.create(app, _config(), skip_launch=True)  # stays "created"
    with pytest.raises(WaitTimeoutError):
        client.machines.wait(app, machine.id, "started", timeout=1)


def test_token_info(client: FlyClient) -> None:
    assert client.tokens.current() is not None


def test_ambiguous_app_create_is_resolved(backend: Any, make: ClientFactory) -> None:
    client = make(retry=RetryPolicy(initial_delay=0.001, max_delay=0.01))
    backend.faults.add("drop_after_commit", method="POST", path=r"^/apps$", times=1)
    assert client.apps.create("flyk-dropped-app", ORG).name == "flyk-dropped-app"
    assert [a.name for a in client.apps.list(ORG)].count("flyk-dropped-app") == 1


def test_server_retry_after_is_honoured(backend: Any, make: ClientFactory, skew: SkewClock) -> None:
    client = make(retry=RetryPolicy(clock=skew.monotonic, wall_clock=skew.wall, sleep=skew.sleep))
    app = client.apps.create("flyk-retry-after", ORG).name
    backend.faults.add("rate_limit", method="GET", path=r"/machines$", times=2, retry_after=3)
    assert client.machines.list(app) == []
    assert skew.skew >= 6.0  # two Retry-After: 3 waits, slept on the injected clock
    backend.faults.add("server_error", method="GET", path=r"/machines$", times=2, status=503)
    assert client.machines.list(app) == []


# -- waits that end early: the machine came to rest where it stays -----------------------------


def _run(client: FlyClient, app: str, **fields: Any) -> str:
    config = MachineConfig(image=IMAGE, guest=GUEST, **fields)
    return client.machines.create(app, config, region="ord").id


def test_waiting_for_started_ends_when_the_start_fails(client: FlyClient, app: str) -> None:
    machine_id = _run(client, app, env={"FLYK_SIM_START_FAILS": "1"})
    with pytest.raises(MachineStateError, match="failed and will not reach started") as raised:
        client.machines.wait(app, machine_id, "started", timeout=30)
    assert raised.value.state == "failed" and raised.value.exit_code == 10


def test_waiting_for_started_ends_on_an_exit_with_no_restart(client: FlyClient, app: str) -> None:
    machine_id = _run(
        client, app, env={"FLYK_SIM_EXIT_CODE": "3"}, restart=RestartConfig(policy="no")
    )
    with pytest.raises(MachineStateError, match=r" stopped \(exit code 3\)") as raised:
        client.machines.wait(app, machine_id, "started", timeout=30)
    assert raised.value.state == "stopped" and raised.value.machine_exit_code == 3


def test_waiting_for_started_ends_when_the_machine_destroys_itself(
    client: FlyClient, app: str
) -> None:
    machine_id = _run(client, app, env={"FLYK_SIM_EXIT_CODE": "0"}, auto_destroy=True)
    with pytest.raises(MachineStateError, match="was destroyed"):
        client.machines.wait(app, machine_id, "started", timeout=30)


def test_a_state_asked_for_is_returned_not_raised(client: FlyClient, app: str) -> None:
    machine_id = _run(client, app, env={"FLYK_SIM_START_FAILS": "1"})
    assert client.machines.wait(app, machine_id, ["started", "failed"], timeout=30) == "failed"


def test_a_stopped_machine_started_again_is_waited_for(client: FlyClient, app: str) -> None:
    machine_id = _run(client, app)
    client.machines.wait(app, machine_id, "started", timeout=30)
    client.machines.stop(app, machine_id)
    client.machines.wait(app, machine_id, "stopped", timeout=30)
    with pytest.raises(MachineStateError, match=r" stopped \(exit code 0\)"):
        client.machines.wait(app, machine_id, "started", timeout=30)
    client.machines.start(app, machine_id)
    assert client.machines.wait(app, machine_id, "started", timeout=30) == "started"


def test_timeout_zero_polls_once(client: FlyClient, app: str) -> None:
    machine_id = _run(client, app)
    client.machines.wait(app, machine_id, "started", timeout=30)
    assert client.machines.wait(app, machine_id, "started", timeout=0) == "started"


def test_a_created_machine_is_waited_for_until_the_deadline(client: FlyClient, app: str) -> None:
    # "created" is at rest but not for good: the wait goes on (from its last event) and times out
    config = MachineConfig(image=IMAGE, guest=GUEST)
    machine_id = client.machines.create(app, config, region="ord", skip_launch=True).id
    with pytest.raises(WaitTimeoutError):
        client.machines.wait(app, machine_id, "started", timeout=1)


# -- a lease someone else holds is waited for -------------------------------------------------


def test_a_lease_released_meanwhile_is_taken(
    backend: Any, make: ClientFactory, skew: SkewClock
) -> None:
    holder = make()
    app = holder.apps.create("flyk-lease-wait", ORG).name
    machine_id = holder.machines.create(app, _config()).id
    theirs = holder.machines.acquire_lease(app, machine_id, ttl=60, description="deploy")
    # the holder lets go while we wait (here, at our first backoff)
    waiter = make(
        retry=RetryPolicy(
            clock=skew.monotonic,
            wall_clock=skew.wall,
            sleep=lambda _: holder.machines.release_lease(app, machine_id, theirs.nonce),
        )
    )
    told: list[str | None] = []
    with waiter.machines.lease(
        app, machine_id, on_wait=lambda lease: told.append(lease and lease.description)
    ) as ours:
        assert ours.nonce != theirs.nonce
    assert told == ["deploy"]


def test_a_lease_left_to_expire_is_taken_after_its_ttl(
    backend: Any, make: ClientFactory, skew: SkewClock
) -> None:
    skew.freeze()  # only sleeping moves time: the TTL runs out in our sleeps, not on its own
    holder = make()
    app = holder.apps.create("flyk-lease-expiry", ORG).name
    machine_id = holder.machines.create(app, _config()).id
    holder.machines.acquire_lease(app, machine_id, ttl=3)
    waiting = RetryPolicy(clock=skew.monotonic, wall_clock=skew.wall, sleep=skew.sleep)
    lease = make(retry=waiting).machines.acquire_lease(app, machine_id, ttl=30, wait=30)
    assert lease.nonce and 3.0 <= skew.skew < 30.0
    with pytest.raises(LeaseHeldError, match="waited 5 s"):
        make(retry=waiting).machines.acquire_lease(app, machine_id, ttl=30, wait=5)
