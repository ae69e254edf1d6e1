"""`flyk local`: status, reset, and serve (the same backend over real HTTP)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.helpers import Flyk, Result


def test_status_and_reset(flyk: Flyk, isolated_env: Path) -> None:
    db = isolated_env / ".local" / "share" / "flyk" / "local.db"
    empty = json.loads(flyk("local", "status", "--json").stdout)
    assert empty == {"data": str(db), "exists": False, "size_bytes": 0, "apps": 0, "processes": []}

    flyk("--local", "apps", "create", "web")
    status = json.loads(flyk("local", "status", "--json").stdout)
    assert (status["exists"], status["apps"]) == (True, 1)

    refused = flyk("local", "reset")
    assert refused.exit_code == 2
    assert flyk("local", "reset", "-y") == Result(0, "", f"Reset {db}\n")
    assert json.loads(flyk("local", "status", "-j").stdout)["apps"] == 0


def test_local_flag_wins_over_a_token(flyk: Flyk, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLY_API_TOKEN", "fm2_never_used")
    assert flyk("--local", "apps", "create", "web") == Result(0, "", "New app created: web\n")


def test_flyk_local_db_moves_the_state(
    flyk: Flyk, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = isolated_env / "elsewhere.db"
    monkeypatch.setenv("FLYK_LOCAL_DB", str(db))
    result = flyk("apps", "create", "web")
    assert result.stderr.startswith(
        f"Using the local backend (no Fly.io token found); data in {db}\n"
    )
    assert db.exists()


@pytest.mark.served
@pytest.mark.parametrize("host", [None, "0.0.0.0"])
def test_serve_speaks_the_machines_api_over_http(isolated_env: Path, host: str | None) -> None:
    """The URL printed is the one to use: on every address too (http://0.0.0.0:PORT was
    printed, and a flyk given it asked for a token, exit 4); that case is warned about."""
    flyk = [sys.executable, "-m", "flyk"]
    env = dict(os.environ)
    # Ctrl-C is SIGINT with Python's default handler, whatever this process inherited: a test
    # run started as a background job (or under nohup) ignores SIGINT, and so would the server.
    serve = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "sys.argv[0] = 'flyk'; runpy.run_module('flyk', run_name='__main__', alter_sys=True)"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", serve, "local", "serve", "--port", "0", "--timing", "instant"]
        + (["--host", host] if host else []),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        client_env = {**env, "FLY_FLAPS_BASE_URL": url}
        created = subprocess.run(
            [*flyk, "apps", "create", "served", "--json"],
            env=client_env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert created.returncode == 0, created.stderr
        assert created.stderr == ""  # a loopback URL needs no token and no announcement
        assert json.loads(created.stdout)["name"] == "served"
    finally:
        server.send_signal(signal.SIGINT)
        try:
            _, stderr = server.communicate(timeout=60)
        finally:
            if server.poll() is None:  # never leave it running for a later test to trip on
                server.kill()
                server.communicate()
    assert server.returncode == 0
    assert stderr.splitlines()[-1] == "Stopped."
    warned = "Warning: listening on 0.0.0.0: whoever reaches this address can use it"
    assert (warned in stderr) == (host is not None), stderr


@pytest.mark.served
def test_serve_stops_quietly_on_sigterm(isolated_env: Path) -> None:
    """A service manager or `kill` stops it the way Ctrl-C does: exit 0, one line."""
    server = subprocess.Popen(
        [sys.executable, "-m", "flyk", "local", "serve", "--port", "0", "--timing", "instant"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().startswith("http://127.0.0.1:")
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, stderr
    assert stderr.splitlines()[-1] == "Stopped."
    assert "Traceback" not in stderr


def test_serve_on_a_busy_port_is_a_usage_error_with_a_hint(flyk: Flyk) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = flyk("local", "serve", "--port", str(port), "--timing", "instant")
    assert result.exit_code == 2
    assert result.stdout == ""
    error, hint = result.stderr.splitlines()
    assert error.startswith(f"Error: cannot listen on 127.0.0.1:{port}: ")
    assert hint == "       Pick another port with -p/--port, or --port 0 for any free one."


@pytest.mark.parametrize("host", ["no-such-host.invalid", "192.0.2.1"])
def test_serve_on_an_address_not_this_machines_names_host_not_port(flyk: Flyk, host: str) -> None:
    """The hint said to pick another port whatever was wrong."""
    result = flyk("local", "serve", "--host", host, "--port", "0", "--timing", "instant")
    assert result.exit_code == 2
    error, hint = result.stderr.splitlines()
    assert error.startswith(f"Error: cannot listen on {host}:0: ")
    assert hint == (
        "       Give an address of this machine with --host, e.g. 127.0.0.1 (or 0.0.0.0: all)."
    )


@pytest.mark.parametrize(
    ("port", "problem"),
    [("99999", "99999 is not between 0 and 65535."), ("-1", "-1 is not between 0 and 65535.")],
)
def test_serve_refuses_ports_out_of_range(flyk: Flyk, port: str, problem: str) -> None:
    result = flyk("local", "serve", "--port", port)
    assert result.exit_code == 2
    assert f"Error: Invalid value for '-p' / '--port': {problem}\n" in result.stderr


UNUSABLE_DB_CASES = [
    ("not-sqlite", ["apps", "list"]),
    ("not-sqlite", ["local", "status"]),
    ("not-sqlite", ["local", "reset", "-y"]),
    ("cannot-create", ["apps", "list"]),
    ("cannot-create", ["local", "reset", "-y"]),  # (status of a missing file reads nothing)
]


@pytest.mark.parametrize(("kind", "command"), UNUSABLE_DB_CASES)
def test_an_unusable_flyk_local_db_is_a_config_error(
    flyk: Flyk, isolated_env: Path, command: list[str], kind: str
) -> None:
    if kind == "not-sqlite":
        path = isolated_env / "notes.db"
        path.write_text("not a database, just some text that is long enough to be read " * 4)
        reason = "file is not a database"
    else:
        path = isolated_env / "a-file" / "local.db"  # its directory is a file
        (isolated_env / "a-file").write_text("")
        reason = ""  # the OS's words (mkdir: "File exists"); the backend may add its own
    result = flyk(*command, env={"FLYK_LOCAL_DB": str(path)})
    assert result.exit_code == 2
    error, hint = result.stderr.splitlines()[-2:]
    assert error.startswith(
        f"Error: cannot use {path} (FLYK_LOCAL_DB) for the local backend's data: {reason}"
    )
    assert hint == "       FLYK_LOCAL_DB names that file: point it at a writable SQLite file."


def test_serve_on_an_unusable_database_is_a_config_error(flyk: Flyk, isolated_env: Path) -> None:
    path = isolated_env / "notes.db"
    path.write_text("not a database, just some text that is long enough to be read " * 4)
    result = flyk("local", "serve", "--port", "0", env={"FLYK_LOCAL_DB": str(path)})
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: cannot use {path} (FLYK_LOCAL_DB)")
