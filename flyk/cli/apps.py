"""flyk apps."""

from __future__ import annotations

import typer

app = typer.Typer(name="apps", no_args_is_help=True)
