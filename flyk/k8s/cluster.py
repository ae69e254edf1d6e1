"""The workflows behind `flyk ext k8s`: create, list, status, kubeconfig and delete.

Each is a plain function taking a `FlyClient`; progress goes through `flyk.k8s.progress`.
The platform is the record: a cluster is an app whose control-plane machine carries the
metadata `flyk_cluster`, `flyk_org` and `flyk_role=control-plane`. Nothing is kept locally
except the kubeconfig entries.

Create runs independent calls side by side so that the critical path is
preflight → app → (volume ∥ secrets ∥ IPs) → machine → started → check passing (→ the API
server's /readyz on a real target), all within `--timeout`, and undoes everything it made when
anything fails before the cluster is healthy, Ctrl-C included.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime
import functools
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

# pure functions of the client's RetryPolicy, so that waits here are paced as the client's own
from flyk.api import backoff, fits_deadline, retry_delay
from flyk.api.models import App, GuestConfig, IPAssignment, Machine, Volume
from flyk.errors import (
    AlreadyExistsError,
    CapacityError,
    ConfigError,
    ConflictError,
    FlykError,
    ForbiddenError,
    Interrupted,
    MachineStateError,
    NotFoundError,
    UsageError,
    WaitTimeoutError,
)
from flyk.k8s import controlplane as cp
from flyk.k8s import kubeconfig as kc
from flyk.k8s import records
from flyk.k8s.pki import (
    TLS_FILES,
    ClusterPKI,
    cluster_named_in,
    issue_admin,
    recover_from_secrets,
)
from flyk.k8s.plan import (
    VOLUME_NAME,
    ClusterPlan,
    ClusterSpec,
    app_name_for,
    plan_cluster,
    validate_cluster_name,
)
from flyk.k8s.probe import ApiProbe, probe_api_server, probe_ready
from flyk.k8s.progress import NullProgress, Progress

if TYPE_CHECKING:
    from flyk.api import FlyClient

T = TypeVar("T")

DEFAULT_TIMEOUT = 600.0
DEFAULT_ORG = "personal"  # the CLI's default -o (flyk/cli/options.py); hints omit it
MAX_WORKERS = 8
_ROLLBACK_WAIT = 60.0
# A kept control plane that is not running is started again when its create is resumed.
_STARTABLE = frozenset({"created", "stopped", "suspended", "failed"})


# ---------------------------------------------------------------------------------------------
# Shared helpers


def _parallel(calls: Mapping[str, Callable[[], Any]]) -> dict[str, Any]:
    """Run independent calls side by side (the client is thread-safe); the first error wins,
    after every call has finished, so nothing keeps running behind a rollback."""
    if len(calls) == 1:
        ((key, call),) = calls.items()
        return {key: call()}
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(calls))) as pool:
        futures = {key: pool.submit(call) for key, call in calls.items()}
        concurrent.futures.wait(futures.values())
    results: dict[str, Any] = {}
    first_error: BaseException | None = None
    for key, future in futures.items():
        error = future.exception()
        if error is None:
            results[key] = future.result()
        elif first_error is None or isinstance(error, KeyboardInterrupt | Interrupted):
            first_error = error
    if first_error is not None:
        raise first_error
    return results


def _map(function: Callable[[T], Any], items: Iterable[T]) -> list[Any]:
    items = list(items)
    calls = {str(index): (lambda item=item: function(item)) for index, item in enumerate(items)}
    results = _parallel(calls) if calls else {}
    return [results[str(index)] for index in range(len(items))]


def _is_control_plane(machine: Machine, cluster: str | None = None) -> bool:
    meta = machine.metadata
    if meta.get(records.META_ROLE) != records.ROLE_CONTROL_PLANE:
        return False
    return cluster is None or meta.get(records.META_CLUSTER) == cluster


def _age(created_at: str | None, now: datetime.datetime | None = None) -> str:
    if not created_at:
        return ""
    try:
        created = datetime.datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except ValueError:
        return ""
    if created.tzinfo is None:
        created = created.replace(tzinfo=datetime.UTC)
    seconds = max(0, int(((now or datetime.datetime.now(datetime.UTC)) - created).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class ClusterRef:
    """A cluster found on the platform: its app and control-plane machine (None when a create
    stopped before the machine and its remains were kept with --keep-on-failure)."""

    name: str
    org: str
    app: str
    machine: Machine | None

    @property
    def api_endpoint(self) -> str:
        return self.machine.metadata.get(records.META_ENDPOINT, "") if self.machine else ""


def find_cluster(
    client: FlyClient, name: str, org: str, *, incomplete_ok: bool = False
) -> ClusterRef:
    """The cluster NAME of ORG, or NotFoundError saying so."""
    app = app_name_for(name, org)
    missing = NotFoundError(
        f"no cluster {name} in organization {org}",
        hint="flyk ext k8s list shows the clusters there",
    )
    try:
        client.apps.get(app)
        machines = client.machines.list(app)
    except NotFoundError:
        raise missing from None
    planes = [m for m in machines if _is_control_plane(m, name)]
    if planes:
        mine = [m for m in planes if m.metadata.get(records.META_ORG) == org] or planes
        return ClusterRef(name=name, org=org, app=app, machine=mine[0])
    if incomplete_ok and not machines and _holds_only_flyk_secrets(client, app):
        return ClusterRef(name=name, org=org, app=app, machine=None)
    raise missing


# The secrets a cluster's app holds; an app holding others is not (only) a flyk cluster.
_MARKERS = frozenset({records.MARKER_CLUSTER, records.MARKER_ORG})
_FLYK_SECRETS = frozenset(
    {*TLS_FILES.values(), cp.KUBELET_TOKEN_SECRET, *_MARKERS, records.MARKER_CREATING}
)


def _holds_only_flyk_secrets(client: FlyClient, app: str) -> bool:
    """The remains of a create that stopped early: its app (named for this cluster), with no
    machine, and no secrets or only the cluster's CA secrets."""
    names = {s.name for s in client.secrets.list(app)}
    return names <= _FLYK_SECRETS


# ---------------------------------------------------------------------------------------------
# Secrets: the CA material is kept as app secrets so a kubeconfig can be rebuilt anywhere


def _secret_values(client: FlyClient, app: str) -> dict[str, str]:
    """Name → value of the app's secrets (the client keeps the values out of --verbose)."""
    listed = client.secrets.list(app, show_secrets=True)
    return {s.name: s.value for s in listed if s.value is not None}


def rebuild_kubeconfig(client: FlyClient, name: str, org: str) -> kc.KubeconfigEntry:
    """A fresh admin kubeconfig entry from the cluster's state on Fly.

    The client CA's key is in the app's secrets; a new admin certificate is signed with it, so
    a lost kubeconfig is never "game over" and no long-lived admin key is stored anywhere.
    """
    ref = find_cluster(client, name, org, incomplete_ok=True)
    if ref.machine is None:
        raise NotFoundError(
            f"cluster {name} is incomplete (no control-plane machine: a create stopped "
            "before making it, or a delete removed it, e.g. with --keep-volumes); it has no "
            "API server to write a kubeconfig for",
            hint=resume_hint(name, org),
        )
    cas = recover_from_secrets(_secret_values(client, ref.app))
    admin = issue_admin(cas.client_ca)
    return kc.KubeconfigEntry(
        cluster=name,
        server=ref.api_endpoint or f"https://{ref.app}.fly.dev:{cp.API_PORT}",
        ca_pem=cas.server_ca_pem,
        client_cert_pem=admin.cert_pem,
        client_key_pem=admin.key_pem,
    )


# ---------------------------------------------------------------------------------------------
# Create


@dataclass(frozen=True)
class KubeconfigOptions:
    """Where the kubeconfig goes: merged into `--kubeconfig` (else KUBECONFIG, else
    ~/.kube/config), or `--output`: a standalone file holding only this cluster."""

    path: str | None = None
    output: str | None = None
    switch_context: bool = True
    environ: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if self.path and self.output:
            raise UsageError(
                "--kubeconfig merges into a file, --output writes a file of its own; give one"
            )

    def check(self, cluster: str) -> None:
        """Refuse before anything is provisioned what the write would refuse afterwards."""
        if self.output:
            kc.check_file_writable(kc.check_standalone(self.output, cluster))
        else:
            kc.check_writable(self.path, self.environ)

    def holds(self, entry: kc.KubeconfigEntry) -> bool | None:
        """Whether the target already has this cluster's entry with the same server and CA:
        True; an entry of that name pointing elsewhere: False; no entry: None."""
        found = kc.cluster_fields(entry.cluster, self.output or self.path, self.environ)
        if found is None:
            return None
        return found == {**found, **entry.cluster_fields()}

    def target(self) -> str:
        """The file the entry goes to, for messages."""
        if self.output:
            return self.output
        return str(kc.default_file(kc.resolve_chain(self.path, self.environ)))

    def check_removal(self) -> None:
        """Refuse before a delete destroys anything what its kubeconfig step would refuse."""
        kc.check_removable(self.path, self.environ)

    def remove(self, cluster: str) -> kc.RemoveResult:
        return kc.remove(cluster, explicit=self.path, environ=self.environ)

    def merge(self, entry: kc.KubeconfigEntry) -> kc.MergeResult:
        if self.output:
            return kc.write_standalone(entry, self.output)
        return kc.merge(
            entry,
            explicit=self.path,
            switch_context=self.switch_context,
            environ=self.environ,
        )


