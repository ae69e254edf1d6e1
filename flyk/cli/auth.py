"""flyk auth."""

from __future__ import annotations

import typer

app = typer.Typer(name="auth", no_args_is_help=True)
