"""What `flyk ext k8s create` will make, decided before anything is called.

The plan is pure data: names, the API endpoint, the IP type, the secrets (by name) and the
control-plane Machine's config. `--dry-run` prints it; `cluster.create` executes it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flyk._version import __version__
from flyk.api import machine_sizes
from flyk.api.images import validate_image, validate_tag
from flyk.api.models import GuestConfig, MachineConfig
from flyk.errors import UsageError
from flyk.k8s import controlplane as cp
from flyk.k8s import kubeconfig as kc
from flyk.k8s import records
from flyk.k8s.pki import TLS_FILES

APP_PREFIX = "flyk-"
APP_NAME_LIMIT = 63  # Fly app names are DNS labels
MAX_VOLUME_GB = 500  # the API's bound on a volume's size
CLUSTER_NAME_LIMIT = 40
VOLUME_NAME = "flyk_data"
VOLUME_PLACEHOLDER = "<volume id>"
REDACTED = "<redacted>"

_CLUSTER_NAME = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
_ORG_SLUG = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_REGION = re.compile(r"^[a-z]{3}$")


def validate_cluster_name(name: str) -> str:
    if not name:
        raise UsageError("a cluster needs a name: flyk ext k8s create NAME (or -n NAME)")
    if len(name) > CLUSTER_NAME_LIMIT or not _CLUSTER_NAME.match(name):
        raise UsageError(
            f"invalid cluster name {name!r}: use up to {CLUSTER_NAME_LIMIT} lowercase letters, "
            "digits and dashes, starting with a letter and ending with a letter or digit",
        )
    return name


def validate_org(org: str) -> str:
    if not org or len(org) > APP_NAME_LIMIT or not _ORG_SLUG.match(org):
        raise UsageError(f"invalid organization slug {org!r}")
    return org


def validate_region(region: str) -> str:
    if not _REGION.match(region):
        raise UsageError(f"invalid region code {region!r}: regions are three letters, e.g. iad")
    return region


def app_name_for(cluster: str, org: str) -> str:
    """`flyk-<name>-<org>`, or a hashed form when that exceeds Fly's 63 characters.

    The hash covers org and name, so two long names never collide; nothing ever parses the
    result back (org and name live in machine metadata).
    """
    full = f"{APP_PREFIX}{cluster}-{org}"
    if len(full) <= APP_NAME_LIMIT:
        return full
    digest = hashlib.sha256(f"{org}/{cluster}".encode()).hexdigest()[:10]
    head = full[: APP_NAME_LIMIT - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}"


@dataclass(frozen=True)
class ClusterSpec:
    """The user's choices (CLI flags), validated."""

    name: str
    org: str
    region: str
    image: str | None = None
    k3s_version: str | None = None
    private: bool = False
    # A dedicated IPv4 (billed by Fly) for networks without IPv6; shared IPv4 addresses route
    # only HTTP and TLS by SNI on 80/443, never raw TCP on 6443.
    dedicated_ipv4: bool = False
    guest: GuestConfig = field(default_factory=cp.guest_for)
    volume_size_gb: int = cp.DEFAULT_VOLUME_GB
    # Where the kubelet reaches the Machines API from inside the machine.
    kubelet_api_url: str = cp.FLY_INTERNAL_API_URL

    def __post_init__(self) -> None:
        if self.private and self.dedicated_ipv4:
            raise UsageError("--private and --ipv4 exclude each other: Flycast is private only")
        validate_cluster_name(self.name)
        validate_org(self.org)
        validate_region(self.region)
        if self.image is not None:  # an empty one is not "the default"
            validate_image(self.image, flag="--image")
        if self.k3s_version is not None:
            # the tag of the published image; "+" (semver build metadata) becomes "-"
            validate_tag(self.k3s_version, flag="--kubernetes-version", also="+")
        machine_sizes.validate_guest(self.guest, memory_flag="--vm-memory")
        if not 1 <= self.volume_size_gb <= MAX_VOLUME_GB:
            raise UsageError(
                f"the K3s data volume takes 1 to {MAX_VOLUME_GB} GB (the API's bounds), "
                f"got {self.volume_size_gb}"
            )


