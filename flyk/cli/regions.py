"""``flyk regions``: the regions the target offers."""

from __future__ import annotations

import typer

from flyk.cli import views
from flyk.cli.context import app_context
from flyk.cli.lazy import aliased
from flyk.cli.options import JsonOption

app = typer.Typer(
    name="regions", help="List regions.", no_args_is_help=True, cls=aliased({"ls": "list"})
)


@app.command("list")
def list_regions(ctx: typer.Context, json: JsonOption = False) -> None:
    """List regions (the nearest one is named on stderr).

    CAPACITY is how many more shared-cpu-1x machines the region can take now (empty when the
    API does not say).
    """
    context = app_context(ctx)
    out = context.use_json(json)
    regions = context.client.platform.regions()
    items = sorted(regions.regions, key=lambda r: r.code)
    views.REGION.show_list(out, items, empty="The API reported no regions.")
    if regions.nearest and not json:
        out.notice(f"Nearest region: {regions.nearest}")


@app.callback()
def regions() -> None:
    """List regions."""