# How create asks the new API server whether it serves: (entry, timeout) → what it said.
ApiCheck = Callable[[kc.KubeconfigEntry, float], ApiProbe]


def ask_readyz(entry: kc.KubeconfigEntry, timeout: float) -> ApiProbe:
    """`/readyz` over TLS, trusting only the cluster's CA, as its admin (the CLI's ApiCheck)."""
    return probe_ready(entry, timeout=timeout)


@dataclass(frozen=True)
class CreateOptions:
    timeout: float = DEFAULT_TIMEOUT
    keep_on_failure: bool = False
    kubelet_token: str | None = None
    kubeconfig: KubeconfigOptions = field(default_factory=KubeconfigOptions)
    # After the machine's check passes, wait until this says the API server answers. None
    # skips it; so does a local backend that simulates the control plane (no binary built).
    api_check: ApiCheck | None = None


@dataclass(frozen=True)
class CreateResult:
    plan: ClusterPlan
    machine: Machine
    volume: Volume
    ips: tuple[IPAssignment, ...]
    kubeconfig: kc.MergeResult
    # The cluster was already there and healthy: only its kubeconfig entry was written.
    existed: bool = False
    # The local backend recorded the control plane without running it (no binary built).
    simulated: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.plan.spec.name,
            "already_existed": self.existed,
            "org": self.plan.spec.org,
            "region": self.plan.spec.region,
            "app": self.plan.app_name,
            "api_endpoint": self.machine.metadata.get(records.META_ENDPOINT)
            or self.plan.api_endpoint,
            "private": self.plan.spec.private,
            "machine_id": self.machine.id,
            "volume_id": self.volume.id,
            "ips": [ip.ip for ip in self.ips],
            "image": self.plan.image,
            "context": self.kubeconfig.context,
            "kubeconfig_files": [str(p) for p in self.kubeconfig.files],
            "current_context": self.kubeconfig.current_context_file is not None,
            "simulated": self.simulated,
        }


@dataclass
class _Journal:
    """What this run made, so a failure undoes exactly that. A resumed create made none of
    what it found, and keeps everything on failure: the cluster stays resumable."""

    app: str
    app_ours: bool = False
    resuming: bool = False
    healthy: bool = False  # the control plane passed its check: nothing is undone after that
    placements_failed: bool = False  # the placements hint did not answer: not asked again
    volume_full: bool = False  # a capacity error came from the volume create


def resume_hint(cluster: str, org: str) -> str:
    """How to go on from a kept, incomplete cluster: resume it or remove it."""
    return (
        f"resume with flyk ext k8s create {cluster} (same flags), "
        f"or clean up with {_delete_command(cluster, org)}"
    )


def _delete_command(cluster: str, org: str) -> str:
    org_flag = "" if org == DEFAULT_ORG else f" -o {org}"
    return f"flyk ext k8s delete {cluster}{org_flag} --yes"


@dataclass(frozen=True)
class _Existing:
    """What an incomplete cluster already holds, for a create to reuse (see `_inspect`)."""

    machine: Machine | None = None
    volume: Volume | None = None
    ips: tuple[IPAssignment, ...] = ()
    pki: ClusterPKI | None = None  # the CAs stored as secrets, when all are there
    secret_names: frozenset[str] = frozenset()
    # A healthy control plane (with its volume and CAs): a create that stopped after the
    # machine came up, before the kubeconfig was written. Only the kubeconfig is missing.
    healthy: bool = False

    def describe(self) -> str:
        found = [
            *([f"machine {self.machine.id} ({self.machine.state})"] if self.machine else []),
            *([f"volume {self.volume.id}"] if self.volume else []),
            *([_plural(len(self.ips), "IP")] if self.ips else []),
            *(["its CAs"] if self.pki else []),
        ]
        if self.healthy:
            return "a healthy control plane (only its kubeconfig is missing)"
        return ", ".join(found) if found else "only its app"


def create(
    client: FlyClient,
    spec: ClusterSpec,
    options: CreateOptions | None = None,
    progress: Progress | None = None,
) -> CreateResult:
    """Provision the cluster, wait until its control plane is healthy, write the kubeconfig.

    An incomplete cluster of that name (the remains of a create kept with --keep-on-failure,
    or a delete --keep-volumes) is resumed: what it holds is reused, its CAs included, and
    what is missing is made. A complete one is an AlreadyExistsError and nothing changes."""
    options = options or CreateOptions()
    progress = progress or NullProgress()
    deadline = Deadline(options.timeout, client.retry.clock, options.keep_on_failure)
    plan = plan_cluster(spec, with_kubelet_token=options.kubelet_token is not None)
    options.kubeconfig.check(spec.name)
    journal = _Journal(app=plan.app_name)
    try:
        with progress.step(f"Planning cluster {spec.name} in {spec.region}") as step:
            pki, existing = _preflight(client, plan, options.kubeconfig, journal)
            plan = _with_local_endpoint(client, plan)
            deadline.check("the checks before creating anything did not finish")
            step.update(f"Planned cluster {spec.name} in {spec.region} (app {plan.app_name})")
        if existing is not None and existing.healthy:
            return _finish(plan, existing, journal, options, progress)
        if existing is not None:
            journal.resuming = True
            progress.notice(
                f"Resuming the incomplete cluster {spec.name} (app {plan.app_name}): reusing "
                f"{existing.describe()}; creating what is missing"
            )
        return _provision(client, plan, pki, existing, journal, options, deadline, progress)
    except BaseException as exc:
        raise _failed(client, plan, journal, exc, options, progress) from exc


@dataclass(frozen=True)
class DryRun:
    """What `create --dry-run` found: the plan, and whether create would resume."""

    plan: ClusterPlan
    resuming: _Existing | None


def dry_run(client: FlyClient, spec: ClusterSpec, options: CreateOptions | None = None) -> DryRun:
    """Create's read-only checks (kubeconfig, region, org, name, capacity), no writes: the
    same errors and exit codes a real create would give, before it made anything."""
    options = options or CreateOptions()
    plan = plan_cluster(spec, with_kubelet_token=options.kubelet_token is not None)
    options.kubeconfig.check(spec.name)
    existing = _checks(client, plan, options.kubeconfig)
    return DryRun(plan=plan, resuming=existing)


def _preflight(
    client: FlyClient, plan: ClusterPlan, kube: KubeconfigOptions, journal: _Journal
) -> tuple[ClusterPKI, _Existing | None]:
    """Everything that can be known before the first write, asked side by side."""
    results = _parallel(
        {
            "checks": lambda: _checks(client, plan, kube, journal),
            "pki": lambda: ClusterPKI.generate(plan.spec.name),
        }
    )
    existing: _Existing | None = results["checks"]
    stored = existing.pki if existing is not None else None
    pki: ClusterPKI = stored or results["pki"]
    return pki, existing


def _checks(
    client: FlyClient, plan: ClusterPlan, kube: KubeconfigOptions, journal: _Journal | None = None
) -> _Existing | None:
    """The read-only checks: region, organization, name (free, or an incomplete cluster to
    resume), room. Raises what a create would; returns what there is to resume.

    A healthy control plane is a complete cluster (AlreadyExistsError) when the kubeconfig
    already holds its entry (same server and CA); otherwise a create stopped after the
    machine came up and before the kubeconfig was written, and only that is left to do."""
    spec = plan.spec
    results = _parallel(
        {
            "regions": client.platform.regions,
            "existing": lambda: _inspect(client, plan),
            "org": lambda: _check_org(client, spec.org),
            "room": lambda: _has_room(client, plan, journal),
        }
    )
    codes = results["regions"].codes()
    if codes and spec.region not in codes:
        raise UsageError(
            f"unknown region {spec.region!r}",
            hint=f"regions: {', '.join(sorted(codes))} (flyk regions list)",
        )
    existing: _Existing | None = results["existing"]
    if existing is not None and existing.healthy and existing.pki is not None:
        # Compared with the server the cluster recorded, not the one these flags would give.
        if kube.holds(_existing_entry(plan, existing, admin=False)):
            raise _already_exists(plan)
    needs_room = existing is None or existing.machine is None
    if needs_room and not results["room"]:
        raise _with_alternatives(
            client,
            plan,
            CapacityError(
                f"{spec.region} has no capacity for {_size(spec.guest)} and a "
                f"{spec.volume_size_gb} GB volume right now (the placements check found none)",
                region=spec.region,
            ),
        )
    return existing


