"""Answer bash's TAB on command words, and ``flyk --help``, without importing Typer.

Completing ``flyk machine st<TAB>`` needs nothing but the names of ``machine``'s commands,
yet going through Typer means importing it and building the group: several times Python's
own start-up, at every TAB. ``flyk/cli/_words.py`` holds the command words of each group
(generated from the tree; ``tests/cli/test_completion.py`` fails when it is stale), and
``answer()`` serves a request from it when the request is only about command words.
Everything else (options, argument values such as app names, other shells, quoting)
returns None and goes to Typer as usual, so the two can only differ where the table is
stale, which the test catches.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `typing`: this module is on the TAB fast path
if TYPE_CHECKING:
    from collections.abc import Mapping

GENERATED_HEADER = (
    '"""Command words per group, for flyk.cli.quickcomplete. Generated: do not edit.\n\n'
    "Regenerate: python -m flyk.cli.quickcomplete > flyk/cli/_words.py && ruff format it\n"
    '"""\n'
)


def answer(env: Mapping[str, str]) -> str | None:
    """The bash completion reply for ``env``, or None when Typer must answer."""
    if env.get("_FLYK_COMPLETE") != "complete_bash":
        return None
    line = env.get("COMP_WORDS", "")
    if any(char in line for char in "\"'\\$`"):
        return None  # quoting: leave the shell-like splitting to Typer
    words = line.split()
    if line.endswith(" ") or not line:
        words.append("")
    try:
        cword = int(env.get("COMP_CWORD", ""))
    except ValueError:
        return None
    if cword != len(words) - 1 or cword < 1:
        return None
    incomplete = words[cword]
    if incomplete and not incomplete[0].isalnum():
        return None  # options: Typer knows them
    from flyk.cli._words import ALIASES, WORDS

    path = ""
    for word in words[1:cword]:
        name = ALIASES.get(path, {}).get(word, word)
        path = f"{path} {name}".strip()
        if path not in WORDS:
            return None  # a leaf command, an option, or a group built elsewhere
    return "\n".join(w for w in WORDS[path] if w.startswith(incomplete)) + "\n"


def collect() -> tuple[dict[str, list[str]], dict[str, dict[str, str]]]:
    """Command words and aliases per group path, from the command tree (imports Typer)."""
    from typer.main import get_command

    from flyk.cli.lazy import LazyGroup
    from flyk.cli.root import app

    words: dict[str, list[str]] = {}
    aliases: dict[str, dict[str, str]] = {}
    root = get_command(app)
    stack: list[tuple[str, object]] = [("", root)]
    while stack:
        path, group = stack.pop()
        names = [
            name
            for name in group.list_commands(None)  # type: ignore[attr-defined]
            if not group.get_command(None, name).hidden  # type: ignore[attr-defined]
        ]
        if not names or path.startswith("ext "):
            continue  # leaf groups, and extensions (other people's trees: Typer answers)
        words[path] = names
        group_aliases = dict(getattr(type(group), "command_aliases", {}))
        if isinstance(group, LazyGroup):
            group_aliases.update(type(group).alias_map())
        if group_aliases:
            aliases[path] = dict(sorted(group_aliases.items()))
        for name in names:
            child = group.get_command(None, name)  # type: ignore[attr-defined]
            if hasattr(child, "list_commands"):
                stack.append((f"{path} {name}".strip(), child))
    return dict(sorted(words.items())), dict(sorted(aliases.items()))


def render_root_help() -> str:
    """``flyk --help`` as Typer prints it on an 80-column (or wider) terminal."""
    import io
    from contextlib import redirect_stdout

    from typer.main import get_command

    from flyk.cli.root import app

    buffer = io.StringIO()
    with redirect_stdout(buffer):
        # Click's width on any terminal of 80 columns or more: min(columns, 80) - 2
        get_command(app).main(
            args=["--help"], prog_name="flyk", standalone_mode=False, terminal_width=HELP_WIDTH - 2
        )
    return buffer.getvalue()


def root_help(args: list[str], columns: int) -> str | None:
    """The root help for ``flyk --help`` / ``flyk -h`` without Typer, or None.

    Click wraps help at min(terminal width, 80) columns, so the stored text is exact on any
    terminal at least 80 columns wide; narrower ones get Typer's own rendering.
    """
    if args not in (["--help"], ["-h"]) or columns < HELP_WIDTH:
        return None
    from flyk.cli._words import ROOT_HELP

    return ROOT_HELP


HELP_WIDTH = 80


def generate() -> str:
    """The source of ``flyk/cli/_words.py`` (then ``ruff format`` it)."""
    words, aliases = collect()
    return (
        GENERATED_HEADER
        + f"\nWORDS: dict[str, list[str]] = {words!r}\n"
        + f"ALIASES: dict[str, dict[str, str]] = {aliases!r}\n"
        + f"ROOT_HELP_LINES: list[str] = {render_root_help().splitlines()!r}\n"
        + 'ROOT_HELP = "\\n".join(ROOT_HELP_LINES) + "\\n"\n'
    )


if __name__ == "__main__":
    import sys

    sys.stdout.write(generate())
