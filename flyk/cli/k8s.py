"""`flyk ext k8s …`: Kubernetes clusters on Fly Machines (FKS's command names as aliases).

Thin by design: arguments → one `flyk.k8s` call → render. The workflows, their rollback and
the kubeconfig rules live in `flyk/k8s/` (docs/k8s.md).
"""

from __future__ import annotations

import json as jsonlib
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from flyk.cli.completion import complete_clusters
from flyk.cli.context import LOCAL_BASE_URL, AppContext, app_context
from flyk.cli.controlplane import build_command, control_plane_command
from flyk.cli.kubelet import kubelet_command
from flyk.cli.options import (
    DEFAULT_ORG,
    MAX_SECONDS,
    JsonOption,
    OrgOption,
    RegionOption,
    YesOption,
)
from flyk.cli.output import Output
from flyk.config import EnvVar, is_loopback_url
from flyk.errors import FlykError, NotFoundError, UsageError
from flyk.k8s import cluster
from flyk.k8s import controlplane as cp
from flyk.k8s import kubeconfig as kc
from flyk.k8s.plan import VOLUME_NAME, ClusterSpec
from flyk.k8s.progress import StepHandle

app = typer.Typer(
    name="k8s",
    help="Kubernetes clusters on Fly Machines: K3s on one Machine, every Pod a Machine.",
    no_args_is_help=True,
)

NameArgument = Annotated[
    str,
    typer.Argument(
        metavar="NAME", help="Cluster name.", show_default=False, autocompletion=complete_clusters
    ),
]
KubeconfigPathOption = Annotated[
    str | None,
    typer.Option(
        "--kubeconfig",
        help="Kubeconfig file to merge into (default: KUBECONFIG, then ~/.kube/config).",
        metavar="PATH",
        show_default=False,
    ),
]
OutputFileOption = Annotated[
    str | None,
    typer.Option(
        "--output",
        help="Write a standalone kubeconfig holding only this cluster to FILE instead of "
        "merging (refused if FILE holds anything else).",
        metavar="FILE",
        show_default=False,
    ),
]
NoSwitchOption = Annotated[
    bool,
    typer.Option("--no-switch-context", help="Leave current-context as it is."),
]


