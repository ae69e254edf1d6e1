"""The workflows behind `flyk ext k8s`: create (and its dry run), list, status, kubeconfig and
delete, one module each.

Each is a plain function taking a `FlyClient`; progress goes through `flyk.k8s.progress`.
The platform is the record: a cluster is an app whose control-plane machine carries the
metadata `flyk_cluster`, `flyk_org` and `flyk_role=control-plane`. Nothing is kept locally
except the kubeconfig entries.

- `create`: provision, wait until healthy, write the kubeconfig; roll back on failure
- `preflight`: create's read-only checks, shared with `dryrun` (`create --dry-run`)
- `inventory`: `list_clusters` and `status`
- `delete`: `plan_deletion` and `delete`, and the entries of a cluster already gone
- `_shared`: the cluster record on Fly, kubeconfig options, parallel calls, app removal
"""

from flyk.k8s.cluster._shared import (
    DEFAULT_ORG,
    LOCAL_BACKEND_SERVER,
    ClusterRef,
    KubeconfigOptions,
    find_cluster,
    on_local_backend,
    rebuild_kubeconfig,
    resume_hint,
    runs_for_real,
)
from flyk.k8s.cluster.create import (
    DEFAULT_TIMEOUT,
    ApiCheck,
    CreateOptions,
    CreateResult,
    Deadline,
    ask_readyz,
    create,
    format_duration,
)
from flyk.k8s.cluster.delete import (
    DeleteResult,
    DeletionPlan,
    NamespaceApp,
    StaleEntries,
    delete,
    find_namespace_apps,
    plan_deletion,
    remove_stale_entries,
    stale_kubeconfig_files,
)
from flyk.k8s.cluster.dryrun import DryRun, dry_run
from flyk.k8s.cluster.inventory import (
    SIMULATED,
    ClusterStatus,
    ClusterSummary,
    list_clusters,
    status,
)

__all__ = [
    "DEFAULT_ORG",
    "DEFAULT_TIMEOUT",
    "LOCAL_BACKEND_SERVER",
    "SIMULATED",
    "ApiCheck",
    "ClusterRef",
    "ClusterStatus",
    "ClusterSummary",
    "CreateOptions",
    "CreateResult",
    "Deadline",
    "DeleteResult",
    "DeletionPlan",
    "DryRun",
    "KubeconfigOptions",
    "NamespaceApp",
    "StaleEntries",
    "ask_readyz",
    "create",
    "delete",
    "dry_run",
    "find_cluster",
    "find_namespace_apps",
    "format_duration",
    "list_clusters",
    "on_local_backend",
    "plan_deletion",
    "rebuild_kubeconfig",
    "remove_stale_entries",
    "resume_hint",
    "runs_for_real",
    "stale_kubeconfig_files",
    "status",
]
