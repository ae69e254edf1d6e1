"""`flyk apps` against the embedded local backend (selected because no token is set)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flyk import config
from tests.cli.helpers import Flyk, Result


def _notice(home: Path) -> str:
    db = home / ".local" / "share" / "flyk" / "local.db"
    return f"Using the local backend (no Fly.io token found); data in {db}\n"


def test_create_list_show_destroy(flyk: Flyk, isolated_env: Path) -> None:
    assert flyk("apps", "create", "web") == Result(
        0, "", _notice(isolated_env) + "New app created: web\n"
    )
    assert flyk("--local", "apps", "create", "api").exit_code == 0

    listed = flyk("apps", "list")
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ORG", "STATUS", "NETWORK", "MACHINES", "VOLUMES"]
    assert [line.split()[:2] for line in lines[1:]] == [["api", "personal"], ["web", "personal"]]

    shown = flyk("app", "show", "web", "--local")
    assert shown.exit_code == 0 and shown.stderr == ""
    assert shown.stdout.splitlines()[0].split() == ["NAME", "web"]

    assert flyk("apps", "destroy", "web", "-y", "--local") == Result(0, "", "Destroyed app web\n")
    assert [a["name"] for a in json.loads(flyk("apps", "ls", "--json").stdout)] == ["api"]


def test_json_shapes(flyk: Flyk) -> None:
    created = flyk("--local", "apps", "create", "web", "--json")
    assert created.exit_code == 0 and created.stderr == ""
    document = json.loads(created.stdout)
    assert list(document) == [
        "name",
        "org",
        "status",
        "network",
        "machine_count",
        "volume_count",
        "id",
    ]
    assert (document["name"], document["org"]) == ("web", "personal")
    listed = json.loads(flyk("--local", "apps", "list", "-j").stdout)
    assert [a["name"] for a in listed] == ["web"]
    assert json.loads(flyk("--local", "apps", "show", "web", "--json").stdout)["name"] == "web"


def test_fly_json_variable_turns_json_on(flyk: Flyk, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLY_JSON", "1")
    assert json.loads(flyk("--local", "apps", "list").stdout) == []


def test_empty_list_says_so_on_stderr(flyk: Flyk) -> None:
    assert flyk("--local", "apps", "list") == Result(0, "", "No apps in organization personal.\n")


def test_destroy_needs_yes_when_not_interactive(flyk: Flyk) -> None:
    flyk("--local", "apps", "create", "web")
    result = flyk("--local", "apps", "destroy", "web")
    assert result == Result(
        2,
        "",
        "Error: --yes must be given to confirm when not running interactively\n"
        "       Destroy app web with all its machines and volumes? "
        "Re-run with --yes to go ahead.\n",
    )
    assert "web" in flyk("--local", "apps", "list").stdout


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("Web", "has upper-case letters"),
        ("web_1", "has characters other than a-z, 0-9 and dashes"),
        ("web-", "starts or ends with a dash"),
        ("w" * 64, "is 64 characters long (at most 63)"),
    ],
)
def test_invalid_app_names(flyk: Flyk, name: str, problem: str) -> None:
    assert flyk("--local", "apps", "create", name) == Result(
        2,
        "",
        f"Error: invalid app name {name!r}: it {problem}\n"
        "       App names use lower-case letters, digits and dashes (at most 63), like my-app-1.\n",
    )


def test_duplicate_app_is_a_conflict(flyk: Flyk) -> None:
    flyk("--local", "apps", "create", "web")
    result = flyk("--local", "apps", "create", "web")
    assert result.exit_code == 5
    assert result.stderr.startswith("Error: ")


def test_show_missing_app_is_not_found(flyk: Flyk) -> None:
    result = flyk("--local", "apps", "show", "ghost")
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")


@pytest.mark.parametrize("command", ["create", "show"])
def test_invalid_app_name_needs_no_token(flyk: Flyk, isolated_env: Path, command: str) -> None:
    result = flyk("apps", command, "Bad", env={"FLY_FLAPS_BASE_URL": "https://x.invalid"})
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: invalid app name 'Bad'")
    assert not config.local_db_path().exists()


def test_list_quiet_prints_names_only(flyk: Flyk) -> None:
    for name in ("web", "api"):
        assert flyk("--local", "apps", "create", name).exit_code == 0
    assert flyk("--local", "apps", "list", "-q") == Result(0, "api\nweb\n", "")
    both = flyk("--local", "apps", "list", "--quiet", "--json")
    assert both == Result(2, "", "Error: -q/--quiet and --json cannot be used together\n")
    # a -q given beats FLY_JSON from the environment, as a flag beats a variable
    assert flyk("--local", "apps", "list", "-q", env={"FLY_JSON": "1"}).stdout == "api\nweb\n"


@pytest.mark.parametrize("network", ["bad net!", "", "Net", "-x", "x" * 64])
def test_a_network_name_that_cannot_be_one_is_refused_before_any_call(
    flyk: Flyk, network: str
) -> None:
    result = flyk("--local", "apps", "create", "web", "--network", network)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: invalid network name {network!r}: ")
    assert not config.local_db_path().exists()


def test_a_network_name_is_taken(flyk: Flyk) -> None:
    result = flyk("--local", "apps", "create", "web", "--network", "team-net_1", "-j")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["network"] == "team-net_1"


def test_an_unknown_org_names_the_orgs_there_are(flyk: Flyk) -> None:
    result = flyk("--local", "apps", "list", "-o", "nosuch")
    assert result.exit_code == 3
    assert result.stderr.splitlines()[-1].strip() == (
        "Your organizations: personal; pass one with -o/--org (flyk auth whoami shows them)."
    )