def _already_exists(plan: ClusterPlan, why: str = "") -> AlreadyExistsError:
    spec = plan.spec
    org_flag = "" if spec.org == DEFAULT_ORG else f" -o {spec.org}"
    return AlreadyExistsError(
        f"cluster {spec.name} already exists in organization {spec.org} "
        f"(app {plan.app_name}{why}); nothing was changed",
        hint=f"flyk ext k8s kubeconfig {spec.name}{org_flag} writes its kubeconfig again; "
        f"flyk ext k8s delete {spec.name}{org_flag} removes it",
    )


def _inspect(client: FlyClient, plan: ClusterPlan) -> _Existing | None:
    """None when the cluster's app does not exist. An app holding a healthy control plane is
    a complete cluster (AlreadyExistsError), as is an app that is not flyk's (other machines
    or secrets). Otherwise it is incomplete: what it holds, for create to reuse."""
    spec = plan.spec
    app = plan.app_name
    if not _app_exists(client, app):
        return None
    found = _parallel(
        {
            "machines": lambda: client.machines.list(app),
            "secrets": lambda: client.secrets.list(app),
            "volumes": lambda: _volumes(client, app),
            "ips": lambda: client.ips.list(app),
        }
    )
    machines: list[Machine] = found["machines"]
    planes = [m for m in machines if _is_control_plane(m, spec.name)]
    names = {s.name for s in found["secrets"]}
    if len(planes) != len(machines) or not names <= _FLYK_SECRETS:
        raise _already_exists(plan, ", which holds more than a flyk cluster")
    machine = planes[0] if planes else None
    healthy = False
    if machine is not None:
        machine = client.machines.get(app, machine.id)
        healthy = _healthy(machine)
        if machine.region and machine.region != spec.region:
            if healthy:
                raise _already_exists(plan)
            raise _elsewhere(plan, f"machine {machine.id}", machine.region)
        _refuse_other_visibility(plan, machine, healthy)
    volumes = [v for v in found["volumes"] if v.name == VOLUME_NAME]
    volume = next((v for v in volumes if v.region == spec.region), None)
    if volume is None and volumes:
        raise _elsewhere(plan, f"volume {volumes[0].id}", volumes[0].region or "?")
    values = _secret_values(client, app) if names & _READ_BY_INSPECT else {}
    if not healthy:
        _refuse_if_another_create_runs(plan, values.get(records.MARKER_CREATING))
    pki = None
    if set(TLS_FILES.values()) <= names:
        pki = ClusterPKI.from_secrets(values)
    if healthy and (pki is None or volume is None):
        raise _already_exists(plan)  # nothing a create could finish
    return _Existing(
        machine=machine,
        volume=volume,
        ips=tuple(found["ips"]),
        pki=pki,
        secret_names=frozenset(names),
        healthy=healthy,
    )


_READ_BY_INSPECT = frozenset({*TLS_FILES.values(), records.MARKER_CREATING})
# How long after its --timeout a create may still be removing what it made.
_ROLLBACK_MARGIN = 2 * _ROLLBACK_WAIT


def _creating_until(timeout: float) -> str:
    """The FLYK_CREATING value of a create starting now: when it has given up for sure."""
    now = datetime.datetime.now(datetime.UTC)
    until = now + datetime.timedelta(seconds=timeout + _ROLLBACK_MARGIN)
    return until.isoformat(timespec="seconds")


def _refuse_if_another_create_runs(plan: ClusterPlan, until: str | None) -> None:
    """An incomplete cluster whose FLYK_CREATING is still ahead is being built by another
    create right now (two creates of one name at once): resuming it would race that run for
    its volume, CAs and machine. Refused; a run that was killed without clearing it stops
    counting once that time has passed."""
    if not until:
        return
    try:
        ends = datetime.datetime.fromisoformat(until)
    except ValueError:
        return
    if ends.tzinfo is None:
        ends = ends.replace(tzinfo=datetime.UTC)
    if ends <= datetime.datetime.now(datetime.UTC):
        return
    spec = plan.spec
    at = ends.strftime("%H:%M:%S UTC")
    raise ConflictError(
        f"another create of cluster {spec.name} is running (app {plan.app_name}); "
        "nothing was changed",
        hint=f"wait for it to finish; if it was killed, retry after {at}, when it has "
        f"given up for sure, or clean up with {_delete_command(spec.name, spec.org)}",
    )


def _elsewhere(plan: ClusterPlan, what: str, region: str) -> UsageError:
    spec = plan.spec
    return UsageError(
        f"the incomplete cluster {spec.name} has its {what} in {region}, not {spec.region}; "
        "nothing was changed",
        hint=f"resume it with -r {region}, or clean up with {_delete_command(spec.name, spec.org)}",
    )


def _recorded_private(machine: Machine) -> bool:
    """Whether the cluster was made with --private, as its control plane's metadata says
    (`flyk_private`; before that was recorded, by its endpoint's Flycast host)."""
    meta = machine.metadata
    recorded = meta.get(records.META_PRIVATE)
    if recorded is not None:
        return recorded == "true"
    return ".flycast:" in meta.get(records.META_ENDPOINT, "")


def _refuse_other_visibility(plan: ClusterPlan, machine: Machine, healthy: bool) -> None:
    """A cluster made with --private is not made public by a create without it, nor the
    other way round: its API address and certificates are what they are. Refused, so that
    no kubeconfig is ever written with a server the cluster does not have."""
    spec = plan.spec
    private = _recorded_private(machine)
    if private == spec.private:
        return
    was = "private (--private)" if private else "public (created without --private)"
    flags = f"{'with' if private else 'without'} --private"
    org_flag = "" if spec.org == DEFAULT_ORG else f" -o {spec.org}"
    endpoint = machine.metadata.get(records.META_ENDPOINT, "")
    at = f", at {endpoint}" if endpoint else ""
    if healthy:
        raise AlreadyExistsError(
            f"cluster {spec.name} already exists in organization {spec.org} with a {was} "
            f"API{at}; this create asked for the other; nothing was changed",
            hint=f"flyk ext k8s kubeconfig {spec.name}{org_flag} writes its kubeconfig; "
            f"to change it, delete it (flyk ext k8s delete {spec.name}{org_flag}) and create "
            "it again",
        )
    raise UsageError(
        f"the incomplete cluster {spec.name} was started with a {was} API{at}; this create "
        "asked for the other; nothing was changed",
        hint=f"resume it {flags}, or clean up with flyk ext k8s delete {spec.name}{org_flag} --yes",
    )


def _healthy(machine: Machine) -> bool:
    check = next((c for c in machine.checks if c.name == cp.CHECK_NAME), None)
    return machine.state == "started" and check is not None and check.status == "passing"


def _has_room(client: FlyClient, plan: ClusterPlan, journal: _Journal | None = None) -> bool:
    """Ask the platform where the machine and its volume would go, so that a full region
    fails before anything is created. A placements endpoint that cannot answer (missing,
    refused, a 5xx, rate-limited, unreachable) does not block the create: it is a hint, and
    the creates themselves are the final word. That it failed is noted in the journal, so
    that a later capacity error does not ask it again."""
    try:
        return plan.spec.region in _placements(client, plan, plan.spec.region)
    except Interrupted:
        raise
    except FlykError:
        if journal is not None:
            journal.placements_failed = True
        return True


def _app_exists(client: FlyClient, app: str) -> bool:
    try:
        client.apps.get(app)
    except NotFoundError:
        return False
    return True


def _check_org(client: FlyClient, org: str) -> None:
    _org_apps(client, org)


def _org_apps(client: FlyClient, org: str) -> list[App]:
    """The org's apps. An org the API does not know is a NotFoundError (exit 3, as for
    `flyk apps list -o ORG`); one the token may not use stays a ForbiddenError (exit 4)."""
    try:
        return client.apps.list(org)
    except (NotFoundError, ForbiddenError) as exc:
        kind = NotFoundError if isinstance(exc, NotFoundError) else ForbiddenError
        raise kind(
            f"unknown organization {org!r} (or this token cannot use it)",
            hint=_orgs_hint(client),
            details=exc.details,
        ) from exc


def _orgs_hint(client: FlyClient) -> str:
    try:
        slugs = sorted(client.tokens.current().org_slugs)
    except FlykError:
        slugs = []
    usable = f"this token can use: {', '.join(slugs)}; " if slugs else ""
    return f"pass -o/--org with one of your organizations ({usable}flyk auth whoami shows them)"


def _ip_kind(ip: IPAssignment) -> str:
    """v6, v4 or private_v6: the API's `type` when it sends one, else from the address."""
    kind = ip.extra.get("type")
    if isinstance(kind, str) and kind:
        return kind
    if "." in ip.ip:
        return "v4"
    return "private_v6" if ip.ip.lower().startswith("fdaa:") else "v6"


