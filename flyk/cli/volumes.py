"""flyk volumes."""

from __future__ import annotations

import typer

app = typer.Typer(name="volumes", no_args_is_help=True)
