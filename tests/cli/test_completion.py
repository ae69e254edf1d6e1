"""Shell completion: the checked-in scripts are current, and dynamic values come from the target."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


def _bash_env(words: str) -> dict[str, str]:
    """What completions/flyk.bash sends for ``words`` (the line up to the cursor): bash's
    words joined by newlines (its IFS), ``=`` a word of its own (COMP_WORDBREAKS)."""
    split = words.replace("=", " = ").split() + ([""] if words.endswith(" ") else [])
    return {
        "_FLYK_COMPLETE": "complete_bash",
        "COMP_WORDS": "\n".join(split),
        "COMP_CWORD": str(len(split) - 1),
    }


def _complete(flyk: Flyk, words: str, **env: str) -> Result:
    return flyk(env={**_bash_env(words), **env})


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
    "flyk -",
    "flyk --v",
    "flyk machine -",
    "flyk m run --vm",
    "flyk machine leases view -",
    "flyk apps list --",
    "flyk completion -",
]


def _shell_env(shell: str, words: str, fish_action: str = "get-args") -> dict[str, str]:
    if shell == "bash":
        return _bash_env(words)
    env = {"_FLYK_COMPLETE": f"complete_{shell}", "_TYPER_COMPLETE_ARGS": words}
    if shell == "fish":
        env["_TYPER_COMPLETE_FISH_ACTION"] = fish_action
    return env


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
@pytest.mark.parametrize("words", QUICK_CASES)
def test_quick_answers_match_typer(flyk: Flyk, words: str, shell: str) -> None:
    from flyk.cli.quickcomplete import answer

    env = _shell_env(shell, words)
    quick = answer(env)
    assert quick is not None
    typer = flyk(env={**env, "COLUMNS": "1000"})  # Typer wraps helps at the terminal's width
    assert quick == (typer.stdout, typer.exit_code)


@pytest.mark.parametrize("words", ["flyk machine st", "flyk zz"])
def test_quick_fish_is_args_matches_typer(flyk: Flyk, words: str) -> None:
    from flyk.cli.quickcomplete import answer

    env = _shell_env("fish", words, fish_action="is-args")
    typer = flyk(env=env)
    assert answer(env) == (typer.stdout, typer.exit_code)


@pytest.mark.parametrize(
    "words",
    [
        "flyk apps show ",  # argument values: dynamic, Typer answers
        "flyk --local ap",  # options on the way: Typer parses them
        "flyk machine list -a web --",  # options after options: Typer knows which are given
        "flyk machine list --app=",  # option values
        "flyk machine run nginx -",  # after an argument
        "flyk ext k8s ",
        "flyk ext k8s create -",  # another engineer's tree
        "flyk completion ",  # choices of an argument
        "flyk 'apps' ",  # quoting
    ],
)
@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_quick_path_leaves_the_rest_to_typer(words: str, shell: str) -> None:
    from flyk.cli.quickcomplete import answer

    assert answer(_shell_env(shell, words)) is None


def test_word_table_is_current() -> None:
    from flyk.cli import _words
    from flyk.cli.quickcomplete import collect, rendered_helps

    texts = {path: text.splitlines() for path, text in rendered_helps().items()}
    tables = (_words.HELPS, _words.OPTIONS, _words.ALIASES, _words.HELP_LINES)
    assert tables == (*collect(), texts), (
        "flyk/cli/_words.py is stale: run "
        "`python -m flyk.cli.quickcomplete > flyk/cli/_words.py && ruff format flyk/cli/_words.py`"
    )


@pytest.mark.parametrize(
    "args",
    [[], ["machine"], ["machine", "leases"], ["machine", "run"], ["apps", "create"], ["ext"]],
)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_fast_path_is_typers_help(args: list[str], flag: str) -> None:
    from flyk.cli.quickcomplete import command_help

    # a process of its own: Typer's test runner forces 80 columns, a terminal gives 78;
    # --local keeps the fast path out of the way
    typer = subprocess.run(
        [sys.executable, "-m", "flyk", "--local", *args, flag],
        env={**os.environ, "COLUMNS": "100"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert command_help([*args, flag], 100) == typer.stdout
    assert command_help([*args, flag], 80) == typer.stdout


def test_help_fast_path_leaves_the_rest_to_typer() -> None:
    from flyk.cli.quickcomplete import command_help

    assert command_help(["--help"], 79) is None  # narrower terminals: Typer wraps to fit
    assert command_help(["m", "--help"], 120) is None  # aliases: the usage line says "m"
    assert command_help(["ext", "k8s", "--help"], 120) is None  # another engineer's tree
    assert command_help(["apps", "--help", "x"], 120) is None
    assert command_help(["--local", "apps", "--help"], 120) is None


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


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("flyk machine list --app=", "web\nworker\n"),
        ("flyk machine list --app=wo", "worker\n"),
        ("flyk apps show --org=personal w", "web\nworker\n"),
    ],
)
def test_values_after_an_equals_sign_complete(flyk: Flyk, words: str, expected: str) -> None:
    for name in ("web", "worker"):
        flyk("--local", "apps", "create", name)
    assert _complete(flyk, words) == Result(0, expected, "")


def test_arguments_after_an_option_with_equals_complete(flyk: Flyk) -> None:
    flyk("--local", "apps", "create", "web")
    run = flyk("--local", "machine", "run", "nginx", "-a", "web", "--detach")
    machine_id = run.stdout.split()[1]
    assert _complete(flyk, "flyk machine stop --app=web ").stdout == machine_id + "\n"


def test_size_presets_complete(flyk: Flyk) -> None:
    sizes = _complete(flyk, "flyk machine run nginx --vm-size ").stdout.split()
    assert {"shared-cpu-1x", "shared-cpu-8x", "performance-1x", "performance-16x"} <= set(sizes)
    assert _complete(flyk, "flyk machine update --vm-size perf").stdout.split() == [
        s for s in sizes if s.startswith("perf")
    ]


def test_quick_path_serves_bash_words_joined_by_newlines() -> None:
    from flyk.cli.quickcomplete import answer

    env = {"_FLYK_COMPLETE": "complete_bash", "COMP_WORDS": "flyk\nregions\n", "COMP_CWORD": "2"}
    assert answer(env) == ("list\n", 0)


# -- the zsh script in a real zsh ----------------------------------------------------------------


def _zsh_buffer_after_tab(line: str, setup: str, work: Path) -> str | None:
    """Type ``line``, TAB, then a key that saves zsh's edit buffer, in an interactive zsh.

    The buffer goes to a file, not through the terminal's escape sequences; None when zsh
    never wrote it.
    """
    import pty
    import select
    import signal
    import time

    buffer = work / "buffer"
    dump = (
        f'dump-buffer() {{ print -r -- "$BUFFER" > {buffer} }}; zle -N dump-buffer; '
        "bindkey '^X' dump-buffer\n"
    )
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "TERM": "xterm",
    }
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child becomes zsh
        os.execvpe("zsh", ["zsh", "-f", "-i"], env)
    try:
        os.write(fd, (setup + "\n" + dump + line + "\t\x18").encode())
        deadline = time.monotonic() + 60  # a bound for a stuck shell, not a speed check
        while not buffer.exists() and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    os.read(fd, 65536)  # keep the terminal drained
                except OSError:
                    break
        return buffer.read_text().rstrip("\n") if buffer.exists() else None
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
@pytest.mark.parametrize("install", ["fpath", "source"])
def test_zsh_completes_from_the_first_tab(tmp_path: Path, install: str) -> None:
    """Installed the README's way (a file on $fpath that compinit autoloads), the first TAB
    of a new shell completes, not only the second; sourcing the script works too."""
    (tmp_path / "zf").mkdir()
    script = tmp_path / "zf" / "_flyk"
    script.write_text(completion_script("zsh"))
    compinit = f"autoload -Uz compinit; compinit -u -d {tmp_path}/zcompdump"
    setup = {
        "fpath": f"fpath=({tmp_path}/zf $fpath); {compinit}",
        "source": f"{compinit}; source {script}",
    }[install]
    assert _zsh_buffer_after_tab("flyk apps sh", setup, tmp_path) == "flyk apps show "


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("flyk ", '"version":"Print flyk\'s version."'),  # the quick path
        ("flyk --local machine ", '"list":"List an app\'s machines."'),  # Typer's
    ],
)
def test_zsh_descriptions_keep_their_apostrophes(flyk: Flyk, words: str, expected: str) -> None:
    reply = flyk(env={"_FLYK_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": words}).stdout
    # what the script's eval hands to zsh's _arguments
    spec = subprocess.run(
        ["zsh", "-f", "-c", '_arguments() { print -r -- "$@" }; eval "$1"', "zsh", reply],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert expected in spec


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("flyk machine list --state ", ["created", "started", "stopped", "suspended", "failed"]),
        ("flyk machine list --state started,s", ["started,stopped", "started,suspended"]),
        ("flyk machine wait 0123456789abcd --state se", ["settled"]),
        ("flyk machine run nginx --vm-cpu-kind ", ["shared", "performance"]),
        ("flyk machine update 0123456789abcd --vm-cpu-kind p", ["performance"]),
    ],
)
def test_fixed_values_complete(flyk: Flyk, words: str, expected: list[str]) -> None:
    assert _complete(flyk, words).stdout.split() == expected


def _on_path() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completes_values_after_an_equals_sign(flyk: Flyk, tmp_path: Path) -> None:
    flyk("--local", "apps", "create", "web")
    script = tmp_path / "flyk.fish"
    script.write_text(completion_script("fish"))
    listed = subprocess.run(
        ["fish", "--no-config", "-c", f'source {script}; complete -C"flyk machine list --app="'],
        env=_on_path(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert listed.split() == ["--app=web"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completes_values_after_an_equals_sign(flyk: Flyk, tmp_path: Path) -> None:
    flyk("--local", "apps", "create", "web")
    (tmp_path / "zf").mkdir()
    (tmp_path / "zf" / "_flyk").write_text(completion_script("zsh"))
    setup = f"fpath=({tmp_path}/zf $fpath); autoload -Uz compinit; compinit -u -d {tmp_path}/zcd"
    line = "flyk machine list --app="
    assert _zsh_buffer_after_tab(line, setup, tmp_path) == "flyk machine list --app=web "