def _provision(
    client: FlyClient,
    plan: ClusterPlan,
    pki: ClusterPKI,
    existing: _Existing | None,
    journal: _Journal,
    options: CreateOptions,
    deadline: Deadline,
    progress: Progress,
) -> CreateResult:
    """Create's steps after preflight, each shown on stderr: app, volume, IPs and secrets;
    the control-plane machine, started; its check passing; the API server answering; the
    kubeconfig written. What `existing` (an incomplete cluster) holds is reused."""
    foundation = _create_foundation(
        client, plan, pki, existing, journal, options, deadline, progress
    )
    machine = _start_control_plane(
        client, plan, existing.machine if existing else None, foundation, deadline, progress
    )
    with progress.step("Waiting for the control plane to be healthy") as step:
        deadline.check("the control plane's API check did not pass")
        # FLYK_CREATING goes now, beside the wait (no extra round trip): with the machine
        # made and started there is nothing left for a second create to race for; left set,
        # it would refuse `create NAME` as "another create is running" until it expired,
        # whenever the control plane was stopped or its check failed meanwhile. The wait
        # stays in this thread, so that Ctrl-C ends it at once.
        clearing = threading.Thread(
            target=_clear_creating, args=(client, plan.app_name), daemon=True
        )
        clearing.start()
        machine = _wait_check_passing(client, plan.app_name, machine.id, deadline)
        clearing.join()
        step.update("Control plane healthy")
    entry = _kubeconfig_entry(plan, pki)
    real = runs_for_real(client, machine.id)
    if options.api_check is not None and real:
        with progress.step("Waiting for the API server to answer") as step:
            _wait_api_answers(options.api_check, entry, client, deadline)
            step.update("API server answering (/readyz ok)")
    journal.healthy = True
    with progress.step("Writing the kubeconfig") as step:
        result = _write_kubeconfig(options.kubeconfig, entry, plan)
        step.update(f"Kubeconfig: {kc.describe_written(result)}")
    return CreateResult(
        plan=plan,
        machine=machine,
        volume=foundation.volume,
        ips=tuple(foundation.ips),
        kubeconfig=result,
        simulated=not real,
    )


@dataclass(frozen=True)
class _Foundation:
    """What the control-plane machine is built on: its volume, the API addresses (each a
    --tls-san), and the secrets version its `files[]` must see (None: no secrets were set)."""

    volume: Volume
    ips: list[IPAssignment]
    secrets_version: int | None


def _create_foundation(
    client: FlyClient,
    plan: ClusterPlan,
    pki: ClusterPKI,
    existing: _Existing | None,
    journal: _Journal,
    options: CreateOptions,
    deadline: Deadline,
    progress: Progress,
) -> _Foundation:
    """The app (unless it exists), then its volume, IPs and secrets side by side; only what
    `existing` lacks is made."""
    spec = plan.spec
    with progress.step("Creating app, volume, API address and secrets") as step:
        creating = "creating the app, volume, API address and secrets did not finish"
        on_app = _as_is
        if existing is None:
            _create_app(client, plan, journal)
            existing = _Existing()
            on_app = functools.partial(_once_app_visible, client)
        # The markers first say whose app this is (remains kept from before they existed get
        # them now). CAs already stored are never replaced: kubeconfigs signed with them stay
        # valid.
        secrets = {k: v for k, v in plan.markers().items() if k not in existing.secret_names}
        # Says to a create of the same name meanwhile that this one is at work (`_inspect`).
        secrets[records.MARKER_CREATING] = _creating_until(options.timeout)
        if existing.pki is None:
            secrets.update(pki.to_secrets())
        if options.kubelet_token is not None:
            secrets[cp.KUBELET_TOKEN_SECRET] = options.kubelet_token
        have = {_ip_kind(ip) for ip in existing.ips}
        missing_ips = [t for t in plan.ip_types if t not in have]
        calls: dict[str, Callable[[], Any]] = {
            "ips": lambda: _map(
                lambda t: on_app(lambda: client.ips.create(plan.app_name, t)), missing_ips
            )
        }
        if existing.volume is None:
            calls["volume"] = lambda: on_app(lambda: _create_volume(client, plan, journal))
        if secrets:
            calls["secrets"] = lambda: on_app(lambda: client.secrets.set(plan.app_name, secrets))
        made = _parallel(calls)
        deadline.check(creating)
        volume: Volume = existing.volume or made["volume"]
        ips: list[IPAssignment] = [*existing.ips, *made["ips"]]
        verb = "Completed" if journal.resuming else "Created"
        step.update(
            f"{verb} app {plan.app_name}, volume {VOLUME_NAME} "
            f"({volume.size_gb or spec.volume_size_gb} GB), "
            f"API address {', '.join(ip.ip for ip in ips)}, secrets"
        )
    return _Foundation(volume=volume, ips=ips, secrets_version=made.get("secrets"))


def _start_control_plane(
    client: FlyClient,
    plan: ClusterPlan,
    kept: Machine | None,
    foundation: _Foundation,
    deadline: Deadline,
    progress: Progress,
) -> Machine:
    """The control-plane machine (a `kept` one is started again if it is stopped), waited
    for until it is started."""
    with progress.step("Starting the control plane") as step:
        starting = "the control plane did not start"
        machine = kept
        if machine is None:
            sans = tuple(ip.ip for ip in foundation.ips if ip.ip)
            machine = client.machines.create(
                plan.app_name,
                plan.machine_config(foundation.volume.id, extra_sans=sans),
                name=cp.MACHINE_NAME,
                region=plan.spec.region,
                min_secrets_version=foundation.secrets_version,
            )
        elif machine.state in _STARTABLE:
            client.machines.start(plan.app_name, machine.id)
        step.update(f"Starting the control plane (machine {machine.id})")
        try:
            client.machines.wait(
                plan.app_name, machine.id, "started", timeout=deadline.remaining(starting)
            )
        except WaitTimeoutError as exc:
            raise deadline.expired(starting) from exc
        step.update(f"Control plane started (machine {machine.id}, {_size(plan.spec.guest)})")
    return machine


def _write_kubeconfig(
    kube: KubeconfigOptions, entry: kc.KubeconfigEntry, plan: ClusterPlan
) -> kc.MergeResult:
    """The last step. The cluster is healthy by now, so a write that fails (checked before
    provisioning, but a file can change meanwhile) keeps it and says how to get the entry."""
    try:
        return kube.merge(entry)
    except FlykError as exc:
        spec = plan.spec
        org_flag = "" if spec.org == DEFAULT_ORG else f" -o {spec.org}"
        raise ConfigError(
            f"cluster {spec.name} is ready, but its kubeconfig was not written: {exc.message}",
            hint=_joined(
                exc.hint,
                f"the cluster is kept; write its kubeconfig with flyk ext k8s kubeconfig "
                f"{spec.name}{org_flag}",
            ),
        ) from exc


# POST /apps answers before the app is readable everywhere (fly-go WaitForApp).
_APP_VISIBLE_WITHIN = 30.0


def _as_is(call: Callable[[], T]) -> T:
    return call()


def _once_app_visible(client: FlyClient, call: Callable[[], T]) -> T:
    """A call on the app this run just created. POST /apps answers before the app is
    readable everywhere; instead of reading it back first (a round trip on the critical
    path), the calls that need it retry a 404 for a short while, paced by the client's policy.
    A 404 made nothing, so the retry is safe for a create too."""
    policy = client.retry
    until = policy.clock() + _APP_VISIBLE_WITHIN
    attempt = 0
    while True:
        try:
            return call()
        except NotFoundError:
            attempt += 1
            pause = backoff(
                attempt, policy.rng, initial=policy.initial_delay, maximum=policy.max_delay
            )
            if policy.clock() + pause > until:
                raise
            policy.sleep(pause)


def _create_volume(client: FlyClient, plan: ClusterPlan, journal: _Journal) -> Volume:
    """The K3s data volume. `compute` places it on a host with room for the machine that
    must run beside it (a volume pins its machine to its host)."""
    spec = plan.spec
    try:
        return client.volumes.create(
            plan.app_name, VOLUME_NAME, spec.region, spec.volume_size_gb, compute=spec.guest
        )
    except CapacityError:
        journal.volume_full = True  # the error then says what ran out
        raise


def _create_app(client: FlyClient, plan: ClusterPlan, journal: _Journal) -> App:
    journal.app_ours = True  # from here on a leftover app of this name is this run's
    try:
        # Not read back: the calls that follow retry a 404 (`_once_app_visible`).
        return client.apps.create(plan.app_name, plan.spec.org, wait_visible=False)
    except AlreadyExistsError as exc:
        journal.app_ours = False  # someone else made it between preflight and now
        raise AlreadyExistsError(
            f"cluster {plan.spec.name} already exists in organization {plan.spec.org}",
            details=exc.details,
        ) from exc


def _size(guest: GuestConfig) -> str:
    kind = "shared-cpu" if guest.cpu_kind == "shared" else "performance"
    return f"{kind}-{guest.cpus}x, {guest.memory_mb} MB"