def _org(org: str | None) -> str:
    return org or DEFAULT_ORG


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_timeout(text: str) -> float:
    """`600`, `90s`, `10m`, `1h` → seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise UsageError(f"cannot read --timeout {text!r}; write e.g. 10m, 90s or 600")
    if float(match.group(1)) <= 0:
        raise UsageError(f"--timeout must be more than 0, got {text!r}; e.g. 10m")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]
    seconds = float(match.group(1)) * scale
    if seconds > MAX_SECONDS:
        raise UsageError(f"--timeout is at most 24h, got {text!r}; e.g. 10m")
    return seconds


class _Label:
    def __init__(self, message: str) -> None:
        self.message = message

    def update(self, message: str) -> None:
        self.message = message


class Steps:
    """Progress on stderr: Output's spinner on a terminal; elsewhere one plain line per
    finished step, so that a CI log shows how far a create got (kind does the same)."""

    def __init__(self, out: Output) -> None:
        self.out = out

    @contextmanager
    def step(self, message: str) -> Iterator[StepHandle]:
        if self.out.progress:
            with self.out.step(message) as handle:
                yield handle
            return
        label, started = _Label(message), time.monotonic()
        try:
            yield label
        except BaseException:
            self.out.notice(f"✗ {label.message}")
            raise
        self.out.notice(f"✓ {label.message}  {time.monotonic() - started:.1f}s")

    def notice(self, message: str) -> None:
        self.out.notice(message)


# ---------------------------------------------------------------------------------------------
# create


@app.command("create")
def create_command(
    ctx: typer.Context,
    name_argument: Annotated[
        str | None, typer.Argument(metavar="NAME", help="Cluster name.", show_default=False)
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("-n", "--name", metavar="NAME", help="Cluster name.", show_default=False),
    ] = None,
    org: OrgOption = None,
    region: RegionOption = None,
    kubeconfig: KubeconfigPathOption = None,
    output: OutputFileOption = None,
    no_switch_context: NoSwitchOption = False,
    timeout: Annotated[
        str,
        typer.Option(
            "--timeout",
            metavar="DURATION",
            help="Give up (and roll back) after this long: 90s, 10m, 1h or seconds.",
        ),
    ] = "10m",
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Run the checks, print the plan (secrets redacted); create nothing.",
        ),
    ] = False,
    keep_on_failure: Annotated[
        bool,
        typer.Option(
            "--keep-on-failure",
            help="On failure keep what was made; create NAME again resumes it.",
        ),
    ] = False,
    private: Annotated[
        bool,
        typer.Option("--private", help="API on a private Flycast address only (WireGuard)."),
    ] = False,
    ipv4: Annotated[
        bool,
        typer.Option(
            "--ipv4",
            help="Also assign a dedicated IPv4 (billed by Fly) for networks without IPv6.",
        ),
    ] = False,
    image: Annotated[
        str | None,
        typer.Option(
            "--image",
            metavar="IMAGE",
            help=f"Control-plane image (default: ${cp.IMAGE_ENV_VAR}, else flyk's published one).",
            show_default=False,
        ),
    ] = None,
    k3s_version: Annotated[
        str | None,
        typer.Option(
            "--kubernetes-version",
            "--k3s-version",
            metavar="VERSION",
            help=f"Kubernetes version, the image tag (default {cp.KUBERNETES_VERSION}).",
            show_default=False,
        ),
    ] = None,
    vm_size: Annotated[
        str, typer.Option("--vm-size", metavar="SIZE", help="Control-plane machine size.")
    ] = cp.DEFAULT_SIZE,
    vm_memory: Annotated[
        str | None,
        typer.Option(
            "--vm-memory",
            metavar="MEMORY",
            help=f"Control-plane memory (MB, or e.g. 4gb; default: the size's own, at least "
            f"{cp.DEFAULT_MEMORY_MB} MB where the size allows).",
            show_default=False,
        ),
    ] = None,
    volume_size: Annotated[
        int,
        typer.Option(
            "--volume-size",
            metavar="GB",
            help="K3s data volume size in GB (1–500).",
            min=1,
            max=500,
        ),
    ] = cp.DEFAULT_VOLUME_GB,
    kubelet_token: Annotated[
        str | None,
        typer.Option(
            "--kubelet-token",
            envvar="FLYK_KUBELET_TOKEN",
            metavar="TOKEN",
            help="Machines API token for the virtual kubelet (default: the token flyk uses). "
            "It needs to create, update and destroy machines and apps in the org.",
            show_default=False,
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Create a cluster: app, volume, API address, CA secrets and the control-plane Machine;
    wait until it is healthy; merge its kubeconfig (context flyk-NAME; flyk-NAME@ORG outside
    the personal org). An incomplete cluster of that name (kept by --keep-on-failure) is
    resumed. Only an app carrying flyk's cluster markers (its control-plane machine, or the
    FLYK_CLUSTER and FLYK_ORG secrets) is a cluster: another app with the cluster's app
    name is the user's, a name conflict (exit 5) that flyk never adopts, changes or
    removes."""
    context = app_context(ctx)
    out = context.use_json(json)
    cluster_name = _cluster_name(name_argument, name)
    spec_values: dict[str, Any] = {
        "name": cluster_name,
        "org": _org(org),
        "image": image,
        "k3s_version": k3s_version,
        "private": private,
        "dedicated_ipv4": ipv4,
        "guest": cp.guest_for(vm_size, vm_memory),
        "volume_size_gb": volume_size,
        "kubelet_api_url": _kubelet_api_url(context),
    }
    seconds = parse_timeout(timeout)
    kube = cluster.KubeconfigOptions(
        path=kubeconfig, output=output, switch_context=not no_switch_context
    )
    token = kubelet_token if kubelet_token is not None else _user_token(context)
    out.add_secret(token)
    spec = ClusterSpec(region=region or _default_region(context), **spec_values)
    options = cluster.CreateOptions(
        timeout=seconds,
        keep_on_failure=keep_on_failure,
        kubelet_token=token,
        kubeconfig=kube,
        api_check=cluster.ask_readyz,
    )
    if dry_run:  # create's read-only checks, then the plan; writes nothing
        _render_plan(out, cluster.dry_run(context.client, spec, options), kube)
        return
    result = cluster.create(context.client, spec, options, progress=Steps(out))
    out.emit(result.to_json(), lambda: _render_created(out, result))


def _cluster_name(argument: str | None, option: str | None) -> str:
    if argument and option and argument != option:
        raise UsageError(f"two names given: {argument!r} and -n {option!r}; give one")
    name = argument or option
    if not name:
        raise UsageError("a cluster needs a name: flyk ext k8s create NAME (or -n NAME)")
    return name


