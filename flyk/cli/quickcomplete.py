"""Answer TAB on command words, and ``--help`` of flyk's own commands, without Typer.

Completing ``flyk machine st<TAB>`` needs nothing but the names of ``machine``'s commands
(and, for zsh and fish, their one-line helps), yet going through Typer means importing it
and building the group: several times Python's own start-up, at every TAB.
``flyk/cli/_words.py`` holds the command words and helps of each group and the help text of
each command (generated from the tree; ``tests/cli/test_completion.py`` fails when it is
stale), and ``answer()`` serves a request from it when the request is only about command
words, or option names before any option is given. Everything else (argument and option
values such as app names, options after other options, quoting) returns
None and goes to Typer as usual, so the two can only differ where the table is stale,
which the test catches.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `typing`: this module is on the TAB fast path
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

GENERATED_HEADER = (
    '"""Command words per group, for flyk.cli.quickcomplete. Generated: do not edit.\n\n'
    "Regenerate: python -m flyk.cli.quickcomplete > flyk/cli/_words.py && ruff format it\n"
    '"""\n'
    "# ruff: noqa: E501 - help texts are kept whole\n"
)
Table = dict[str, dict[str, str]]
_QUOTING = "\"'\\$`"
_SHELLS = ("complete_bash", "complete_zsh", "complete_fish")


def answer(env: Mapping[str, str]) -> tuple[str, int] | None:
    """The completion reply (text and exit code) for ``env``, or None when Typer must answer."""
    shell = env.get("_FLYK_COMPLETE", "")
    if shell not in _SHELLS:
        return None
    request = _bash_words(env) if shell == "complete_bash" else _typer_words(env)
    if request is None:
        return None
    before, incomplete = request
    if incomplete and not incomplete[0].isalnum() and not _option_name(incomplete):
        return None
    from flyk.cli._words import ALIASES, HELPS, OPTIONS

    path = ""
    for word in before:
        if path not in HELPS:
            return None  # an argument after a leaf command: Typer parses it
        name = ALIASES.get(path, {}).get(word, word)
        path = f"{path} {name}".strip()
        if path not in OPTIONS:
            return None  # an option, an unknown word, or a group built elsewhere
    # command words, or (before any option is given) option names
    choices = OPTIONS[path] if incomplete.startswith("-") else HELPS.get(path)
    if choices is None:
        return None  # an argument of a leaf command: Typer completes its values
    matches = [(w, h) for w, h in choices.items() if w.startswith(incomplete)]
    if shell == "complete_bash":
        return "\n".join(w for w, _ in matches) + "\n", 0
    if shell == "complete_zsh":
        return _zsh_reply(matches), 0
    return _fish_reply(matches, env.get("_TYPER_COMPLETE_FISH_ACTION", ""))


def _option_name(incomplete: str) -> bool:
    """``-``, ``--ap``: the start of an option's name (``--app=w`` is a value: Typer's)."""
    return incomplete.startswith("-") and "=" not in incomplete


def _bash_words(env: Mapping[str, str]) -> tuple[list[str], str] | None:
    """The words before the cursor and the one being completed, from bash's variables."""
    line = env.get("COMP_WORDS", "")
    if any(char in line for char in _QUOTING):
        return None  # quoting: leave the shell-like splitting to Typer
    # the completion script joins the words with newlines (its IFS); an empty word being
    # completed (`flyk machine <TAB>`) leaves nothing after the last separator
    words = line.split()
    try:
        cword = int(env.get("COMP_CWORD", ""))
    except ValueError:
        return None
    if cword == len(words) and line[-1:].isspace():
        words.append("")
    if cword != len(words) - 1 or cword < 1:
        return None
    return words[1:cword], words[cword]


def _typer_words(env: Mapping[str, str]) -> tuple[list[str], str] | None:
    """The same from zsh's and fish's ``_TYPER_COMPLETE_ARGS`` (the line up to the cursor)."""
    line = env.get("_TYPER_COMPLETE_ARGS", "")
    if any(char in line for char in _QUOTING):
        return None
    args = line.split()[1:]
    if args and not line.endswith(" "):
        return args[:-1], args[-1]
    return args, ""


def _zsh_escape(text: str) -> str:
    """For a double-quoted word inside the single-quoted ``_arguments`` spec the script evals.

    Typer doubles apostrophes (``''``), which zsh reads as nothing without RC_QUOTES: "Print
    flyk's version" came out as "Print flyks version". ``'\\''`` closes the single quotes,
    adds a quoted apostrophe and reopens them.
    """
    return (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("'", "'\\''")
        .replace("$", "\\$")
        .replace("`", "\\`")
        .replace(":", r"\\:")
    )


def zsh_item(value: str, help_text: str) -> str:
    """One completion in the zsh reply: ``"value":"help"`` (or ``"value"`` alone)."""
    if help_text:
        return f'"{_zsh_escape(value)}":"{_zsh_escape(help_text)}"'
    return f'"{_zsh_escape(value)}"'