def format_duration(seconds: float) -> str:
    """A --timeout as people write it: 0.5s, 45s, 1m30s, 10m, 1h."""
    if seconds < 10:
        return f"{seconds:.1f}".removesuffix(".0") + "s"
    whole = round(seconds)
    parts = [(whole // 3600, "h"), (whole % 3600 // 60, "m"), (whole % 60, "s")]
    return "".join(f"{value}{unit}" for value, unit in parts if value)


class Deadline:
    """`--timeout` over the whole create, on the client's clock (the one its waits use).

    It is checked when each step starts and ends and bounds every wait; a single API call
    already sent is bounded by the client's own timeouts, so a step may end a little late,
    and is then reported as the step that ran out of time."""

    def __init__(
        self, total: float, clock: Callable[[], float], keep_on_failure: bool = False
    ) -> None:
        self.total = total
        self.clock = clock
        self.keep_on_failure = keep_on_failure
        self.at = clock() + total

    def remaining(self, what: str) -> float:
        """Seconds left; WaitTimeoutError naming `what` (what did not happen) when none."""
        left = self.at - self.clock()
        if left <= 0:
            raise self.expired(what)
        return left

    def check(self, what: str) -> None:
        self.remaining(what)

    def fits(self, pause: float) -> bool:
        return self.clock() + pause <= self.at

    def expired(self, what: str, last: str = "") -> WaitTimeoutError:
        longer = format_duration(max(2 * self.total, 60.0))
        # With --keep-on-failure, what was made is kept and `_failed` says how to resume.
        keep = ", or with --keep-on-failure to keep what was made and look at it"
        if self.keep_on_failure:
            keep = ""
        return WaitTimeoutError(
            f"{what} within --timeout {format_duration(self.total)}{last}",
            hint=f"retry with a longer --timeout (e.g. --timeout {longer}){keep}",
        )


def _wait_started_again(client: FlyClient, app: str, machine: Machine, deadline: Deadline) -> None:
    """The control plane left `started` while its check was awaited: K3s or the kubelet
    exited and Fly restarts the machine (restart policy always), which is waited for; a
    machine that will not start again by itself (failed, destroyed, stopped by someone) is
    a MachineStateError (exit 10) at once, as every wait of flyk's."""
    starting = f"the control plane did not start again (machine {machine.id} is {machine.state})"
    try:
        client.machines.wait(app, machine.id, "started", timeout=deadline.remaining(starting))
    except WaitTimeoutError as exc:
        raise deadline.expired(starting) from exc
    except MachineStateError as exc:
        exc.hint = exc.hint or f"flyk machine status {machine.id} -a {app} shows its events"
        raise


def _wait_check_passing(
    client: FlyClient, app: str, machine_id: str, deadline: Deadline
) -> Machine:
    """Read the machine until its API-server check passes.

    The Machines API's `/wait` long-poll waits for machine states only; checks have no
    server-side wait (and no event stream), so this polls, paced like the client's retries:
    its RetryPolicy's jittered backoff (initial_delay growing to max_delay) and its sleep,
    until the create's deadline."""
    policy = client.retry
    attempt = 0
    while True:
        machine = client.machines.get(app, machine_id)
        check = next((c for c in machine.checks if c.name == cp.CHECK_NAME), None)
        if machine.state not in (None, "started", "starting", "created"):
            _wait_started_again(client, app, machine, deadline)
            continue
        if check is not None and check.status == "passing":
            return machine
        attempt += 1
        pause = backoff(attempt, policy.rng, initial=policy.initial_delay, maximum=policy.max_delay)
        if not deadline.fits(pause):
            last = f" (last: {check.status}: {check.output})" if check else ""
            raise deadline.expired("the control plane's API check did not pass", last)
        policy.sleep(pause)


# One /readyz request is given at most this long (the create's deadline bounds the whole).
_READYZ_TIMEOUT = 10.0


def _wait_api_answers(
    check: ApiCheck, entry: kc.KubeconfigEntry, client: FlyClient, deadline: Deadline
) -> ApiProbe:
    """Ask `/readyz` until it says ok: the machine's TCP check passes as soon as K3s listens,
    a moment before the API server serves. Paced like `_wait_check_passing`."""
    what = "the API server did not answer /readyz"
    policy = client.retry
    attempt = 0
    while True:
        answer = check(entry, min(_READYZ_TIMEOUT, deadline.remaining(what)))
        if answer.reachable:
            return answer
        attempt += 1
        pause = backoff(attempt, policy.rng, initial=policy.initial_delay, maximum=policy.max_delay)
        if not deadline.fits(pause):
            raise deadline.expired(what, f" (last: {answer.detail})")
        policy.sleep(pause)


def _kubeconfig_entry(
    plan: ClusterPlan, pki: ClusterPKI, *, admin: bool = True, server: str | None = None
) -> kc.KubeconfigEntry:
    """The kubeconfig entry; `admin=False` leaves the credentials out (a comparison only)."""
    credentials = pki.admin_credentials() if admin else None
    return kc.KubeconfigEntry(
        cluster=plan.spec.name,
        server=server or plan.api_endpoint,
        ca_pem=pki.server_ca.cert_pem,
        client_cert_pem=credentials.cert_pem if credentials else b"",
        client_key_pem=credentials.key_pem if credentials else b"",
    )


def _existing_entry(
    plan: ClusterPlan, existing: _Existing, *, admin: bool = True
) -> kc.KubeconfigEntry:
    """The entry of a cluster that exists, built from its recorded state (as
    `rebuild_kubeconfig` does): the endpoint in its control plane's metadata, its stored CAs."""
    assert existing.pki is not None
    meta = existing.machine.metadata if existing.machine is not None else {}
    server = meta.get(records.META_ENDPOINT) or plan.api_endpoint
    return _kubeconfig_entry(plan, existing.pki, admin=admin, server=server)


def _finish(
    plan: ClusterPlan,
    existing: _Existing,
    journal: _Journal,
    options: CreateOptions,
    progress: Progress,
) -> CreateResult:
    """A healthy cluster whose entry the target kubeconfig lacks: a create that stopped
    after the machine came up, or a create run again on another laptop or with another
    --kubeconfig (which cannot be told apart). Nothing on Fly changes; the entry is written
    from the cluster's recorded state, and the notice says exactly that."""
    assert existing.pki is not None and existing.machine is not None
    assert existing.volume is not None  # `_inspect` makes sure of all three
    journal.resuming = journal.healthy = True
    entry = _existing_entry(plan, existing)
    kube = options.kubeconfig
    lacking = "held another entry for it" if kube.holds(entry) is False else "had no entry for it"
    progress.notice(
        f"Cluster {plan.spec.name} already exists and is healthy (app {plan.app_name}); "
        f"nothing on Fly was changed. {kube.target()} {lacking}: writing its kubeconfig "
        f"from the cluster's recorded state (API {entry.server}, its stored CA)"
    )
    with progress.step("Writing the kubeconfig") as step:
        result = _write_kubeconfig(kube, entry, plan)
        step.update(f"Kubeconfig: {kc.describe_written(result)}")
    return CreateResult(
        plan=plan,
        machine=existing.machine,
        volume=existing.volume,
        ips=existing.ips,
        kubeconfig=result,
        existed=True,
    )


def _failed(
    client: FlyClient,
    plan: ClusterPlan,
    journal: _Journal,
    exc: BaseException,
    options: CreateOptions,
    progress: Progress,
) -> BaseException:
    """Undo (or keep) what this run made; return the error to raise."""
    error = _as_flyk_error(exc)
    if journal.healthy:
        # Only the kubeconfig write (or a Ctrl-C during it) is left: a healthy cluster stays.
        if isinstance(error, Interrupted):
            org_flag = "" if plan.spec.org == DEFAULT_ORG else f" -o {plan.spec.org}"
            error.hint = _joined(
                error.hint,
                f"flyk ext k8s kubeconfig {plan.spec.name}{org_flag} writes its kubeconfig",
            )
        return _interrupted(error, f"cluster {plan.spec.name} is ready and kept")
    if isinstance(error, CapacityError):
        error = _with_alternatives(
            client,
            plan,
            error,
            ask_placements=not journal.placements_failed,
            volume=journal.volume_full,
        )
    if journal.resuming or (journal.app_ours and options.keep_on_failure):
        _clear_creating(client, plan.app_name)  # kept: resumable at once
    if journal.resuming:
        # Nothing of it was this run's to remove: it stays as it was, resumable.
        error.hint = _joined(error.hint, resume_hint(plan.spec.name, plan.spec.org))
        return _interrupted(error, f"the incomplete cluster {plan.spec.name} is kept")
    if not journal.app_ours:
        return _interrupted(error, "before anything was created")
    if options.keep_on_failure:
        kept = f"kept app {plan.app_name} and what it holds (--keep-on-failure); "
        error.hint = _joined(error.hint, kept + resume_hint(plan.spec.name, plan.spec.org))
        return _interrupted(error, f"kept app {plan.app_name} (--keep-on-failure)")
    try:
        with progress.step(f"Removing what this run created (app {plan.app_name})") as step:
            leftovers, _ = _remove_app_and_contents(client, plan.app_name, keep_volumes=False)
            step.update(
                f"Could not remove: {', '.join(leftovers)}"
                if leftovers
                else f"Removed what this run created (app {plan.app_name})"
            )
    except KeyboardInterrupt:
        # A second Ctrl-C stops the rollback itself: say what may be left and how to clear it.
        return Interrupted(
            f"interrupted while removing what this run created; app {plan.app_name} and "
            "some of what it holds (machine, volume, IPs, secrets) may be left",
            hint=f"clean up with {_delete_command(plan.spec.name, plan.spec.org)}",
        )
    if leftovers:
        extra = f"left behind: {', '.join(leftovers)}; " + _delete_command(
            plan.spec.name, plan.spec.org
        )
        error.hint = f"{error.hint}\n{extra}" if error.hint else extra
        return _interrupted(error, "some of what this run created is left")
    return _interrupted(error, "what this run created has been removed")


def _clear_creating(client: FlyClient, app: str) -> None:
    """Best effort: a marker left behind only delays a resume until its time has passed."""
    with contextlib.suppress(FlykError):
        client.secrets.set(app, {records.MARKER_CREATING: None})


def _joined(hint: str | None, more: str) -> str:
    return f"{hint}\n{more}" if hint else more


def _as_flyk_error(exc: BaseException) -> FlykError:
    if isinstance(exc, FlykError):
        return exc
    if isinstance(exc, KeyboardInterrupt):
        return Interrupted("interrupted")
    return FlykError(f"create failed: {type(exc).__name__}: {exc}")


def _interrupted(error: FlykError, outcome: str) -> FlykError:
    """Ctrl-C says what became of the half-made cluster; other errors speak for themselves."""
    if isinstance(error, Interrupted) and error.message == "interrupted":
        return Interrupted(f"interrupted; {outcome}", hint=error.hint)
    return error


def _with_alternatives(
    client: FlyClient,
    plan: ClusterPlan,
    error: CapacityError,
    *,
    ask_placements: bool = True,
    volume: bool = False,
) -> CapacityError:
    """The capacity error in the user's words (`volume`: the volume's room ran out, not the
    machine's), with regions that could serve. The lookups are hints: `ask_placements=False`
    when placements already failed to answer this run (it would only go through the client's
    retries again before the fallback)."""
    region = error.region or plan.spec.region
    if error.alternatives:
        alternatives, by_placements = error.alternatives, True
    else:
        found, by_placements = _regions_with_room(client, plan, region, ask_placements)
        alternatives = tuple(found)
    what = f"a {plan.spec.volume_size_gb} GB volume" if volume else _size(plan.spec.guest)
    message = error.message
    if f"{region} " not in message and not message.startswith(region):
        message = f"{region} has no capacity for {what} right now ({message})"
    if not alternatives:
        hint = "No other region reported room; try again later."
    else:
        # Region capacity counts machine memory only; placements weigh the volume too.
        which = (
            "Regions with room for the machine and its volume now"
            if by_placements
            else "Regions with room for the machine now (their volume room is not reported)"
            if volume
            else "Regions that can take it now"
        )
        hint = (
            f"{which}: {', '.join(alternatives)}. "
            f"Retry with -r {alternatives[0]}. Nothing was moved to another region."
        )
    return CapacityError(
        message, region=region, alternatives=alternatives, hint=hint, details=error.details
    )


def _placements(client: FlyClient, plan: ClusterPlan, region: str) -> list[str]:
    """Regions (of the expression `region`) with room for the machine and its volume."""
    spec = plan.spec
    placements = client.platform.placements(
        spec.org,
        region=region,
        compute=spec.guest,
        volume_size_bytes=spec.volume_size_gb * 1024**3,
        hint=True,  # advice only: asked once, so a failing endpoint never slows a create
    )
    return [p.region for p in placements if p.region]


def _regions_with_room(
    client: FlyClient, plan: ClusterPlan, failed_region: str, ask_placements: bool = True
) -> tuple[list[str], bool]:
    """Regions the platform says could take the cluster, and whether placements said so
    (else region capacity, which counts machine memory only)."""
    if ask_placements:
        found = client.platform.regions_with_room(
            plan.spec.org,
            compute=plan.spec.guest,
            volume_size_gb=plan.spec.volume_size_gb,
            exclude=(failed_region,),
        )
        if found:
            return found, True
    try:
        regions = client.platform.regions().regions
    except FlykError:
        return [], False
    roomy = [r for r in regions if r.code != failed_region and (r.capacity or 0) > 0]
    roomy.sort(key=lambda r: -(r.capacity or 0))
    return [r.code for r in roomy[:5]], False


def _remove_app_and_contents(
    client: FlyClient, app: str, *, keep_volumes: bool
) -> tuple[list[str], list[str]]:
    """Machines, then IPs and volumes, then the app. Best effort: returns what is left
    against our will, and what `keep_volumes` kept (the volumes, and so the app)."""
    leftovers: list[str] = []

    def attempt(what: str, call: Callable[[], Any]) -> bool:
        try:
            call()
        except NotFoundError:
            return True
        except FlykError:
            leftovers.append(what)
            return False
        return True

    try:
        machines = client.machines.list(app)
    except NotFoundError:
        return [], []
    except FlykError:
        machines = []
    _map(
        lambda m: attempt(f"machine {m.id}", lambda: _destroy_machine(client, app, m.id)), machines
    )
    ips: list[IPAssignment] = []
    attempt(f"IPs of {app}", lambda: ips.extend(client.ips.list(app)))
    _map(lambda ip: attempt(f"IP {ip.ip}", lambda: client.ips.delete(app, ip.ip)), ips)
    volumes = _volumes(client, app)
    if keep_volumes and volumes:
        return leftovers, [f"volume {v.id} in app {app}" for v in volumes]
    _map(lambda v: attempt(f"volume {v.id}", lambda: _delete_volume(client, app, v.id)), volumes)
    if attempt(f"app {app}", lambda: client.apps.delete(app)):
        return [], []  # deleting the app removed whatever of it was still left
    return leftovers, []


def _delete_volume(client: FlyClient, app: str, volume_id: str) -> None:
    """Delete a volume whose machine is being destroyed.

    The API refuses (412, "in use") while the volume's machine is not `destroyed`: that is
    waited for with the API's own `/wait`, then the delete is sent. Fly releases the volume a
    moment after the machine is gone, so a 412/409 after that is retried with the client's
    backoff, within its retry policy's attempts and deadline (no fixed pauses)."""
    try:
        holder = client.volumes.get(app, volume_id).attached_machine_id
    except NotFoundError:
        return
    if holder:
        with contextlib.suppress(NotFoundError):
            client.machines.wait(app, holder, "destroyed", timeout=_ROLLBACK_WAIT)
    policy = client.retry
    deadline = policy.clock() + policy.deadline
    attempt = 0
    while True:
        attempt += 1
        try:
            client.volumes.delete(app, volume_id)
            return
        except ConflictError:
            delay = retry_delay(policy, attempt)
            if delay is None or not fits_deadline(policy, deadline, delay):
                raise
            policy.sleep(delay)


def _volumes(client: FlyClient, app: str) -> list[Volume]:
    try:
        return [v for v in client.volumes.list(app) if v.state not in ("destroyed", "destroying")]
    except FlykError:
        return []


def _destroy_machine(client: FlyClient, app: str, machine_id: str) -> None:
    client.machines.destroy(app, machine_id, force=True)
    try:
        client.machines.wait(app, machine_id, "destroyed", timeout=_ROLLBACK_WAIT)
    except NotFoundError:
        pass


# ---------------------------------------------------------------------------------------------
# List and status


@dataclass(frozen=True)
class ClusterSummary:
    name: str
    org: str
    region: str
    state: str
    api_endpoint: str
    app: str
    machine_id: str
    created_at: str | None
    flyk_version: str

    @property
    def age(self) -> str:
        return _age(self.created_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "org": self.org,
            "region": self.region,
            "state": self.state,
            "api_endpoint": self.api_endpoint,
            "app": self.app,
            "machine_id": self.machine_id,
            "created_at": self.created_at,
            "flyk_version": self.flyk_version,
        }


def _summary(app: str, machine: Machine, org: str) -> ClusterSummary:
    meta = machine.metadata
    return ClusterSummary(
        name=meta.get(records.META_CLUSTER, ""),
        org=meta.get(records.META_ORG, org),
        region=machine.region or meta.get(records.META_REGION, ""),
        state=machine.state or "unknown",
        api_endpoint=meta.get(records.META_ENDPOINT, ""),
        app=app,
        machine_id=machine.id,
        created_at=machine.created_at,
        flyk_version=meta.get(records.META_VERSION, ""),
    )


def list_clusters(client: FlyClient, orgs: Sequence[str]) -> list[ClusterSummary]:
    """Every cluster of the orgs, found on the platform (apps, then control-plane metadata)."""
    apps_by_org = _map(lambda org: (org, _org_apps(client, org)), orgs)
    candidates = [
        (org, app.name) for org, apps in apps_by_org for app in apps if app.name.startswith("flyk-")
    ]

    def control_planes(item: tuple[str, str]) -> list[ClusterSummary]:
        org, app = item
        try:
            machines = client.machines.list(app)
            planes = [m for m in machines if _is_control_plane(m)]
            if planes:
                return [
                    _summary(app, m, org) for m in planes if m.metadata.get(records.META_CLUSTER)
                ]
            if machines or not _holds_only_flyk_secrets(client, app):
                return []
            recorded = _cluster_recorded_on(client, app, org)
            if recorded is None:
                return []
        except NotFoundError:  # deleted meanwhile
            return []
        name, owner = recorded
        ref = ClusterRef(name=name, org=owner, app=app, machine=None)
        return [_incomplete_summary(ref, _volume_region(client, app))]

    found = [s for group in _map(control_planes, candidates) for s in group]
    return sorted(found, key=lambda s: (s.org, s.name))


def _cluster_recorded_on(client: FlyClient, app: str, org: str) -> tuple[str, str] | None:
    """(cluster, org) of an app with no control plane to say so (machine metadata is the
    record; an incomplete cluster has no machine): the marker secrets create sets on the app
    first thing (`FLYK_CLUSTER`, `FLYK_ORG`), else, for remains older than the markers, the
    name its stored server CA was made for. Never parsed out of the app's name; checked by
    deriving the app name again, so only a cluster that maps to exactly this app is returned."""
    values = _secret_values(client, app)
    name = values.get(records.MARKER_CLUSTER) or cluster_named_in(values)
    owner = values.get(records.MARKER_ORG) or org
    if name is None or owner != org or not _names_app(name, org, app):
        return None
    return name, owner


def _names_app(name: str, org: str, app: str) -> bool:
    try:
        validate_cluster_name(name)
    except UsageError:
        return False
    return app_name_for(name, org) == app


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class ClusterStatus:
    summary: ClusterSummary
    checks: tuple[tuple[str, str], ...]
    api: ApiProbe

    def to_json(self) -> dict[str, Any]:
        return {
            **self.summary.to_json(),
            "checks": [{"name": n, "status": s} for n, s in self.checks],
            "api_server": {
                "reachable": self.api.reachable,
                "detail": self.api.detail,
                "version": self.api.version,
                "nodes": self.api.nodes,
                "nodes_ready": self.api.nodes_ready,
                "pods": self.api.pods,
                "namespaces": self.api.namespaces,
            },
        }


SIMULATED = (
    "simulated: the control-plane binary is not built, so the local backend runs no API server "
    "(`flyk ext k8s build`, then `flyk ext k8s create` again)"
)
# The `server` header of `flyk local serve` (flyk/local/server.py).
LOCAL_BACKEND_SERVER = "flyk-local"


def runs_for_real(client: FlyClient, machine_id: str) -> bool:
    """Whether the control-plane machine runs an API server: always on Fly; on the local
    backend only when it runs the machine as processes (the binary is built)."""
    if not on_local_backend(client):
        return True
    return any(p.get("machine_id") == machine_id for p in client.platform.local_processes())


def _with_local_endpoint(client: FlyClient, plan: ClusterPlan) -> ClusterPlan:
    """On the local backend the API server listens on a loopback port the backend publishes
    for the app (Fly Proxy's role there): the kubeconfig and the machine's records say so."""
    if not on_local_backend(client):
        return plan
    port = client.platform.local_published_port(plan.app_name, cp.API_PORT)
    return dataclasses.replace(plan, local_api_port=port)


def on_local_backend(client: FlyClient) -> bool:
    """Whether the API that answered this client is flyk's local backend (which runs no
    images, so no API server will ever answer), as its responses say: `flyk local serve`
    names itself in the `server` header, whichever URL it was reached by."""
    return client.server_kind == LOCAL_BACKEND_SERVER


def status(
    client: FlyClient,
    name: str,
    org: str,
    *,
    probe_api: bool = True,
    probe_timeout: float = 10.0,
) -> ClusterStatus:
    ref = find_cluster(client, name, org, incomplete_ok=True)
    if ref.machine is None:
        return _incomplete_status(client, ref)
    machine = client.machines.get(ref.app, ref.machine.id)
    checks = tuple((c.name or "", c.status or "unknown") for c in machine.checks)
    if not probe_api or not runs_for_real(client, machine.id):
        api = ApiProbe(reachable=False, detail=SIMULATED)
    else:
        api = _probe(client, name, org, probe_timeout)
    return ClusterStatus(summary=_summary(ref.app, machine, org), checks=checks, api=api)


def _probe(client: FlyClient, name: str, org: str, timeout: float) -> ApiProbe:
    try:
        entry = rebuild_kubeconfig(client, name, org)
    except FlykError as exc:  # e.g. a token that may not read the app's secrets
        return ApiProbe(reachable=False, detail=f"not checked: {exc.message}")
    return probe_api_server(entry, timeout=timeout)


def _incomplete_summary(ref: ClusterRef, region: str = "") -> ClusterSummary:
    return ClusterSummary(
        name=ref.name,
        org=ref.org,
        region=region,
        state="incomplete",
        api_endpoint="",
        app=ref.app,
        machine_id="",
        created_at=None,
        flyk_version="",
    )


def _volume_region(client: FlyClient, app: str) -> str:
    """Where an incomplete cluster is: its kept K3s volume's region ("" when it has none)."""
    regions = [v.region for v in _volumes(client, app) if v.name == VOLUME_NAME and v.region]
    return regions[0] if regions else ""


def _incomplete_status(client: FlyClient, ref: ClusterRef) -> ClusterStatus:
    # Which of the two it was cannot be read from the remains: both ways on are named.
    detail = (
        "no control-plane machine: a create stopped before making it, or a delete stopped "
        f"after removing it; {resume_hint(ref.name, ref.org)}"
    )
    summary = _incomplete_summary(ref, _volume_region(client, ref.app))
    return ClusterStatus(summary=summary, checks=(), api=ApiProbe(False, detail))


# ---------------------------------------------------------------------------------------------
# Delete


@dataclass(frozen=True)
class NamespaceApp:
    app: str
    machines: int
    volumes: int


@dataclass(frozen=True)
class DeletionPlan:
    cluster: ClusterRef
    namespace_apps: tuple[NamespaceApp, ...]
    volumes: tuple[Volume, ...]
    ips: tuple[IPAssignment, ...]
    # The files of the kubeconfig chain holding the cluster's entries.
    kubeconfig_files: tuple[Path, ...] = ()

    def describe(self, *, keep_volumes: bool = False) -> str:
        """What goes (and, with --keep-volumes, what stays), for the confirmation prompt."""
        ref = self.cluster
        gone = [f"control-plane machine {ref.machine.id}"] if ref.machine is not None else []
        if self.namespace_apps:
            pods = sum(n.machines for n in self.namespace_apps)
            namespaces = _plural(len(self.namespace_apps), "namespace app")
            held = keep_volumes and any(n.volumes for n in self.namespace_apps)
            kept = "; those holding volumes stay" if held else ""
            gone.append(f"{namespaces} ({_plural(pods, 'machine')}{kept})")
        gone.append(_plural(len(self.ips), "IP"))
        if keep_volumes:
            gone.append("the kubelet's token")
        else:
            gone.extend([_plural(len(self.volumes), "volume"), f"app {ref.app}"])
        if self.kubeconfig_files:
            files = ", ".join(str(f) for f in self.kubeconfig_files)
            gone.append(f"context {kc.context_name(ref.name)} in {files}")
        text = ", ".join(gone)
        if keep_volumes:
            text += (
                f"; keep {_plural(len(self.volumes), 'volume')} and app {ref.app} "
                "(with its CA secrets, so create resumes it)"
            )
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.cluster.name,
            "org": self.cluster.org,
            "app": self.cluster.app,
            "namespace_apps": [n.__dict__ for n in self.namespace_apps],
            "volumes": [v.id for v in self.volumes],
            "ips": [ip.ip for ip in self.ips],
            "kubeconfig_files": [str(p) for p in self.kubeconfig_files],
        }


def plan_deletion(
    client: FlyClient, name: str, org: str, kubeconfig: KubeconfigOptions | None = None
) -> DeletionPlan:
    """What delete would remove; NotFoundError if there is no such cluster. The kubeconfig
    chain is checked first: a delete must not destroy the cluster and then fail on a file
    it cannot clean (leaving entries that point at nothing)."""
    kubeconfig = kubeconfig or KubeconfigOptions()
    kubeconfig.check_removal()
    ref = find_cluster(client, name, org, incomplete_ok=True)
    found = _parallel(
        {
            "apps": lambda: _org_apps(client, org),
            "volumes": lambda: _volumes(client, ref.app),
            "ips": lambda: client.ips.list(ref.app),
        }
    )
    namespace_apps = find_namespace_apps(client, ref.app, name, org, found["apps"])
    return DeletionPlan(
        cluster=ref,
        namespace_apps=tuple(namespace_apps),
        volumes=tuple(found["volumes"]),
        ips=tuple(found["ips"]),
        kubeconfig_files=tuple(stale_kubeconfig_files(name, kubeconfig)),
    )


def find_namespace_apps(
    client: FlyClient,
    cluster_app: str,
    cluster: str,
    org: str,
    apps: Sequence[App] | None = None,
) -> list[NamespaceApp]:
    """The kubelet names namespace apps `flyk-<cluster>-<namespace>-<hash>`; only those are
    looked into (one machine list each), never every app of the org."""
    listed = apps if apps is not None else _org_apps(client, org)
    candidates = [a.name for a in listed if a.name != cluster_app and a.name.startswith("flyk-")]
    found = _map(lambda a: _namespace_app(client, a, cluster, org), candidates)
    return [n for n in found if n is not None]


def _namespace_app(client: FlyClient, app: str, cluster: str, org: str) -> NamespaceApp | None:
    """An app is one of the cluster's namespaces when its machines carry
    `flyk_cluster=<name>`, or, with no machines left, when the kubelet's marker secrets
    (`FLYK_CLUSTER`, `FLYK_ORG`, set when it created the app) name this cluster."""
    try:
        machines = client.machines.list(app)
    except NotFoundError:
        return None
    owners = {m.metadata.get(records.META_CLUSTER) for m in machines} - {None}
    if owners - {cluster}:
        return None  # another cluster's, or shared with one: never ours to delete
    if not owners and not _marked_for(client, app, cluster, org):
        return None
    return NamespaceApp(app=app, machines=len(machines), volumes=len(_volumes(client, app)))


def _marked_for(client: FlyClient, app: str, cluster: str, org: str) -> bool:
    try:
        names = {s.name for s in client.secrets.list(app)}
        if records.MARKER_CLUSTER not in names:
            return False
        values = _secret_values(client, app)
    except NotFoundError:
        return False
    return (
        values.get(records.MARKER_CLUSTER) == cluster and values.get(records.MARKER_ORG, org) == org
    )


@dataclass(frozen=True)
class DeleteResult:
    plan: DeletionPlan
    leftovers: tuple[str, ...]  # what could not be removed
    kubeconfig: kc.RemoveResult | None
    kept: tuple[str, ...] = ()  # what --keep-volumes kept on purpose

    def to_json(self) -> dict[str, Any]:
        return {
            **self.plan.to_json(),
            "found_on_platform": True,
            "left_behind": list(self.leftovers),
            "kept": list(self.kept),
            "kubeconfig_files": [str(p) for p in self.kubeconfig.files] if self.kubeconfig else [],
            "current_context_cleared": bool(
                self.kubeconfig and self.kubeconfig.current_context_cleared
            ),
        }


def delete(
    client: FlyClient,
    plan: DeletionPlan,
    *,
    keep_volumes: bool = False,
    kubeconfig: KubeconfigOptions | None = None,
    progress: Progress | None = None,
) -> DeleteResult:
    """Stop the control plane first (its kubelet would re-create the pods' machines), then
    remove the namespace apps, the cluster's app and everything in it, and the kubeconfig
    entries. Continues past failures and reports what is left."""
    progress = progress or NullProgress()
    kubeconfig = kubeconfig or KubeconfigOptions()
    ref = plan.cluster
    # What is still to do, in order; each stage is dropped once done, so that a Ctrl-C can
    # say what is left (possibly in part) and how to finish.
    remaining = [
        *(["the control-plane machine"] if ref.machine is not None else []),
        "the namespace apps and their machines",
        f"app {ref.app} with its {'IPs' if keep_volumes else 'volume, IPs'} and secrets",
        f"the kubeconfig entries (context {kc.context_name(ref.name)})",
    ]
    try:
        return _delete(client, plan, keep_volumes, kubeconfig, progress, remaining)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; cluster {ref.name} is partly deleted; left, possibly in part: "
            f"{'; '.join(remaining)}",
            hint=f"finish with {_delete_command(ref.name, ref.org)} (until then list and "
            "status show it as incomplete)",
        ) from None