@dataclass(frozen=True)
class ClusterPlan:
    spec: ClusterSpec
    app_name: str
    image: str
    ip_types: tuple[str, ...]
    api_host: str
    tls_sans: tuple[str, ...]
    secret_names: tuple[str, ...]
    # On the local backend: the loopback port it publishes for the API (runtime.py).
    local_api_port: int | None = None

    @property
    def context(self) -> str:
        """The kubeconfig entry's name: `flyk-NAME`, or `flyk-NAME@ORG` outside personal."""
        return kc.context_name(self.spec.name, self.spec.org)

    @property
    def node_name(self) -> str:
        """The virtual node's name (a DNS subdomain, so never the context's `@ORG` form)."""
        return f"{APP_PREFIX}{self.spec.name}"

    @property
    def api_endpoint(self) -> str:
        if self.local_api_port is not None:
            return f"https://127.0.0.1:{self.local_api_port}"
        return f"https://{self.api_host}:{cp.API_PORT}"

    def metadata(self) -> dict[str, str]:
        return {
            records.META_CLUSTER: self.spec.name,
            records.META_ORG: self.spec.org,
            records.META_REGION: self.spec.region,
            records.META_ROLE: records.ROLE_CONTROL_PLANE,
            records.META_VERSION: __version__,
            records.META_ENDPOINT: self.api_endpoint,
            records.META_PRIVATE: "true" if self.spec.private else "false",
        }

    def markers(self) -> dict[str, str]:
        """The app secrets that record, on the cluster's app itself, whose it is."""
        return {records.MARKER_CLUSTER: self.spec.name, records.MARKER_ORG: self.spec.org}

    def env(self) -> dict[str, str]:
        return {
            "FLYK_CLUSTER": self.spec.name,
            "FLYK_ORG": self.spec.org,
            "FLYK_CLUSTER_APP": self.app_name,
            "FLYK_REGION": self.spec.region,
            "FLYK_API_URL": self.spec.kubelet_api_url,
            "FLYK_API_ENDPOINT": self.api_endpoint,
            # read by `flyk ext k8s kubelet`: the virtual node is named after the cluster
            "FLYK_KUBELET_NODE_NAME": self.node_name,
        }

    def machine_config(
        self, volume_id: str = VOLUME_PLACEHOLDER, extra_sans: tuple[str, ...] = ()
    ) -> MachineConfig:
        return cp.machine_config(
            image=self.image,
            guest=self.spec.guest,
            volume_id=volume_id,
            tls_sans=[*self.tls_sans, *extra_sans],
            metadata=self.metadata(),
            env=self.env(),
        )

    def describe(self, secret_values: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The plan as data for `--dry-run` and `--json`; secret values never appear."""
        secrets = dict.fromkeys(secret_values or dict.fromkeys(self.secret_names), REDACTED)
        return {
            "cluster": self.spec.name,
            "org": self.spec.org,
            "region": self.spec.region,
            "context": self.context,
            "api_endpoint": self.api_endpoint,
            "resources": [
                {"kind": "app", "name": self.app_name, "org": self.spec.org},
                {
                    "kind": "volume",
                    "name": VOLUME_NAME,
                    "region": self.spec.region,
                    "size_gb": self.spec.volume_size_gb,
                },
                {"kind": "secrets", "app": self.app_name, "values": secrets},
                *({"kind": "ip", "type": t, "app": self.app_name} for t in self.ip_types),
                {
                    "kind": "machine",
                    "name": cp.MACHINE_NAME,
                    "app": self.app_name,
                    "region": self.spec.region,
                    "config": self.machine_config().to_api(),
                },
            ],
        }


def plan_cluster(spec: ClusterSpec, *, with_kubelet_token: bool = True) -> ClusterPlan:
    app = app_name_for(spec.name, spec.org)
    # Public: a dedicated IPv6 on <app>.fly.dev (plus a dedicated IPv4 if asked). Private:
    # Flycast only, reachable over the org's WireGuard network as <app>.flycast.
    if spec.private:
        ip_types: tuple[str, ...] = ("private_v6",)
    else:
        ip_types = ("v6", "v4") if spec.dedicated_ipv4 else ("v6",)
    api_host = f"{app}.flycast" if spec.private else f"{app}.fly.dev"
    sans = (api_host, f"{app}.flycast", f"{app}.internal", "localhost", "127.0.0.1")
    secrets = (records.MARKER_CLUSTER, records.MARKER_ORG, *TLS_FILES.values())
    if with_kubelet_token:
        secrets = (*secrets, cp.KUBELET_TOKEN_SECRET)
    return ClusterPlan(
        spec=spec,
        app_name=app,
        image=cp.image_reference(spec.image, spec.k3s_version),
        ip_types=ip_types,
        api_host=api_host,
        tls_sans=tuple(dict.fromkeys(sans)),
        secret_names=secrets,
    )
