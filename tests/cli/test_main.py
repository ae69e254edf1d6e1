"""The root: version, help, global options, errors → exit codes, --verbose, Ctrl-C."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from flyk import __version__
from flyk.api import RetryPolicy
from flyk.cli.main import EXIT_INTERRUPTED, INTERRUPTED, hoist_global_options
from flyk.errors import exit_code_table
from tests.cli.helpers import Flyk, Result, json_response, no_retries

TOKEN = "fm2_sekrit-token-value"
APPS = {"total_apps": 1, "apps": [{"name": "web", "organization": {"slug": "personal"}}]}


def test_version(flyk: Flyk) -> None:
    assert flyk("--version") == Result(0, f"flyk {__version__}\n", "")
    result = flyk("version", "--json")
    assert (result.exit_code, result.stdout) == (0, f'{{\n    "version": "{__version__}"\n}}\n')


@pytest.mark.parametrize("args", [["version"], ["--version"]])
def test_fly_json_reaches_the_version_command(args: list[str]) -> None:
    """The plain-text fast path of `flyk version` (in main(), a process of its own)."""
    printed = subprocess.run(
        [sys.executable, "-m", "flyk", *args],
        env={**os.environ, "FLY_JSON": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    if args == ["version"]:
        assert (printed.returncode, json.loads(printed.stdout)) == (0, {"version": __version__})
    else:  # --version is the root's flag, not a command with --json: plain, as flyctl's
        assert (printed.returncode, printed.stdout) == (0, f"flyk {__version__}\n")


def test_no_arguments_prints_help(flyk: Flyk) -> None:
    result = flyk()
    assert "Usage: flyk [OPTIONS] COMMAND [ARGS]..." in result.stdout + result.stderr


def test_unknown_command_is_a_usage_error(flyk: Flyk) -> None:
    result = flyk("nope")
    assert result.exit_code == 2
    assert "No such command 'nope'" in result.stderr
    assert result.stdout == ""


PARSER_ERRORS = [
    (
        ["machine", "run", "nginx", "--restart", "maybe"],
        "Invalid value for '--restart': 'maybe' is not one of no, always, on-failure.",
        "flyk machine run",
    ),
    (
        ["volumes", "create", "d", "-a", "x", "-r", "iad", "-s", "0"],
        "Invalid value for '-s' / '--size': 0 is not between 1 and 500.",
        "flyk volumes create",
    ),
    (["machine", "list", "--bogus"], "No such option: --bogus", "flyk machine list"),
    (
        ["machine", "wait", "0123456789abcd", "-w", "-1"],
        "Invalid value for '-w' / '--wait-timeout': -1 is not between 0 and 86400.",
        "flyk machine wait",
    ),
    (
        ["machine", "run", "nginx", "-a", "web", "-w", "inf"],
        "Invalid value for '-w' / '--wait-timeout': inf is not a finite number.",
        "flyk machine run",
    ),
    (
        ["machine", "stop", "0123456789abcd", "--timeout", "-5"],
        "Invalid value for '--timeout': -5 is not between 0 and 86400.",
        "flyk machine stop",
    ),
    (
        ["machine", "exec", "0123456789abcd", "true", "--timeout", "-1"],
        "Invalid value for '--timeout': -1 is not between 0 and 86400.",
        "flyk machine exec",
    ),
    (
        ["machine", "stop", "0123456789abcd", "--timeout", "nan"],
        "Invalid value for '--timeout': nan is not a finite number.",
        "flyk machine stop",
    ),
]


@pytest.mark.parametrize(("args", "message", "command"), PARSER_ERRORS)
@pytest.mark.parametrize("ask", ["--json", "-j", "FLY_JSON"])
def test_parser_errors_print_the_json_error_document_when_asked(
    flyk: Flyk, args: list[str], message: str, command: str, ask: str
) -> None:
    if ask == "FLY_JSON":
        result = flyk(*args, env={"FLY_JSON": "1"})
    else:
        result = flyk(*args, ask)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == f"Error: {message}"
    assert json.loads(result.stdout)["error"] == {
        "type": "UsageError",
        "message": message,
        "hint": f"Try '{command} -h' for help.",
        "exit_code": 2,
        "request_id": None,
        "status": None,
        "code": None,
    }


@pytest.mark.parametrize(("args", "message", "command"), PARSER_ERRORS)
def test_parser_errors_print_nothing_on_stdout_without_json(
    flyk: Flyk, args: list[str], message: str, command: str
) -> None:
    result = flyk(*args)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines()[-1] == f"Error: {message}"


def test_json_after_double_dash_is_the_commands_not_flyks(flyk: Flyk) -> None:
    result = flyk("machine", "run", "nginx", "--restart", "maybe", "--", "cat", "--json")
    assert (result.exit_code, result.stdout) == (2, "")


@pytest.mark.parametrize(
    ("args", "hoisted"),
    [
        (["apps", "list", "--local"], ["--local", "apps", "list"]),
        (["apps", "list", "-t", "x", "--verbose"], ["-t", "x", "--verbose", "apps", "list"]),
        (["apps", "list", "--access-token=x"], ["--access-token=x", "apps", "list"]),
        (["apps", "list", "-tx", "-q"], ["-tx", "apps", "list", "-q"]),
        (
            ["machine", "exec", "id", "--", "ls", "--local", "-t"],
            ["machine", "exec", "id", "--", "ls", "--local", "-t"],
        ),
    ],
)
def test_global_options_work_anywhere_before_double_dash(
    args: list[str], hoisted: list[str]
) -> None:
    assert hoist_global_options(args) == hoisted


def test_remote_target_without_token_is_an_auth_error(
    flyk: Flyk, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLY_FLAPS_BASE_URL", "https://flaps.example")
    result = flyk("apps", "list")
    assert result.exit_code == 4
    assert result.stdout == ""
    assert result.stderr == (
        "Error: no Fly.io token for https://flaps.example\n"
        "       Run `flyk auth login`, set FLY_API_TOKEN, or pass --access-token "
        "(or use --local for the embedded backend).\n"
    )


def test_retries_are_announced_once_on_stderr(flyk: Flyk) -> None:
    attempts: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    result = flyk(
        "apps",
        "list",
        "-t",
        TOKEN,
        transport=httpx.MockTransport(refuse),
        client_options={"retry": RetryPolicy(max_attempts=4, sleep=lambda _s: None)},
    )
    assert result.exit_code == 9
    assert len(attempts) == 4
    lines = result.stderr.splitlines()
    assert lines[0] == "Retrying: connection refused (attempt 2)…"
    assert lines[1].startswith("Error: ")
    assert sum("Retrying" in line for line in lines) == 1


def test_unreachable_api_is_a_network_error(flyk: Flyk) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    result = flyk(
        "apps",
        "list",
        "-t",
        TOKEN,
        transport=httpx.MockTransport(refuse),
        client_options=no_retries(),
    )
    assert result.exit_code == 9
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert len(result.stderr.splitlines()) <= 2
    assert "Traceback" not in result.stderr


def test_api_error_shows_the_request_id_and_json_error_document(flyk: Flyk) -> None:
    def not_found(request: httpx.Request) -> httpx.Response:
        return json_response(404, {"error": "app not found"}, {"fly-request-id": "req-123"})

    result = flyk(
        "apps", "show", "ghost", "--json", "-t", TOKEN, transport=httpx.MockTransport(not_found)
    )
    assert result.exit_code == 3
    assert "(Request ID: req-123)" in result.stderr.splitlines()[0]
    assert result.stderr.startswith("Error: ")
    assert '"type": "NotFoundError"' in result.stdout
    assert '"request_id": "req-123"' in result.stdout
    assert '"exit_code": 3' in result.stdout


def test_verbose_shows_exchanges_but_never_the_token(flyk: Flyk) -> None:
    transport = httpx.MockTransport(lambda request: json_response(200, APPS))
    result = flyk("apps", "list", "--verbose", "-t", TOKEN, transport=transport)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].split() == [
        "NAME",
        "ORG",
        "STATUS",
        "NETWORK",
        "MACHINES",
        "VOLUMES",
    ]
    assert "> GET https://api.machines.dev/v1/apps?org_slug=personal" in result.stderr
    assert "< 200 OK" in result.stderr
    assert "authorization" in result.stderr.lower()
    assert TOKEN not in result.stderr + result.stdout


def test_verbose_shows_no_traceback_for_an_expected_error_and_redacts(flyk: Flyk) -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"refused for {TOKEN}", request=request)

    result = flyk(
        "--verbose",
        "apps",
        "list",
        "-t",
        TOKEN,
        transport=httpx.MockTransport(boom),
        client_options=no_retries(),
    )
    assert result.exit_code == 9
    assert "Traceback" not in result.stderr  # --verbose shows the exchanges, not flyk's code
    assert result.stderr.splitlines()[-2].startswith("Error: ")
    assert TOKEN not in result.stderr


MACHINE_ID = "148e21ea7d5789"
MACHINE = {
    "id": MACHINE_ID,
    "state": "started",
    "region": "iad",
    "instance_id": "v1",
    "config": {"image": "nginx", "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256}},
}


class LeaseLog:
    """A scripted API for `machine update` that is interrupted by Ctrl-C mid-update."""

    def __init__(self) -> None:
        self.released: list[str | None] = []
        self.lock = threading.Lock()

    def handler(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path.endswith("/lease") and method == "POST":
            return json_response(201, {"status": "success", "data": {"nonce": "n-1"}})
        if path.endswith("/lease") and method == "DELETE":
            with self.lock:
                self.released.append(request.headers.get("fly-machine-lease-nonce"))
            return json_response(200, {})
        if method == "GET" and path.endswith(MACHINE_ID):
            return json_response(200, MACHINE)
        if method in {"POST", "DELETE"} and f"/machines/{MACHINE_ID}" in path:
            raise KeyboardInterrupt  # the user pressed Ctrl-C while the change was in flight
        return json_response(404, {"error": f"unexpected {method} {path}"})


@pytest.mark.parametrize(
    "command",
    [
        ["update", MACHINE_ID, "--image", "nginx:2"],
        ["update", MACHINE_ID, "--image", "nginx:2", "--json"],
        ["stop", MACHINE_ID],
        ["restart", MACHINE_ID],
        ["destroy", MACHINE_ID, "--yes", "--force"],
    ],
)
def test_ctrl_c_under_a_lease_releases_it_and_exits_130(flyk: Flyk, command: list[str]) -> None:
    api = LeaseLog()
    result = flyk(
        "machine",
        *command,
        "-a",
        "web",
        "-t",
        TOKEN,
        transport=httpx.MockTransport(api.handler),
        client_options=no_retries(),
    )
    assert result.exit_code == 130
    assert api.released == ["n-1"]
    assert result.stderr.splitlines()[-1] == f"Error: {INTERRUPTED}"
    if "--json" in command:  # scripts get the error document on stdout, as for any error
        assert json.loads(result.stdout)["error"] == {
            "type": "Interrupted",
            "message": INTERRUPTED,
            "hint": None,
            "exit_code": 130,
            "request_id": None,
            "status": None,
            "code": None,
        }
    else:
        assert result.stdout == ""


def test_exit_code_table_is_what_errors_define() -> None:
    codes = [row.code for row in exit_code_table()]
    assert codes == sorted(codes) and codes[:3] == [0, 1, 2] and codes[-1] == 130


def test_interrupted_exit_code_matches_the_error_tree() -> None:
    from flyk.errors import Interrupted

    assert EXIT_INTERRUPTED == Interrupted.exit_code


@pytest.mark.parametrize(
    ("args", "env", "source"),
    [
        (["-t", TOKEN], {}, "--access-token"),
        ([], {"FLY_ACCESS_TOKEN": TOKEN}, "FLY_ACCESS_TOKEN"),
        ([], {"FLY_API_TOKEN": TOKEN}, "FLY_API_TOKEN"),
    ],
)
def test_a_refused_token_names_where_it_came_from(
    flyk: Flyk, args: list[str], env: dict[str, str], source: str
) -> None:
    def refuse(_request: httpx.Request) -> httpx.Response:
        return json_response(401, {"error": "unauthorized"})

    result = flyk(
        *args, "apps", "list", env=env, transport=httpx.MockTransport(refuse),
        client_options=no_retries(),
    )  # fmt: skip
    assert result.exit_code == 4
    assert result.stderr.splitlines()[1:] == [
        f"       The token from {source} was refused: check it, or replace it "
        "(`flyk auth whoami` shows which token is used)."
    ]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE as on Linux")
def test_a_full_disk_is_one_line_naming_the_file_and_nothing_is_half_written(
    flyk: Flyk, isolated_env: Path
) -> None:
    """The write-ahead log cannot grow past 32 KiB (the size of its index file, which must
    fit): the machine's create is refused by the disk, as on a full filesystem."""
    import resource

    db = isolated_env / "local.db"
    env = {**os.environ, "FLYK_LOCAL_DB": str(db)}
    assert flyk("--local", "apps", "create", "web", env=env).exit_code == 0

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (32768, resource.RLIM_INFINITY))

    run = subprocess.run(
        [sys.executable, "-m", "flyk", "machine", "run", "nginx", "-a", "web"],
        env=env,
        preexec_fn=small_files,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""
    error, hint = run.stderr.splitlines()[-2:]
    assert error.startswith(f"Error: cannot write the local backend's database {db}: ")
    assert error.endswith("; nothing was changed")
    assert "FLYK_LOCAL_DB" in hint
    listed = flyk("--local", "machine", "list", "-a", "web", "-q", env=env)
    assert (listed.exit_code, listed.stdout) == (0, "")  # nothing half-written
