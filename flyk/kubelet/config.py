"""What the virtual kubelet is told at start (flags or environment, see flyk/cli/kubelet.py)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

APP_NAME_LIMIT = 63  # Fly app names are DNS labels


@dataclass(frozen=True)
class Taint:
    key: str
    value: str
    effect: str

    @classmethod
    def parse(cls, text: str) -> Taint:
        """kubectl's syntax: `key=value:Effect`."""
        head, _, effect = text.partition(":")
        key, _, value = head.partition("=")
        if not key or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise ValueError(
                f"taint {text!r} is not key=value:NoSchedule|PreferNoSchedule|NoExecute"
            )
        return cls(key, value, effect)

    def to_api(self) -> dict[str, str]:
        return {"key": self.key, "value": self.value, "effect": self.effect}


@dataclass(frozen=True)
class Intervals:
    """Seconds between the kubelet's periodic duties (tests shrink them)."""

    lease: float = 10.0  # renew the node Lease (0.25 × its 40 s duration, as kubelets do)
    lease_duration: int = 40
    node_status: float = 60.0  # rewrite node status even when nothing changed
    ping: float = 10.0  # check the Machines API still answers (for the Ready condition)
    # A ping with no answer this soon makes Ready False (the call itself goes on, retrying).
    ping_timeout: float = 5.0
    resync: float = 30.0  # one machine list per namespace app when every pod there is settled
    fast_resync: float = 2.0  # ... while a pod there is starting, stopping or waiting
    watch_timeout: int = 300  # the API server closes each watch after this; we resume
    # A watch silent this much longer than `watch_timeout` is taken for a half-open
    # connection (the server would have closed it): it is dropped and resumed.
    watch_read_grace: float = 30.0
    backoff_initial: float = 1.0  # retry of a failed reconcile (capacity, API errors)
    backoff_max: float = 300.0
    stop_wait: float = 10.0  # extra time, beyond the grace period, for a machine to stop
    # First wait between the kubelet's own restarts: for a failing liveness check, and for a
    # stopped machine whose pod restarts (CrashLoopBackOff's 10 s, doubling to backoff_max).
    liveness_backoff: float = 10.0
    # A settled namespace whose running pods have liveness probes is listed at the probes'
    # pace (period × failureThreshold; the period alone while a check fails), never more
    # often than this: one list per namespace, so the call rate still ignores the pod count.
    liveness_floor: float = 5.0
    # How long the regions a placement query named as having room are believed (capacity
    # moves; pods waiting on capacity are told current alternatives, asked at most this often).
    placements_ttl: float = 300.0
    # The volume provisioner lists claims and PVs when its watches see a change, and also this
    # often, in case a watch missed one (claims and PVs change rarely; the watches carry them).
    volume_resync: float = 60.0


@dataclass(frozen=True)
class Serving:
    """The kubelet's HTTPS API (`kubectl logs`, `exec`): where it listens and its TLS files.
    Without the files it is not served (the node still says where it would be)."""

    port: int = 10250  # 0: any free port (the node advertises the one bound)
    cert_file: str | None = None  # serving certificate, signed by the cluster's server CA
    key_file: str | None = None
    client_ca_file: str | None = None  # client certificates are verified against it

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file and self.key_file and self.client_ca_file)


@dataclass(frozen=True)
class KubeletConfig:
    cluster: str
    org: str
    region: str
    node_name: str = "flyk"
    kubeconfig: str | None = None
    api_url: str | None = None
    api_token: str | None = field(default=None, repr=False)  # never printed
    node_ip: str = "127.0.0.1"
    workers_per_namespace: int = 4
    max_pods: int = 5000
    taints: tuple[Taint, ...] = ()
    # The nameserver ClusterFirst pods get (CoreDNS, on the control-plane machine's 6PN
    # address) and the cluster's domain; without one, pods keep the machines' own resolver.
    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = "cluster.local"
    intervals: Intervals = field(default_factory=Intervals)
    serving: Serving = field(default_factory=Serving)
    # The Service address webhook (admission.py): loopback HTTPS on this port with this
    # certificate; port 0 with no certificate runs no webhook (Services then get no address).
    webhook_port: int = 0
    webhook_cert: str | None = None
    webhook_key: str | None = None


def _label(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


def namespace_app_name(cluster: str, namespace: str, org: str) -> str:
    """`flyk-<cluster>-<namespace>-<hash>`, within Fly's 63 characters. The hash of org, cluster
    and namespace keeps names unique when the readable parts are cut short or when two orgs
    use the same cluster name; nothing ever parses the name back (records live in metadata)."""
    digest = hashlib.sha256(f"{org}/{cluster}/{namespace}".encode()).hexdigest()[:8]
    room = APP_NAME_LIMIT - len("flyk---") - len(digest)
    cluster_part = _label(cluster)[: room // 2]
    namespace_part = _label(namespace)[: room - len(cluster_part)]
    return f"flyk-{cluster_part}-{namespace_part}-{digest}"


def missing_kube_client() -> str | None:
    """The Kubernetes client package (the `flyk[kubelet]` extra) when it is not installed,
    else None; asked before anything imports it, so a plain install says what to add."""
    try:
        import lightkube  # noqa: F401
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] == "lightkube":
            return "lightkube"
        raise
    return None
