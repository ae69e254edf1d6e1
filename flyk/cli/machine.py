"""flyk machine."""

from __future__ import annotations

import typer

app = typer.Typer(name="machine", no_args_is_help=True)
