"""Create's read-only checks (region, organization, name, room, an incomplete cluster to
resume), run by `create` before its first write and by `dry_run` alone, so that both give the
same errors; and the capacity error in the user's words, with regions that could serve."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING

# pure functions of the client's RetryPolicy, so that waits here are paced as the client's own
from flyk.api.models import GuestConfig, IPAssignment, Machine, Volume
from flyk.errors import (
    AlreadyExistsError,
    CapacityError,
    ConflictError,
    FlykError,
    Interrupted,
    NotFoundError,
    UsageError,
)
from flyk.k8s import controlplane as cp
from flyk.k8s import kubeconfig as kc
from flyk.k8s import records
from flyk.k8s.pki import (
    TLS_FILES,
    ClusterPKI,
)
from flyk.k8s.plan import (
    VOLUME_NAME,
    ClusterPlan,
)

if TYPE_CHECKING:
    from flyk.api import FlyClient
from flyk.k8s.cluster._shared import (
    _FLYK_SECRETS,
    DEFAULT_ORG,
    KubeconfigOptions,
    _cluster_recorded_on,
    _delete_command,
    _is_control_plane,
    _org_apps,
    _parallel,
    _plural,
    _secret_values,
    _volumes,
)


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
    # An entry of this name that is another cluster's is never taken over (a cluster of the
    # same name on another target, or an earlier one deleted behind flyk's back).
    stored = existing.pki if existing is not None else None
    kube.check_owner(plan.context, stored.server_ca.cert_pem if stored else None)
    needs_room = existing is None or existing.machine is None
    if needs_room and not results["room"]:
        # Which of the two ran out, as the create's own error would say: asked only now.
        volume = _machine_fits(client, plan)
        what = f"{_size(spec.guest)} and a " if not volume else "a "
        raise _with_alternatives(
            client,
            plan,
            CapacityError(
                f"{spec.region} has no capacity for {what}{spec.volume_size_gb} GB volume "
                "right now (the placements check found none)",
                region=spec.region,
            ),
            volume=volume,
        )
    return existing


def _machine_fits(client: FlyClient, plan: ClusterPlan) -> bool:
    """Whether the region has room for the machine without its volume (a hint: False when
    placements cannot say)."""
    try:
        return plan.spec.region in _placements(client, plan, plan.spec.region, volume=False)
    except Interrupted:
        raise
    except FlykError:
        return False


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
    """None when the cluster's app does not exist. An app that carries no mark of this
    cluster (its control-plane machine, or the marker secrets) is the user's: the name is
    taken (AlreadyExistsError, no hint to touch it). An app holding a healthy control plane is
    a complete cluster (AlreadyExistsError), as is one holding more than flyk's (other machines
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
    if not planes and _cluster_recorded_on(client, app, spec.org) != (spec.name, spec.org):
        # no control plane and no marker secrets: the app is the user's, whatever it holds
        # (an empty one too), and a cluster of this name cannot be made, nor anything hinted
        # that would touch it
        raise AlreadyExistsError(
            f"cluster name {spec.name} is taken: app {app} exists in organization {spec.org} "
            "and is not a flyk cluster (it carries no cluster markers); nothing was changed",
            hint=f"Choose another cluster name; flyk leaves app {app} alone.",
        )
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


def _size(guest: GuestConfig) -> str:
    kind = "shared-cpu" if guest.cpu_kind == "shared" else "performance"
    return f"{kind}-{guest.cpus}x, {guest.memory_mb} MB"


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
        org=plan.spec.org,
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


def _placements(
    client: FlyClient, plan: ClusterPlan, region: str, *, volume: bool = True
) -> list[str]:
    """Regions (of the expression `region`) with room for the machine and its volume (or,
    `volume=False`, the machine alone)."""
    spec = plan.spec
    placements = client.platform.placements(
        spec.org,
        region=region,
        compute=spec.guest,
        volume_size_bytes=spec.volume_size_gb * 1024**3 if volume else None,
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
