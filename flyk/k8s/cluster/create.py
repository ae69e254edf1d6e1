"""Create: provision a cluster, wait until its control plane is healthy, write the kubeconfig.

Create runs independent calls side by side so that the critical path is
preflight → app → (volume ∥ secrets ∥ IPs) → machine → started → check passing (→ the API
server's /readyz on a real target), all within `--timeout`, and undoes everything it made when
anything fails before the cluster is healthy, Ctrl-C included.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

# pure functions of the client's RetryPolicy, so that waits here are paced as the client's own
from flyk.api import backoff
from flyk.api.models import App, IPAssignment, Machine, Volume
from flyk.errors import (
    AlreadyExistsError,
    CapacityError,
    ConfigError,
    FlykError,
    Interrupted,
    MachineStateError,
    NotFoundError,
    WaitTimeoutError,
)
from flyk.k8s import controlplane as cp
from flyk.k8s import kubeconfig as kc
from flyk.k8s import records
from flyk.k8s.pki import (
    ClusterPKI,
)
from flyk.k8s.plan import (
    VOLUME_NAME,
    ClusterPlan,
    ClusterSpec,
    plan_cluster,
)
from flyk.k8s.probe import ApiProbe, probe_ready
from flyk.k8s.progress import NullProgress, Progress

if TYPE_CHECKING:
    from flyk.api import FlyClient
from flyk.k8s.cluster._shared import (
    _ROLLBACK_WAIT,
    DEFAULT_ORG,
    KubeconfigOptions,
    T,
    _delete_command,
    _map,
    _parallel,
    _remove_app_and_contents,
    on_local_backend,
    resume_hint,
    runs_for_real,
)
from flyk.k8s.cluster.preflight import (
    _checks,
    _Existing,
    _existing_entry,
    _Journal,
    _kubeconfig_entry,
    _size,
    _with_alternatives,
)

DEFAULT_TIMEOUT = 600.0


# A kept control plane that is not running is started again when its create is resumed.
_STARTABLE = frozenset({"created", "stopped", "suspended", "failed"})


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
    options.kubeconfig.check(plan.context)
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


# How long after its --timeout a create may still be removing what it made.
_ROLLBACK_MARGIN = 2 * _ROLLBACK_WAIT


def _creating_until(timeout: float) -> str:
    """The FLYK_CREATING value of a create starting now: when it has given up for sure."""
    now = datetime.datetime.now(datetime.UTC)
    until = now + datetime.timedelta(seconds=timeout + _ROLLBACK_MARGIN)
    return until.isoformat(timespec="seconds")


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
        with progress.step("Waiting for the API server and the node") as step:
            _wait_api_answers(options.api_check, entry, client, deadline)
            step.update(f"API server answering (/readyz ok), node {plan.node_name} Ready")
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


_READYZ_MAX_PAUSE = 0.25
# One /readyz request is given at most this long (the create's deadline bounds the whole).
_READYZ_TIMEOUT = 10.0


def _wait_api_answers(
    check: ApiCheck, entry: kc.KubeconfigEntry, client: FlyClient, deadline: Deadline
) -> ApiProbe:
    """Ask `/readyz` (and for a Ready node) until it says ok: the machine's check can pass a
    moment before the kubelet registers. Paced like `_wait_check_passing`, but never more than
    a quarter second apart: asking the cluster's own API server costs it nothing, and the
    pause would otherwise overshoot its start by seconds."""
    what = "the API server did not answer /readyz with a node Ready"
    policy = client.retry
    attempt = 0
    while True:
        answer = check(entry, min(_READYZ_TIMEOUT, deadline.remaining(what)))
        if answer.reachable:
            return answer
        attempt += 1
        pause = backoff(
            attempt, policy.rng, initial=policy.initial_delay, maximum=_READYZ_MAX_PAUSE
        )
        if not deadline.fits(pause):
            raise deadline.expired(what, f" (last: {answer.detail})")
        policy.sleep(pause)


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


def _with_local_endpoint(client: FlyClient, plan: ClusterPlan) -> ClusterPlan:
    """On the local backend the API server listens on a loopback port the backend publishes
    for the app (Fly Proxy's role there): the kubeconfig and the machine's records say so."""
    if not on_local_backend(client):
        return plan
    port = client.platform.local_published_port(plan.app_name, cp.API_PORT)
    return dataclasses.replace(plan, local_api_port=port)
