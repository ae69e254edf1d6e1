"""``flyk auth``: store, check and forget the Fly.io token.

``login`` reads a token (from ``fly tokens create …`` or the dashboard) from stdin or a
hidden prompt and stores it 0600 in flyk's config file; it never takes the token as an
argument, where it would land in shell history and ``ps``.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from flyk import config
from flyk.cli import views
from flyk.cli.context import AppContext, app_context
from flyk.cli.options import JsonOption
from flyk.errors import AuthError, UsageError

app = typer.Typer(name="auth", help="Log in to Fly.io and inspect the token in use.")
app.info.no_args_is_help = True


@app.command("login")
def login(ctx: typer.Context, json: JsonOption = False) -> None:
    """Store a Fly.io token: piped on stdin, or typed at a hidden prompt.

    Example: fly tokens create org | flyk auth login
    """
    out = app_context(ctx).use_json(json)
    if not sys.stdin.isatty():
        token = sys.stdin.read()
    elif out.interactive:
        token = out.ask_secret("Fly.io API token (input hidden)")
    else:
        raise UsageError(
            "no token to store: pipe it on stdin when not running interactively",
            hint="Example: fly tokens create org | flyk auth login",
        )
    out.add_secret(token.strip())
    path = config.store_token(token)
    out.emit(
        {"stored_in": str(path)},
        lambda: out.success(f"Token stored in {path}. Check it with: flyk auth whoami"),
    )


@app.command("logout")
def logout(ctx: typer.Context, json: JsonOption = False) -> None:
    """Forget the token stored by `flyk auth login` (environment variables stay as they are)."""
    out = app_context(ctx).use_json(json)
    path = config.forget_token()
    message = f"Removed the token from {path}" if path else "No token was stored by flyk."
    out.emit({"removed_from": str(path) if path else None}, lambda: out.notice(message))


@app.command("whoami")
def whoami(ctx: typer.Context, json: JsonOption = False) -> None:
    """Show what the token in use grants (GET /tokens/current)."""
    context = app_context(ctx)
    out = context.use_json(json)
    info = context.client.tokens.current()
    target = context.target
    source = target.token.describe_source() if target.token else None
    document = views.token_document(info, source=source, target=target.describe())
    out.emit(document, lambda: _show_whoami(context, document))


def _show_whoami(context: AppContext, document: dict[str, Any]) -> None:
    users = sorted({t["user"] for t in document["tokens"] if t.get("user")})
    fields: list[tuple[str, object]] = [
        ("Target", context.target.describe()),
        ("Token from", document["source"] or "none"),
        ("Orgs", document["orgs"]),
    ]
    if users:
        fields.append(("User", users))
    context.output.detail(fields)


@app.command("token")
def token(ctx: typer.Context, json: JsonOption = False) -> None:
    """Print the token in use (only this command ever prints it). Keep it out of CI logs."""
    context = app_context(ctx)
    out = context.use_json(json)
    found = config.resolve_token(context.options.access_token)
    if found is None:
        raise AuthError(
            "no Fly.io token found",
            hint="Run `flyk auth login`, set FLY_API_TOKEN, or pass --access-token.",
        )
    if out.progress:
        out.warn("this prints a secret; do not paste it into logs or issues")
    out.emit(
        {"token": found.value, "source": found.describe_source()}, lambda: out.line(found.value)
    )
