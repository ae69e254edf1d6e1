"""The command tree: the root Typer app, its global options, and every group mounted by name.

``flyk.cli.main`` runs it; this module is imported only when a command, ``--help`` or a
completion request needs the tree, never for ``flyk --version``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from flyk._version import __version__
from flyk.cli import apps, auth, completion, k8s, local, machine, regions, volumes
from flyk.cli.context import GlobalOptions, app_context
from flyk.cli.options import JsonOption

HELP = """Kubernetes on Fly.io Machines, and a flyctl-style CLI for the Machines API.

With no Fly.io token, flyk uses an embedded local backend that speaks the same API.
"""

app = typer.Typer(
    name="flyk",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
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


def _mount(group: typer.Typer, name: str, *aliases: str) -> None:
    """Mount a group by name; aliases work but stay out of help and completion."""
    app.add_typer(group, name=name)
    for alias in aliases:
        app.add_typer(group, name=alias, hidden=True)


ext = typer.Typer(name="ext", help="Extensions: Kubernetes clusters.", no_args_is_help=True)
ext.add_typer(k8s.app, name="k8s")
ext.add_typer(k8s.app, name="kubernetes", hidden=True)

_mount(auth.app, "auth")
_mount(apps.app, "apps", "app")
_mount(machine.app, "machine", "machines", "m")
_mount(volumes.app, "volumes", "volume", "vol")
_mount(regions.app, "regions")
_mount(local.app, "local")
_mount(completion.app, "completion")
_mount(ext, "ext", "extensions")
