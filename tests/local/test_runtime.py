"""Machines the local backend runs for real (runtime.py), with a stand-in image: a small
Python server that says what it was given. Each test ends with nothing left running."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from flyk.local import LocalBackend, Timing
from tests.local.conftest import checked_client
from tests.procs import alive, process_state

# The stand-in's entrypoint: writes what it sees to report.json under its root, listens on the
# port the backend published for its service, exits 0 on SIGTERM, or with FLYK_STANDIN_EXIT
# (reported through FLYK_EXIT_FILE as the supervisor does) after FLYK_STANDIN_LIFE seconds.
STANDIN = r"""
import json, os, pathlib, signal, socket, sys, time
root = pathlib.Path(os.environ["FLYK_ROOT"])
pki = root / "etc/pki/ca.crt"
report = {
    "pid": os.getpid(), "argv": sys.argv[1:], "secret": os.environ.get("SECRET_TOKEN"),
    "env": os.environ.get("MODE"), "file": pki.read_text() if pki.exists() else None,
    "file_mode": oct(pki.stat().st_mode & 0o777) if pki.exists() else None,
    "mounted": (root / "data").resolve().as_posix(),
}
(root / "data" / "boots").open("a").write("boot\n")
(root / "report.json").write_text(json.dumps(report))
def bye(code):
    pathlib.Path(os.environ["FLYK_EXIT_FILE"]).write_text(str(code))
    sys.exit(code)
