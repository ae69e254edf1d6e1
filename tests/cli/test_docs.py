"""docs/cli.md is generated from the command tree and must be current."""

from __future__ import annotations

import re
from pathlib import Path

from flyk.cli.docs import render
from flyk.cli.root import RootGroup
from flyk.errors import exit_code_table
from tests.cli.helpers import Flyk

ROOT = Path(__file__).resolve().parents[2]


def test_docs_cli_md_is_current() -> None:
    assert (ROOT / "docs" / "cli.md").read_text() == render(), (
        "docs/cli.md is stale: run `python -m flyk.cli.docs > docs/cli.md`"
    )


def test_every_exit_code_is_documented() -> None:
    text = render()
    for row in exit_code_table():
        assert f"| {row.code} | {row.meaning} |" in text


def test_lazy_help_lines_match_the_groups(flyk: Flyk) -> None:
    """The root's one-line helps (kept static for speed) say what each group's own help says."""
    for name, entry in RootGroup.lazy.items():
        first_line = flyk(name, "--help").stdout.split("\n\n")[1].strip()
        assert first_line == entry.help, name


def test_every_command_has_help() -> None:
    text = render()
    sections = text.split("### `flyk")[1:]
    assert sections
    for section in sections:
        title, _, body = section.partition("\n")
        assert body.strip().split("\n", 1)[0] != "```", f"flyk{title} has no help text"


def test_readme_usage_shows_the_exit_code_table() -> None:
    from flyk.cli.docs import exit_code_markdown

    readme = (ROOT / "README.md").read_text()
    usage = readme[readme.index("\n## Usage\n") :]
    assert "\n".join(exit_code_markdown()) + "\n" in usage, (
        "README's exit-code table is stale: paste `python -m flyk.cli.docs --exit-codes`"
    )
    for row in exit_code_table():
        assert f"| {row.code} | {row.meaning} |" in usage


def _own_sections() -> list[str]:
    """docs/cli.md's command sections, less the extensions (documented by their owners)."""
    sections = render().split("\n### `flyk")[1:]
    ours = (" ext k8s kubelet`",)  # flyk/cli/kubelet.py: the kubelet is flyk's own command
    return [s for s in sections if s.startswith(ours) or not s.startswith((" ext", "\n### "))]


def test_arguments_and_options_show_upper_case_metavars_not_python_types() -> None:
    rows = [
        line
        for section in _own_sections()
        for line in section.splitlines()
        if line.startswith(("| `", "flyk "))
    ]
    assert rows
    for row in rows:
        names = row.split("` |")[0] if row.startswith("|") else row
        assert not re.search(r"[{<]|\b(str|int|float|range)\b", names), row
        for word in re.findall(r"(?:^|[ ,] ?)(?:-\w|--[\w-]+)\s([^\s,`|]+)", names):
            assert word.rstrip(".") == word.rstrip(".").upper(), row


def test_completion_help_shows_the_usage_and_install_steps(flyk: Flyk) -> None:
    result = flyk("completion", "--help")
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: flyk completion [OPTIONS] SHELL\n")
    assert "COMMAND" not in result.stdout
    for step in (
        "bash: echo 'source <(flyk completion bash)' >> ~/.bashrc",
        'zsh:  flyk completion zsh > "${fpath[1]}/_flyk"',
        "fish: flyk completion fish > ~/.config/fish/completions/flyk.fish",
    ):
        assert f"\n    {step}\n" in result.stdout