def _delete(
    client: FlyClient,
    plan: DeletionPlan,
    keep_volumes: bool,
    kubeconfig: KubeconfigOptions,
    progress: Progress,
    remaining: list[str],
) -> DeleteResult:
    leftovers: list[str] = []
    kept: list[str] = []
    ref = plan.cluster
    if ref.machine is not None:
        machine_id = ref.machine.id
        with progress.step(f"Stopping the control plane (machine {machine_id})") as step:
            _destroy_machine(client, ref.app, machine_id)
            step.update(f"Stopped the control plane (machine {machine_id})")
        remaining.pop(0)
    # Namespaces made while the user was answering the prompt are found again now.
    namespace_apps = _merge_namespace_apps(
        plan.namespace_apps, find_namespace_apps(client, ref.app, ref.name, ref.org)
    )
    if namespace_apps:
        failed, held = _remove_namespace_apps(client, namespace_apps, keep_volumes, progress)
        leftovers.extend(failed)
        kept.extend(held)
    remaining.pop(0)
    with progress.step(f"Removing the volume, IPs and app {ref.app}") as step:
        if keep_volumes:
            # The kept volume holds K3s's data and its CAs (server/tls, placed on the first
            # boot and never replaced), so the CA secrets stay with it: `create NAME` then
            # resumes with them and the volume's data is usable again. Whoever can read the
            # app's secrets could attach the volume and read the same keys there. The kubelet's
            # API token goes.
            _delete_secrets(client, ref.app, keep=frozenset({*TLS_FILES.values(), *_MARKERS}))
        failed, held = _remove_app_and_contents(client, ref.app, keep_volumes=keep_volumes)
        leftovers.extend(failed)
        kept.extend(held)
        step.update(
            f"Removed the IPs and the kubelet's token; kept app {ref.app} with its volume "
            "and CAs (flyk ext k8s create resumes it)"
            if keep_volumes
            else f"Removed the volume, IPs and app {ref.app}"
        )
    remaining.pop(0)
    removed = kubeconfig.remove(ref.name)
    return DeleteResult(plan=plan, leftovers=tuple(leftovers), kubeconfig=removed, kept=tuple(kept))


