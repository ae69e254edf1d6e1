"""Shell completion: the checked-in scripts are current, and dynamic values come from the target."""

from __future__ import annotations

from pathlib import Path

import pytest

from flyk.cli.completion import completion_script
from tests.cli.helpers import Flyk, Result

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = {"bash": "flyk.bash", "zsh": "_flyk", "fish": "flyk.fish"}


@pytest.mark.parametrize(("shell", "file_name"), SCRIPTS.items())
def test_checked_in_scripts_are_current(flyk: Flyk, shell: str, file_name: str) -> None:
    printed = flyk("completion", shell)
    assert printed.exit_code == 0
    assert printed.stdout == completion_script(shell)
    assert (ROOT / "completions" / file_name).read_text() == printed.stdout, (
        f"completions/{file_name} is stale: run `flyk completion {shell} > completions/{file_name}`"
    )


def test_unknown_shell_is_a_usage_error(flyk: Flyk) -> None:
    result = flyk("completion", "tcsh")
    assert result.exit_code == 2
    assert "Invalid value for '[SHELL]'" in result.stderr or "tcsh" in result.stderr


def _complete(flyk: Flyk, words: str, **env: str) -> Result:
    cword = str(len(words.split()) - (0 if words.endswith(" ") else 1))
    return flyk(
        env={"_FLYK_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": cword, **env}
    )


def test_commands_complete_without_building_the_tree(flyk: Flyk) -> None:
    assert _complete(flyk, "flyk ma") == Result(0, "machine\n", "")
    assert _complete(flyk, "flyk machine st").stdout.split() == ["status", "start", "stop"]


def test_app_names_come_from_the_local_backend(flyk: Flyk) -> None:
    for name in ("web", "worker", "api"):
        flyk("--local", "apps", "create", name)
    assert _complete(flyk, "flyk apps show w") == Result(0, "web\nworker\n", "")
    assert _complete(flyk, "flyk machine list -a ") == Result(0, "api\nweb\nworker\n", "")


def test_machine_ids_and_regions_complete(flyk: Flyk) -> None:
    flyk("--local", "apps", "create", "web")
    run = flyk("--local", "machine", "run", "nginx", "-a", "web", "--detach")
    machine_id = run.stdout.split()[1]
    assert _complete(flyk, "flyk machine stop -a web ").stdout == machine_id + "\n"
    assert "iad" in _complete(flyk, "flyk machine run nginx -r i").stdout.split()


def test_completion_is_silent_when_the_api_is_unreachable(flyk: Flyk) -> None:
    result = _complete(
        flyk,
        "flyk apps show w",
        FLY_FLAPS_BASE_URL="http://127.0.0.1:9",
        FLY_API_TOKEN="fm2_x",
    )
    assert (result.exit_code, result.stdout.strip(), result.stderr) == (0, "", "")


def test_completion_is_silent_without_a_token_for_a_remote_url(flyk: Flyk) -> None:
    result = _complete(flyk, "flyk apps show ", FLY_FLAPS_BASE_URL="https://flaps.example")
    assert (result.exit_code, result.stdout.strip(), result.stderr) == (0, "", "")


def test_completion_never_creates_the_local_database(flyk: Flyk, isolated_env: Path) -> None:
    result = _complete(flyk, "flyk apps show ")
    assert (result.exit_code, result.stdout.strip(), result.stderr) == (0, "", "")
    assert not (isolated_env / ".local" / "share" / "flyk" / "local.db").exists()


# -- the TAB fast path (flyk.cli.quickcomplete) answers exactly as Typer would ------------------

QUICK_CASES = [
    "flyk ",
    "flyk ma",
    "flyk m st",
    "flyk machines ",
    "flyk machine leases ",
    "flyk machine lease c",
    "flyk apps ",
    "flyk app d",
    "flyk vol l",
    "flyk regions ",
    "flyk ext ",
    "flyk auth w",
    "flyk local r",
    "flyk zz",
]


