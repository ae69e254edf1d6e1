"""Shell completion: ``flyk completion bash|zsh|fish`` and the dynamic value callbacks.

The callbacks complete app names, machine ids, volume ids and region codes from the current
target (the same target the command would use: ``--local``, ``-t`` and the environment are
honoured). A shell is waiting on them, so they give up quickly and stay silent: any error
means "no suggestions", never a traceback in the middle of the user's command line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from flyk.config import EnvVar

if TYPE_CHECKING:
    from flyk.api import FlyClient

PROG_NAME = "flyk"
COMPLETE_VAR = "_FLYK_COMPLETE"


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


app = typer.Typer(name="completion", no_args_is_help=True)


# Typer's zsh script only runs ``compdef`` when loaded, which is right when it is sourced but
# not when compinit autoloads it from $fpath (the README's way): then the file's body *is* the
# completion function, and must complete the first TAB too, not just register for the next.
# The reply is quoted ("$(…)") so the shell neither splits nor globs it before eval.
ZSH_SCRIPT = """\
#compdef %(prog_name)s

%(complete_func)s() {
  eval "$(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" %(autocomplete_var)s=complete_zsh \
%(prog_name)s)"
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  %(complete_func)s "$@"  # autoloaded from $fpath by compinit: this call is the first TAB
else
  compdef %(complete_func)s %(prog_name)s  # sourced: register for the TABs to come
fi
"""


def completion_script(shell: str) -> str:
    """The script that makes ``shell`` ask flyk for completions (``completions/`` holds them)."""
    from typer._completion_shared import get_completion_script

    if shell == Shell.zsh:
        return ZSH_SCRIPT % _script_names()
    return get_completion_script(prog_name=PROG_NAME, complete_var=COMPLETE_VAR, shell=shell) + "\n"


def _script_names() -> dict[str, str]:
    return {
        "prog_name": PROG_NAME,
        "complete_func": f"_{PROG_NAME}_completion",
        "autocomplete_var": COMPLETE_VAR,
    }


@app.command("completion")
def completion(
    ctx: typer.Context,
    shell: Annotated[
        Shell, typer.Argument(metavar="SHELL", help="bash, zsh or fish.", show_default=False)
    ],
) -> None:
    """Shell completion scripts for bash, zsh and fish.

    Prints the script for SHELL. Install it, then open a new shell:

    \b
      bash: echo 'source <(flyk completion bash)' >> ~/.bashrc
      zsh:  flyk completion zsh > "${fpath[1]}/_flyk"
      fish: flyk completion fish > ~/.config/fish/completions/flyk.fish
    """
    from flyk.cli.context import app_context

    app_context(ctx).output.line(completion_script(shell.value).rstrip("\n"))


def register_shells() -> None:
    """Typer's shell classes, with bash's taking ``--app=web`` as one word (see below),
    zsh's keeping apostrophes in descriptions, and zsh's and fish's answering ``--app=`` whole."""
    from typer._click.shell_completion import CompletionItem, add_completion_class
    from typer._completion_classes import BashComplete, FishComplete, ZshComplete, completion_init

    from flyk.cli.quickcomplete import zsh_item

    class JoinedBashComplete(BashComplete):
        def get_completion_args(self) -> tuple[list[str], str]:
            args, incomplete = super().get_completion_args()
            *args, incomplete = rejoin_equals([*args, incomplete])
            return args, incomplete

    def whole_words(items: list[CompletionItem], incomplete: str) -> list[CompletionItem]:
        """``--app=web`` for ``--app=``: zsh and fish match candidates against the whole
        word, so a bare ``web`` would match nothing."""
        option, equals, _ = incomplete.partition("=")
        if not (equals and option.startswith("-")):
            return items
        return [CompletionItem(f"{option}={i.value}", type=i.type, help=i.help) for i in items]

    class QuotingZshComplete(ZshComplete):
        source_template = ZSH_SCRIPT

        def get_completions(self, args: list[str], incomplete: str) -> list[CompletionItem]:
            return whole_words(super().get_completions(args, incomplete), incomplete)

        def format_completion(self, item: CompletionItem) -> str:
            # flyk's helps have no Rich markup, so Typer's pass through Rich is not needed
            return zsh_item(item.value, item.help or "")

    class WholeWordFishComplete(FishComplete):
        def get_completions(self, args: list[str], incomplete: str) -> list[CompletionItem]:
            return whole_words(super().get_completions(args, incomplete), incomplete)

    completion_init()
    add_completion_class(JoinedBashComplete, Shell.bash.value)
    add_completion_class(QuotingZshComplete, Shell.zsh.value)
    add_completion_class(WholeWordFishComplete, Shell.fish.value)


def rejoin_equals(words: list[str]) -> list[str]:
    """Undo bash's split of ``--app=web`` into ``--app``, ``=``, ``web`` (COMP_WORDBREAKS).

    bash hands over ``--app = web`` for ``--app=web``, and Click would take ``=`` as the
    value and ``web`` as an argument. The last word is the one being completed: ``--app=``
    and ``--app=we`` come back whole, and Click completes the value after the ``=``.
    """
    joined: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word == "=" and joined:
            joined[-1] += "="
            if index + 1 < len(words):
                joined[-1] += words[index + 1]
                index += 1
        else:
            joined.append(word)
        index += 1
    return joined