def _zsh_reply(matches: list[tuple[str, str]]) -> str:
    """As flyk's zsh class (flyk.cli.completion.register_shells) writes it."""
    if not matches:
        return "_files\n"
    items = "\n".join(zsh_item(w, h) for w, h in matches)
    return f"_arguments '*: :(({items}))'\n"


def _fish_reply(matches: list[tuple[str, str]], action: str) -> tuple[str, int] | None:
    """As Typer's FishComplete answers: the words, or (``is-args``) an exit code alone."""
    if action == "is-args":
        return "", 0 if matches else 1
    if action != "get-args":
        return None
    return "\n".join(f"{w}\t{' '.join(h.split())}" for w, h in matches) + "\n", 0


def collect() -> tuple[Table, Table, Table]:
    """Command words per group, option names per command (with the one-line helps zsh and
    fish show) and aliases per group, by path (imports Typer).

    The helps are the command's own completion items, as written: Typer passes them through
    Rich, which only wraps them at the terminal's width (flyk's helps have no markup).
    """
    import typer

    from flyk.cli.lazy import LazyGroup

    def complete(command: Any, incomplete: str) -> dict[str, str]:
        items = command.shell_complete(typer.Context(command), incomplete)
        return {i.value: i.help or "" for i in items}

    helps: dict[str, dict[str, str]] = {}
    options: dict[str, dict[str, str]] = {}
    aliases: dict[str, dict[str, str]] = {}
    for path, group in _own_commands():
        if path.startswith("ext "):
            continue
        options[path] = complete(group, "-")
        if not hasattr(group, "list_commands") or not (words := complete(group, "")):
            continue  # a command, or a group with nothing listed
        helps[path] = words
        group_aliases = dict(getattr(type(group), "command_aliases", {}))
        if isinstance(group, LazyGroup):
            group_aliases.update(type(group).alias_map())
        if group_aliases:
            aliases[path] = dict(sorted(group_aliases.items()))
    return dict(sorted(helps.items())), dict(sorted(options.items())), dict(sorted(aliases.items()))


def _own_commands() -> list[tuple[str, Any]]:
    """Every command of flyk's own tree by path ("", "machine", "machine leases view", …).

    Extensions (``ext k8s``) are other people's trees, built on demand: Typer answers them.
    """
    from typer.main import get_command

    from flyk.cli.lazy import fast_coercion
    from flyk.cli.root import app

    found: list[tuple[str, Any]] = []
    stack: list[tuple[str, Any]] = [("", fast_coercion(get_command(app)))]
    while stack:
        path, command = stack.pop()
        found.append((path, command))
        if path.startswith("ext") or not hasattr(command, "list_commands"):
            continue
        for name in reversed(command.list_commands(None)):
            child = command.get_command(None, name)
            if not child.hidden:
                stack.append((f"{path} {name}".strip(), child))
    return found


def render_help(path: str) -> str:
    """``flyk PATH --help`` as Typer prints it on an 80-column (or wider) terminal."""
    import io
    from contextlib import redirect_stdout

    from typer.main import get_command

    from flyk.cli.lazy import fast_coercion
    from flyk.cli.root import app

    buffer = io.StringIO()
    with redirect_stdout(buffer):
        # Click's width on any terminal of 80 columns or more: min(columns, 80) - 2
        fast_coercion(get_command(app)).main(
            args=[*path.split(), "--help"],
            prog_name="flyk",
            standalone_mode=False,
            terminal_width=HELP_WIDTH - 2,
        )
    return buffer.getvalue()


def rendered_helps() -> dict[str, str]:
    """The help text of each of flyk's own commands, by path (``ext k8s`` excluded)."""
    return {path: render_help(path) for path, _ in _own_commands() if not path.startswith("ext ")}


def command_help(args: list[str], columns: int) -> str | None:
    """``flyk [COMMAND…] --help`` (or ``-h``) without Typer, or None.

    Click wraps help at min(terminal width, 80) columns, so the stored text is exact on any
    terminal at least 80 columns wide; narrower ones get Typer's own rendering. Aliases
    (``flyk m -h``) go to Typer too: the usage line repeats the name as typed.
    """
    if not args or args[-1] not in ("--help", "-h") or columns < HELP_WIDTH:
        return None
    from flyk.cli._words import HELP_LINES

    lines = HELP_LINES.get(" ".join(args[:-1]))
    return "\n".join(lines) + "\n" if lines is not None else None


HELP_WIDTH = 80


def generate() -> str:
    """The source of ``flyk/cli/_words.py`` (then ``ruff format`` it)."""
    helps, options, aliases = collect()
    texts = {path: text.splitlines() for path, text in sorted(rendered_helps().items())}
    return (
        GENERATED_HEADER
        + f"\nHELPS: dict[str, dict[str, str]] = {helps!r}\n"
        + f"OPTIONS: dict[str, dict[str, str]] = {options!r}\n"
        + f"ALIASES: dict[str, dict[str, str]] = {aliases!r}\n"
        + f"HELP_LINES: dict[str, list[str]] = {texts!r}\n"
    )


if __name__ == "__main__":
    import sys

    sys.stdout.write(generate())
