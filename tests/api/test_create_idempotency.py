"""Machine create after an ambiguous failure never makes a second machine."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from flyk.api import LAUNCH_ID_KEY, MachineConfig
from flyk.errors import CapacityError, FlykError, InvalidRequestError, ServerError

from .helpers import FakeClock, make_client


class FlakyMachines:
    """A tiny machines API that commits each create and then fails the answer as scripted.

    `failures` is consumed one per create: "read" drops the connection after committing,
    "5xx" commits and answers 502, "408" commits and answers 408, "5xx-before" answers 503
    without committing, "connect" refuses the connection (nothing committed).
    """

    def __init__(self, *failures: str) -> None:
        self.failures = list(failures)
        self.machines: list[dict[str, Any]] = []
        self.creates = 0
        self.lists = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path == "/v1/apps/a/machines":
            self.lists += 1
            return httpx.Response(200, json=self.machines)
        assert request.method == "POST" and request.url.path == "/v1/apps/a/machines"
        self.creates += 1
        failure = self.failures.pop(0) if self.failures else None
        if failure == "connect":
            raise httpx.ConnectError("refused", request=request)
        if failure == "5xx-before":
            return httpx.Response(503, json={"error": "unavailable"})
        body = json.loads(request.content)
        machine = {"id": f"m{len(self.machines) + 1}", "state": "created", "config": body["config"]}
        self.machines.append(machine)
        if failure == "read":
            raise httpx.ReadError("connection reset by peer", request=request)
        if failure == "5xx":
            return httpx.Response(502, text="bad gateway")
        if failure == "408":
            return httpx.Response(408, json={"error": "request timeout"})
        return httpx.Response(200, json=machine)


@pytest.mark.parametrize("failure", ["read", "5xx", "408"])
def test_commit_then_failure_returns_the_committed_machine(failure: str) -> None:
    api = FlakyMachines(failure)
    with make_client(api, FakeClock()) as fly:
        machine = fly.machines.create("a", MachineConfig(image="nginx"))
    assert len(api.machines) == 1
    assert api.creates == 1 and api.lists == 1
    assert machine.id == "m1"
    assert machine.metadata[LAUNCH_ID_KEY] == api.machines[0]["config"]["metadata"][LAUNCH_ID_KEY]


def test_failure_before_commit_is_retried_once_listing_shows_nothing() -> None:
    api = FlakyMachines("5xx-before", "5xx-before")
    clock = FakeClock()
    with make_client(api, clock) as fly:
        machine = fly.machines.create("a", MachineConfig(image="nginx"))
    assert [m["id"] for m in api.machines] == [machine.id]
    assert api.creates == 3 and api.lists == 4  # each failure: list, pause, list again
    assert len(clock.sleeps) == 2


def test_refused_connection_is_retried_without_listing() -> None:
    api = FlakyMachines("connect")
    with make_client(api, FakeClock()) as fly:
        fly.machines.create("a", MachineConfig(image="nginx"))
    assert api.creates == 2 and api.lists == 0 and len(api.machines) == 1


def test_many_creates_with_dropped_answers_make_no_duplicates() -> None:
    api = FlakyMachines(*(["read", "5xx", "408", "5xx-before", "ok"] * 10))
    with make_client(api, FakeClock()) as fly:
        made = [fly.machines.create("a", MachineConfig(image="nginx")) for _ in range(40)]
    assert len({m.id for m in made}) == 40
    assert len(api.machines) == 40
    launch_ids = [m["config"]["metadata"][LAUNCH_ID_KEY] for m in api.machines]
    assert len(set(launch_ids)) == 40


def test_a_caller_supplied_launch_id_is_kept_so_its_own_retry_is_deduplicated() -> None:
    api = FlakyMachines()
    config = MachineConfig(image="nginx", metadata={LAUNCH_ID_KEY: "pod-uid-1"})
    with make_client(api, FakeClock()) as fly:
        fly.machines.create("a", config)
        assert fly.machines.find_launched("a", "pod-uid-1") is not None
    assert api.machines[0]["config"]["metadata"] == {LAUNCH_ID_KEY: "pod-uid-1"}


def test_persistent_server_errors_give_up_at_max_attempts() -> None:
    api = FlakyMachines(*["5xx-before"] * 10)
    with make_client(api, FakeClock(), max_attempts=3) as fly, pytest.raises(ServerError):
        fly.machines.create("a", MachineConfig(image="nginx"))
    assert api.creates == 3 and api.machines == []


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, {"error": "invalid image"}, InvalidRequestError),
        (
            412,
            {"error": "insufficient resources to create new machine with existing volume 'vol_1'"},
            CapacityError,
        ),
    ],
)
def test_definite_refusals_are_raised_at_once(
    status: int, body: dict[str, str], error: type[Exception]
) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(status, json=body)

    with make_client(handler, FakeClock()) as fly, pytest.raises(error) as caught:
        fly.machines.create("a", MachineConfig(image="x"), region="ams")
    assert len(calls) == 1
    if isinstance(caught.value, CapacityError):
        assert caught.value.region == "ams"


def test_ambiguous_app_create_finds_the_app() -> None:
    created: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            if created:
                return httpx.Response(422, json={"error": "Name has already been taken"})
            created.append("a")
            raise httpx.ReadError("reset", request=request)
        if created:
            return httpx.Response(200, json={"name": "a", "organization": {"slug": "personal"}})
        return httpx.Response(404, json={"error": "not found"})

    with make_client(handler, FakeClock()) as fly:
        assert fly.apps.create("a", "personal").name == "a"
    assert created == ["a"]


def test_a_create_answer_without_an_id_is_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"state": "created"})

    with make_client(handler, FakeClock()) as fly, pytest.raises(FlykError, match="did not say"):
        fly.machines.create("a", MachineConfig(image="x"))


class LaggingList(FlakyMachines):
    """Commits the create, drops the answer, and lists the new machine only on the 2nd look."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            self.lists += 1
            visible = self.machines if self.lists > 1 else []
            return httpx.Response(200, json=visible)
        return super().__call__(request)


