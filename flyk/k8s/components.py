"""The control plane's processes and their flags: kine, kube-apiserver, kube-controller-manager,
kube-scheduler and CoreDNS, one process each from the flyk-controlplane binary (controlplane/).

Pure data: `Layout` says where the files are inside the machine, `component_args` turns it
into each component's command line. The supervisor (supervisor.py) runs them in this order;
bootstrap.py writes the certificates and kubeconfigs these flags name. The flags follow how
K3s runs the same upstream components (reference k8s-next-capabilities.md §1.3), less what a
nodeless cluster cannot use; tests/k8s/test_components.py runs them against the real binary.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

# Where the machine keeps the cluster: kine's SQLite and the boot-time certificates sit on the
# Fly volume mounted here; flyk's CA files arrive under PKI_DIR from app secrets.
DATA_DIR = "/var/lib/flyk"
PKI_DIR = "/etc/flyk/pki"
API_PORT = 6443

# K3s's defaults: services get addresses from this range; the first is the `kubernetes`
# Service's, so the serving certificate names it.
SERVICE_CIDR = "10.43.0.0/16"
# The second service range is the org's Flycast /64, so the API server takes the address flyk's
# webhook writes into a Service's clusterIP (flyk/kubelet/admission.py, docs/kubernetes.md
# "Services"); the API server allows no IPv6 service range wider than a /64. IPv4 stays first:
# the `kubernetes` Service keeps 10.43.0.1. Without the machine's 6PN address to read the org's
# prefix from, this stand-in only turns the IPv6 family on (a ServiceCIDR object can add more).
FLYCAST_CIDR = "fdaa::/64"
CLUSTER_DOMAIN = "cluster.local"
SERVICE_ACCOUNT_ISSUER = f"https://kubernetes.default.svc.{CLUSTER_DOMAIN}"

# How long a pod stays bound to a node that is NotReady (the virtual kubelet says so while the
# Machines API is down) or unreachable (its Lease lapsed) before the node lifecycle controller
# evicts it: the API server's DefaultTolerationSeconds admission gives every pod without its
# own toleration these values instead of 300 s. Evicting never helps in a flyk cluster: the
# virtual node is the only node, so an evicted pod comes back to the same node and waits for
# the same API, while its machine, which kept running through the outage, is destroyed. A day
# outlasts any Machines API outage on record; docs/kubernetes.md ("The node") says more.
EVICTION_TOLERATION_SECONDS = 86_400

# Controllers a cluster whose only node is virtual cannot use: node-ipam hands out pod CIDRs
# (Fly's 6PN gives pods their addresses) and attach-detach would wait for a CSI node plugin that
# no virtual node runs. Everything else (garbage collector, ReplicaSet, Deployment, Job,
# persistentvolume-binder, node lifecycle, …) stays on. The cloud controllers are not even built
# (`-tags providerless`).
DISABLED_CONTROLLERS = ("node-ipam-controller", "persistentvolume-attach-detach-controller")

# The health endpoints anonymous clients may read (Fly's check, the supervisor, `create`'s
# wait): everything else needs a certificate. The API server's authentication config file.
AUTHENTICATION_CONFIG = """\
apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
anonymous:
  enabled: true
  conditions:
  - path: /livez
  - path: /readyz
  - path: /healthz
