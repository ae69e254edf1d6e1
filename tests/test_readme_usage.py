"""README's Usage flow must work as written: its local-backend commands run, in order, here.

The commands run as a user would type them (``flyk`` in a process of its own, with this test's
isolated HOME, so on a fresh local backend). Machine ids in the README are examples: each is
replaced by the id the earlier commands printed.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MACHINE_ID = re.compile(r"\b[0-9a-f]{14}\b")
SHELL_SYNTAX = re.compile(r"[|<>#`$;&]|^\w+=")


def usage_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Usage\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def local_flows(section: str) -> list[list[str]]:
    """The console blocks made only of plain ``flyk`` commands (no pipes, variables, servers)."""
    flows = []
    for block in re.findall(r"```console\n(.*?)```", section, flags=re.DOTALL):
        commands = [line.removeprefix("$ ") for line in block.splitlines() if line.strip()]
        if all(
            c.startswith("flyk ") and not SHELL_SYNTAX.search(c) and "local serve" not in c
            for c in commands
        ):
            flows.append(commands)
    return flows


def test_usage_has_a_local_flow() -> None:
    flows = local_flows(usage_section())
    assert flows, "README's Usage lost its local-backend example"
    assert any("machine exec" in c for flow in flows for c in flow)


def test_readme_usage_commands_run_on_the_local_backend(isolated_env: Path) -> None:
    for flow in local_flows(usage_section()):
        seen_ids: list[str] = []
        for command in flow:
            if seen_ids:
                command = MACHINE_ID.sub(seen_ids[-1], command)
            args = shlex.split(command)[1:]
            done = subprocess.run(
                [sys.executable, "-m", "flyk", *args],
                capture_output=True,
                text=True,
                env=dict(os.environ),
                cwd=isolated_env,
                timeout=120,
            )
            assert done.returncode == 0, f"`{command}` exited {done.returncode}: {done.stderr}"
            assert "Error" not in done.stderr, f"`{command}`: {done.stderr}"
            seen_ids += MACHINE_ID.findall(done.stdout)
