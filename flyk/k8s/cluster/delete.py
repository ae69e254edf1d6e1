"""Delete: what goes (`plan_deletion`, for the prompt), then the control plane, the namespace
apps, the cluster's app and its contents, and the kubeconfig entries (`delete`); and the
entries of a cluster already gone from the platform (`remove_stale_entries`)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flyk.api.models import App, IPAssignment, Volume
from flyk.errors import FlykError, Interrupted, NotFoundError
from flyk.k8s import kubeconfig as kc
from flyk.k8s import records
from flyk.k8s.cluster._shared import (
    _MARKERS,
    ClusterRef,
    KubeconfigOptions,
    _delete_command,
    _destroy_machine,
    _map,
    _org_apps,
    _parallel,
    _plural,
    _remove_app_and_contents,
    _secret_values,
    _volumes,
    find_cluster,
)
from flyk.k8s.pki import TLS_FILES
from flyk.k8s.progress import NullProgress, Progress

if TYPE_CHECKING:
    from flyk.api import FlyClient


@dataclass(frozen=True)
class NamespaceApp:
    app: str
    machines: int
    volumes: int
    # Of `volumes`, those of PersistentVolumeClaims (records.is_claim_volume), by id.
    claim_volumes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeletionPlan:
    cluster: ClusterRef
    namespace_apps: tuple[NamespaceApp, ...]
    volumes: tuple[Volume, ...]
    ips: tuple[IPAssignment, ...]
    # The files of the kubeconfig chain holding the cluster's entries.
    kubeconfig_files: tuple[Path, ...] = ()
    # The entries' name, and the CA that proves them the cluster's (None: the cluster has no
    # CA, or it could not be read, so no entry can be shown to be its and none is removed).
    context: str = ""
    server_ca: bytes | None = field(default=None, repr=False)
    # A file whose entry of that name is another cluster's: it stays.
    other_cluster_entry: Path | None = None

    def describe(self, *, keep_volumes: bool = False) -> str:
        """What goes (and, with --keep-volumes, what stays), for the confirmation prompt."""
        ref = self.cluster
        gone = [f"control-plane machine {ref.machine.id}"] if ref.machine is not None else []
        if self.namespace_apps:
            pods = sum(n.machines for n in self.namespace_apps)
            namespaces = _plural(len(self.namespace_apps), "namespace app")
            held = keep_volumes and any(n.volumes for n in self.namespace_apps)
            claims = sum(len(n.claim_volumes) for n in self.namespace_apps)
            volumes = f", {_plural(claims, 'claim volume')}" if claims else ""
            kept = "; those holding volumes stay" if held else ""
            gone.append(f"{namespaces} ({_plural(pods, 'machine')}{volumes}{kept})")
        gone.append(_plural(len(self.ips), "IP"))
        if keep_volumes:
            gone.append("the kubelet's token")
        else:
            gone.extend([_plural(len(self.volumes), "volume"), f"app {ref.app}"])
        if self.kubeconfig_files:
            files = ", ".join(str(f) for f in self.kubeconfig_files)
            gone.append(f"context {self.context} in {files}")
        text = ", ".join(gone)
        if self.other_cluster_entry is not None:
            text += (
                f" (context {self.context} in {self.other_cluster_entry} is another "
                "cluster's and stays)"
            )
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
            "ca": lambda: _server_ca(client, ref.app),
        }
    )
    namespace_apps = find_namespace_apps(client, ref.app, name, org, found["apps"])
    context = kc.context_name(name, org)
    server_ca: bytes | None = found["ca"]
    files: list[Path] = kc.holders(context, kubeconfig.path, kubeconfig.environ)
    other: Path | None = None
    if files:
        try:
            kubeconfig.check_owner(context, server_ca)
        except FlykError:
            other = kc.entry_file(context, kubeconfig.path, kubeconfig.environ)
            files = []
    return DeletionPlan(
        cluster=ref,
        namespace_apps=tuple(namespace_apps),
        volumes=tuple(found["volumes"]),
        ips=tuple(found["ips"]),
        kubeconfig_files=tuple(files),
        context=context,
        server_ca=server_ca,
        other_cluster_entry=other,
    )


def _server_ca(client: FlyClient, app: str) -> bytes | None:
    """The cluster's server CA certificate (what its kubeconfig entries carry), from the
    app's secrets; None when it has none or they cannot be read."""
    try:
        stored = _secret_values(client, app).get(TLS_FILES["server-ca.crt"])
    except FlykError:
        return None
    if not stored:
        return None
    try:
        return base64.b64decode(stored, validate=True)
    except (binascii.Error, ValueError):
        return None


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
    volumes = _volumes(client, app)
    claims = tuple(v.id for v in volumes if records.is_claim_volume(v.name))
    return NamespaceApp(app=app, machines=len(machines), volumes=len(volumes), claim_volumes=claims)


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

    @property
    def kept_elsewhere(self) -> bool:
        """--keep-volumes kept volumes of namespace apps (claims' volumes), not only the
        control plane's (which `create` resumes)."""
        return any(f"in app {self.plan.cluster.app}" not in kept for kept in self.kept)

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
        f"the kubeconfig entries (context {plan.context})",
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
    removed = None
    if plan.server_ca is not None:  # else no entry can be shown to be this cluster's
        removed = kubeconfig.remove(plan.context, plan.server_ca)
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


def stale_kubeconfig_files(name: str, org: str, kubeconfig: KubeconfigOptions) -> list[Path]:
    """The files still holding entries of a cluster that is gone from the platform (deleted
    elsewhere, or a delete that stopped before its last step)."""
    return kc.holders(kc.context_name(name, org), kubeconfig.path, kubeconfig.environ)


def remove_stale_entries(name: str, org: str, kubeconfig: KubeconfigOptions) -> StaleEntries:
    return StaleEntries(name=name, org=org, removed=kubeconfig.remove(kc.context_name(name, org)))


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
