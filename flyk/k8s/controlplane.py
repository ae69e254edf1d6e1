"""The control-plane Machine: K3s as an agentless server beside flyk's virtual kubelet.

One Machine runs `k3s server` (no local agent, SQLite on a Fly volume, flyk's CAs) and
`flyk ext k8s kubelet`, which registers a virtual Node and turns Pods into Machines. This module
builds that Machine's config from a plan; it calls nothing.

The image (images/control-plane/) has an entrypoint that copies the CA files flyk writes under
`PKI_DIR` into K3s's `server/tls/` before K3s's first start, then runs `k3s server` with the
arguments in `init.cmd` and the kubelet beside it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from flyk._version import __version__
from flyk.api import machine_sizes
from flyk.api.models import (
    CheckConfig,
    FileConfig,
    GuestConfig,
    InitConfig,
    MachineConfig,
    MountConfig,
    PortConfig,
    RestartConfig,
    ServiceConfig,
    StopConfig,
)
from flyk.k8s.pki import TLS_FILES

API_PORT = 6443
DATA_DIR = "/var/lib/rancher/k3s"
PKI_DIR = "/etc/flyk/pki"

# The guest is documented in docs/k8s.md: K3s with SQLite and the kubelet idle at about 600 MB;
# 2 GB leaves room for the API server's caches as the cluster grows. Override with --vm-size
# and --vm-memory.
DEFAULT_SIZE = "shared-cpu-2x"
DEFAULT_MEMORY_MB = 2048
DEFAULT_VOLUME_GB = 1


def guest_for(size: str = DEFAULT_SIZE, memory: str | int | None = None) -> GuestConfig:
    """The control plane's guest: SIZE with MEMORY (`--vm-memory`) when given, else the
    size's own memory raised to DEFAULT_MEMORY_MB where the size can take that much (a
    shared-cpu-1x's own 256 MB would not run K3s); a larger size keeps its own."""
    if memory is None:
        own = machine_sizes.preset(size)
        kind = machine_sizes.CPU_KINDS[own.cpu_kind or "shared"]
        ceiling = (own.cpus or 1) * kind.max_mb_per_cpu
        memory = max(own.memory_mb or 0, min(DEFAULT_MEMORY_MB, ceiling))
    return machine_sizes.guest_for(size, memory=memory, memory_flag="--vm-memory")


DEFAULT_K3S_VERSION = "v1.31.4+k3s1"
# The image flyk publishes (images/control-plane/README.md); FLYK_CONTROL_PLANE_IMAGE or --image
# replace it, --k3s-version picks the tag.
DEFAULT_IMAGE_REPOSITORY = "ghcr.io/flyk-dev/flyk-control-plane"
IMAGE_ENV_VAR = "FLYK_CONTROL_PLANE_IMAGE"

# The Machines API as seen from inside a Fly Machine (flyctl's `_api.internal` convention).
FLY_INTERNAL_API_URL = "http://_api.internal:4280"

# App secrets the control plane reads besides the PKI files.
KUBELET_TOKEN_SECRET = "FLYK_KUBELET_TOKEN"


CHECK_NAME = "k3s-api"
MACHINE_NAME = "control-plane"

# K3s add-ons a nodeless cluster cannot run or does not need (reference §3.1): traefik and
# servicelb need a real node's network, local-storage a real disk, metrics-server a kubelet
# that serves /metrics/resource. CoreDNS (reference §3.7) would be bound to the virtual node
# and run as a Machine that cannot work: no service-account token reaches pods (projected
# volumes are not supported) and its ClusterIP is unreachable with no kube-proxy, so it would
# crash-loop on a billed Machine. Pods resolve through Fly's DNS instead (docs/kubernetes.md).
DISABLED_ADDONS = ("coredns", "traefik", "servicelb", "local-storage", "metrics-server")

# How long a pod stays bound to a node that is NotReady (the virtual kubelet says so while the
# Machines API is down) or unreachable (its Lease lapsed) before the node lifecycle controller
# evicts it: the API server's DefaultTolerationSeconds admission gives every pod without its
# own toleration these values instead of 300 s. Evicting never helps in a flyk cluster: the
# virtual node is the only node, so an evicted pod comes back to the same node and waits for
# the same API, while its machine, which kept running through the outage, is destroyed. A day
# outlasts any Machines API outage on record; docs/kubernetes.md ("The node") says more.
EVICTION_TOLERATION_SECONDS = 86_400


def image_reference(image: str | None = None, k3s_version: str | None = None) -> str:
    """`--image` wins; then FLYK_CONTROL_PLANE_IMAGE; then the published image for the K3s tag."""
    if image:
        return image
    from_env = os.environ.get(IMAGE_ENV_VAR)
    if from_env and not k3s_version:
        return from_env
    version = (k3s_version or DEFAULT_K3S_VERSION).replace("+", "-")
    return f"{DEFAULT_IMAGE_REPOSITORY}:{version}-flyk{__version__}"


def k3s_server_args(tls_sans: Sequence[str]) -> list[str]:
    """Flags for `k3s server` (reference §3.1); the entrypoint prepends `server`."""
    args = [
        "--disable-agent",
        # Every other mode tunnels apiserver→kubelet traffic through agents a virtual kubelet
        # never opens, so `kubectl logs` would hang.
        "--egress-selector-mode=disabled",
        f"--disable={','.join(DISABLED_ADDONS)}",
        # The embedded cloud controller waits for k3s.io address annotations that only a real
        # agent writes; the virtual kubelet sets the Node's addresses itself.
        "--disable-cloud-controller",
        "--disable-helm-controller",
        "--disable-network-policy",
        f"--data-dir={DATA_DIR}",
        f"--https-listen-port={API_PORT}",
        "--write-kubeconfig-mode=0600",
        f"--kube-apiserver-arg=default-not-ready-toleration-seconds={EVICTION_TOLERATION_SECONDS}",
        "--kube-apiserver-arg="
        f"default-unreachable-toleration-seconds={EVICTION_TOLERATION_SECONDS}",
    ]
    args.extend(f"--tls-san={name}" for name in tls_sans)
    return args


def pki_files() -> list[FileConfig]:
    """One file per CA file, filled from its app secret, readable by root only."""
    return [
        FileConfig(guest_path=f"{PKI_DIR}/{path}", secret_name=secret, mode=0o600)
        for path, secret in TLS_FILES.items()
    ]


def machine_config(
    *,
    image: str,
    guest: GuestConfig,
    volume_id: str,
    tls_sans: Sequence[str],
    metadata: Mapping[str, str],
    env: Mapping[str, str],
) -> MachineConfig:
    return MachineConfig(
        image=image,
        guest=guest,
        init=InitConfig(cmd=k3s_server_args(tls_sans)),
        env=dict(env),
        files=pki_files(),
        mounts=[MountConfig(volume=volume_id, path=DATA_DIR)],
        # TCP pass-through: no handlers, so Fly Proxy forwards raw TCP and K3s terminates TLS
        # with flyk's server CA (the kubeconfig trusts nothing else).
        services=[
            ServiceConfig(
                protocol="tcp",
                internal_port=API_PORT,
                ports=[PortConfig(port=API_PORT)],
                autostart=True,
                autostop="off",
                min_machines_running=1,
            )
        ],
        checks={
            CHECK_NAME: CheckConfig(
                type="tcp", port=API_PORT, interval="15s", timeout="5s", grace_period="60s"
            )
        },
        restart=RestartConfig(policy="always"),
        stop_config=StopConfig(signal="SIGTERM", timeout="30s"),
        metadata=dict(metadata),
    )
