"""Options shared by many commands, with flyctl's names, short forms and variables.

Global options (``-t``, ``--verbose``, ``--local``) live on the root callback in ``root.py``;
these are per command, as in flyctl: ``flyk apps list --json``, ``flyk machine list -a web``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from flyk.cli import completion
from flyk.config import EnvVar

AppOption = Annotated[
    str | None,
    typer.Option(
        "-a",
        "--app",
        metavar="APP",
        envvar=EnvVar.APP,
        help="App name.",
        autocompletion=completion.complete_apps,
        show_envvar=True,
    ),
]
OrgOption = Annotated[
    str | None,
    typer.Option(
        "-o",
        "--org",
        metavar="ORG",
        envvar=EnvVar.ORG,
        help="Organization slug (default: personal).",
        show_envvar=True,
    ),
]
RegionOption = Annotated[
    str | None,
    typer.Option(
        "-r",
        "--region",
        metavar="REGION",
        envvar=EnvVar.REGION,
        help="Region code, e.g. iad.",
        autocompletion=completion.complete_regions,
        show_envvar=True,
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option("-j", "--json", envvar=EnvVar.JSON, help="Print JSON.", show_envvar=True),
]
YesOption = Annotated[
    bool,
    typer.Option("-y", "--yes", help="Answer yes to confirmations (needed when not interactive)."),
]
MachineIdArgument = Annotated[
    str,
    typer.Argument(
        metavar="MACHINE_ID",
        help="Machine id (14 hex digits).",
        autocompletion=completion.complete_machine_ids,
        show_default=False,
    ),
]
MachineIdsArgument = Annotated[
    list[str],
    typer.Argument(
        metavar="MACHINE_ID",
        help="One or more machine ids.",
        autocompletion=completion.complete_machine_ids,
        show_default=False,
    ),
]
VolumeIdArgument = Annotated[
    str,
    typer.Argument(
        metavar="VOLUME_ID",
        help="Volume id (vol_…).",
        autocompletion=completion.complete_volume_ids,
        show_default=False,
    ),
]

DEFAULT_ORG = "personal"
# Every duration flag (waits, timeouts) is at most a day: longer is a typo, and a huge number
# would overflow the clock arithmetic it feeds.
MAX_SECONDS = 24 * 3600

QuietOption = Annotated[bool, typer.Option("-q", "--quiet", help="Print ids only.")]


def quiet_or_json(ctx: typer.Context, *, quiet: bool, json: bool) -> bool:
    """The ``--json`` a list command with ``-q`` goes on with: -q prints ids (or names), one
    a line, and JSON is all of it; both asked on the command line is a usage error, and a
    ``-q`` given beats FLY_JSON from the environment (as a flag beats a variable)."""
    if not (quiet and json):
        return json
    from typer._click.core import ParameterSource

    if ctx.get_parameter_source("json") == ParameterSource.ENVIRONMENT:
        return False
    from flyk.errors import UsageError

    raise UsageError("-q/--quiet and --json cannot be used together")