# ---------------------------------------------------------------------------------------------
# dynamic values


def _client(ctx: typer.Context) -> FlyClient:
    from flyk.cli.context import AppContext, GlobalOptions

    root = ctx.find_root()
    context = root.obj if isinstance(root.obj, AppContext) else AppContext()
    root.obj = context
    params = root.params
    context.configure(
        GlobalOptions(
            access_token=params.get("access_token"),
            local=bool(params.get("local")),
        )
    )
    context.announce = False
    context.completing = True
    target = context.target
    if target.is_local and target.local_db is not None and not target.local_db.exists():
        # a fresh machine: nothing to suggest, and a TAB must not create the database
        raise _NothingToComplete
    return context.client


def _option_value(ctx: typer.Context, option: str) -> str | None:
    """The value given so far for ``option`` (e.g. ``--app``), whatever its parameter is called."""
    for param in ctx.command.params:
        if option in param.opts:
            value = ctx.params.get(param.name or "")
            return value if isinstance(value, str) and value else None
    return None


def _app_name(ctx: typer.Context) -> str | None:
    return _option_value(ctx, "--app") or os.environ.get(EnvVar.APP) or None


def _matching(candidates: Iterable[str], incomplete: str) -> list[str]:
    return sorted({c for c in candidates if c.startswith(incomplete)})


class _NothingToComplete(Exception):
    pass


def _quietly(fetch: Callable[[], Iterable[str]], incomplete: str) -> list[str]:
    try:
        return _matching(fetch(), incomplete)
    except (Exception, KeyboardInterrupt):
        return []


def complete_apps(ctx: typer.Context, incomplete: str) -> list[str]:
    org = _option_value(ctx, "--org") or os.environ.get(EnvVar.ORG) or "personal"
    return _quietly(lambda: [a.name for a in _client(ctx).apps.list(org)], incomplete)


def complete_machine_ids(ctx: typer.Context, incomplete: str) -> list[str]:
    app_name = _app_name(ctx)
    if app_name is None:
        return []
    return _quietly(lambda: [m.id for m in _client(ctx).machines.list(app_name)], incomplete)


def complete_volume_ids(ctx: typer.Context, incomplete: str) -> list[str]:
    app_name = _app_name(ctx)
    if app_name is None:
        return []
    return _quietly(lambda: [v.id for v in _client(ctx).volumes.list(app_name)], incomplete)


def complete_regions(ctx: typer.Context, incomplete: str) -> list[str]:
    return _quietly(lambda: [r.code for r in _client(ctx).platform.regions().regions], incomplete)


def complete_sizes(ctx: typer.Context, incomplete: str) -> list[str]:  # noqa: ARG001
    """``--vm-size`` presets (shared-cpu-1x, performance-2x, …), in the API's order."""

    def fetch() -> list[str]:
        from flyk.api.machine_sizes import PRESETS

        return [name for name in PRESETS if name.startswith(incomplete)]

    try:
        return fetch()
    except Exception:
        return []


def complete_clusters(ctx: typer.Context, incomplete: str) -> list[str]:
    """Cluster names (``flyk ext k8s status|kubeconfig|delete NAME``), from the platform.

    The orgs are ``--org``/``FLY_ORG`` when given, else the token's, else the personal org:
    the same ones ``flyk ext k8s list`` looks in.
    """

    def fetch() -> list[str]:
        from flyk.k8s.cluster import list_clusters

        client = _client(ctx)
        org = _option_value(ctx, "--org") or os.environ.get(EnvVar.ORG)
        if org:
            orgs = [org]
        else:
            try:
                orgs = client.tokens.current().org_slugs or ["personal"]
            except Exception:
                orgs = ["personal"]
        return [c.name for c in list_clusters(client, orgs)]

    return _quietly(fetch, incomplete)


# fixed value lists, from the Machines API spec: --state of `machine list` (the states the
# list filter takes), of `machine wait` (the wait endpoint's enum), and --vm-cpu-kind
LIST_STATES = ("created", "started", "stopped", "suspended", "failed")
WAIT_STATES = ("started", "stopped", "suspended", "destroyed", "failed", "settled")
CPU_KINDS = ("shared", "performance")


def _comma_separated(choices: Iterable[str], incomplete: str) -> list[str]:
    """Complete the last item of ``a,b,c`` (the earlier items are kept, not offered again)."""
    done, _, last = incomplete.rpartition(",")
    given = set(done.split(",")) if done else set()
    prefix = f"{done}," if done else ""
    return [prefix + c for c in choices if c.startswith(last) and c not in given]


def complete_list_states(incomplete: str) -> list[str]:
    return _comma_separated(LIST_STATES, incomplete)


def complete_wait_states(incomplete: str) -> list[str]:
    return _comma_separated(WAIT_STATES, incomplete)


def complete_cpu_kinds(incomplete: str) -> list[str]:
    return [kind for kind in CPU_KINDS if kind.startswith(incomplete)]
