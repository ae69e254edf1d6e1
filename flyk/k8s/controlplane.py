"""The control-plane Machine: flyk's own control plane beside flyk's virtual kubelet.

One Machine runs `flyk ext k8s control-plane` (supervisor.py): kine on SQLite on a Fly volume,
kube-apiserver, kube-controller-manager and kube-scheduler from the flyk-controlplane binary
(built from upstream Kubernetes in controlplane/), each a process of its own, and
`flyk ext k8s kubelet`, which registers a virtual Node and turns Pods into Machines. This
module builds that Machine's config from a plan; it calls nothing.

flyk's CA files arrive under `PKI_DIR` from app secrets (`files[]`); the supervisor signs the
rest at every boot (bootstrap.py). The image (images/control-plane/) has the supervisor as
its entrypoint; `init.cmd` holds its flags. The local backend runs the same machine as local
processes (local_launch.py).
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
from flyk.k8s import components
from flyk.k8s.pki import TLS_FILES

API_PORT = components.API_PORT
DATA_DIR = components.DATA_DIR
PKI_DIR = components.PKI_DIR

# The guest is documented in docs/k8s.md: the control plane (CoreDNS included) and the kubelet
# idle at about 900 MB resident, 360 MB of it their own (the rest is the one binary's pages,
# shared; bench/bench_controlplane.py); 2 GB leaves room for the API server's caches as the
# cluster grows. Override with --vm-size
# and --vm-memory.
DEFAULT_SIZE = "shared-cpu-2x"
DEFAULT_MEMORY_MB = 2048
DEFAULT_VOLUME_GB = 1


def guest_for(size: str = DEFAULT_SIZE, memory: str | int | None = None) -> GuestConfig:
    """The control plane's guest: SIZE with MEMORY (`--vm-memory`) when given, else the
    size's own memory raised to DEFAULT_MEMORY_MB where the size can take that much (a
    shared-cpu-1x's own 256 MB would not run an API server); a larger size keeps its own."""
    if memory is None:
        own = machine_sizes.preset(size)
        kind = machine_sizes.CPU_KINDS[own.cpu_kind or "shared"]
        ceiling = (own.cpus or 1) * kind.max_mb_per_cpu
        memory = max(own.memory_mb or 0, min(DEFAULT_MEMORY_MB, ceiling))
    return machine_sizes.guest_for(size, memory=memory, memory_flag="--vm-memory")


# The Kubernetes version controlplane/go.mod pins: the published image's tag starts with it.
KUBERNETES_VERSION = "v1.37.2"
# The image flyk publishes (images/control-plane/README.md); FLYK_CONTROL_PLANE_IMAGE or --image
# replace it, --k3s-version (kept for FKS's flag name) picks the Kubernetes tag.
DEFAULT_IMAGE_REPOSITORY = "ghcr.io/flyk-dev/flyk-control-plane"
IMAGE_ENV_VAR = "FLYK_CONTROL_PLANE_IMAGE"

# The Machines API as seen from inside a Fly Machine (flyctl's `_api.internal` convention).
FLY_INTERNAL_API_URL = "http://_api.internal:4280"

# App secrets the control plane reads besides the PKI files.
KUBELET_TOKEN_SECRET = "FLYK_KUBELET_TOKEN"


CHECK_NAME = "api-readyz"
MACHINE_NAME = "control-plane"
EVICTION_TOLERATION_SECONDS = components.EVICTION_TOLERATION_SECONDS


def image_reference(image: str | None = None, k3s_version: str | None = None) -> str:
    """`--image` wins; then FLYK_CONTROL_PLANE_IMAGE; then the published image for the tag."""
    if image:
        return image
    from_env = os.environ.get(IMAGE_ENV_VAR)
    if from_env and not k3s_version:
        return from_env
    version = (k3s_version or KUBERNETES_VERSION).replace("+", "-")
    return f"{DEFAULT_IMAGE_REPOSITORY}:{version}-flyk{__version__}"


def is_control_plane_image(image: str) -> bool:
    """Whether `image` is flyk's published control-plane image (any tag)."""
    return image.partition("@")[0].rpartition(":")[0] == DEFAULT_IMAGE_REPOSITORY


def supervisor_args(tls_sans: Sequence[str]) -> list[str]:
    """`init.cmd`: the flags of `flyk ext k8s control-plane`, the image's entrypoint."""
    return [f"--tls-san={name}" for name in dict.fromkeys(tls_sans)]


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
        init=InitConfig(cmd=supervisor_args(tls_sans)),
        env=dict(env),
        files=pki_files(),
        mounts=[MountConfig(volume=volume_id, path=DATA_DIR)],
        # TCP pass-through: no handlers, so Fly Proxy forwards raw TCP and the API server
        # terminates TLS with flyk's server CA (the kubeconfig trusts nothing else).
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
                # /readyz is open to anonymous clients (components.AUTHENTICATION_CONFIG).
                type="http",
                port=API_PORT,
                protocol="https",
                path="/readyz",
                tls_skip_verify=True,
                interval="15s",
                timeout="5s",
                grace_period="60s",
            )
        },
        restart=RestartConfig(policy="always"),
        stop_config=StopConfig(signal="SIGTERM", timeout="30s"),
        metadata=dict(metadata),
    )
