"""`flyk volumes` against the embedded local backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flyk import config
from flyk.api import FlyClient
from flyk.cli import views
from flyk.local import LocalBackend
from tests.cli.helpers import Flyk, Result


def test_create_list_show_extend_destroy(flyk: Flyk) -> None:
    flyk("--local", "apps", "create", "web")
    created = flyk("--local", "volumes", "create", "data", "-a", "web", "-r", "iad", "-s", "2")
    assert created.exit_code == 0, created.stderr
    volume_id = created.stdout.strip()
    assert volume_id.startswith("vol_")
    assert created.stderr == f"Created volume {volume_id} (2 GB) in iad\n"

    listed = flyk("--local", "vol", "list", "-a", "web")
    header, row = listed.stdout.splitlines()
    assert header.split()[:3] == ["ID", "NAME", "STATE"]
    assert row.split()[:2] == [volume_id, "data"]

    shown = json.loads(flyk("--local", "vol", "show", volume_id, "-a", "web", "--json").stdout)
    assert (shown["id"], shown["name"], shown["size_gb"], shown["region"]) == (
        volume_id,
        "data",
        2,
        "iad",
    )

    extended = json.loads(
        flyk("--local", "vol", "extend", volume_id, "-a", "web", "-s", "5", "-j").stdout
    )
    assert extended["size_gb"] == 5

    assert flyk("--local", "vol", "destroy", volume_id, "-a", "web").exit_code == 2
    assert flyk("--local", "vol", "destroy", volume_id, "-a", "web", "--yes") == Result(
        0, "", f"Destroyed volume {volume_id}\n"
    )


def test_extend_says_when_the_machine_must_restart(flyk: Flyk, isolated_env: Path) -> None:
    """--json dropped needs_restart, so a script could not tell; the notice names the machine."""
    from flyk.api import FlyClient, MachineConfig, MountConfig
    from flyk.local import LocalBackend

    flyk("--local", "apps", "create", "web")
    volume_id = flyk("--local", "volumes", "create", "data", "-a", "web", "-r", "iad").stdout
    volume_id = volume_id.strip()
    backend = LocalBackend(path=config.local_db_path())
    with FlyClient(base_url="http://local.flyk", transport=backend.transport()) as client:
        mount = MountConfig(volume=volume_id, path="/data")
        machine = client.machines.create("web", MachineConfig(image="nginx", mounts=(mount,)))
        client.machines.wait("web", machine.id, "started")
    extended = flyk("--local", "vol", "extend", volume_id, "-a", "web", "-s", "3", "-j")
    document = json.loads(extended.stdout)
    assert (document["size_gb"], document["needs_restart"]) == (3, True)
    assert set(document) == set(views.VOLUME.keys) | {"needs_restart"}
    assert {key for key, _ in views.EXTRA_SHAPES["volumes extend"]} == {"…", "needs_restart"}
    assert extended.stderr == (
        f"Restart machine {machine.id} to use the new size: "
        f"flyk machine restart {machine.id} -a web\n"
    )
    unattached = flyk("--local", "volumes", "create", "spare", "-a", "web", "-r", "iad").stdout
    quiet = flyk("--local", "vol", "extend", unattached.strip(), "-a", "web", "-s", "2", "-j")
    assert (json.loads(quiet.stdout)["needs_restart"], quiet.stderr) == (False, "")


def test_json_list_keys(flyk: Flyk) -> None:
    flyk("--local", "apps", "create", "web")
    flyk("--local", "volumes", "create", "data", "-a", "web", "-r", "ams")
    (volume,) = json.loads(flyk("--local", "volumes", "list", "-a", "web", "--json").stdout)
    assert list(volume) == [
        "id", "name", "state", "size_gb", "region", "zone", "encrypted",
        "attached_machine_id", "created_at",
    ]  # fmt: skip


def test_region_is_required(flyk: Flyk) -> None:
    flyk("--local", "apps", "create", "web")
    assert flyk("--local", "volumes", "create", "data", "-a", "web") == Result(
        2, "", "Error: no region given: specify one with -r/--region or FLY_REGION\n"
    )


def test_size_out_of_range_is_a_usage_error(flyk: Flyk) -> None:
    result = flyk("--local", "volumes", "create", "data", "-a", "web", "-r", "iad", "-s", "0")
    assert result.exit_code == 2
    assert "Invalid value for '-s' / '--size'" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["create", "data", "-a", "web", "-r", "IAD!"],
        ["create", "data", "-a", "Bad", "-r", "iad"],
        ["show", "vol_123", "-a", "Bad"],
        ["extend", "vol_123", "-a", "Bad", "-s", "2"],
    ],
    ids=" ".join,
)
def test_bad_input_needs_no_token(flyk: Flyk, isolated_env: Path, args: list[str]) -> None:
    result = flyk("volumes", *args, env={"FLY_FLAPS_BASE_URL": "https://x.invalid"})
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith("Error: invalid ")
    assert not config.local_db_path().exists()


def test_list_quiet_prints_ids_only(flyk: Flyk) -> None:
    assert flyk("--local", "apps", "create", "web").exit_code == 0
    created = flyk("--local", "volumes", "create", "data", "-a", "web", "-r", "iad")
    volume_id = created.stdout.strip()
    assert flyk("--local", "volumes", "list", "-a", "web", "-q") == Result(0, volume_id + "\n", "")
    assert flyk("--local", "vol", "ls", "-a", "web", "--quiet", "-j").exit_code == 2


def test_create_after_a_dropped_answer_makes_one_volume(flyk: Flyk, tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "drop.db")
    with FlyClient(base_url="http://local.flyk", transport=backend.transport()) as client:
        client.apps.create("web", "personal")
    backend.faults.add("drop_after_commit", method="POST", path="/volumes$", times=1)
    result = flyk(
        "--local", "volumes", "create", "data", "-a", "web", "-r", "iad",
        transport=backend.transport(),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    listed = flyk("--local", "vol", "ls", "-a", "web", "-q", transport=backend.transport())
    assert listed.stdout == result.stdout  # the one volume made, and no second