signal.signal(signal.SIGTERM, lambda *_: bye(0))
server = socket.socket()
server.bind(("127.0.0.1", int(os.environ["FLYK_LOCAL_PORT_8080"])))
server.listen()
life = float(os.environ.get("FLYK_STANDIN_LIFE", "3600"))
time.sleep(life)
bye(int(os.environ.get("FLYK_STANDIN_EXIT", "0")))
"""


def launcher(config: Mapping[str, Any]) -> tuple[list[str], dict[str, str]] | None:
    if config.get("image") != "standin:1":
        return None
    argv = [sys.executable, "-c", STANDIN, *(config.get("init") or {}).get("cmd", [])]
    return argv, {"MODE": "from the image"}  # the machine's own env wins over the image's


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalBackend]:
    backend = LocalBackend(tmp_path / "local.db", Timing.instant(), launcher=launcher)
    yield backend
    backend.reset()  # stops whatever still runs


@pytest.fixture
def api(backend: LocalBackend) -> Iterator[httpx.Client]:
    with checked_client(backend.transport()) as client:
        yield client


def launch(api: httpx.Client, *, env: dict[str, str] | None = None, restart: str = "always") -> str:
    assert api.post("/apps", json={"name": "cp", "org_slug": "personal"}).status_code == 201
    pem = base64.b64encode(b"---CA---").decode()
    api.post("/apps/cp/secrets", json={"values": {"SECRET_TOKEN": "s3cr3t", "CA": pem}})
    volume = api.post("/apps/cp/volumes", json={"name": "data", "region": "iad", "size_gb": 1})
    config = {
        "image": "standin:1",
        "init": {"cmd": ["--flag=1"]},
        "env": {"MODE": "real", **(env or {})},
        "files": [{"guest_path": "/etc/pki/ca.crt", "secret_name": "CA", "mode": 0o600}],
        "mounts": [{"volume": volume.json()["id"], "path": "/data"}],
        "services": [{"protocol": "tcp", "internal_port": 8080, "ports": [{"port": 80}]}],
        "restart": {"policy": restart},
        "stop_config": {"timeout": "5s"},
    }
    created = api.post("/apps/cp/machines", json={"config": config, "region": "iad"})
    assert created.status_code == 200, created.text
    return str(created.json()["id"])


def processes(backend: LocalBackend) -> list[dict[str, Any]]:
    with checked_client(backend.transport()) as client:
        listed = client.get("http://local/_flyk/processes")
    return list(listed.json())


def report(backend: LocalBackend, machine_id: str, timeout: float = 20.0) -> dict[str, Any]:
    path = backend.runtime.machine_dir(machine_id) / "root" / "report.json"  # type: ignore[union-attr]
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, "the machine's process never started"
        time.sleep(0.05)
    while True:
        try:
            return dict(json.loads(path.read_text()))
        except ValueError:
            time.sleep(0.05)


def published_port(backend: LocalBackend) -> int:
    (process,) = processes(backend)
    return int(process["ports"]["8080"])


def test_a_started_machine_runs_with_its_files_mounts_env_secrets_and_port(
    backend: LocalBackend, api: httpx.Client
) -> None:
    machine = launch(api)
    seen = report(backend, machine)
    assert seen["argv"] == ["--flag=1"] and seen["env"] == "real" and seen["secret"] == "s3cr3t"
    assert seen["file"] == "---CA---" and seen["file_mode"] == "0o600"
    assert "volumes" in seen["mounted"]  # the volume's own directory, which outlives the machine
    (process,) = processes(backend)
    assert process["machine_id"] == machine and process["running"] and process["pid"] > 0
    assert Path(process["log"]).name == "machine.log"
    with socket.create_connection(("127.0.0.1", published_port(backend)), timeout=5):
        pass  # the process listens where the backend published the app's port 8080


def test_stop_start_suspend_and_destroy_do_what_they_say(
    backend: LocalBackend, api: httpx.Client
) -> None:
    machine = launch(api)
    first = report(backend, machine)["pid"]
    assert api.post(f"/apps/cp/machines/{machine}/stop").status_code == 200
    assert not alive(first)
    assert api.get(f"/apps/cp/machines/{machine}").json()["state"] == "stopped"
    (backend.runtime.machine_dir(machine) / "root" / "report.json").unlink()  # type: ignore[union-attr]
    assert api.post(f"/apps/cp/machines/{machine}/start").status_code == 200
    second = report(backend, machine)["pid"]
    assert second != first and alive(second)

    assert api.post(f"/apps/cp/machines/{machine}/suspend").status_code == 200
    api.get(f"/apps/cp/machines/{machine}")
    assert process_state(second) == "T"  # frozen, not gone
    assert api.post(f"/apps/cp/machines/{machine}/start").status_code == 200
    assert alive(second) and process_state(second) != "T"  # thawed: the same process

    directory = backend.runtime.machine_dir(machine)  # type: ignore[union-attr]
    assert api.delete(f"/apps/cp/machines/{machine}", params={"force": "true"}).status_code == 200
    api.get(f"/apps/cp/machines/{machine}")
    assert not alive(second) and not directory.exists() and processes(backend) == []


def test_a_process_that_dies_is_the_machines_exit_and_the_restart_policy_applies(
    backend: LocalBackend, api: httpx.Client
) -> None:
    machine = launch(api)
    first = report(backend, machine)["pid"]
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(first) and time.monotonic() < deadline:
        time.sleep(0.05)
    api.get(f"/apps/cp/machines/{machine}")  # any request: the backend notices
    events = api.get(f"/apps/cp/machines/{machine}/events").json()
    exits = [e for e in events if e["type"] == "exit"]
    assert exits and exits[0]["request"]["exit_event"]["exit_code"] == 137
    assert exits[0]["request"]["exit_event"]["restarting"] is True
    (process,) = processes(backend)
    assert process["running"] and process["pid"] != first  # restart policy "always"


def test_an_exit_code_the_process_reports_is_the_machines(
    backend: LocalBackend, api: httpx.Client
) -> None:
    machine = launch(api, env={"FLYK_STANDIN_LIFE": "0.2", "FLYK_STANDIN_EXIT": "3"}, restart="no")
    report(backend, machine)
    deadline = time.monotonic() + 10
    while api.get(f"/apps/cp/machines/{machine}").json()["state"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    exits = [
        e for e in api.get(f"/apps/cp/machines/{machine}/events").json() if e["type"] == "exit"
    ]
    assert exits[0]["request"]["exit_event"]["exit_code"] == 3
    assert not processes(backend)[0]["running"]


def test_after_a_reboot_the_next_backend_brings_running_machines_back(
    backend: LocalBackend, api: httpx.Client, tmp_path: Path
) -> None:
    machine = launch(api)
    pid = report(backend, machine)["pid"]
    os.killpg(pid, signal.SIGKILL)  # the machine's processes are gone, the records stay
    while alive(pid):
        time.sleep(0.05)
    again = LocalBackend(tmp_path / "local.db", Timing.instant(), launcher=launcher)
    (process,) = processes(again)
    assert process["running"] and process["pid"] != pid
    volume = api.get("/apps/cp/volumes").json()[0]["id"]
    boots = backend.runtime.volume_dir(volume) / "boots"  # type: ignore[union-attr]
    deadline = time.monotonic() + 20
    while boots.read_text() != "boot\nboot\n":  # the volume kept what the first boot wrote
        assert time.monotonic() < deadline, boots.read_text()
        time.sleep(0.05)


def test_reset_stops_everything(backend: LocalBackend, api: httpx.Client) -> None:
    machine = launch(api)
    pid = report(backend, machine)["pid"]
    backend.reset()
    assert not alive(pid) and processes(backend) == []


def test_other_images_stay_simulated(backend: LocalBackend, api: httpx.Client) -> None:
    assert api.post("/apps", json={"name": "web", "org_slug": "personal"}).status_code == 201
    created = api.post("/apps/web/machines", json={"config": {"image": "nginx"}})
    assert created.status_code == 200 and created.json()["state"] in ("created", "started")
    assert processes(backend) == []


def test_a_backend_without_a_launcher_runs_nothing(tmp_path: Path) -> None:
    plain = LocalBackend(tmp_path / "plain.db", Timing.instant())
    with checked_client(plain.transport()) as api:
        launch(api)
        assert processes(plain) == []
