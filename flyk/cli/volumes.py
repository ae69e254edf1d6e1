"""``flyk volumes``: create, list, show, extend and destroy volumes (alias ``vol``)."""

from __future__ import annotations

from typing import Annotated

import typer

from flyk import config
from flyk.cli import views
from flyk.cli.context import app_context
from flyk.cli.lazy import aliased
from flyk.cli.machine import capacity_alternatives, require_app
from flyk.cli.options import (
    AppOption,
    JsonOption,
    QuietOption,
    RegionOption,
    VolumeIdArgument,
    YesOption,
    quiet_or_json,
)
from flyk.errors import UsageError

app = typer.Typer(
    name="volumes",
    help="Manage volumes.",
    no_args_is_help=True,
    cls=aliased({"ls": "list", "delete": "destroy", "rm": "destroy"}),
)

SizeGbOption = Annotated[
    int, typer.Option("-s", "--size", min=1, max=500, metavar="GB", help="Size in GB (1–500).")
]


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME", help="Volume name (letters, digits, underscores).", show_default=False
        ),
    ],
    app_name: AppOption = None,
    region: RegionOption = None,
    size: SizeGbOption = 1,
    json: JsonOption = False,
) -> None:
    """Create a volume in a region."""
    context = app_context(ctx)
    out = context.use_json(json)
    target = require_app(app_name)
    if not region:
        raise UsageError("no region given: specify one with -r/--region or FLY_REGION")
    region_code = config.validate_region_code(region)  # before the client: no token needed
    client = context.client
    with capacity_alternatives(client, target, volume_size_gb=size):
        volume = client.volumes.create(target, name, region_code, size)
    if json:
        views.VOLUME.show_one(out, volume)
    else:
        out.success(f"Created volume {volume.id} ({volume.size_gb} GB) in {volume.region}")
        out.line(volume.id)


@app.command("list")
def list_volumes(
    ctx: typer.Context,
    app_name: AppOption = None,
    quiet: QuietOption = False,
    json: JsonOption = False,
) -> None:
    """List an app's volumes (-q: ids only, one a line; not with --json)."""
    json = quiet_or_json(ctx, quiet=quiet, json=json)
    context = app_context(ctx)
    out = context.use_json(json)
    target = require_app(app_name)
    volumes = context.client.volumes.list(target)
    if quiet:  # as `machine list -q`: one id a line, for scripts
        for volume in volumes:
            out.line(volume.id)
        return
    views.VOLUME.show_list(out, volumes, empty=f"No volumes in app {target}.")


@app.command("show")
def show(
    ctx: typer.Context,
    volume_id: VolumeIdArgument,
    app_name: AppOption = None,
    json: JsonOption = False,
) -> None:
    """Show one volume."""
    context = app_context(ctx)
    out = context.use_json(json)
    target = require_app(app_name)
    views.VOLUME.show_one(out, context.client.volumes.get(target, volume_id))


@app.command("extend")
def extend(
    ctx: typer.Context,
    volume_id: VolumeIdArgument,
    size: Annotated[
        int, typer.Option("-s", "--size", min=1, max=500, metavar="GB", help="New size in GB.")
    ],
    app_name: AppOption = None,
    json: JsonOption = False,
) -> None:
    """Grow a volume (volumes never shrink)."""
    context = app_context(ctx)
    out = context.use_json(json)
    target = require_app(app_name)
    client = context.client
    result = client.volumes.extend(target, volume_id, size)
    volume = result.volume or client.volumes.get(target, volume_id)  # the answer may omit it
    document = {**views.VOLUME.document(volume), "needs_restart": result.needs_restart}
    out.emit(document, lambda: views.VOLUME.show_one(out, volume))
    if result.needs_restart:
        machine = volume.attached_machine_id
        which, how = (f"machine {machine}", f": flyk machine restart {machine} -a {target}")
        if not machine:
            which, how = "the attached machine", ""
        out.notice(f"Restart {which} to use the new size{how}")


@app.command("destroy")
def destroy(
    ctx: typer.Context,
    volume_id: VolumeIdArgument,
    app_name: AppOption = None,
    yes: YesOption = False,
    json: JsonOption = False,
) -> None:
    """Destroy a volume and its data. Not reversible."""
    context = app_context(ctx)
    out = context.use_json(json)
    target = require_app(app_name)
    if not out.confirm(f"Destroy volume {volume_id} and all its data?", yes=yes):
        out.declined("Nothing destroyed.")
    context.client.volumes.delete(target, volume_id)
    out.emit(
        {"id": volume_id, "destroyed": True}, lambda: out.success(f"Destroyed volume {volume_id}")
    )
