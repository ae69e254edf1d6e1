"""``flyk apps``: create, list, show and destroy apps (alias ``app``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from flyk.cli import completion, views
from flyk.cli.context import app_context
from flyk.cli.lazy import aliased
from flyk.cli.options import DEFAULT_ORG, JsonOption, OrgOption, YesOption, quiet_or_json
from flyk.config import validate_app_name, validate_network_name
from flyk.errors import FlykError, NotFoundError

if TYPE_CHECKING:
    from flyk.api import FlyClient

app = typer.Typer(
    name="apps",
    help="Manage apps.",
    no_args_is_help=True,
    cls=aliased({"ls": "list", "delete": "destroy", "remove": "destroy", "rm": "destroy"}),
)

AppNameArgument = Annotated[
    str,
    typer.Argument(
        metavar="NAME",
        help="App name.",
        autocompletion=completion.complete_apps,
        show_default=False,
    ),
]


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="New app name.", show_default=False)],
    org: OrgOption = None,
    network: Annotated[
        str | None,
        typer.Option(
            "--network",
            metavar="NETWORK",
            help="Custom private network (6PN) name: lower-case letters, digits, dashes, "
            "underscores.",
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Create an app."""
    context = app_context(ctx)
    out = context.use_json(json)
    validate_app_name(name)  # before the client: bad input never needs a token
    if network is not None:
        validate_network_name(network)
    created = context.client.apps.create(name, org or DEFAULT_ORG, network=network)
    if json:
        views.APP.show_one(out, created)
    else:
        out.success(f"New app created: {created.name}")


@app.command("list")
def list_apps(
    ctx: typer.Context,
    org: OrgOption = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Print names only.")] = False,
    json: JsonOption = False,
) -> None:
    """List the apps of an organization (-q: names only, one a line; not with --json)."""
    json = quiet_or_json(ctx, quiet=quiet, json=json)
    context = app_context(ctx)
    out = context.use_json(json)
    org_slug = org or DEFAULT_ORG
    client = context.client
    try:
        apps = sorted(client.apps.list(org_slug), key=lambda a: a.name)
    except NotFoundError as error:  # the organization: the only thing this call names
        error.hint = error.hint or _orgs_hint(client)
        raise
    if quiet:  # as `machine list -q`: one name a line, for scripts
        for listed in apps:
            out.line(listed.name)
        return
    views.APP.show_list(out, apps, empty=f"No apps in organization {org_slug}.")


@app.command("show")
def show(ctx: typer.Context, name: AppNameArgument, json: JsonOption = False) -> None:
    """Show one app."""
    context = app_context(ctx)
    out = context.use_json(json)
    validate_app_name(name)
    views.APP.show_one(out, context.client.apps.get(name))


@app.command("destroy")
def destroy(
    ctx: typer.Context, name: AppNameArgument, yes: YesOption = False, json: JsonOption = False
) -> None:
    """Destroy an app with its machines and volumes. Not reversible."""
    context = app_context(ctx)
    out = context.use_json(json)
    validate_app_name(name)
    if not out.confirm(f"Destroy app {name} with all its machines and volumes?", yes=yes):
        out.declined("Nothing destroyed.")
    context.client.apps.delete(name)
    out.emit({"name": name, "destroyed": True}, lambda: out.success(f"Destroyed app {name}"))


def _orgs_hint(client: FlyClient) -> str | None:
    """The organizations the token can use, for an -o that named none of them."""
    try:
        slugs = sorted(client.tokens.current().org_slugs)
    except FlykError:  # not known: no hint rather than a wrong one
        return None
    if not slugs:
        return None
    return (
        f"Your organizations: {', '.join(slugs)}; pass one with -o/--org "
        "(flyk auth whoami shows them)."
    )