def _user_token(context: AppContext) -> str | None:
    token = context.target.token
    return token.value if token is not None else None


def _kubelet_api_url(context: AppContext) -> str:
    """The Machines API as the control-plane machine sees it: Fly's internal endpoint, or
    the local backend's own URL (`flyk local serve`; in-process it has none that a machine
    could reach, and runs no machines anyway)."""
    target = context.target
    if target.is_local:
        return LOCAL_BASE_URL
    if target.base_url and is_loopback_url(target.base_url):
        return target.base_url
    return cp.FLY_INTERNAL_API_URL


def _default_region(context: AppContext) -> str:
    """The platform's nearest region (flyctl's default), else iad."""
    try:
        nearest = context.client.platform.regions().nearest
    except FlykError:
        nearest = None
    return nearest or "iad"


def _render_plan(out: Output, checked: cluster.DryRun, kube: cluster.KubeconfigOptions) -> None:
    plan = checked.plan
    described = plan.describe()
    target = kube.output or str(kc.entry_file(plan.context, kube.path))
    described["kubeconfig"] = {
        "context": plan.context,
        "file": target,
        "standalone": bool(kube.output),
    }
    resumes = checked.resuming.describe() if checked.resuming is not None else None
    described["resumes"] = resumes
    exists = checked.resuming is not None and checked.resuming.healthy
    described["already_exists"] = exists
    if out.json_mode:
        out.json(described)
        return
    spec = plan.spec
    if exists:  # nothing would be created: say only what would be written
        out.line(
            f"Cluster {spec.name} already exists and is healthy (org {spec.org}, app "
            f"{plan.app_name}); nothing on Fly would change.\n"
            f"  kubeconfig  {target} does not hold its entry: create would write context "
            f"{plan.context} from the cluster's recorded state"
        )
        return
    guest = spec.guest
    lines = [
        f"Plan for cluster {spec.name} (org {spec.org}, region {spec.region}); nothing is created.",
        *(
            [f"  resumes     the incomplete cluster: reuses {resumes}, creates what is missing"]
            if resumes
            else []
        ),
        f"  app         {plan.app_name}",
        f"  volume      {VOLUME_NAME}, {spec.volume_size_gb} GB in {spec.region}",
        f"  secrets     {len(plan.secret_names)} (CA material"
        f"{', kubelet token' if cp.KUBELET_TOKEN_SECRET in plan.secret_names else ''}; "
        "values redacted)",
        f"  IPs         {', '.join(plan.ip_types)} → {plan.api_endpoint}",
        f"  machine     {plan.image}, {guest.cpu_kind} {guest.cpus} CPU, {guest.memory_mb} MB",
        f"  kubeconfig  context {plan.context} in {target}",
        "Machine config:",
        jsonlib.dumps(plan.machine_config().to_api(), indent=2),
    ]
    out.line("\n".join(lines))


def _render_created(out: Output, result: cluster.CreateResult) -> None:
    merged = result.kubeconfig  # where it went is the last step's line
    name = result.plan.spec.name
    if result.simulated:
        out.notice(
            f"Cluster {name} is recorded on the local backend, but the control-plane binary is "
            "not built, so no API server answers. Build it with `flyk ext k8s build` (needs Go), "
            f"then `flyk ext k8s delete {name} --yes && flyk ext k8s create {name}`."
        )
        return
    out.notice(f"Cluster {name} is ready. Try: {_try(merged)}kubectl get nodes")


def _try(merged: kc.MergeResult) -> str:
    """What to put before `kubectl get nodes` so that it talks to this cluster."""
    if merged.standalone and merged.files:
        return f"KUBECONFIG={_home(merged.files[0])} "
    if merged.current_context_file:
        return ""
    return f"kubectl config use-context {merged.context} && "


def _home(path: Path) -> str:
    return kc.home_relative(path)


# ---------------------------------------------------------------------------------------------
# list, status


ListOrgOption = Annotated[
    str | None,
    typer.Option(
        "-o",
        "--org",
        metavar="ORG",
        envvar=EnvVar.ORG,
        help="Only this organization (default: every organization the token can use).",
        show_envvar=True,
    ),
]


