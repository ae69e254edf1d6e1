"""What clusters there are (`list_clusters`) and how one is doing (`status`), read from the
platform: apps, then the control-plane machine's metadata, or the marker secrets of an
incomplete cluster."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# pure functions of the client's RetryPolicy, so that waits here are paced as the client's own
from flyk.api.models import Machine
from flyk.errors import (
    FlykError,
    NotFoundError,
)
from flyk.k8s import records
from flyk.k8s.cluster.delete import find_namespace_apps
from flyk.k8s.plan import (
    VOLUME_NAME,
)
from flyk.k8s.probe import ApiProbe, probe_api_server

if TYPE_CHECKING:
    from flyk.api import FlyClient
from flyk.k8s.cluster._shared import (
    ClusterRef,
    _cluster_recorded_on,
    _holds_only_flyk_secrets,
    _is_control_plane,
    _map,
    _org_apps,
    _volumes,
    find_cluster,
    rebuild_kubeconfig,
    resume_hint,
    runs_for_real,
)


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


@dataclass(frozen=True)
class ClusterStatus:
    summary: ClusterSummary
    checks: tuple[tuple[str, str], ...]
    api: ApiProbe
    # Fly volumes of the cluster's PersistentVolumeClaims, found in its namespace apps.
    claim_volumes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            **self.summary.to_json(),
            "claim_volumes": self.claim_volumes,
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
    claims = sum(len(n.claim_volumes) for n in find_namespace_apps(client, ref.app, name, org))
    return ClusterStatus(
        summary=_summary(ref.app, machine, org), checks=checks, api=api, claim_volumes=claims
    )


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
