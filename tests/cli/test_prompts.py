"""Confirmation prompts at a real terminal (a pseudo-terminal): a "no" leaves things alone."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
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
