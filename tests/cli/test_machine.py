"""`flyk machine` against the embedded local backend: happy paths, JSON, bad input, leases."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flyk import config
from flyk.api import FlyClient, MachineConfig
from flyk.local import LocalBackend, Timing
from tests.cli.helpers import Flyk, Result, json_response, no_retries


@pytest.fixture
def app(flyk: Flyk) -> str:
    assert flyk("--local", "apps", "create", "web").exit_code == 0
    return "web"


def _run(flyk: Flyk, *extra: str) -> dict[str, object]:
    result = flyk("--local", "machine", "run", "nginx", "-a", "web", "--json", *extra)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    document: dict[str, object] = json.loads(result.stdout)
    return document


@pytest.fixture
def machine_id(flyk: Flyk, app: str) -> str:
    return str(_run(flyk, "-r", "iad")["id"])


@pytest.fixture
def other_client(isolated_env: Path) -> Iterator[FlyClient]:
    """Someone else using the same local backend (another flyk, the kubelet, …)."""
    backend = LocalBackend(path=config.local_db_path())
    with FlyClient(base_url="http://local.flyk", transport=backend.transport()) as client:
        yield client


def test_run_waits_for_started_and_prints_id_region_ip(flyk: Flyk, app: str) -> None:
    result = flyk(
        "--local",
        "machine",
        "run",
        "nginx",
        "-a",
        "web",
        "-r",
        "iad",
        "--vm-size",
        "shared-cpu-2x",
        "--name",
        "w1",
        "-e",
        "MODE=demo",
        "--metadata",
        "team=edge",
        "--",
        "nginx",
        "-g",
        "daemon off;",
    )
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    fields = dict(
        line.split(None, 1) for line in result.stdout.replace("PRIVATE IP", "IP").splitlines()
    )
    assert len(fields["ID"]) == 14
    assert (fields["NAME"], fields["STATE"], fields["REGION"]) == ("w1", "started", "iad")
    assert fields["SIZE"] == "shared-cpu-2x:512MB"
    assert fields["IP"].startswith("fdaa:")

    status = json.loads(flyk("--local", "m", "status", fields["ID"], "-a", "web", "-j").stdout)
    assert status["env"] == {"MODE": "demo"}
    assert status["metadata"]["team"] == "edge"
    assert status["command"] == ["nginx", "-g", "daemon off;"]
    assert status["restart"] == "always"
    assert status["guest"] == {"cpu_kind": "shared", "cpus": 2, "memory_mb": 512}


def test_run_json_shape_and_explicit_size(flyk: Flyk, app: str) -> None:
    document = _run(flyk, "--vm-cpus", "2", "--vm-memory", "1gb", "--rm", "--restart", "on-failure")
    assert list(document)[:8] == [
        "id",
        "name",
        "state",
        "region",
        "image",
        "size",
        "private_ip",
        "checks",
    ]
    assert document["state"] == "started"
    assert document["size"] == "shared-cpu-2x:1024MB"
    assert document["restart"] == "on-failure"


def test_run_detach_does_not_wait(flyk: Flyk, app: str) -> None:
    assert _run(flyk, "--detach", "--cpus", "1", "--memory", "512")["size"] == "shared-cpu-1x:512MB"


def test_rm_means_no_restart(flyk: Flyk, app: str) -> None:
    assert _run(flyk, "--rm")["restart"] == "no"


def test_list_table_quiet_and_json(flyk: Flyk, app: str, machine_id: str) -> None:
    table = flyk("--local", "machine", "list", "-a", "web")
    assert table.exit_code == 0
    header, row = table.stdout.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "STATE", "REGION"]
    assert row.split()[0] == machine_id
    assert flyk("--local", "m", "ls", "-a", "web", "-q") == Result(0, machine_id + "\n", "")
    assert [
        m["id"] for m in json.loads(flyk("--local", "machines", "list", "-a", "web", "-j").stdout)
    ] == [machine_id]


def test_fly_app_variable_supplies_the_app(
    flyk: Flyk, app: str, machine_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLY_APP", "web")
    assert flyk("--local", "m", "ls", "-q").stdout == machine_id + "\n"


def test_lifecycle_commands(flyk: Flyk, app: str, machine_id: str) -> None:
    for verb, past in [
        ("stop", "Stopped"),
        ("start", "Started"),
        ("restart", "Restarted"),
        ("cordon", "Cordoned"),
        ("uncordon", "Uncordoned"),
        ("suspend", "Suspended"),
    ]:
        result = flyk("--local", "machine", verb, machine_id, "-a", "web")
        assert result == Result(0, "", f"{past} machine {machine_id}\n"), verb
    assert flyk("--local", "m", "wait", machine_id, "-a", "web", "--state", "suspended") == Result(
        0, "suspended\n", ""
    )
    result = flyk("--local", "m", "stop", machine_id, "-a", "web", "--json")
    assert json.loads(result.stdout) == [
        {"id": machine_id, "action": "stop", "app": "web", "error": None}
    ]


def test_update_keeps_what_it_does_not_change(flyk: Flyk, app: str) -> None:
    machine_id = str(_run(flyk, "-e", "A=1", "--metadata", "team=x")["id"])
    result = flyk(
        "--local", "m", "update", machine_id, "-a", "web", "--image", "nginx:2", "-e", "B=2",
        "--vm-memory", "512", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["image"] == "nginx:2"
    assert document["env"] == {"A": "1", "B": "2"}
    assert document["metadata"]["team"] == "x"
    assert document["guest"] == {"cpu_kind": "shared", "cpus": 1, "memory_mb": 512}
    assert document["state"] == "started"


def test_exec_prints_output(flyk: Flyk, app: str, machine_id: str) -> None:
    result = flyk("--local", "m", "exec", machine_id, "-a", "web", "--", "echo", "hello")
    assert result.exit_code == 0
    assert result.stdout == "hello\n"


def test_destroy_needs_yes_and_force_for_a_running_machine(
    flyk: Flyk, app: str, machine_id: str
) -> None:
    refused = flyk("--local", "m", "destroy", machine_id, "-a", "web", "--force")
    assert refused.exit_code == 2
    assert refused.stderr.startswith(
        "Error: --yes must be given to confirm when not running interactively\n"
    )
    assert flyk("--local", "m", "rm", machine_id, "-a", "web", "-y", "--force") == Result(
        0, "", f"Destroyed machine {machine_id}\n"
    )
    assert flyk("--local", "m", "list", "-a", "web") == Result(0, "", "No machines in app web.\n")


def test_someone_elses_lease_blocks_mutations_until_cleared(
    flyk: Flyk, app: str, machine_id: str, other_client: FlyClient
) -> None:
    lease = other_client.machines.acquire_lease("web", machine_id, ttl=60, description="deploy")
    viewed = json.loads(
        flyk("--local", "m", "leases", "view", machine_id, "-a", "web", "-j").stdout
    )
    assert viewed["description"] == "deploy"
    assert (viewed["id"], viewed["leased"]) == (machine_id, True)
    assert viewed["expires"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(lease.expires_at))
    table = flyk("--local", "m", "leases", "view", machine_id, "-a", "web").stdout
    assert f"EXPIRES      {viewed['expires']}\n" in table

    blocked = flyk("--local", "m", "stop", machine_id, "-a", "web", env={"FLYK_LEASE_WAIT": "0"})
    assert blocked.exit_code == 5
    error, *hint = blocked.stderr.splitlines()
    assert error.startswith("Error: ")
    assert hint == [
        f"       See who holds it: flyk machine leases view {machine_id} -a web; "
        f"release it: flyk machine leases clear {machine_id} -a web"
    ]

    cleared = flyk("--local", "m", "lease", "clear", machine_id, "-a", "web", "-y")
    assert cleared.exit_code == 0, cleared.stderr
    assert cleared.stderr == f"Cleared the lease on machine {machine_id}\n"
    assert other_client.machines.get_lease("web", machine_id) is None
    assert flyk("--local", "m", "stop", machine_id, "-a", "web").exit_code == 0
    assert lease.nonce


@pytest.mark.parametrize(("command", "done"), [("stop", "Stopped"), ("update", "Updated")])
def test_a_held_lease_is_waited_for_and_named(
    flyk: Flyk, app: str, machine_id: str, other_client: FlyClient, command: str, done: str
) -> None:
    """update waited in silence: it did not say whose lease held it up."""
    other_client.machines.acquire_lease("web", machine_id, ttl=1, description="deploy")
    extra = ["-e", "A=1"] if command == "update" else []
    result = flyk(
        "--local", "m", command, machine_id, "-a", "web", *extra, env={"FLYK_LEASE_WAIT": "30"}
    )
    assert result.exit_code == 0, result.stderr
    assert f"Waiting for the lease on machine {machine_id} (deploy)\n" in result.stderr
    assert f"{done} machine {machine_id}" in result.stderr


@pytest.mark.parametrize("value", ["soon", "-1", "inf"])
def test_a_bad_lease_wait_is_a_config_error(
    flyk: Flyk, app: str, machine_id: str, value: str
) -> None:
    result = flyk("--local", "m", "stop", machine_id, "-a", "web", env={"FLYK_LEASE_WAIT": value})
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-2] == (
        f"Error: FLYK_LEASE_WAIT={value!r} is not a number of seconds"
    )


@pytest.mark.parametrize("command", ["view", "clear"])
def test_leases_of_a_missing_machine_are_not_found(flyk: Flyk, app: str, command: str) -> None:
    """The lease endpoint's 404 read as 'not leased' (exit 0) for a machine that is not there."""
    yes = ["-y"] if command == "clear" else []
    result = flyk("--local", "m", "leases", command, MISSING, "-a", "web", *yes, "--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["error"]["type"] == "NotFoundError"
    assert f"machine '{MISSING}' not found" in result.stderr


def test_no_lease_left_behind(
    flyk: Flyk, app: str, machine_id: str, other_client: FlyClient
) -> None:
    flyk("--local", "m", "restart", machine_id, "-a", "web")
    assert other_client.machines.get_lease("web", machine_id) is None
    assert flyk("--local", "m", "leases", "view", machine_id, "-a", "web") == Result(
        0, "", f"Machine {machine_id} is not leased.\n"
    )


# -- bad input: each case names the problem and exits 2 ------------------------------------------

BAD_RUNS = [
    (
        ["--vm-memory", "300"],
        "Error: memory must be a multiple of 256 MB, got 300 MB; try 512 MB\n",
    ),
    (
        ["--vm-cpus", "4", "--vm-memory", "512"],
        "Error: 4 shared CPUs take 1024–8192 MB of memory, got 512 MB; "
        "change --memory or pick another size\n",
    ),
    (
        ["--vm-size", "performance-1x", "--memory", "1024"],
        "Error: 1 performance CPU takes 2048–8192 MB of memory, got 1024 MB; "
        "change --memory or pick another size\n",
    ),
    (["--vm-memory", "lots"], None),
    (["--vm-size", "huge"], None),
    (
        ["-e", "NOEQUALS"],
        "Error: --env 'NOEQUALS' is not KEY=VALUE\n       Write it as --env KEY=value.\n",
    ),
    (["-e", "1X=y"], "Error: --env '1X=y': '1X' is not a valid key\n"),
    (
        ["--metadata", "=x"],
        "Error: --metadata '=x' is not KEY=VALUE\n       Write it as --metadata KEY=value.\n",
    ),
    (
        ["--memory", "9" * 400],
        f"Error: memory {'9' * 400!r} is more than any machine has (at most 131072 MB)\n",
    ),
    (
        ["--vm-cpus", "99999999999999999999999"],
        "Error: a shared machine has at most 8 CPUs, got 99999999999999999999999\n",
    ),
    (
        ["-w", "1e20"],
        "Usage: flyk machine run [OPTIONS] IMAGE [COMMAND]...\nTry 'flyk machine run -h' for "
        "help.\n\nError: Invalid value for '-w' / '--wait-timeout': 1e+20 is not between 0 "
        "and 86400.\n",
    ),
    (
        ["-m", "flyk_launch_id=mine"],
        "Error: --metadata 'flyk_launch_id=mine': keys starting with flyk_ are reserved for "
        "flyk's own records\n       Choose another key, e.g. launch_id.\n",
    ),
    (
        ["-m", "FLYK_cluster=x"],
        "Error: --metadata 'FLYK_cluster=x': keys starting with flyk_ are reserved for "
        "flyk's own records\n       Choose another key, e.g. cluster.\n",
    ),
    (
        ["-r", "IAD!"],
        "Error: invalid region 'IAD!': region codes are three lower-case letters like iad\n"
        "       `flyk regions list` shows the regions.\n",
    ),
]


@pytest.mark.parametrize(("args", "stderr"), BAD_RUNS)
def test_bad_run_input(flyk: Flyk, app: str, args: list[str], stderr: str | None) -> None:
    result = flyk("--local", "machine", "run", "nginx", "-a", "web", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    if stderr is None:
        assert result.stderr.startswith("Error: ") and len(result.stderr.splitlines()) == 1
    else:
        assert result.stderr == stderr
    assert flyk("--local", "m", "ls", "-a", "web", "-q").stdout == ""  # nothing was created


def test_unknown_region_is_refused_by_the_api(flyk: Flyk, app: str) -> None:
    result = flyk("--local", "machine", "run", "nginx", "-a", "web", "-r", "zzz")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: unknown region 'zzz'")
    assert "(Request ID: " in result.stderr


def test_missing_app(flyk: Flyk) -> None:
    assert flyk("--local", "machine", "list") == Result(
        2,
        "",
        "Error: no app given: specify one with -a/--app or FLY_APP\n"
        "       `flyk apps list` shows your apps.\n",
    )


@pytest.mark.parametrize("bad_id", ["123", "3128B4497BF965", "zz28b4497bf965"])
def test_invalid_machine_ids(flyk: Flyk, app: str, bad_id: str) -> None:
    assert flyk("--local", "machine", "status", bad_id, "-a", "web") == Result(
        2,
        "",
        f"Error: invalid machine id {bad_id!r}: expected 14 hex digits like 148e21ea7d5789\n"
        "       `flyk machine list -a APP` shows the ids.\n",
    )


def test_unknown_machine_is_not_found(flyk: Flyk, app: str) -> None:
    result = flyk("--local", "machine", "status", "0123456789abcd", "-a", "web")
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: ")


def test_unknown_restart_policy_is_a_usage_error(flyk: Flyk, app: str) -> None:
    result = flyk("--local", "machine", "run", "nginx", "-a", "web", "--restart", "sometimes")
    assert result.exit_code == 2
    assert "Invalid value for '--restart'" in result.stderr


def test_exec_exits_with_the_remote_exit_code(flyk: Flyk, app: str, machine_id: str) -> None:
    assert flyk("--local", "m", "exec", machine_id, "-a", "web", "--", "false").exit_code == 1
    result = flyk("--local", "m", "exec", machine_id, "-a", "web", "--json", "--", "echo", "hi")
    assert json.loads(result.stdout) == {"stdout": "hi\n", "stderr": "", "exit_code": 0}
    failed = flyk("--local", "m", "exec", machine_id, "-a", "web", "--json", "--", "false")
    assert failed.exit_code == 1
    assert json.loads(failed.stdout)["exit_code"] == 1


def test_run_in_a_missing_app_says_how_to_create_it(flyk: Flyk) -> None:
    result = flyk("--local", "machine", "run", "nginx", "-a", "nope")
    assert result.exit_code == 3
    first, hint = result.stderr.splitlines()
    assert first.startswith("Error: ") and "nope" in first and "(Request ID: " in first
    assert hint == "       Create the app first: flyk apps create nope"


def test_wait_timeout_names_the_wait_flag(flyk: Flyk, app: str, machine_id: str) -> None:
    args = ("--local", "m", "wait", machine_id, "-a", "web", "--state", "stopped", "-w", "0")
    result = flyk(*args)
    assert result.exit_code == 6
    assert "did not reach stopped within 0 s" in result.stderr
    assert "wait longer with -w/--wait-timeout" in result.stderr
    assert "with --timeout" not in result.stderr
    document = json.loads(flyk(*args, "--json").stdout)
    assert "-w/--wait-timeout" in document["error"]["hint"]


@pytest.mark.parametrize(
    ("command", "state", "problem"),
    [
        ("wait", "", "no state"),
        ("wait", ",", "no state"),
        ("wait", "started,bogus", "unknown state 'bogus'"),
        ("wait", "STARTED", "unknown state 'STARTED'"),
        ("list", "destroyed", "unknown state 'destroyed'"),
    ],
)
def test_a_bad_state_is_a_usage_error_naming_the_choices(
    flyk: Flyk, machine_id: str, command: str, state: str, problem: str
) -> None:
    """An empty --state used to wait out the whole timeout for nothing (exit 6)."""
    args = [machine_id, "-w", "5"] if command == "wait" else []
    result = flyk("--local", "m", command, *args, "-a", "web", "--state", state)
    assert result.exit_code == 2
    first, hint = result.stderr.splitlines()
    assert first.startswith(f"Error: --state {state!r}: {problem}; ")
    assert ("settled" in first) == (command == "wait")
    assert "e.g. --state started,stopped" in hint


def test_wait_takes_several_states(flyk: Flyk, machine_id: str) -> None:
    args = ("--local", "m", "wait", machine_id, "-a", "web", "--state", "stopped, started")
    assert flyk(*args) == Result(0, "started\n", "")


@pytest.mark.parametrize("command", ["run", "update", "wait"])
def test_negative_wait_timeout_is_refused_before_anything_happens(
    flyk: Flyk, app: str, command: str
) -> None:
    args = {
        "run": ["nginx"],
        "update": ["148e21ea7d5789", "--image", "x"],
        "wait": ["148e21ea7d5789"],
    }
    result = flyk("--local", "machine", command, *args[command], "-a", "web", "-w", "-1")
    assert result.exit_code == 2
    assert "--wait-timeout" in result.stderr
    assert flyk("--local", "machine", "list", "-a", "web", "-q").stdout == ""


class _Recording(httpx.BaseTransport):
    """The local backend, with a log of the requests flyk sent it."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.sent: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(f"{request.method} {request.url.path}?{request.url.query.decode()}")
        return self.inner.handle_request(request)


@pytest.fixture
def slow_stop(tmp_path: Path) -> Iterator[tuple[_Recording, FlyClient, str]]:
    """A backend where stopping takes a while, with app web and one started machine."""
    backend = LocalBackend(tmp_path / "slow.db", timing=Timing(stop=0.3))
    with FlyClient(base_url="http://local.flyk", transport=backend.transport()) as client:
        client.apps.create("web", "personal")
        machine = client.machines.create("web", MachineConfig(image="nginx"))
        client.machines.wait("web", machine.id, "started")
        yield _Recording(backend.transport()), client, machine.id


def test_stop_waits_until_the_machine_has_stopped(
    flyk: Flyk, slow_stop: tuple[_Recording, FlyClient, str]
) -> None:
    transport, client, machine_id = slow_stop
    result = flyk("--local", "m", "stop", machine_id, "-a", "web", transport=transport)
    assert result == Result(0, "", f"Stopped machine {machine_id}\n")
    assert client.machines.get("web", machine_id).state == "stopped"
    assert any("/wait?" in s and "state=stopped" in s for s in transport.sent)


def test_stop_detach_does_not_wait_and_says_so(
    flyk: Flyk, slow_stop: tuple[_Recording, FlyClient, str]
) -> None:
    transport, _, machine_id = slow_stop
    result = flyk("--local", "m", "stop", machine_id, "-a", "web", "--detach", transport=transport)
    assert result == Result(0, "", f"Asked to stop machine {machine_id}\n")
    assert not any("/wait?" in s for s in transport.sent)


def test_status_events_show_iso_times(flyk: Flyk, app: str, machine_id: str) -> None:
    table = flyk("--local", "m", "status", machine_id, "-a", "web").stdout
    header = next(line for line in table.splitlines() if line.startswith("TYPE"))
    assert header.split() == ["TYPE", "STATUS", "SOURCE", "TIME"]
    launch = next(line for line in table.splitlines() if line.startswith("launch"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", launch.split()[-1])
    document = json.loads(flyk("--local", "m", "status", machine_id, "-a", "web", "-j").stdout)
    event = document["events"][-1]
    assert isinstance(event["timestamp"], int)  # kept for scripts
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])


def test_one_name_for_the_private_ip_and_null_checks(flyk: Flyk, app: str, machine_id: str) -> None:
    for args in (
        ["list", "-a", "web"],
        ["status", machine_id, "-a", "web"],
        ["update", machine_id, "-a", "web", "-e", "A=1"],
    ):
        result = flyk("--local", "machine", *args)
        assert result.exit_code == 0, result.stderr
        assert "PRIVATE IP" in result.stdout and "IP ADDRESS" not in result.stdout, args
    assert _run(flyk)["checks"] is None
    listed = json.loads(flyk("--local", "m", "ls", "-a", "web", "-j").stdout)
    assert {m["checks"] for m in listed} == {None}


def test_unknown_app_and_running_destroy_have_hints(flyk: Flyk, app: str, machine_id: str) -> None:
    missing = flyk("--local", "machine", "list", "-a", "ghost")
    assert missing.exit_code == 3
    assert missing.stderr.splitlines()[1].strip() == "`flyk apps list` shows your apps."
    refused = flyk("--local", "m", "destroy", machine_id, "-a", "web", "-y")
    assert refused.exit_code == 5
    assert refused.stderr.splitlines()[1].strip() == (
        f"Stop it first (flyk machine stop {machine_id} -a web), or pass --force to kill it."
    )
    gone = flyk("--local", "m", "status", "0123456789abcd", "-a", "web")
    assert gone.exit_code == 3 and len(gone.stderr.splitlines()) == 1  # a machine: no apps hint


def test_unknown_region_on_run_points_to_regions_list(flyk: Flyk, app: str) -> None:
    result = flyk("--local", "machine", "run", "nginx", "-a", "web", "-r", "zzz")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1].strip() == "`flyk regions list` shows the regions."


def test_capacity_errors_in_json_carry_the_api_code_and_class(flyk: Flyk) -> None:
    def full(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/machines") and request.method == "POST":
            return json_response(
                412,
                {"error": "insufficient memory available", "status": "insufficient_capacity"},
            )
        return json_response(200, [])

    result = flyk(
        "machine", "run", "nginx", "-a", "web", "-r", "iad", "--json", "-t", "fm2_x",
        transport=httpx.MockTransport(full), client_options=no_retries(),
    )  # fmt: skip
    assert result.exit_code == 8
    error = json.loads(result.stdout)["error"]
    assert (error["type"], error["code"], error["status"]) == (
        "CapacityError",
        "insufficient_capacity",
        412,
    )


def test_invalid_machine_name_is_refused(flyk: Flyk, app: str) -> None:
    result = flyk("--local", "machine", "run", "nginx", "-a", "web", "--name", "Bad Name!")
    assert result.exit_code == 2
    assert result.stdout == ""
    first = result.stderr.splitlines()[0]
    assert first.startswith("Error: invalid machine name 'Bad Name!': use 1-63 lowercase letters")
    assert flyk("--local", "m", "ls", "-a", "web", "-q").stdout == ""


# -- bad input is found before the client is built: exit 2 whatever the target, no local.db ----

_SOME_ID = "148e21ea7d5789"
EARLY_BAD_INPUT = [
    ["machine", "start", "123", "-a", "web"],
    ["machine", "stop", "123", "-a", "web"],
    ["machine", "restart", "123", "-a", "web"],
    ["machine", "suspend", "123", "-a", "web"],
    ["machine", "cordon", "123", "-a", "web"],
    ["machine", "uncordon", "123", "-a", "web"],
    ["machine", "destroy", "123", "-a", "web", "--yes"],
    ["machine", "update", "123", "-a", "web", "--image", "x"],
    ["machine", "update", _SOME_ID, "-a", "web", "-e", "NOEQUALS"],
    ["machine", "start", _SOME_ID],
    ["machine", "start", _SOME_ID, "-a", "Bad"],
    ["machine", "list", "-a", "web", "-r", "IAD!"],
    ["machine", "status", "123", "-a", "web"],
    ["machine", "leases", "clear", "123", "-a", "web", "--yes"],
]


@pytest.mark.parametrize("args", EARLY_BAD_INPUT, ids=" ".join)
@pytest.mark.parametrize("remote", [False, True], ids=["local", "remote-without-token"])
def test_bad_input_is_a_usage_error_before_any_client(
    flyk: Flyk, isolated_env: Path, args: list[str], remote: bool
) -> None:
    env = {"FLY_FLAPS_BASE_URL": "https://x.invalid"} if remote else None
    result = flyk(*args, env=env)
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert "Using the local backend" not in result.stderr
    assert not config.local_db_path().exists()


def test_update_with_nothing_to_change_names_the_flags(
    flyk: Flyk, app: str, machine_id: str, other_client: FlyClient
) -> None:
    before = other_client.machines.get("web", machine_id).version
    result = flyk("--local", "machine", "update", machine_id, "-a", "web")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        "Error: nothing to change: give at least one of --image, -e/--env, -m/--metadata, "
        "--vm-size, --vm-cpus, --vm-memory, --vm-cpu-kind, --restart"
    )
    assert other_client.machines.get("web", machine_id).version == before


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--image", "Error: invalid image: it is empty"),
        ("--image=nginx -- sh", "Error: invalid image: 'nginx -- sh' has spaces (an image "),
        ("--vm-size", "Error: unknown machine size ''; choose one of: shared-cpu-1x, "),
        ("--vm-cpu-kind", "Error: unknown CPU kind ''; use 'shared' or 'performance'"),
    ],
)
def test_an_empty_value_is_refused_not_taken_as_unchanged(
    flyk: Flyk, app: str, machine_id: str, other_client: FlyClient, flag: str, message: str
) -> None:
    """`update --image ""` replaced the machine (a reboot) with nothing changed; run took an
    empty size or CPU kind for the default."""
    before = other_client.machines.get("web", machine_id).version
    flag, _, value = flag.partition("=")
    updated = flyk("--local", "machine", "update", machine_id, "-a", "web", flag, value)
    assert updated.exit_code == 2
    assert updated.stderr.startswith(message)
    assert other_client.machines.get("web", machine_id).version == before
    run = [value, "--vm-size", "shared-cpu-1x"] if flag == "--image" else ["nginx", flag, ""]
    launched = flyk("--local", "machine", "run", *run, "-a", "web")
    assert (launched.exit_code, launched.stderr.startswith(message)) == (2, True)
    assert len(other_client.machines.list("web")) == 1


def test_an_empty_entrypoint_is_refused(flyk: Flyk, app: str) -> None:
    """It was dropped, and the image's own entrypoint ran instead."""
    result = flyk("--local", "machine", "run", "nginx", "-a", "web", "--entrypoint", "")
    assert (result.exit_code, result.stderr.splitlines()[0]) == (
        2,
        "Error: --entrypoint is empty",
    )
    assert flyk("--local", "machine", "list", "-a", "web", "-q").stdout == ""


def test_fly_region_does_not_filter_the_list(flyk: Flyk, app: str, machine_id: str) -> None:
    result = flyk("--local", "machine", "list", "-a", "web", "-q", env={"FLY_REGION": "ams"})
    assert result.stdout == f"{machine_id}\n"
    assert flyk("--local", "m", "list", "-a", "web", "-q", "-r", "ams").stdout == ""
    assert flyk("--local", "m", "list", "-a", "web", "-q", "-r", "iad").stdout == f"{machine_id}\n"


class StartLog:
    """A scripted API for `machine start`: records whether the command waited for started."""

    def __init__(self) -> None:
        self.waited_for: list[str] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path.endswith("/lease") and method == "POST":
            return json_response(201, {"status": "success", "data": {"nonce": "n-1"}})
        if path.endswith("/lease") and method == "DELETE":
            return json_response(200, {})
        if path.endswith("/start") and method == "POST":
            return json_response(200, {"previous_state": "stopped"})
        if path.endswith("/wait") and method == "GET":
            self.waited_for.append(request.url.params["state"])
            return json_response(200, {"ok": True, "state": "started"})
        return json_response(404, {"error": f"unexpected {method} {path}"})


@pytest.mark.parametrize(
    ("detach", "said", "waited_for"),
    [((), "Started", ["started"]), (("--detach",), "Asked to start", [])],
)
def test_start_says_started_only_once_it_has(
    flyk: Flyk, detach: tuple[str, ...], said: str, waited_for: list[str]
) -> None:
    api = StartLog()
    result = flyk(
        "machine", "start", "148e21ea7d5789", "-a", "web", "-t", "fm2_x", *detach,
        transport=httpx.MockTransport(api.handler), client_options=no_retries(),
    )  # fmt: skip
    assert result == Result(0, "", f"{said} machine 148e21ea7d5789\n")
    assert api.waited_for == waited_for


def test_exec_on_a_stopped_machine_says_to_start_it(flyk: Flyk, app: str, machine_id: str) -> None:
    flyk("--local", "m", "stop", machine_id, "-a", "web")
    result = flyk("--local", "m", "exec", machine_id, "-a", "web", "--", "ls")
    assert result.exit_code == 5
    error, hint = result.stderr.splitlines()
    assert error.startswith(f"Error: machine {machine_id} is not started (state: stopped)")
    assert hint == f"       Start it first: flyk machine start {machine_id} -a web"


def test_api_code_prefixes_are_stripped_in_text_and_json_alike(flyk: Flyk, app: str) -> None:
    result = flyk("--local", "machine", "status", "0123456789abcd", "-a", "web")
    assert result.stderr.startswith("Error: machine '0123456789abcd' not found (Request ID: ")
    document = json.loads(
        flyk("--local", "machine", "status", "0123456789abcd", "-a", "web", "-j").stdout
    )
    assert document["error"]["message"] == "machine '0123456789abcd' not found"
    assert document["error"]["code"] == "not_found"  # the prefix, kept as the code


class _CtrlCOnWait(httpx.BaseTransport):
    """The local backend, with the user pressing Ctrl-C while flyk waits on a machine."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/wait"):
            raise KeyboardInterrupt
        return self.inner.handle_request(request)


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_ctrl_c_while_run_waits_names_the_machine_left_behind(
    flyk: Flyk, app: str, other_client: FlyClient, json_flag: list[str]
) -> None:
    transport = _CtrlCOnWait(LocalBackend(path=config.local_db_path()).transport())
    result = flyk("--local", "m", "run", "nginx", "-a", "web", *json_flag, transport=transport)
    assert result.exit_code == 130
    [machine] = other_client.machines.list("web")
    message = (
        f"interrupted (Ctrl-C); machine {machine.id} was created in app web "
        "and may still be starting"
    )
    hint = f"Remove it with `flyk machine destroy {machine.id} -a web --force`."
    assert f"Error: {message}" in result.stderr
    assert hint in result.stderr
    if json_flag:
        error = json.loads(result.stdout)["error"]
        assert (error["type"], error["message"], error["hint"]) == ("Interrupted", message, hint)
    else:
        assert result.stdout == ""


def _started(flyk: Flyk) -> str:
    return str(_run(flyk)["id"])


MISSING = "0123456789abcd"


@pytest.mark.parametrize("command", ["stop", "destroy"])
def test_a_failing_machine_does_not_stop_the_others(
    flyk: Flyk, app: str, other_client: FlyClient, command: str
) -> None:
    first, last = _started(flyk), _started(flyk)
    args = ["--local", "m", command, first, MISSING, last, "-a", "web", "--json"]
    result = flyk(*args, *(["--force", "--yes"] if command == "destroy" else []))
    assert result.exit_code == 3  # the failure's: not found
    documents = json.loads(result.stdout)
    assert [(d["id"], d["action"], d["app"]) for d in documents] == [
        (first, command, "web"),
        (MISSING, command, "web"),
        (last, command, "web"),
    ]
    assert [d["error"] and d["error"]["type"] for d in documents] == [
        None,
        "NotFoundError",
        None,
    ]
    past = {"stop": "stopped", "destroy": "destroyed"}[command]
    assert result.stderr.splitlines()[-1] == f"Error: 2 of 3 machines {past}; not {past}: {MISSING}"
    assert f"Error: machine {MISSING}: machine '{MISSING}' not found" in result.stderr
    remaining = {m.id: m.state for m in other_client.machines.list("web")}
    if command == "stop":
        assert remaining == {first: "stopped", last: "stopped"}
    else:
        assert remaining == {}


def test_restart_of_a_machine_not_running_says_to_start_it(flyk: Flyk, app: str) -> None:
    machine = _started(flyk)
    assert flyk("--local", "m", "suspend", machine, "-a", "web").exit_code == 0
    result = flyk("--local", "m", "restart", machine, "-a", "web")
    assert result.exit_code == 5
    assert result.stderr.splitlines()[-1] == (
        f"       Restart needs a running machine; start it with: "
        f"flyk machine start {machine} -a web"
    )


def test_an_id_given_twice_is_acted_on_once(flyk: Flyk, app: str, other_client: FlyClient) -> None:
    """The second destroy's 404 overwrote the first's success: exit 3, '0 of 1 destroyed'."""
    machine = _started(flyk)
    args = ["--local", "m", "destroy", machine, machine, "-a", "web", "--force", "--yes"]
    result = flyk(*args, "--json")
    assert result.exit_code == 0, result.stderr
    assert [d["error"] for d in json.loads(result.stdout)] == [None]
    assert result.stderr == f"Destroyed machine {machine}\n"
    assert other_client.machines.list("web") == []


def test_one_failing_machine_is_an_error_document(flyk: Flyk, app: str) -> None:
    result = flyk("--local", "m", "stop", MISSING, "-a", "web", "--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["error"]["type"] == "NotFoundError"


def test_refused_credentials_are_not_tried_on_every_machine(flyk: Flyk) -> None:
    paths: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return json_response(401, {"error": "unauthorized"})

    ids = ["0123456789abc1", "0123456789abc2", "0123456789abc3"]
    result = flyk(
        "m", "stop", *ids, "-a", "web", "-t", "fm2_x", "--json",
        transport=httpx.MockTransport(refuse),
        client_options=no_retries(),
    )  # fmt: skip
    assert result.exit_code == 4
    assert [d["error"]["type"] for d in json.loads(result.stdout)] == ["UnauthorizedError"] * 3
    assert all(ids[0] in path for path in paths)


@pytest.fixture
def only_ams_has_room(tmp_path: Path) -> LocalBackend:
    """A backend where iad is full and only ams has room (for machines and volumes)."""
    backend = LocalBackend(tmp_path / "full.db", timing=Timing.instant())
    backend.capacity.set_default(0)
    backend.capacity.set("ams", 8192)
    backend.capacity.set_volumes("iad", 0)
    with FlyClient(base_url="http://local.flyk", transport=backend.transport()) as client:
        client.apps.create("web", "personal")
    return backend


@pytest.mark.parametrize(
    "command",
    [["machine", "run", "nginx"], ["volumes", "create", "data", "-s", "3"]],
)
def test_a_full_region_names_regions_with_room(
    flyk: Flyk, only_ams_has_room: LocalBackend, command: list[str]
) -> None:
    result = flyk(
        "--local", *command, "-a", "web", "-r", "iad", "--json",
        transport=only_ams_has_room.transport(), client_options=no_retries(),
    )  # fmt: skip
    assert result.exit_code == 8, result.stderr
    hint = (
        "Regions with room now: ams. "
        "Retry with -r ams; flyk never moves work to another region itself."
    )
    assert result.stderr.splitlines()[-1].strip() == hint
    assert json.loads(result.stdout)["error"]["hint"] == hint


class _PlacementsDown(_Recording):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/platform/placements":
            self.sent.append(request.url.path)
            return json_response(503, {"error": "placements unavailable"})
        return self.inner.handle_request(request)


def test_the_alternatives_are_asked_once_and_never_retried(
    flyk: Flyk, only_ams_has_room: LocalBackend
) -> None:
    transport = _PlacementsDown(only_ams_has_room.transport())
    result = flyk("--local", "m", "run", "nginx", "-a", "web", "-r", "iad", transport=transport)
    assert result.exit_code == 8
    assert transport.sent == ["/v1/platform/placements"]  # the default client retries 503s
    assert "choose another region" in result.stderr  # the client's own hint stays


@pytest.fixture
def slow_boot(tmp_path: Path) -> Iterator[tuple[LocalBackend, FlyClient, str]]:
    """A backend where starting takes a while, with app web and one stopped machine."""
    backend = LocalBackend(tmp_path / "boot.db", timing=Timing(boot=0.3))
    with FlyClient(base_url="http://local.flyk", transport=backend.transport()) as client:
        client.apps.create("web", "personal")
        machine = client.machines.create("web", MachineConfig(image="nginx"))
        client.machines.wait("web", machine.id, "started")
        client.machines.stop("web", machine.id)
        client.machines.wait("web", machine.id, "stopped")
        yield backend, client, machine.id


def test_update_of_a_stopped_machine_waits_until_it_has_started(
    flyk: Flyk, slow_boot: tuple[LocalBackend, FlyClient, str]
) -> None:
    backend, _, machine_id = slow_boot
    result = flyk(
        "--local", "m", "update", machine_id, "-a", "web", "--image", "nginx:1.27", "--json",
        transport=backend.transport(),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["state"] == "started"


def test_run_detach_reports_the_state_the_api_gave(flyk: Flyk, tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "boot.db", timing=Timing(boot=5))
    with FlyClient(base_url="http://local.flyk", transport=backend.transport()) as client:
        client.apps.create("web", "personal")
    result = flyk(
        "--local", "m", "run", "nginx", "-a", "web", "--detach", "--json",
        transport=backend.transport(),
    )  # fmt: skip
    assert json.loads(result.stdout)["state"] in ("created", "starting")  # not waited for


def test_status_json_keeps_all_metadata_as_list_does(flyk: Flyk, app: str) -> None:
    machine_id = str(_run(flyk, "-m", "team=edge")["id"])
    status = json.loads(flyk("--local", "m", "status", machine_id, "-a", "web", "-j").stdout)
    [listed] = json.loads(flyk("--local", "m", "list", "-a", "web", "-j").stdout)
    assert status["metadata"] == listed["metadata"]
    assert set(status["metadata"]) == {"team", "flyk_launch_id"}
    table = flyk("--local", "m", "status", machine_id, "-a", "web").stdout
    assert "team=edge" in table and "flyk_launch_id=" in table  # the table shows it all too


def test_a_machine_that_fails_to_start_ends_the_wait_at_once(flyk: Flyk, app: str) -> None:
    result = flyk("--local", "machine", "run", "nginx", "-a", "web", "-e", "FLYK_SIM_START_FAILS=1")
    assert result.exit_code == 10
    error, hint = result.stderr.splitlines()[-2:]
    assert error.startswith("Error: machine ") and error.endswith(
        " failed and will not reach started by itself"
    )
    machine_id = error.split()[2]
    assert hint == f"       Its events say why: flyk machine status {machine_id} -a web"
    # a failed machine runs nothing: stopping it is done, not an error
    stopped = flyk("--local", "machine", "stop", machine_id, "-a", "web")
    assert stopped.exit_code == 0, stopped.stderr


def test_a_workload_that_exits_for_good_names_its_exit_code(flyk: Flyk, app: str) -> None:
    result = flyk(
        "--local", "machine", "run", "nginx", "-a", "web", "--restart", "no",
        "-e", "FLYK_SIM_EXIT_CODE=3",
    )  # fmt: skip
    assert result.exit_code == 10
    assert " stopped (exit code 3) and will not reach started by itself" in result.stderr


def test_update_refuses_flyk_metadata_keys(flyk: Flyk, machine_id: str) -> None:
    result = flyk("--local", "m", "update", machine_id, "-a", "web", "-m", "flyk_cluster=x")
    assert result.exit_code == 2 and result.stdout == ""
    assert "reserved for flyk's own records" in result.stderr
    status = json.loads(flyk("--local", "m", "status", machine_id, "-a", "web", "-j").stdout)
    assert "flyk_cluster" not in status["metadata"]


@pytest.mark.parametrize(
    "args",
    [
        ["stop", "--timeout", "1e20"],
        ["stop", "-w", "1e20"],
        ["exec", "--timeout", "99999999999999999999", "--", "true"],
    ],
)
def test_durations_are_bounded_at_parse_time(flyk: Flyk, machine_id: str, args: list[str]) -> None:
    command, *rest = args
    result = flyk("--local", "m", command, machine_id, "-a", "web", *rest)
    assert result.exit_code == 2 and "is not between 0 and 86400" in result.stderr
    status = json.loads(flyk("--local", "m", "status", machine_id, "-a", "web", "-j").stdout)
    assert status["state"] == "started"


# --- issue 10, the rest: what a demanding new user found ------------------------------------


def test_list_takes_the_failed_state_it_shows(flyk: Flyk, app: str, machine_id: str) -> None:
    failed = flyk("--local", "m", "run", "nginx", "-a", "web", "-e", "FLYK_SIM_START_FAILS=1")
    assert failed.exit_code == 10
    listed = json.loads(flyk("--local", "m", "list", "-a", "web", "-j").stdout)
    [failed_id] = [m["id"] for m in listed if m["state"] == "failed"]
    assert flyk("--local", "m", "list", "-a", "web", "--state", "failed", "-q") == Result(
        0, failed_id + "\n", ""
    )
    both = flyk("--local", "m", "list", "-a", "web", "--state", "failed,started", "-q")
    assert sorted(both.stdout.split()) == sorted([failed_id, machine_id])


def test_list_in_an_unknown_region_says_so(flyk: Flyk, app: str, machine_id: str) -> None:
    result = flyk("--local", "m", "list", "-a", "web", "-r", "zzz")
    assert result == Result(
        2,
        "",
        "Error: unknown region 'zzz'\n       `flyk regions list` shows the regions.\n",
    )
    empty = flyk("--local", "m", "list", "-a", "web", "-r", "ams")
    assert empty == Result(0, "", "No machines in app web in region ams.\n")


def test_a_size_and_another_cpu_kind_conflict(flyk: Flyk, app: str) -> None:
    result = flyk(
        "--local", "m", "run", "nginx", "-a", "web",
        "--vm-size", "shared-cpu-1x", "--vm-cpu-kind", "performance",
    )  # fmt: skip
    assert result == Result(
        2,
        "",
        "Error: --vm-size shared-cpu-1x has shared CPUs; --vm-cpu-kind performance "
        "contradicts it\n       Give one of them, e.g. --vm-size performance-1x.\n",
    )
    same = _run(flyk, "--vm-size", "performance-1x", "--vm-cpu-kind", "performance")
    assert same["size"] == "performance-1x:2048MB"


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        ("NGINX:::", "'NGINX:::' is not an image reference"),
        ("Nginx", "'Nginx' is not an image reference (repository names are lower-case)"),
        ("nginx:bad tag!", None),
        ("a" * 4000, "the image name is 4000 characters long (at most 255)"),
        ("nginx:" + "t" * 129, "the tag is 129 characters long (at most 128)"),
        ("nginx@sha256:abc", "'nginx@sha256:abc' is not an image reference"),
    ],
)
def test_an_image_that_is_no_reference_is_refused(
    flyk: Flyk, app: str, image: str, problem: str | None
) -> None:
    result = flyk("--local", "m", "run", image, "-a", "web")
    assert result.exit_code == 2 and result.stdout == ""
    if problem is not None:
        assert result.stderr.splitlines()[0] == f"Error: invalid image: {problem}"
    assert flyk("--local", "m", "ls", "-a", "web", "-q").stdout == ""


@pytest.mark.parametrize(
    "image",
    [
        "nginx",
        "nginx:1.27-alpine",
        "registry.fly.io/my-app:deployment-01J",
        "localhost:5000/team/app_x:v1.2",
        "ghcr.io/org/app@sha256:" + "a" * 64,
        "docker.io/library/nginx:latest@sha256:" + "0" * 64,
        "[::1]:5000/app",
    ],
)
def test_image_references_are_accepted(flyk: Flyk, app: str, image: str) -> None:
    result = flyk("--local", "m", "run", image, "-a", "web", "--detach", "-j")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["image"] == image


def test_status_shows_the_command_as_a_command_line_and_all_metadata(flyk: Flyk, app: str) -> None:
    machine_id = str(_run(flyk, "-m", "team=edge", "--", "echo", "hi there", "it's")["id"])
    table = flyk("--local", "m", "status", machine_id, "-a", "web").stdout
    detail = table.split("\n\n")[0].replace("PRIVATE IP", "IP")  # the events table follows
    fields = dict(line.split(None, 1) for line in detail.splitlines() if " " in line.strip())
    assert fields["COMMAND"] == "echo 'hi there' 'it'\"'\"'s'"
    shown = dict(pair.split("=", 1) for pair in fields["METADATA"].split(","))
    assert shown["team"] == "edge" and "flyk_launch_id" in shown  # as --json and flyctl show it


def test_exec_forwards_stdin_that_is_not_a_terminal(flyk: Flyk, app: str, machine_id: str) -> None:
    result = flyk("--local", "m", "exec", machine_id, "-a", "web", "--", "cat", input="hi\n")
    assert result == Result(0, "hi\n", "")


def test_wait_for_a_missing_machine_names_the_app_in_its_hint(flyk: Flyk, app: str) -> None:
    result = flyk("--local", "m", "wait", "00000000000000", "-a", "web")
    assert result == Result(
        3,
        "",
        "Error: machine 00000000000000 not found in app web\n"
        "       `flyk machine list -a web` shows its machines.\n",
    )


def test_destroying_a_running_machine_fails_before_asking(
    flyk: Flyk, app: str, machine_id: str
) -> None:
    result = flyk("--local", "m", "destroy", machine_id, "-a", "web")  # no terminal, no --yes
    assert result == Result(
        5,
        "",
        f"Error: machine {machine_id} is started, not stopped: it cannot be destroyed\n"
        f"       Stop it first (flyk machine stop {machine_id} -a web), or pass --force to "
        "kill it.\n",
    )
    assert flyk("--local", "m", "stop", machine_id, "-a", "web").exit_code == 0
    asked = flyk("--local", "m", "destroy", machine_id, "-a", "web")
    assert asked.exit_code == 2 and "--yes must be given" in asked.stderr


def test_destroying_several_checks_each_before_asking(flyk: Flyk, app: str) -> None:
    running, stopped = _started(flyk), _started(flyk)
    assert flyk("--local", "m", "stop", stopped, "-a", "web").exit_code == 0
    result = flyk("--local", "m", "destroy", running, stopped, "-a", "web", "-y", "-j")
    assert result.exit_code == 5
    documents = json.loads(result.stdout)
    assert [(d["id"], d["error"] is None) for d in documents] == [
        (running, False),
        (stopped, True),
    ]
    assert flyk("--local", "m", "ls", "-a", "web", "-q").stdout == running + "\n"


@pytest.mark.parametrize("flag", ["--rm", "--restart=no"])
def test_a_one_shot_machine_that_exits_0_is_a_success(flyk: Flyk, app: str, flag: str) -> None:
    result = flyk(
        "--local", "m", "run", "nginx", "-a", "web", flag, "-e", "FLYK_SIM_EXIT_CODE=0", "-j"
    )
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    state = "destroyed" if flag == "--rm" else "stopped"
    assert document["state"] == state
    text = flyk("--local", "m", "run", "nginx", "-a", "web", flag, "-e", "FLYK_SIM_EXIT_CODE=0")
    assert text.exit_code == 0
    machine = text.stdout.split()[1]
    said = "was destroyed (--rm)" if flag == "--rm" else "is stopped"
    assert text.stderr == f"Machine {machine} ran and exited with code 0; it {said}\n"


def test_quiet_and_json_conflict(flyk: Flyk, app: str) -> None:
    for group in (["m"], ["volumes"]):
        result = flyk("--local", *group, "list", "-a", "web", "-q", "--json")
        assert result == Result(2, "", "Error: -q/--quiet and --json cannot be used together\n")
    result = flyk("--local", "apps", "list", "-q", "--json")
    assert result == Result(2, "", "Error: -q/--quiet and --json cannot be used together\n")
