"""The command tree: the root Typer app, its global options, and every group mounted by name.

``flyk.cli.main`` runs it; this module is imported only when a command, ``--help`` or a
completion request needs the tree, never for ``flyk --version``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar

import typer
from typer._click import Command
from typer.main import get_command

from flyk._version import __version__
from flyk.cli.context import GlobalOptions, app_context
from flyk.cli.lazy import LazyEntry, LazyGroup, plain_help
from flyk.cli.options import JsonOption

HELP = """Kubernetes on Fly.io Machines, and a flyctl-style CLI for the Machines API.

With no Fly.io token, flyk uses an embedded local backend that speaks the same API.
"""


class ExtensionsGroup(LazyGroup):
    """``flyk ext``: the Kubernetes extension pulls in cryptography, YAML and the client."""

    lazy: ClassVar[Mapping[str, LazyEntry]] = {
        "k8s": LazyEntry(
            "flyk.cli.k8s", "Kubernetes clusters on Fly Machines.", aliases=("kubernetes",)
        )
    }


class RootGroup(LazyGroup):
    lazy: ClassVar[Mapping[str, LazyEntry]] = {
        "auth": LazyEntry("flyk.cli.auth", "Log in to Fly.io and inspect the token in use."),
        "apps": LazyEntry("flyk.cli.apps", "Manage apps.", aliases=("app",)),
        "machine": LazyEntry(
            "flyk.cli.machine", "Run and manage Fly Machines.", aliases=("machines", "m")
        ),
        "volumes": LazyEntry("flyk.cli.volumes", "Manage volumes.", aliases=("volume", "vol")),
        "regions": LazyEntry("flyk.cli.regions", "List regions."),
        "local": LazyEntry("flyk.cli.local", "The embedded local backend."),
        "completion": LazyEntry(
            "flyk.cli.completion", "Shell completion scripts for bash, zsh and fish."
        ),
        "ext": LazyEntry(
            "flyk.cli.root", "Extensions: Kubernetes clusters (k8s).", ("extensions",)
        ),
    }

    def load(self, name: str) -> Command:
        if name == "ext":
            return plain_help(get_command(ext), name)
        return super().load(name)


app = typer.Typer(
    name="flyk",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    cls=RootGroup,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"flyk {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    access_token: Annotated[
        str | None,
        typer.Option(
            "-t",
            "--access-token",
            metavar="TOKEN",
            help="Fly.io API token (else FLY_ACCESS_TOKEN, FLY_API_TOKEN, `flyk auth login`, "
            "~/.fly/config.yml).",
            show_default=False,
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Show API requests and responses on stderr.")
    ] = False,
    local: Annotated[
        bool, typer.Option("--local", help="Use the embedded local backend, even with a token.")
    ] = False,
    version: Annotated[  # noqa: ARG001 - handled by its eager callback
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    """Global options go before or after the sub-command (anywhere before `--`)."""
    app_context(ctx).configure(
        GlobalOptions(access_token=access_token, verbose=verbose, local=local)
    )


@app.command("version")
def version_command(ctx: typer.Context, json: JsonOption = False) -> None:
    """Print flyk's version."""
    out = app_context(ctx).use_json(json)
    out.emit({"version": __version__}, lambda: out.line(f"flyk {__version__}"))


ext = typer.Typer(
    name="ext",
    help="Extensions: Kubernetes clusters (k8s).",
    no_args_is_help=True,
    cls=ExtensionsGroup,
)


@ext.callback()
def extensions() -> None:
    """Extensions: Kubernetes clusters (k8s)."""
