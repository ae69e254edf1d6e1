"""A pod's DNS settings as its machine's `dns` config (the Machines API's `fly.DNSConfig`,
documented as "used for Fly Kubernetes"), by the kubelet's own rules:

- `ClusterFirst` (the default) and `ClusterFirstWithHostNet`: the cluster's nameserver (CoreDNS
  on the control-plane machine's 6PN address, the kubelet's `--cluster-dns`), the search path
  `<ns>.svc.<domain> svc.<domain> <domain>` and `ndots:5`. A `hostNetwork` pod with
  `ClusterFirst` gets `Default`, as Kubernetes does.
- `Default`: the machine's own resolver, Fly's (fdaa::3): no `dns` config at all, unless the
  pod's `dnsConfig` adds to it.
- `None`: exactly the pod's `dnsConfig`.
- `dnsConfig` is added to what the policy gives: nameservers and searches after the policy's
  (repeats dropped), options merged by name (the pod's value wins).

The kubelet's limits hold: 3 nameservers, 32 search domains of 2048 characters in all; what is
beyond them is dropped, with a warning. A kubelet given no cluster DNS treats `ClusterFirst`
as `Default`, as Kubernetes' kubelet does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flyk.k8s.components import CLUSTER_DOMAIN, FLY_RESOLVER

JSON = dict[str, Any]

MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
MAX_SEARCH_CHARS = 2048
CLUSTER_OPTIONS = ({"name": "ndots", "value": "5"},)


@dataclass(frozen=True)
class ClusterDNS:
    """What the kubelet was told about the cluster's DNS."""

    nameservers: tuple[str, ...] = ()
    domain: str = CLUSTER_DOMAIN


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(item for item in items if item))


def _merge_options(base: Iterable[JSON], extra: Iterable[JSON]) -> list[JSON]:
    merged: dict[str, JSON] = {}
    for option in [*base, *extra]:
        name = str(option.get("name") or "")
        if not name:
            continue
        entry: JSON = {"name": name}
        if option.get("value") is not None:
            entry["value"] = str(option["value"])
        merged[name] = entry
    return list(merged.values())


def _limit_searches(searches: list[str], warn: list[str]) -> list[str]:
    kept: list[str] = []
    chars = 0
    for search in searches:
        chars += len(search) + (1 if kept else 0)
        if len(kept) == MAX_SEARCHES or chars > MAX_SEARCH_CHARS:
            warn.append(
                f"spec.dnsConfig: search path limits ({MAX_SEARCHES} domains, "
                f"{MAX_SEARCH_CHARS} characters) were exceeded; kept {' '.join(kept)}"
            )
            break
        kept.append(search)
    return kept


def machine_dns(pod: JSON, cluster: ClusterDNS) -> tuple[JSON | None, list[str]]:
    """The machine's `dns` config for `pod` (None: the machine's own resolver), and warnings."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    extra = spec.get("dnsConfig") or {}
    warn: list[str] = []
    if policy == "ClusterFirst" and spec.get("hostNetwork"):
        policy = "Default"
    if policy.startswith("ClusterFirst") and not cluster.nameservers:
        policy = "Default"  # the kubelet has no cluster DNS to give
    nameservers: list[str] = []
    searches: list[str] = []
    options: list[JSON] = []
    if policy.startswith("ClusterFirst"):
        namespace = pod["metadata"]["namespace"]
        domain = cluster.domain
        nameservers = list(cluster.nameservers)
        searches = [f"{namespace}.svc.{domain}", f"svc.{domain}", domain]
        options = list(CLUSTER_OPTIONS)
    elif policy == "Default":
        if not extra:
            return None, warn
        nameservers = [FLY_RESOLVER]
    nameservers = _unique([*nameservers, *(extra.get("nameservers") or [])])
    if len(nameservers) > MAX_NAMESERVERS:
        warn.append(
            f"spec.dnsConfig: at most {MAX_NAMESERVERS} nameservers; "
            f"kept {' '.join(nameservers[:MAX_NAMESERVERS])}"
        )
        nameservers = nameservers[:MAX_NAMESERVERS]
    searches = _limit_searches(_unique([*searches, *(extra.get("searches") or [])]), warn)
    options = _merge_options(options, extra.get("options") or [])
    config: JSON = {}
    for key, value in (("nameservers", nameservers), ("searches", searches), ("options", options)):
        if value:
            config[key] = value
    return config or None, warn
