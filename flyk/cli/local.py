"""flyk local."""

from __future__ import annotations

import typer

app = typer.Typer(name="local", no_args_is_help=True)