@app.command("list")
def list_command(ctx: typer.Context, org: ListOrgOption = None, json: JsonOption = False) -> None:
    """List clusters of every organization the token can use (found on the platform, not in
    a local file)."""
    context = app_context(ctx)
    out = context.use_json(json)
    client = context.client
    orgs = [org] if org else _orgs(context)
    found = cluster.list_clusters(client, orgs)
    out.emit(
        [c.to_json() for c in found],
        lambda: out.data_table(
            [(c.name, c.org, c.region, c.state, c.api_endpoint, c.age) for c in found],
            ["NAME", "ORG", "REGION", "STATE", "API ENDPOINT", "AGE"],
            empty="No clusters. Create one: flyk ext k8s create NAME",
        ),
    )


def _orgs(context: AppContext) -> list[str]:
    """The token's orgs, else the personal org."""
    try:
        slugs = context.client.tokens.current().org_slugs
    except FlykError:
        slugs = []
    return slugs or [DEFAULT_ORG]


@app.command("status")
def status_command(
    ctx: typer.Context, name: NameArgument, org: OrgOption = None, json: JsonOption = False
) -> None:
    """Control-plane machine and checks; whether the API server answers; nodes and pods."""
    context = app_context(ctx)
    out = context.use_json(json)
    result = cluster.status(context.client, name, _org(org))
    out.emit(result.to_json(), lambda: _render_status(out, result))


def _render_status(out: Output, result: cluster.ClusterStatus) -> None:
    summary, api = result.summary, result.api
    passing = sum(1 for _, s in result.checks if s == "passing")
    checks = f"checks {passing}/{len(result.checks)} passing" if result.checks else "no checks yet"
    where = (
        f"machine {summary.machine_id}, {summary.region}" if summary.machine_id else "no machine"
    )
    rows: list[tuple[str, object]] = [
        ("Cluster", f"{summary.name} (org {summary.org}, app {summary.app})"),
        ("Control plane", f"{summary.state}, {checks} ({where})"),
        ("API endpoint", summary.api_endpoint),
    ]
    if api.reachable:
        rows.append(("API server", f"{api.detail}{', ' + api.version if api.version else ''}"))
        rows.append(
            (
                "Nodes",
                f"{api.nodes_ready}/{api.nodes} ready, {api.pods} pods "
                f"in {api.namespaces} namespaces",
            )
        )
    else:
        rows.append(("API server", api.detail))
    count = result.claim_volumes
    rows.append(("Volumes", f"{count} of claims (Fly volumes of PersistentVolumeClaims)"))
    out.detail(rows)


# ---------------------------------------------------------------------------------------------
# kubeconfig


@app.command("kubeconfig")
def kubeconfig_command(
    ctx: typer.Context,
    name: NameArgument,
    org: OrgOption = None,
    kubeconfig: KubeconfigPathOption = None,
    output: OutputFileOption = None,
    print_: Annotated[
        bool,
        typer.Option(
            "--print",
            help="Print the kubeconfig on stdout (YAML; JSON with --json); write no file.",
        ),
    ] = False,
    no_switch_context: NoSwitchOption = False,
    json: JsonOption = False,
) -> None:
    """Rebuild the cluster's kubeconfig from its state on Fly (a fresh admin certificate)."""
    if print_ and (output or kubeconfig):
        raise UsageError("--print writes no file; drop --output/--kubeconfig, or --print")
    context = app_context(ctx)
    out = context.use_json(json)
    entry = cluster.rebuild_kubeconfig(context.client, name, _org(org))
    if print_:
        # --json: the document as `kubectl config view --raw -o json` shows it.
        out.emit(entry.standalone(), lambda: out.line(entry.render()))
        return
    kube = cluster.KubeconfigOptions(
        path=kubeconfig, output=output, switch_context=not no_switch_context
    )
    merged = kube.merge(entry)
    data = {
        "context": merged.context,
        "files": [str(p) for p in merged.files],
        "current_context": merged.current_context_file is not None,
    }
    out.emit(data, lambda: out.success(f"Kubeconfig: {kc.describe_written(merged)}"))


# ---------------------------------------------------------------------------------------------
# delete


