"""Confirmation prompts at a real terminal (a pseudo-terminal): a "no" leaves things alone."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.helpers import Flyk

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")


def _answer_at_a_terminal(args: list[str], answer: str, cwd: Path) -> tuple[int, str]:
    """Run flyk with stdin and stdout on a terminal, answer its prompt; (exit code, stderr)."""
    leader, follower = pty.openpty()
    try:
        os.write(leader, answer.encode() + b"\n")
        done = subprocess.run(
            [sys.executable, "-m", "flyk", *args],
            stdin=follower,
            stdout=follower,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
            cwd=cwd,
            timeout=60,
        )
    finally:
        os.close(follower)
        os.close(leader)
    return done.returncode, done.stderr


@pytest.mark.parametrize(
    ("setup", "args", "notice"),
    [
        ([["apps", "create", "web"]], ["apps", "destroy", "web"], "Nothing destroyed."),
        (
            [["apps", "create", "web"], ["volumes", "create", "data", "-a", "web", "-r", "iad"]],
            ["volumes", "destroy", "VOLUME", "-a", "web"],
            "Nothing destroyed.",
        ),
        ([["apps", "create", "web"]], ["local", "reset"], "Nothing deleted."),
        (
            [["apps", "create", "web"], ["ext", "k8s", "create", "demo"]],
            ["ext", "k8s", "delete", "demo"],
            "Nothing was deleted.",
        ),
    ],
)
def test_no_at_the_prompt_exits_0_and_changes_nothing(
    flyk: Flyk, isolated_env: Path, setup: list[list[str]], args: list[str], notice: str
) -> None:
    printed = ""
    for command in setup:
        result = flyk("--local", *command)
        assert result.exit_code == 0, result.stderr
        printed = result.stdout.strip()
    args = [printed if a == "VOLUME" else a for a in args]
    code, stderr = _answer_at_a_terminal(["--local", *args], "n", isolated_env)
    assert code == 0, stderr
    assert stderr.rstrip().endswith(notice)
    assert "[y/N]" in stderr
    assert "web" in flyk("--local", "apps", "list").stdout
    if args[0] == "volumes":
        assert printed in flyk("--local", "volumes", "list", "-a", "web").stdout
    if args[0] == "ext":
        assert "demo" in flyk("--local", "ext", "k8s", "list").stdout


def test_yes_at_the_prompt_goes_ahead(flyk: Flyk, isolated_env: Path) -> None:
    assert flyk("--local", "apps", "create", "web").exit_code == 0
    code, stderr = _answer_at_a_terminal(["--local", "apps", "destroy", "web"], "y", isolated_env)
    assert code == 0, stderr
    assert "web" not in flyk("--local", "apps", "list").stdout


def test_end_of_input_at_the_prompt_is_no_on_a_line_of_its_own(
    flyk: Flyk, isolated_env: Path
) -> None:
    """Ctrl-D echoes nothing: without a newline of flyk's, the notice landed on the prompt."""
    assert flyk("--local", "apps", "create", "web").exit_code == 0
    code, stderr = _answer_at_a_terminal(
        ["--local", "apps", "destroy", "web"], "\x04", isolated_env
    )
    assert code == 0, stderr
    assert stderr.endswith("[y/N] \nNothing destroyed.\n")
    assert "web" in flyk("--local", "apps", "list").stdout


def test_an_answer_that_is_neither_yes_nor_no_is_asked_again(
    flyk: Flyk, isolated_env: Path
) -> None:
    assert flyk("--local", "apps", "create", "web").exit_code == 0
    code, stderr = _answer_at_a_terminal(
        ["--local", "apps", "destroy", "web"], "maybe\ny", isolated_env
    )
    assert code == 0, stderr
    assert stderr.count("[y/N]") == 2
    assert "Please answer y or n." in stderr
    assert "web" not in flyk("--local", "apps", "list").stdout


def test_ctrl_c_at_the_prompt_says_nothing_was_done(flyk: Flyk, isolated_env: Path) -> None:
    """Not that leases were released: none were held at the question."""
    assert flyk("--local", "apps", "create", "web").exit_code == 0
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "flyk", "--local", "apps", "destroy", "web"],
            stdin=follower,
            stdout=follower,
            stderr=subprocess.PIPE,
            env=dict(os.environ),
            cwd=isolated_env,
        )
        assert process.stderr is not None
        seen = b""
        deadline = time.monotonic() + 60
        while b"[y/N]" not in seen and time.monotonic() < deadline:
            seen += os.read(process.stderr.fileno(), 4096)
        process.send_signal(signal.SIGINT)
        with process.stderr:
            rest = process.stderr.read()
        code = process.wait(timeout=60)
    finally:
        os.close(follower)
        os.close(leader)
    stderr = (seen + rest).decode()
    assert code == 130, stderr
    assert stderr.endswith(
        "[y/N] \nError: interrupted (Ctrl-C) at the question; nothing was done\n"
    )
    assert "web" in flyk("--local", "apps", "list").stdout
