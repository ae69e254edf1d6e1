"""Kubernetes Services as Fly machine config: pure data, no I/O (services.py does the calls).

A Service S that selects a pod puts two things on the pod's machine:

- `config.metadata[flyk_service_<S>] = "80/tcp=8080,443/tcp=8443"`: the machine joined S,
  whose address (an IP assignment with `service_name=S`) carries each `port/protocol` to that
  internal port. The Machines API documents no field that ties a machine to a
  `service_name`; flyk records the tie here, the local backend routes by it
  (flyk/local/routing.py), and docs/kubernetes.md ("Services") lists it as an open question.
- one `services[]` entry per port: `internal_port` the pod's target port (as the
  EndpointSlice resolved it, named ports included), `ports[].port` the Service's port, with
  the handlers, TLS options and concurrency of FKS's `service.fly.io/*` annotations.

Membership comes from the real endpoints controller's EndpointSlices: every endpoint that
names a pod and is not terminating. Readiness is not followed: a machine's `services` change
only through a machine update (which Fly may apply as a restart), and a restart would flip
the readiness it follows; Fly Proxy itself only routes to started machines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

JSON = dict[str, Any]
PortMap = dict[tuple[int, str], int]  # (service port, protocol) -> the pod's port

ALLOCATOR_ANNOTATION = "fly.io/clusterip-allocator"  # FKS's marker, set by the webhook
ANNOTATION_PREFIX = "service.fly.io/"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_SOFT_LIMIT = 20  # FKS's defaults for service.fly.io/concurrency-limit-*
DEFAULT_HARD_LIMIT = 25
MANAGED_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
# The metadata key of a Service's members; flyk/local/routing.py reads the same format (the
# local layer imports nothing of flyk's: tests/kubelet/test_service_config.py checks both agree).
SERVICE_KEY_PREFIX = "flyk_service_"
# Fly Proxy carries TCP to Flycast; UDP only to public addresses of an app's own services
# (not to Flycast), SCTP nowhere. FKS refuses UDP; flyk routes TCP and warns about the rest.
ROUTED_PROTOCOLS = ("tcp",)


def service_key(name: str) -> str:
    return SERVICE_KEY_PREFIX + name


def is_managed(service: Mapping[str, Any]) -> bool:
    """A Service whose cluster IP flyk assigned (a Flycast address): its machines join it."""
    annotations = (service.get("metadata") or {}).get("annotations") or {}
    spec = service.get("spec") or {}
    return (
        annotations.get(ALLOCATOR_ANNOTATION) == "configured"
        and spec.get("type", "ClusterIP") in MANAGED_TYPES
        and spec.get("clusterIP") not in (None, "", "None")
    )


def members(service: Mapping[str, Any], slices: Iterable[Mapping[str, Any]]) -> dict[str, PortMap]:
    """pod UID -> the ports the Service carries to it, from the Service's EndpointSlices."""
    spec = service.get("spec") or {}
    wanted = {
        str(port.get("name") or ""): (int(port["port"]), str(port.get("protocol") or "TCP"))
        for port in spec.get("ports") or []
        if str(port.get("protocol") or "TCP").lower() in ROUTED_PROTOCOLS
    }
    found: dict[str, PortMap] = {}
    for piece in slices:
        targets: PortMap = {}
        for port in piece.get("ports") or []:
            name = str(port.get("name") or "")
            if name in wanted and isinstance(port.get("port"), int):
                service_port, protocol = wanted[name]
                targets[(service_port, protocol.lower())] = int(port["port"])
        if not targets:
            continue
        for endpoint in piece.get("endpoints") or []:
            ref = endpoint.get("targetRef") or {}
            if ref.get("kind") != "Pod" or not ref.get("uid"):
                continue
            if (endpoint.get("conditions") or {}).get("terminating") is True:
                continue
            found.setdefault(str(ref["uid"]), {}).update(targets)
    return found


def decode(value: str) -> PortMap:
    """`encode`'s inverse; pairs that do not parse are dropped."""
    pairs: PortMap = {}
    for item in value.split(","):
        head, _, target = item.strip().partition("=")
        port, _, protocol = head.partition("/")
        if port.isdigit() and target.isdigit():
            pairs[(int(port), (protocol or "tcp").lower())] = int(target)
    return pairs


def encode(ports: PortMap) -> str:
    return ",".join(f"{port}/{proto}={target}" for (port, proto), target in sorted(ports.items()))


def _annotation(annotations: Mapping[str, str], port: Mapping[str, Any], suffix: str) -> str:
    """`service.fly.io/<port name>-<suffix>`, else `…/<port number>-<suffix>`, else ""."""
    for key in (port.get("name"), port.get("port")):
        if key not in (None, ""):
            value = annotations.get(f"{ANNOTATION_PREFIX}{key}-{suffix}")
            if value is not None:
                return value.strip()
    return ""


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def port_options(service: Mapping[str, Any], port: int, protocol: str) -> JSON:
    """The `ports[]` entry for one Service port: handlers and TLS options from annotations."""
    annotations = (service.get("metadata") or {}).get("annotations") or {}
    spec_port: Mapping[str, Any] = next(
        (
            p
            for p in (service.get("spec") or {}).get("ports") or []
            if p.get("port") == port and str(p.get("protocol") or "TCP").lower() == protocol
        ),
        {"port": port},
    )
    entry: JSON = {"port": port}
    handlers = _split(_annotation(annotations, spec_port, "handlers"))
    if handlers:
        entry["handlers"] = handlers
    tls: JSON = {}
    if alpn := _split(_annotation(annotations, spec_port, "tls-alpn")):
        tls["alpn"] = alpn
    if versions := _split(_annotation(annotations, spec_port, "tls-versions")):
        tls["versions"] = versions
    self_signed = _annotation(annotations, spec_port, "tls-default-self-signed").lower()
    if self_signed in ("true", "false"):
        tls["default_self_signed"] = self_signed == "true"
    if tls:
        entry["tls_options"] = tls
    return entry