@app.command("delete")
def delete_command(
    ctx: typer.Context,
    name: NameArgument,
    org: OrgOption = None,
    yes: YesOption = False,
    keep_volumes: Annotated[
        bool, typer.Option("--keep-volumes", help="Keep volumes (and the apps holding them).")
    ] = False,
    kubeconfig: Annotated[
        str | None,
        typer.Option(
            "--kubeconfig",
            metavar="PATH",
            help="Kubeconfig file to remove the cluster's entries from "
            "(default: every file in KUBECONFIG, else ~/.kube/config).",
            show_default=False,
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Delete a cluster: namespace apps and their machines, volumes, IPs, secrets, its app,
    and its kubeconfig entries."""
    context = app_context(ctx)
    out = context.use_json(json)
    kube = cluster.KubeconfigOptions(path=kubeconfig)
    try:
        plan = cluster.plan_deletion(context.client, name, _org(org), kube)
    except NotFoundError:
        stale = cluster.stale_kubeconfig_files(name, _org(org), kube)
        if not stale:
            raise
        _delete_stale_entries(out, name, _org(org), kube, stale, yes)
        return
    question = f"Delete cluster {name}: {plan.describe(keep_volumes=keep_volumes)}?"
    if not out.confirm(question, yes=yes):
        out.declined("Nothing was deleted.")
    result = cluster.delete(
        context.client,
        plan,
        keep_volumes=keep_volumes,
        kubeconfig=kube,
        progress=Steps(out),
    )
    out.emit(result.to_json(), lambda: _render_deleted(out, result))


def _delete_stale_entries(
    out: Output,
    name: str,
    org: str,
    kube: cluster.KubeconfigOptions,
    files: list[Path],
    yes: bool,
) -> None:
    """No such cluster on the platform, but its kubeconfig entries are still there: remove
    them (exit 0: afterwards nothing of the cluster is left, which is what delete is for)."""
    where = ", ".join(_home(p) for p in files)
    context = kc.context_name(name, org)
    server = (kc.cluster_fields(context, kube.path) or {}).get("server")
    at = f", server {server}" if isinstance(server, str) and server else ""
    question = (
        f"No cluster {name} in organization {org}; remove its stale kubeconfig entries "
        f"(context {context} in {where}{at})?"
    )
    if not out.confirm(question, yes=yes):
        out.declined("Nothing was removed.")
    stale = cluster.remove_stale_entries(name, org, kube)
    removed = stale.removed

    def render() -> None:
        cleared = " (current-context cleared)" if removed.current_context_cleared else ""
        out.warn(f"no cluster {name} in organization {org} on the platform")
        out.success(
            f"Removed its stale context {removed.context} from "
            f"{', '.join(_home(p) for p in removed.files)}{cleared}"
        )

    out.emit(stale.to_json(), render)


def _render_deleted(out: Output, result: cluster.DeleteResult) -> None:
    removed = result.kubeconfig
    if removed and removed.files:
        cleared = " (current-context cleared)" if removed.current_context_cleared else ""
        where = ", ".join(_home(p) for p in removed.files)
        out.success(f"Removed context {removed.context} from {where}{cleared}")
    other = removed.other_cluster_in if removed else result.plan.other_cluster_entry
    if other is not None:
        out.warn(
            f"kept context {result.plan.context} in {_home(other)}: it points at another "
            "cluster (its CA is not this cluster's)"
        )
    name = result.plan.cluster.name
    if result.leftovers:
        out.warn(f"left behind: {', '.join(result.leftovers)}")
    elif result.kept:
        hint = cluster.resume_hint(name, result.plan.cluster.org)
        out.notice(
            f"Cluster {name} deleted, but for what --keep-volumes kept: "
            f"{', '.join(result.kept)}; {hint}"
        )
        if result.kept_elsewhere:
            out.notice(
                "The volumes kept in namespace apps are your claims' data: delete one with "
                "flyk volumes destroy <id> -a <app>, and an app with none left with "
                "flyk apps destroy <app>."
            )
    else:
        out.notice(f"Cluster {name} deleted.")


# ---------------------------------------------------------------------------------------------
# FKS's names (flyctl `fly ext k8s`), hidden so help stays short


app.command("ls", hidden=True)(list_command)
app.command("show", hidden=True)(status_command)
app.command("save-kubeconfig", hidden=True)(kubeconfig_command)
app.command("destroy", hidden=True)(delete_command)
app.command("rm", hidden=True)(delete_command)


# The virtual kubelet (flyk/cli/kubelet.py) runs inside the control-plane machine, started by
# the image's entrypoint; listed in help so that its flags and variables are discoverable.
app.command("kubelet")(kubelet_command)

# The control plane: building its binary here, and running it (the machine's entrypoint).
app.command("build")(build_command)
app.command("control-plane")(control_plane_command)
