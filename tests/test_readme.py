"""README is the front door: CI must run exactly the test command it gives."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_ci_runs_readme_test_command_verbatim() -> None:
    commands = _readme_commands()
    test_command = next(c for c in commands if "pytest" in c)
    # in a subshell: under `set -e` a failed install early in the && chain would not stop CI
    assert f"({test_command})" in (ROOT / ".ci" / "run").read_text()


def test_readme_main_job_is_k8s_create_on_the_default_backend() -> None:
    first = _readme_commands()[0]
    assert "flyk ext k8s create" in first
    assert "--access-token" not in first and "FLY_API_TOKEN" not in first