@pytest.mark.parametrize("words", QUICK_CASES)
def test_quick_answers_match_typer(flyk: Flyk, words: str) -> None:
    from flyk.cli.quickcomplete import answer

    cword = str(len(words.split()) - (0 if words.endswith(" ") else 1))
    env = {"_FLYK_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": cword}
    quick = answer(env)
    assert quick is not None
    assert quick == flyk(env=env).stdout


@pytest.mark.parametrize(
    "words",
    [
        "flyk apps show ",  # argument values: dynamic, Typer answers
        "flyk --local ap",  # options on the way: Typer parses them
        "flyk machine -",  # options
        "flyk ext k8s ",  # another engineer's tree
        "flyk completion ",  # choices of an argument
        "flyk 'apps' ",  # quoting
    ],
)
def test_quick_path_leaves_the_rest_to_typer(words: str) -> None:
    from flyk.cli.quickcomplete import answer

    cword = str(len(words.split()) - (0 if words.endswith(" ") else 1))
    assert (
        answer({"_FLYK_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": cword})
        is None
    )
    assert answer({"_FLYK_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "flyk "}) is None


def test_word_table_is_current() -> None:
    from flyk.cli import _words
    from flyk.cli.quickcomplete import collect, render_root_help

    assert (_words.WORDS, _words.ALIASES, _words.ROOT_HELP) == (*collect(), render_root_help()), (
        "flyk/cli/_words.py is stale: run "
        "`python -m flyk.cli.quickcomplete > flyk/cli/_words.py && ruff format flyk/cli/_words.py`"
    )


def test_root_help_fast_path_is_typers_help() -> None:
    from flyk.cli.quickcomplete import render_root_help, root_help

    assert root_help(["--help"], 120) == render_root_help()
    assert root_help(["-h"], 80) == render_root_help()
    assert render_root_help().startswith("Usage: flyk [OPTIONS] COMMAND [ARGS]...\n")
    assert root_help(["--help"], 79) is None  # narrower terminals: Typer wraps to fit
    assert root_help(["apps", "--help"], 120) is None


def test_volume_ids_complete(flyk: Flyk) -> None:
    flyk("--local", "apps", "create", "web")
    volume_id = flyk(
        "--local", "volumes", "create", "data", "-a", "web", "-r", "iad"
    ).stdout.strip()
    assert _complete(flyk, "flyk volumes show -a web vol_").stdout == volume_id + "\n"


@pytest.mark.parametrize("command", ["status", "kubeconfig", "delete"])
def test_cluster_names_complete(flyk: Flyk, command: str) -> None:
    for name in ("demo", "dev", "prod"):
        assert flyk("ext", "k8s", "create", name).exit_code == 0
    assert _complete(flyk, f"flyk ext k8s {command} ") == Result(0, "demo\ndev\nprod\n", "")
    assert _complete(flyk, f"flyk ext k8s {command} d") == Result(0, "demo\ndev\n", "")


def test_cluster_names_complete_in_the_org_given(flyk: Flyk) -> None:
    assert flyk("ext", "k8s", "create", "demo").exit_code == 0
    assert _complete(flyk, "flyk ext k8s status -o personal ").stdout == "demo\n"
    assert _complete(flyk, "flyk ext k8s status -o elsewhere ").stdout.strip() == ""


def test_cluster_completion_is_silent_and_creates_nothing(flyk: Flyk, isolated_env: Path) -> None:
    fresh = _complete(flyk, "flyk ext k8s status ")
    assert (fresh.exit_code, fresh.stdout.strip(), fresh.stderr) == (0, "", "")
    assert not (isolated_env / ".local" / "share" / "flyk" / "local.db").exists()
    unreachable = _complete(
        flyk,
        "flyk ext k8s delete ",
        FLY_FLAPS_BASE_URL="http://127.0.0.1:9",
        FLY_API_TOKEN="fm2_x",
    )
    assert (unreachable.exit_code, unreachable.stdout.strip(), unreachable.stderr) == (0, "", "")