@dataclass(frozen=True)
class StaleEntries:
    """A cluster the platform does not know, whose kubeconfig entries were still there."""

    name: str
    org: str
    removed: kc.RemoveResult

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "org": self.org,
            "found_on_platform": False,
            "kubeconfig_files": [str(p) for p in self.removed.files],
            "current_context_cleared": self.removed.current_context_cleared,
        }


def stale_kubeconfig_files(name: str, kubeconfig: KubeconfigOptions) -> list[Path]:
    """The files still holding entries of a cluster that is gone from the platform (deleted
    elsewhere, or a delete that stopped before its last step)."""
    return kc.holders(name, kubeconfig.path, kubeconfig.environ)


def remove_stale_entries(name: str, org: str, kubeconfig: KubeconfigOptions) -> StaleEntries:
    return StaleEntries(name=name, org=org, removed=kubeconfig.remove(name))


def _merge_namespace_apps(
    planned: Sequence[NamespaceApp], found: Sequence[NamespaceApp]
) -> list[NamespaceApp]:
    by_app = {n.app: n for n in planned}
    by_app.update({n.app: n for n in found})
    return sorted(by_app.values(), key=lambda n: n.app)


def _remove_namespace_apps(
    client: FlyClient, apps: Sequence[NamespaceApp], keep_volumes: bool, progress: Progress
) -> tuple[list[str], list[str]]:
    """Each namespace app and its contents: (what is left against our will, what was kept)."""
    pods = sum(n.machines for n in apps)
    what = f"{_plural(pods, 'pod machine')} and {_plural(len(apps), 'namespace app')}"
    leftovers: list[str] = []
    kept: list[str] = []
    with progress.step(f"Removing {what}") as step:
        for failed, held in _map(
            lambda n: _remove_app_and_contents(client, n.app, keep_volumes=keep_volumes), apps
        ):
            leftovers.extend(failed)
            kept.extend(held)
        step.update(f"Removed {what}")
    return leftovers, kept


def _delete_secrets(client: FlyClient, app: str, *, keep: frozenset[str] = frozenset()) -> None:
    """With --keep-volumes the app stays; its secrets go, except `keep`."""
    try:
        names = [s.name for s in client.secrets.list(app) if s.name not in keep]
        if names:
            client.secrets.set(app, dict.fromkeys(names))
    except NotFoundError:
        pass
