"""`create --dry-run`: create's read-only checks and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

# pure functions of the client's RetryPolicy, so that waits here are paced as the client's own
from flyk.k8s.plan import (
    ClusterPlan,
    ClusterSpec,
    plan_cluster,
)

if TYPE_CHECKING:
    from flyk.api import FlyClient
from flyk.k8s.cluster.create import CreateOptions
from flyk.k8s.cluster.preflight import _checks, _Existing


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
    options.kubeconfig.check(plan.context)
    existing = _checks(client, plan, options.kubeconfig)
    return DryRun(plan=plan, resuming=existing)
