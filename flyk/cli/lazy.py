"""Command groups whose sub-groups are imported and built only when used.

Typer turns every command function into a Click command by inspecting its signature, which
costs more than importing Typer itself once a CLI has a hundred commands and aliases. A
``LazyGroup`` lists its sub-groups from a static table (name, module, one-line help) and
builds only the one a command line actually enters: ``flyk --help`` and ``flyk <TAB>``
build none, ``flyk apps list`` builds ``apps`` alone.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from typer._click import Command, Context, HelpFormatter
from typer._click.shell_completion import CompletionItem
from typer.core import TyperGroup
from typer.main import get_command


@dataclass(frozen=True)
class LazyEntry:
    """A sub-group: the module whose ``app`` (a Typer) it is, and its help line."""

    module: str
    help: str
    aliases: tuple[str, ...] = field(default=())


class LazyGroup(TyperGroup):
    lazy: ClassVar[Mapping[str, LazyEntry]] = {}

    @classmethod
    def alias_map(cls) -> dict[str, str]:
        return {alias: name for name, e in cls.lazy.items() for alias in e.aliases}

    def _canonical(self, name: str) -> str | None:
        if name in self.lazy:
            return name
        return next((key for key, e in self.lazy.items() if name in e.aliases), None)

    def list_commands(self, ctx: Context) -> list[str]:
        return [*super().list_commands(ctx), *self.lazy]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        eager = super().get_command(ctx, cmd_name)
        if eager is not None:
            return eager
        name = self._canonical(cmd_name)
        if name is None:
            return None
        command = self.load(name)
        self.commands[name] = command  # built once per process
        return command

    def load(self, name: str) -> Command:
        module = importlib.import_module(self.lazy[name].module)
        return plain_help(get_command(module.app), name)

    def _rows(self, incomplete: str = "") -> list[tuple[str, str]]:
        rows = [
            (name, command.get_short_help_str())
            for name, command in self.commands.items()
            if not command.hidden and name not in self.lazy and name.startswith(incomplete)
        ]
        rows += [(name, e.help) for name, e in self.lazy.items() if name.startswith(incomplete)]
        return rows

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:  # noqa: ARG002
        rows = self._rows()
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def shell_complete(self, ctx: Context, incomplete: str) -> list[CompletionItem]:
        items = [CompletionItem(name, help=text) for name, text in self._rows(incomplete)]
        items.extend(super(TyperGroup, self).shell_complete(ctx, incomplete))
        return items


_TYPER_COMPLETION_OPTIONS = {"install_completion", "show_completion"}


def plain_help(command: Command, name: str) -> Command:
    """Name a loaded group and make it look like the root's own: plain help (no Rich
    panels), and no Typer ``--install-completion`` (flyk has ``flyk completion``)."""
    command.name = name
    command.params = [p for p in command.params if p.name not in _TYPER_COMPLETION_OPTIONS]
    stack = [command]
    while stack:
        current = stack.pop()
        if hasattr(current, "rich_markup_mode"):
            current.rich_markup_mode = None
        stack.extend(getattr(current, "commands", {}).values())
    return fast_coercion(command)


def fast_coercion(command: Command) -> Command:
    """Convert plain ``str``/``int``/``float`` values without Pydantic.

    Typer (0.29) converts every parameter value through a Pydantic TypeAdapter, and
    importing Pydantic doubles flyk's start-up: every command and every TAB would pay
    for it. Parameters of plain types get a converter of their own; anything else
    (enums, ranges, paths) keeps Typer's. Arguments with a metavar are shown as Click shows
    them (``NAME``, not ``{NAME}`` and ``NAME <str>``). If Typer's internals differ (another
    version), this does nothing and Typer's own conversion and help apply.
    """
    try:
        from flyk.cli._coercion import install, install_help_option, plain_argument
    except ImportError:  # pragma: no cover - a Typer without the runtime-param layer
        return command
    stack = [command]
    while stack:
        current = stack.pop()
        for param in current.params:
            install(param)
            plain_argument(param)
        install_help_option(current)
        stack.extend(getattr(current, "commands", {}).values())
    return command


def aliased(aliases: Mapping[str, str]) -> type[TyperGroup]:
    """A group class that also answers to ``aliases`` (alias → command), unlisted.

    Cheaper than registering a hidden copy of each command: Typer converts every
    registered function, copies included, whenever the group is built.
    """

    class AliasedGroup(TyperGroup):
        command_aliases: ClassVar[Mapping[str, str]] = dict(aliases)

        def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
            return super().get_command(ctx, self.command_aliases.get(cmd_name, cmd_name))

    return AliasedGroup
