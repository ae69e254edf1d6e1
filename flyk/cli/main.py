"""Entry point: ``flyk`` runs ``main()``; this is the only place an error becomes an exit code.

Start-up is what a person feels at every TAB, so this module imports nothing heavy.
Three kinds of request are answered before Typer is imported: ``flyk --version``,
``flyk [COMMAND…] --help`` (pre-rendered) and completion of command words in bash, zsh and
fish (``flyk.cli.quickcomplete``). The
command tree (``flyk.cli.root``) is loaded for everything else, and each group in it only
when the command line enters it (``flyk.cli.lazy``). ``flyk.cli.main.app`` is the root
Typer app (loaded on first access).

Global options (``-t/--access-token``, ``--verbose``, ``--local``) work anywhere before ``--``,
as flyctl's persistent flags do: ``run()`` moves them in front of the sub-command.
"""

from __future__ import annotations

import os
import sys

from flyk._version import __version__

# Not `from typing import TYPE_CHECKING`: importing typing (and flyk.errors, which needs
# dataclasses) costs more than the whole `--version` fast path. mypy honours this name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, NoReturn

    import httpx
    from typer._click.exceptions import ClickException

    from flyk.cli.context import AppContext
    from flyk.errors import FlykError

PROG_NAME = "flyk"
COMPLETE_VAR = "_FLYK_COMPLETE"
# Leases are released by the client on the way out (or expire with their TTL).
INTERRUPTED = "interrupted (Ctrl-C); leases this command held were released"
EXIT_INTERRUPTED = 130  # flyk.errors.Interrupted.exit_code (tests check they agree)
_FLAGS = {"--verbose", "--local"}
_VALUED = {"-t", "--access-token"}


def __getattr__(name: str) -> Any:
    if name == "app":
        from flyk.cli.root import app

        return app
    raise AttributeError(name)


