"""What the cluster workflows share: the platform record of a cluster (`find_cluster`), the
kubeconfig options, running calls side by side, and removing an app with all it holds (a
create's rollback and a delete both do)."""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

# pure functions of the client's RetryPolicy, so that waits here are paced as the client's own
from flyk.api import fits_deadline, retry_delay
from flyk.api.models import App, IPAssignment, Machine, Volume
from flyk.errors import (
    ConflictError,
    FlykError,
    ForbiddenError,
    Interrupted,
    NotFoundError,
    UsageError,
)
from flyk.k8s import controlplane as cp
from flyk.k8s import kubeconfig as kc
from flyk.k8s import records
from flyk.k8s.pki import (
    TLS_FILES,
    cluster_named_in,
    issue_admin,
    recover_from_secrets,
)
from flyk.k8s.plan import (
    app_name_for,
    validate_cluster_name,
)

if TYPE_CHECKING:
    from flyk.api import FlyClient


T = TypeVar("T")


DEFAULT_ORG = "personal"  # the CLI's default -o (flyk/cli/options.py); hints omit it


MAX_WORKERS = 8


_ROLLBACK_WAIT = 60.0


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
    if (
        incomplete_ok
        and not machines
        and _holds_only_flyk_secrets(client, app)
        and _cluster_recorded_on(client, app, org) == (name, org)
    ):  # marked as this cluster's: an app of the user's with that name (empty) is not
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
        org=org,
    )


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

    def check(self, context: str) -> None:
        """Refuse before anything is provisioned what the write would refuse afterwards."""
        if self.output:
            kc.check_file_writable(kc.check_standalone(self.output, context))
        else:
            kc.check_writable(self.path, self.environ)

    def check_owner(self, context: str, ca_pem: bytes | None) -> None:
        """Refuse (ConflictError) when the target's entry CONTEXT is another cluster's (its
        CA is not `ca_pem`; None: a cluster still to be made, whose CA nothing has yet)."""
        kc.check_owner(context, ca_pem, self.output or self.path, self.environ)

    def holds(self, entry: kc.KubeconfigEntry) -> bool | None:
        """Whether the target already has this cluster's entry with the same server and CA:
        True; an entry of that name pointing elsewhere: False; no entry: None."""
        found = kc.cluster_fields(entry.name, self.output or self.path, self.environ)
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

    def remove(self, context: str, ca_pem: bytes | None = None) -> kc.RemoveResult:
        """Remove the entries CONTEXT; with `ca_pem`, only if they are that CA's cluster's."""
        return kc.remove(context, ca_pem=ca_pem, explicit=self.path, environ=self.environ)

    def merge(self, entry: kc.KubeconfigEntry) -> kc.MergeResult:
        if self.output:
            return kc.write_standalone(entry, self.output)
        return kc.merge(
            entry,
            explicit=self.path,
            switch_context=self.switch_context,
            environ=self.environ,
        )


def resume_hint(cluster: str, org: str) -> str:
    """How to go on from a kept, incomplete cluster: resume it or remove it."""
    return (
        f"resume with flyk ext k8s create {cluster} (same flags), "
        f"or clean up with {_delete_command(cluster, org)}"
    )


def _delete_command(cluster: str, org: str) -> str:
    org_flag = "" if org == DEFAULT_ORG else f" -o {org}"
    return f"flyk ext k8s delete {cluster}{org_flag} --yes"


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


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


# The `server` header of `flyk local serve` (flyk/local/server.py).
LOCAL_BACKEND_SERVER = "flyk-local"


def on_local_backend(client: FlyClient) -> bool:
    """Whether the API that answered this client is flyk's local backend, as its responses
    say: it names itself in the `server` header, in-process or served (`flyk local serve`),
    whichever URL it was reached by."""
    return client.server_kind == LOCAL_BACKEND_SERVER


def runs_for_real(client: FlyClient, machine_id: str) -> bool:
    """Whether the control-plane machine runs an API server: always on Fly; on the local
    backend only when it runs the machine as processes (the binary is built)."""
    if not on_local_backend(client):
        return True
    return any(p.get("machine_id") == machine_id for p in client.platform.local_processes())