def test_a_list_that_lags_the_write_is_looked_at_again_before_resending() -> None:
    api = LaggingList("read")
    with make_client(api, FakeClock()) as fly:
        machine = fly.machines.create("a", MachineConfig(image="nginx"))
    assert api.creates == 1 and api.lists == 2
    assert [m["id"] for m in api.machines] == [machine.id]


def test_a_named_retry_refused_as_taken_returns_the_first_attempts_machine() -> None:
    class NameTaken(LaggingList):
        """Lists nothing until the third look; refuses a second create of the same name."""

        def __call__(self, request: httpx.Request) -> httpx.Response:
            if request.method == "POST" and self.machines:
                self.creates += 1
                return httpx.Response(409, json={"error": "machine name already exists"})
            if request.method == "GET":
                self.lists += 1
                return httpx.Response(200, json=self.machines if self.lists > 2 else [])
            return super().__call__(request)

    api = NameTaken("read")
    with make_client(api, FakeClock()) as fly:
        machine = fly.machines.create("a", MachineConfig(image="nginx"), name="web")
    assert api.creates == 2 and len(api.machines) == 1
    assert machine.id == api.machines[0]["id"]


class LeasingMachines(FlakyMachines):
    """FlakyMachines with leases: a create with `lease_ttl` leases the machine it commits
    (as the API does), and `/lease` acquires, shows and refuses as the API would.

    Time is the test's FakeClock (`wall()`), so leases expire when the client sleeps.
    """

    def __init__(self, clock: FakeClock, *failures: str, lease_on_create: bool = True) -> None:
        super().__init__(*failures)
        self.clock = clock
        self.lease_on_create = lease_on_create
        self.leases: dict[str, dict[str, Any]] = {}
        self.acquires = 0
        self.acquire_failures: list[str] = []
        self.granted = 0

    def _grant(self, machine_id: str, ttl: int) -> dict[str, Any]:
        self.granted += 1
        lease = {"nonce": f"n{self.granted}", "expires_at": int(self.clock.wall()) + ttl}
        self.leases[machine_id] = lease
        return lease

    def __call__(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.removeprefix("/v1/apps/a/machines").strip("/").split("/")
        if len(parts) == 2 and parts[1] == "lease":
            return self._lease(request, parts[0])
        if request.method == "POST" and self.lease_on_create:
            ttl = json.loads(request.content).get("lease_ttl")
            committed = len(self.machines)
            try:
                return super().__call__(request)  # commits (then maybe fails the answer)
            finally:
                if ttl and len(self.machines) > committed:
                    self._grant(self.machines[-1]["id"], ttl)
        return super().__call__(request)

    def _lease(self, request: httpx.Request, machine_id: str) -> httpx.Response:
        held = self.leases.get(machine_id)
        if held is not None and held["expires_at"] <= self.clock.wall():
            del self.leases[machine_id]
            held = None
        if request.method == "GET":
            return httpx.Response(200, json=held) if held else httpx.Response(404, json={})
        self.acquires += 1
        if self.acquire_failures:
            failure = self.acquire_failures.pop(0)
            if failure == "5xx-after":  # grants, then loses the answer
                self._grant(machine_id, json.loads(request.content)["ttl"])
            return httpx.Response(502, text="bad gateway")
        if held is not None:
            return httpx.Response(409, json={"error": "machine already has a lease"})
        return httpx.Response(201, json=self._grant(machine_id, json.loads(request.content)["ttl"]))


def test_a_machine_found_after_a_lost_answer_is_leased_when_lease_ttl_asks() -> None:
    clock = FakeClock()
    api = LeasingMachines(clock, "read", lease_on_create=False)  # the create took no lease
    with make_client(api, clock) as fly:
        machine = fly.machines.create("a", MachineConfig(image="nginx"), lease_ttl=30)
    assert machine.id == "m1" and machine.nonce == api.leases["m1"]["nonce"]
    assert api.creates == 1 and api.acquires == 1 and clock.sleeps == []


def test_the_lease_the_lost_create_took_is_waited_out_never_adopted() -> None:
    clock = FakeClock()
    api = LeasingMachines(clock, "5xx")  # committed with a lease whose nonce we never saw
    with make_client(api, clock) as fly:
        machine = fly.machines.create("a", MachineConfig(image="nginx"), lease_ttl=20)
    assert api.creates == 1 and api.granted == 2
    assert machine.nonce == "n2"  # a lease of our own, not the create's "n1"
    assert api.acquires == 2 and sum(clock.sleeps) >= 20


def test_a_lease_that_outlives_the_deadline_returns_the_machine_without_a_nonce(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    api = LeasingMachines(clock, "read")
    with make_client(api, clock, deadline=60.0) as fly:
        machine = fly.machines.create("a", MachineConfig(image="nginx"), lease_ttl=600)
    assert machine.id == "m1" and machine.nonce is None
    assert api.creates == 1 and api.acquires == 1 and sum(clock.sleeps) < 60
    assert "returned without a lease nonce" in caplog.text and "m1" in caplog.text


def test_an_acquire_whose_answer_is_lost_is_retried_and_then_waited_out() -> None:
    clock = FakeClock()
    api = LeasingMachines(clock, "read", lease_on_create=False)
    api.acquire_failures = ["5xx-after"]
    with make_client(api, clock) as fly:
        machine = fly.machines.create("a", MachineConfig(image="nginx"), lease_ttl=5)
    assert api.creates == 1 and api.acquires == 3  # lost answer, held (by us), granted
    assert machine.nonce == "n2"


def test_without_lease_ttl_a_found_machine_is_not_leased() -> None:
    clock = FakeClock()
    api = LeasingMachines(clock, "read")
    with make_client(api, clock) as fly:
        assert fly.machines.create("a", MachineConfig(image="nginx")).nonce is None
    assert api.acquires == 0


class FlakyVolumes:
    """A volumes API that commits each create, then fails its answer as scripted ("read":
    the connection drops; "5xx": a 502; "5xx-before": a 503 with nothing made). `existing`
    volumes of the same name and region were there before."""

    def __init__(self, *failures: str, existing: int = 0) -> None:
        self.failures = list(failures)
        self.volumes = [self._volume(f"vol_old{n}") for n in range(existing)]
        self.creates = 0

    @staticmethod
    def _volume(volume_id: str) -> dict[str, Any]:
        return {"id": volume_id, "name": "data", "region": "iad", "size_gb": 1, "state": "created"}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=self.volumes)
        self.creates += 1
        failure = self.failures.pop(0) if self.failures else None
        if failure == "5xx-before":
            return httpx.Response(503, json={"error": "unavailable"})
        volume = self._volume(f"vol_new{self.creates}")
        self.volumes.append(volume)
        if failure == "read":
            raise httpx.ReadError("connection reset by peer", request=request)
        if failure == "5xx":
            return httpx.Response(502, text="bad gateway")
        return httpx.Response(200, json=volume)


@pytest.mark.parametrize("failure", ["read", "5xx"])
def test_a_volume_committed_before_a_lost_answer_is_returned_not_made_again(failure: str) -> None:
    api = FlakyVolumes(failure, existing=2)  # two volumes of that name were there before
    with make_client(api, FakeClock()) as fly:
        volume = fly.volumes.create("a", "data", "iad", 1)
    assert api.creates == 1
    assert volume.id == "vol_new1"
    assert [v["id"] for v in api.volumes] == ["vol_old0", "vol_old1", "vol_new1"]


def test_a_volume_create_refused_before_commit_is_sent_again() -> None:
    api = FlakyVolumes("5xx-before", existing=1)
    with make_client(api, FakeClock()) as fly:
        volume = fly.volumes.create("a", "data", "iad", 1)
    assert api.creates == 2 and volume.id == "vol_new2"
    assert [v["id"] for v in api.volumes] == ["vol_old0", "vol_new2"]


def test_a_volume_of_another_size_or_region_is_not_taken_for_ours() -> None:
    api = FlakyVolumes("read")
    api.volumes.append({**FlakyVolumes._volume("vol_other"), "region": "ams"})
    real = api.__call__

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":  # someone else's volume of that name lands meanwhile
            api.volumes.append({**FlakyVolumes._volume("vol_big"), "size_gb": 3})
        return real(request)

    with make_client(handler, FakeClock()) as fly:
        volume = fly.volumes.create("a", "data", "iad", 1)
    assert volume.id == "vol_new1" and api.creates == 1


def test_a_volume_create_may_reuse_one_of_its_name_found_in_its_own_list() -> None:
    api = FlakyVolumes(existing=1)
    api.volumes.append({**FlakyVolumes._volume("vol_gone"), "name": "key", "state": "destroying"})
    with make_client(api, FakeClock()) as fly:
        assert fly.volumes.create("a", "data", "iad", 1, reuse_named=True).id == "vol_old0"
        assert api.creates == 0
        made = fly.volumes.create("a", "key", "iad", 1, reuse_named=True)  # one on its way out
    assert api.creates == 1 and made.id == "vol_new1"