def hoist_global_options(args: Sequence[str]) -> list[str]:
    """Move global options in front of the sub-command, leaving everything after ``--``."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in _FLAGS or _joined_token(arg):
            front.append(arg)
        elif arg in _VALUED and i + 1 < len(args):
            front.extend(args[i : i + 2])
            i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest


def _joined_token(arg: str) -> bool:
    """``--access-token=TOKEN`` or ``-tTOKEN``: the value in the same word (no sub-command
    has a ``-t`` of its own, so ``-t…`` is always the token)."""
    return arg.startswith("--access-token=") or (arg.startswith("-t") and len(arg) > 2)


def run(
    args: Sequence[str] | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
    client_options: dict[str, Any] | None = None,
) -> int:
    """Run flyk with ``args`` and return its exit code; errors are printed, never raised.

    ``transport`` and ``client_options`` reach the ``FlyClient`` (the test seam).
    """
    from typer.main import get_command

    from flyk.cli.context import AppContext
    from flyk.cli.lazy import fast_coercion
    from flyk.cli.root import app
    from flyk.errors import FlykError, Interrupted

    argv = hoist_global_options(sys.argv[1:] if args is None else args)
    if os.environ.get(COMPLETE_VAR):  # a shell asks for completions: register the shells
        from flyk.cli.completion import register_shells

        register_shells()
    context = AppContext(transport=transport, client_options=client_options)
    try:
        code = fast_coercion(get_command(app)).main(
            args=argv,
            prog_name=PROG_NAME,
            complete_var=COMPLETE_VAR,
            standalone_mode=False,
            obj=context,
        )
    except FlykError as error:
        return _report(context, error)
    except KeyboardInterrupt:
        return _report(context, Interrupted(INTERRUPTED))
    except SystemExit as exit_:  # completion requests exit from inside Typer
        return exit_.code if isinstance(exit_.code, int) else 0
    except Exception as error:
        return _report_unexpected(context, error, command_name=" ".join(argv[:2]), argv=argv)
    finally:
        context.close()
    if code == EXIT_INTERRUPTED:  # Typer turned a KeyboardInterrupt into an exit code
        return _report(context, Interrupted(INTERRUPTED))
    return code if isinstance(code, int) else 0


def _report(context: AppContext, error: FlykError) -> int:
    out = context.output
    _add_hint(error)
    _name_token_source(context, error)
    # An error flyk raises on purpose says all there is: --verbose shows the API exchanges
    # that led to it, never a traceback (that is for errors flyk did not foresee).
    out.error(display_message(error), hint=error.hint, request_id=error.request_id)
    if out.json_mode:
        out.json({"error": error_document(error)})
    return error.exit_code


def _add_hint(error: FlykError) -> None:
    """Hints for API errors whose next step is always the same (the API's message stays)."""
    import re

    from flyk.errors import NotFoundError

    if error.hint is not None or not isinstance(error, NotFoundError):
        return
    message = error.message.lower()
    if re.search(r"\bapp\b[^,;]*\bnot found|could not find app", message) and not re.search(
        r"\b(machine|volume|secret|certificate|lease)\b", message
    ):
        error.hint = "`flyk apps list` shows your apps."


def display_message(error: FlykError) -> str:
    """The error's message for stderr and --json, without the API code prefix its class
    already says.

    The Machines API starts some messages with its error code ("not_found: machine … not
    found"); people are told the same by the message itself, and --json keeps the code in
    `code` (`_code_prefix`).
    """
    prefix = _code_prefix(error)
    return error.message[len(prefix) + 2 :] if prefix else error.message


def _code_prefix(error: FlykError) -> str | None:
    """The API code the message starts with ("not_found"), when the error's class says the
    same; else None."""
    import re

    from flyk import errors

    said_by: dict[str, type[FlykError]] = {
        "not_found": errors.NotFoundError,
        "failed_precondition": errors.ConflictError,
        "already_exists": errors.ConflictError,
        "invalid_argument": errors.UsageError,
        "unauthenticated": errors.AuthError,
        "permission_denied": errors.AuthError,
    }
    match = re.match(r"([a-z_]+): (?=\S)", error.message)
    if error.details is None or match is None:
        return None
    kind = said_by.get(match.group(1))
    if kind is not None and isinstance(error, kind):
        return match.group(1)
    return None


def _name_token_source(context: AppContext, error: FlykError) -> None:
    """A refused token: name where it came from (the client only knows there was one)."""
    from flyk.errors import UnauthorizedError

    if not isinstance(error, UnauthorizedError):
        return
    try:
        token = context.target.token
    except Exception:  # the target is unreadable: keep the client's hint
        return
    if token is not None:
        error.hint = (
            f"The token from {token.describe_source()} was refused: check it, or replace it "
            "(`flyk auth whoami` shows which token is used)."
        )


def _report_unexpected(
    context: AppContext, error: Exception, *, command_name: str, argv: Sequence[str] = ()
) -> int:
    """A bug or an error flyk did not foresee: one line, the traceback only with --verbose."""
    from typer import Abort
    from typer._click.exceptions import ClickException

    if isinstance(error, Abort):
        context.output.error("aborted")
        return 1
    if isinstance(error, ClickException):  # usage errors: Typer's own message, exit 2
        error.show()
        if _asked_for_json(error, argv):
            context.output.json({"error": _usage_error_document(error)})
        return error.exit_code
    from flyk.cli.context import local_storage_error

    storage = local_storage_error(error)
    if storage is not None:
        return _report(context, storage)
    out = context.output
    if out.verbose:
        import traceback

        out.notice("".join(traceback.format_exception(error)).rstrip())
    out.error(
        f"unexpected {type(error).__name__}: {error}",
        hint=None if out.verbose else f"Run `flyk {command_name} --verbose` for the traceback.",
    )
    return 1


_JSON_FLAGS = ("-j", "--json")
_TRUE = ("1", "true", "t", "yes", "y", "on")  # what Click takes as yes from FLY_JSON


def _asked_for_json(error: ClickException, argv: Sequence[str]) -> bool:
    """Whether the command the parser refused has ``--json`` and it was asked for (by flag or
    ``FLY_JSON``): scripts get the error document then, whatever stage the error came from."""
    command = getattr(error, "ctx", None) and error.ctx.command  # type: ignore[attr-defined]
    if command is None or not any(param.name == "json" for param in command.params):
        return False
    options = argv[: argv.index("--")] if "--" in argv else argv
    from_env = os.environ.get("FLY_JSON", "").strip().lower() in _TRUE
    return from_env or any(flag in options for flag in _JSON_FLAGS)


def _usage_error_document(error: ClickException) -> dict[str, Any]:
    """A parser's error in the shape of ``error_document`` (a UsageError, exit code 2)."""
    ctx = getattr(error, "ctx", None)
    hint = f"Try '{ctx.command_path} -h' for help." if ctx is not None else None
    return {
        "type": "UsageError",
        "message": error.format_message(),
        "hint": hint,
        "exit_code": error.exit_code,
        "request_id": None,
        "status": None,
        "code": None,
    }


def error_document(error: FlykError) -> dict[str, Any]:
    """The error as ``--json`` prints it on stdout (keys documented in docs/cli.md)."""
    details = error.details
    return {
        "type": type(error).__name__,
        "message": display_message(error),
        "hint": error.hint,
        "exit_code": error.exit_code,
        "request_id": error.request_id,
        "status": details.status if details else None,
        "code": (details.code if details else None) or _code_prefix(error),
    }


def _wants_version_only(args: Sequence[str]) -> bool:
    """``flyk --version`` / ``flyk version`` in plain text (FLY_JSON asks for the JSON one)."""
    plain = COMPLETE_VAR not in os.environ and not os.environ.get("FLY_JSON")
    return plain and list(args) in (["--version"], ["version"])


def main() -> NoReturn:
    args = sys.argv[1:]
    if _wants_version_only(args):  # fast path: no Typer, no command tree
        sys.stdout.write(f"{PROG_NAME} {__version__}\n")
        sys.exit(0)
    if args and args[-1] in ("--help", "-h") and COMPLETE_VAR not in os.environ:
        from shutil import get_terminal_size  # fast path: help rendered ahead of time

        from flyk.cli.quickcomplete import command_help

        text = command_help(args, get_terminal_size().columns)
        if text is not None:
            sys.stdout.write(text)
            sys.exit(0)
    if os.environ.get(COMPLETE_VAR):  # fast path for TAB on command words
        from flyk.cli.quickcomplete import answer

        reply = answer(os.environ)
        if reply is not None:
            text, code = reply
            sys.stdout.write(text)
            sys.exit(code)
    sys.exit(run(args))