def concurrency(service: Mapping[str, Any]) -> JSON:
    annotations = (service.get("metadata") or {}).get("annotations") or {}

    def limit(name: str, default: int) -> int:
        value = annotations.get(f"{ANNOTATION_PREFIX}concurrency-limit-{name}", "")
        return int(value) if value.strip().isdigit() else default

    kind = annotations.get(f"{ANNOTATION_PREFIX}concurrency-kind", "connections").strip()
    return {
        "type": kind if kind in ("connections", "requests") else "connections",
        "soft_limit": limit("soft", DEFAULT_SOFT_LIMIT),
        "hard_limit": limit("hard", DEFAULT_HARD_LIMIT),
    }


def machine_services(joined: Mapping[str, PortMap], services: Mapping[str, JSON]) -> list[JSON]:
    """The machine's whole `services[]`: one entry per (Service, port), in a stable order."""
    entries: list[JSON] = []
    for name in sorted(joined):
        service = services.get(name) or {}
        for (port, protocol), target in sorted(joined[name].items()):
            entry: JSON = {
                "protocol": protocol,
                "internal_port": target,
                "ports": [port_options(service, port, protocol)],
                "concurrency": concurrency(service),
                "autostop": "off",  # pods are never stopped behind the kubelet's back
                "autostart": False,
            }
            if entry not in entries:
                entries.append(entry)
    return entries


def joined_services(metadata: Mapping[str, str]) -> dict[str, PortMap]:
    """The Services a machine joined, as its metadata records them."""
    return {
        key.removeprefix(SERVICE_KEY_PREFIX): decode(value)
        for key, value in metadata.items()
        if key.startswith(SERVICE_KEY_PREFIX)
    }


def with_services(
    config: Mapping[str, Any], joined: Mapping[str, PortMap], services: Mapping[str, JSON]
) -> JSON:
    """`config` with its Service keys and `services[]` replaced by those of `joined`."""
    metadata = {
        k: v
        for k, v in (config.get("metadata") or {}).items()
        if not k.startswith(SERVICE_KEY_PREFIX)
    }
    metadata.update({service_key(name): encode(ports) for name, ports in joined.items() if ports})
    new: JSON = {**config, "metadata": metadata}
    entries = machine_services({n: p for n, p in joined.items() if p}, services)
    if entries:
        new["services"] = entries
    else:
        new.pop("services", None)
    return new


def carry_routing(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> JSON:
    """`new` (a pod's config rebuilt from its spec) keeping the Service keys and `services[]`
    of `old` (the machine's config): the pod's own update must not drop it from Services."""
    old = old or {}
    metadata = dict(new.get("metadata") or {})
    metadata.update(
        {k: v for k, v in (old.get("metadata") or {}).items() if k.startswith(SERVICE_KEY_PREFIX)}
    )
    carried: JSON = {**new, "metadata": metadata}
    if old.get("services"):
        carried["services"] = old["services"]
    return carried


def unsupported(service: Mapping[str, Any]) -> list[str]:
    """What Fly Proxy cannot honour in this Service, one message each (Warning Events)."""
    spec = service.get("spec") or {}
    kind = spec.get("type", "ClusterIP")
    out: list[str] = []
    if kind == "NodePort":
        out.append(
            "type NodePort: a flyk cluster has no nodes to open ports on; the Service is "
            "reachable on its cluster IP (Flycast) only"
        )
    if kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is not False:
        out.append(
            "node ports are allocated but unused: Fly Proxy sends public traffic to the "
            "machines directly (set allocateLoadBalancerNodePorts: false)"
        )
    if spec.get("externalTrafficPolicy") == "Local":
        out.append("externalTrafficPolicy: Local is not honoured: Fly Proxy picks the machine")
    if spec.get("internalTrafficPolicy") == "Local":
        out.append("internalTrafficPolicy: Local is not honoured: Fly Proxy picks the machine")
    if spec.get("sessionAffinity") == "ClientIP":
        out.append("sessionAffinity: ClientIP is not honoured: Fly Proxy balances by load")
    if spec.get("loadBalancerSourceRanges"):
        out.append("loadBalancerSourceRanges are not enforced: Fly Proxy has no source filter")
    if spec.get("externalIPs"):
        out.append("externalIPs are not routed: only Fly-assigned addresses reach machines")
    if spec.get("loadBalancerClass"):
        out.append("loadBalancerClass is ignored: flyk is the only load balancer")
    for port in spec.get("ports") or []:
        protocol = str(port.get("protocol") or "TCP")
        if protocol.lower() not in ROUTED_PROTOCOLS:
            out.append(
                f"port {port.get('port')}/{protocol} is not routed: Fly Proxy carries TCP to "
                "Flycast addresses only"
            )
    return out