"""

COMPONENTS = ("kine", "kube-apiserver", "kube-controller-manager", "kube-scheduler")

# Cluster DNS (docs/kubernetes.md, "DNS"). CoreDNS listens on the machine's 6PN address, port 53:
# pods' machines reach it over the private network, and their `dns.nameservers` name that
# address. Not through Fly Proxy: a Flycast address would need a UDP service, which Fly Proxy
# does not carry for Flycast as far as anyone has shown (k8s-next-capabilities.md open question).
DNS_PORT = 53
# Fly's resolver inside every machine (`.internal`, `.flycast` and the internet): what CoreDNS
# forwards every name outside the cluster to, and what `dnsPolicy: Default` keeps.
FLY_RESOLVER = "fdaa::3"


@dataclass(frozen=True)
class Layout:
    """The files of one control plane. `root` is `/` in a Fly machine; the local backend runs
    the same machine with its guest paths under a directory of its own."""

    root: Path = Path("/")
    api_port: int = API_PORT
    # Fly Proxy forwards both public and Flycast (--private) services to the machine's IPv4
    # (Flycast: "the app must bind 0.0.0.0:<port>"); `::` would also make the API server
    # advertise an IPv6 address that the IPv4 service range refuses.
    bind_address: str = "0.0.0.0"
    flycast_cidr: str = FLYCAST_CIDR  # the org's Flycast /64 (flycast_range)

    def guest(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    @property
    def data(self) -> Path:
        return self.guest(DATA_DIR)

    @property
    def pki(self) -> Path:
        """flyk's CA files, as the machine's `files[]` wrote them."""
        return self.guest(PKI_DIR)

    @property
    def tls(self) -> Path:
        """The leaf certificates and kubeconfigs bootstrap.py signs at every boot."""
        return self.data / "tls"

    @property
    def database(self) -> Path:
        return self.data / "db" / "state.db"

    def ca(self, name: str) -> Path:
        return self.pki / name

    def leaf(self, name: str) -> Path:
        return self.tls / name

    def kubeconfig(self, user: str) -> Path:
        return self.tls / f"{user}.kubeconfig"

    @property
    def corefile(self) -> Path:
        return self.data / "Corefile"


@dataclass(frozen=True)
class ClusterDNS:
    """Where CoreDNS listens, what pods are told, and where it forwards the rest.

    On Fly `listen` and `nameserver` are both the machine's 6PN address and the port is 53. The
    local backend runs CoreDNS on loopback, on the port it published for the machine's port 53,
    while pods' (simulated) machines are given the machine's 6PN address, as on Fly."""

    listen: str
    nameserver: str
    port: int = DNS_PORT
    # Where names outside the cluster go: Fly's resolver, or a resolv.conf path (the host's
    # resolvers, on the local backend), or `host:port` (tests run their own upstream).
    upstreams: tuple[str, ...] = (FLY_RESOLVER,)
    # CoreDNS's own health and readiness endpoints, on loopback (the supervisor asks /ready);
    # 0: a free port, chosen when the control plane starts.
    health_port: int = 0
    ready_port: int = 0


# kine listens on a socket beside its database; the components run with the data dir as
# their working directory, so the path stays short whatever the root (a unix socket's path
# is limited to about 100 bytes).
KINE_SOCKET = "unix://kine.sock"


def flycast_range(private_ip: str | None) -> str:
    """The org's Flycast /64 from a machine's 6PN address: `fdaa:X:Y:…` → `fdaa:X:Y::/64`
    (Flycast addresses such as `fdaa:3:dde8:0:1::3b` sit in the org's /48 with a zero fourth
    group; a live test checks it, docs/kubernetes.md "Open questions")."""
    try:
        address = ipaddress.IPv6Address(private_ip or "")
    except ValueError:
        return FLYCAST_CIDR
    if not str(address).startswith("fdaa:"):
        return FLYCAST_CIDR
    org = ipaddress.IPv6Network(f"{address}/48", strict=False)
    return str(ipaddress.IPv6Network(f"{org.network_address}/64"))


def first_service_ip(cidr: str = SERVICE_CIDR) -> str:
    return str(next(ipaddress.ip_network(cidr).hosts()))


def kine_args(layout: Layout) -> list[str]:
    return [
        f"--listen-address={KINE_SOCKET}",
        # An absolute path: kine's default DSN is relative to the working directory.
        f"--endpoint=sqlite://{layout.database}"
        "?_journal=WAL&cache=shared&_busy_timeout=30000&_txlock=immediate",
        "--metrics-bind-address=0",
    ]


def apiserver_args(layout: Layout) -> list[str]:
    tls, ca = layout.leaf, layout.ca
    return [
        "--storage-backend=etcd3",
        f"--etcd-servers={KINE_SOCKET}",
        f"--secure-port={layout.api_port}",
        f"--bind-address={layout.bind_address}",
        f"--cert-dir={layout.tls}",
        f"--tls-cert-file={tls('apiserver.crt')}",
        f"--tls-private-key-file={tls('apiserver.key')}",
        f"--client-ca-file={ca('client-ca.crt')}",
        f"--authentication-config={tls('authentication.yaml')}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=true",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--api-audiences={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={ca('service.key')}",
        f"--service-account-signing-key-file={ca('service.key')}",
        f"--service-cluster-ip-range={SERVICE_CIDR},{layout.flycast_cidr}",
        # How the API server reaches the virtual kubelet for `kubectl logs/exec`.
        f"--kubelet-certificate-authority={ca('server-ca.crt')}",
        f"--kubelet-client-certificate={tls('apiserver-kubelet-client.crt')}",
        f"--kubelet-client-key={tls('apiserver-kubelet-client.key')}",
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
        # The aggregation layer's front proxy (request-header authentication).
        f"--requestheader-client-ca-file={ca('request-header-ca.crt')}",
        "--requestheader-allowed-names=system:auth-proxy",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={tls('front-proxy-client.crt')}",
        f"--proxy-client-key-file={tls('front-proxy-client.key')}",
        f"--default-not-ready-toleration-seconds={EVICTION_TOLERATION_SECONDS}",
        f"--default-unreachable-toleration-seconds={EVICTION_TOLERATION_SECONDS}",
        "--profiling=false",
    ]


def _served_component_args(layout: Layout, user: str, port: int) -> list[str]:
    """What the controller-manager and the scheduler share: their kubeconfig for everything
    they ask the API server, and a loopback health endpoint with a certificate of ours."""
    kubeconfig = layout.kubeconfig(user)
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--tls-cert-file={layout.leaf('loopback-serving.crt')}",
        f"--tls-private-key-file={layout.leaf('loopback-serving.key')}",
        # SQLite has one writer and there is one of each component: nothing to elect.
        "--leader-elect=false",
        "--profiling=false",
    ]


def controller_manager_args(layout: Layout, port: int) -> list[str]:
    ca = layout.ca
    disabled = ",".join(f"-{name}" for name in DISABLED_CONTROLLERS)
    return [
        *_served_component_args(layout, "kube-controller-manager", port),
        f"--controllers=*,{disabled}",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={ca('service.key')}",
        f"--root-ca-file={ca('server-ca.crt')}",
        f"--cluster-signing-kube-apiserver-client-cert-file={ca('client-ca.crt')}",
        f"--cluster-signing-kube-apiserver-client-key-file={ca('client-ca.key')}",
        f"--cluster-signing-kubelet-client-cert-file={ca('client-ca.crt')}",
        f"--cluster-signing-kubelet-client-key-file={ca('client-ca.key')}",
        f"--cluster-signing-kubelet-serving-cert-file={ca('server-ca.crt')}",
        f"--cluster-signing-kubelet-serving-key-file={ca('server-ca.key')}",
        f"--cluster-signing-legacy-unknown-cert-file={ca('server-ca.crt')}",
        f"--cluster-signing-legacy-unknown-key-file={ca('server-ca.key')}",
    ]


def scheduler_args(layout: Layout, port: int) -> list[str]:
    return _served_component_args(layout, "kube-scheduler", port)


def corefile(layout: Layout, dns: ClusterDNS) -> str:
    """CoreDNS's configuration: the cluster's zone from the API server (with the reverse zones
    of Service addresses), everything else forwarded, answers cached.

    `pods insecure` answers `<a-b-c-d>.<ns>.pod.cluster.local` from the name alone, as kubeadm's
    and K3s's Corefiles do, with no pod watch (so no permission on pods). The reverse zones fall
    through to the upstream: a Flycast or 6PN address that is not a Service's is Fly's to name.
    """
    upstreams = " ".join(dns.upstreams)
    return f"""\
.:{dns.port} {{
    bind {dns.listen}
    errors
    health 127.0.0.1:{dns.health_port}
    ready 127.0.0.1:{dns.ready_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {layout.kubeconfig("coredns")}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    forward . {upstreams}
    cache 30
}}
"""


def coredns_args(layout: Layout) -> list[str]:
    return ["-conf", str(layout.corefile)]
