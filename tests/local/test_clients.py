"""Machines API clients written by others drive `flyk local serve` over HTTP.

Each takes an app and a machine through their life as far as the client goes, against a real
`flyk local serve` process in its default (lenient) mode, as a user who points the client at it
would. What a client sends that flyk's own client does not (older field names, `?kill=`,
`instance_id`, …) is what the backend has to take; docs/local-backend.md lists it.

- flaude 0.6.1 (PyPI, a test extra): httpx-based; apps, machines, volumes, waiting for an exit.
- fly-admin 1.6.1 (npm, supabase's TypeScript client): apps, machines (wait, leases, events,
  versions, processes, cordon), volumes. It is installed by `.ci/run` (`npm ci` in
  tests/local/clients, from its lockfile), or by this test when npm is there and it is not.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import flaude
import httpx
import pytest
from flaude import fly_client
from flaude.runner import wait_for_machine_exit

from tests.local.conftest import flyk_local_serve

CLIENTS = Path(__file__).resolve().parent / "clients"


# --- flaude (Python) -------------------------------------------------------------------------


async def _flaude_life(app: str) -> dict[str, object]:
    """Create app (as `app_name`), volume, machine on it; wait for its exit; start, stop,
    update, destroy; destroy the volume. What it saw, for the test to check."""
    seen: dict[str, object] = {}
    created = await flaude.ensure_app(app)  # GET 404, then POST /apps with `app_name`
    seen["app"] = (await flaude.get_app(app)) is not None and created.name == app
    seen["reused"] = (await flaude.ensure_app(app)).name == app
    volume = await flaude.create_volume(app, name="session", region="iad", size_gb=1)
    seen["volumes"] = [v.id for v in await flaude.list_volumes(app)] == [volume.id]
    config = flaude.MachineConfig(
        image="nginx",
        claude_code_oauth_token="local-token",
        prompt="say hello",
        region="iad",
        auto_destroy=False,
        volume_id=volume.id,
        # the simulated workload exits with 3 one second after each start (images are not run)
        env={"FLYK_SIM_RUN_SECONDS": "1", "FLYK_SIM_EXIT_CODE": "3"},
    )
    machine = await flaude.create_machine(app, config, name="worker")
    seen["created"] = (machine.state, machine.region)
    # GET …/wait?state=stopped, then the exit code from the machine's exit event
    seen["exit"] = await wait_for_machine_exit(app, machine.id, timeout=30)
    await flaude.start_machine(app, machine.id)
    seen["restarted"] = (await flaude.get_machine(app, machine.id)).state
    await flaude.stop_machine(app, machine.id)
    # (flaude reads the exit code of the oldest exit event: events come newest first)
    seen["stopped"] = (await wait_for_machine_exit(app, machine.id, timeout=30))[0]
    try:  # flaude updates with PUT, which the spec does not have
        await flaude.update_machine(app, machine.id, config)
    except fly_client.FlyAPIError as error:
        seen["update"] = (error.status_code, json.loads(error.detail)["error"].split(" (")[0])
    await flaude.destroy_machine(app, machine.id)
    seen["destroyed"] = (await flaude.get_machine(app, machine.id)).state
    await flaude.destroy_volume(app, volume.id)
    return seen


def test_flaude_drives_an_app_and_a_machine_through_their_life(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLY_API_TOKEN", "fm2_unused_by_the_local_backend")
    with flyk_local_serve(tmp_path) as served:
        monkeypatch.setattr(fly_client, "FLY_API_BASE", f"{served.url}/v1")
        seen = asyncio.run(_flaude_life("flaude-life"))
        with httpx.Client(base_url=f"{served.url}/v1") as http:
            volumes = http.get("/apps/flaude-life/volumes").json()
            machines = http.get("/apps/flaude-life/machines", params={"include_deleted": "true"})
            [machine] = [m["id"] for m in machines.json()]
            events = http.get(f"/apps/flaude-life/machines/{machine}/events").json()
    assert seen == {
        "app": True,
        "reused": True,
        "volumes": True,
        "created": ("started", "iad"),
        "exit": ("stopped", 3),
        "restarted": "started",
        "stopped": "stopped",
        "update": (405, f"method PUT not allowed for /apps/flaude-life/machines/{machine}"),
        "destroyed": "destroyed",
    }
    assert [v["state"] for v in volumes] in ([], ["destroyed"])
    exits = [e["request"]["exit_event"] for e in events if e["type"] == "exit"]
    assert [(e["exit_code"], e["requested_stop"]) for e in exits] == [(0, True), (3, False)]
    assert "Traceback" not in served.stderr


# --- fly-admin (npm) -------------------------------------------------------------------------

FLY_ADMIN_STEPS = [
    "createApp", "getApp", "listApps",
    "createVolume", "getVolume", "listVolumes", "extendVolume", "listSnapshots",
    "createMachine", "waitMachine started", "getMachine", "listMachines", "listProcesses",
    "stopMachine", "waitMachine stopped", "startMachine", "waitMachine started again",
    "updateMachine", "waitMachine updated", "listVersions",
    "restartMachine", "signalMachine", "cordonMachine", "uncordonMachine",
    "acquireLease", "getLease", "deleteMachine while leased refused 409", "listEvents",
    "deleteMachine", "waitMachine destroyed", "deleteVolume", "deleteApp",
    "getApp after deleteApp refused 404",
]  # fmt: skip


def _node_client_folder() -> Path:
    """tests/local/clients with its node_modules: `.ci/run` installs them from the lockfile;
    a developer's first run does the same here. Without Node.js the test cannot run: it is
    skipped, except in CI (CI=true), which must run it."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if os.environ.get("CI"):
            pytest.fail("node and npm are needed here: .ci/run installs them")
        pytest.skip("Node.js (node and npm) is not installed: the npm client cannot run")
    if not (CLIENTS / "node_modules" / "fly-admin").is_dir():
        installed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=CLIENTS,
            capture_output=True,
            text=True,
            check=False,
        )
        assert installed.returncode == 0, installed.stderr
    return CLIENTS


def test_fly_admin_drives_an_app_and_a_machine_through_their_life(tmp_path: Path) -> None:
    folder = _node_client_folder()
    with flyk_local_serve(tmp_path) as served:
        run = subprocess.run(
            ["node", str(folder / "fly_admin_life.js"), served.url, "fly-admin-life"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[-1])["steps"] == FLY_ADMIN_STEPS
    assert "Traceback" not in served.stderr
