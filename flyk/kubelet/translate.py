"""Pod → Machine translation: pure functions over the pod's JSON (DESIGN.md "Pod → Machine").

The pod arrives as the API server's JSON (camelCase dicts); the result is a Machines API
`MachineConfig` as JSON plus what the kubelet must tell the user: the guest size it chose and
one warning per pod field flyk does not support yet. Nothing here talks to a network: the
Secrets and ConfigMaps a pod references are fetched by the caller and passed in `Sources`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flyk.k8s import records
from flyk.kubelet import dns as pod_dns
from flyk.kubelet.service_env import service_link_env

JSON = dict[str, Any]

# Pod annotations users set, and the one flyk writes back.
REGION_ANNOTATION = "fly.io/region"  # "iad", or a region list "iad,ord" that allows fallback
SIZE_ANNOTATION = "fly.io/size"  # a preset such as "performance-2x" overrides the resources rule
CHOSEN_SIZE_ANNOTATION = "fly.io/machine-size"  # written by the kubelet: "shared-cpu-1x:256MB"

# Part of the spec hash. Bump it only when a change of the translation must reach machines that
# already run (it restarts every pod's machine once); otherwise a new flyk version's translation
# reaches a machine when its pod next changes.
SPEC_HASH_SCHEME = 1

MEMORY_STEP_MB = 256
DEFAULT_GRACE_SECONDS = 30
DEFAULT_PROBE_PERIOD = 10
DEFAULT_PROBE_TIMEOUT = 1

RESTART_POLICIES = {"Always": "always", "OnFailure": "on-failure", "Never": "no"}

# Downward-API fields the Machines API fills in itself, via `env_from[].field_ref`.
MACHINE_FIELD_REFS = {"status.podIP": "private_ip", "status.podIPs": "private_ip"}


class TranslationError(Exception):
    """The pod cannot become a machine as written (a missing Secret key, an impossible size)."""

    def __init__(self, message: str, *, reason: str = "CreateContainerConfigError") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class Sources:
    """The Secrets and ConfigMaps the pod references, as the API returned them (name → object)."""

    secrets: Mapping[str, JSON] = field(default_factory=dict)
    config_maps: Mapping[str, JSON] = field(default_factory=dict)
    # The Services of the pod's namespace, for `enableServiceLinks` (service_env.py).
    services: Sequence[JSON] = ()


@dataclass(frozen=True)
class NodeFacts:
    """What the downward API may ask about the node and cluster."""

    cluster: str
    node_name: str
    node_ip: str
    region: str
    dns: pod_dns.ClusterDNS = field(default_factory=pod_dns.ClusterDNS)


@dataclass(frozen=True)
class GuestSize:
    cpu_kind: str
    cpus: int
    memory_mb: int

    @property
    def label(self) -> str:
        kind = "shared-cpu" if self.cpu_kind == "shared" else "performance"
        return f"{kind}-{self.cpus}x:{self.memory_mb}MB"

    def to_api(self) -> JSON:
        return {"cpu_kind": self.cpu_kind, "cpus": self.cpus, "memory_mb": self.memory_mb}


@dataclass(frozen=True)
class MachinePlan:
    """Everything needed to create or update the pod's machine."""

    name: str
    region: str
    config: JSON
    size: GuestSize
    spec_hash: str
    warnings: tuple[str, ...]
    # The hash flyk versions before the pod-spec hash stored (of the config itself): a machine
    # carrying it already has this very config, and only needs the new hash recorded.
    config_hash: str = ""


# --------------------------------------------------------------------------- guest size

# Counts of CPUs the platform offers per kind, and the memory per CPU each kind allows.
CPU_COUNTS = {"shared": (1, 2, 4, 6, 8), "performance": (1, 2, 4, 6, 8, 10, 12, 14, 16)}
MEMORY_PER_CPU_MB = {"shared": (256, 2048), "performance": (2048, 8192)}
_PRESET = re.compile(r"^(shared-cpu|performance)-(\d+)x$")
_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_SUFFIX_BYTES = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def parse_cpu(quantity: str | int | float) -> float:
    """A Kubernetes CPU quantity ("500m", "2", 0.5) in cores."""
    text = str(quantity).strip()
    if text.endswith("m"):
        return float(text[:-1]) / 1000
    return float(text)


def parse_memory_mb(quantity: str | int) -> float:
    """A Kubernetes memory quantity ("512Mi", "1G", "1e9" not supported) in MiB."""
    match = _QUANTITY.match(str(quantity).strip())
    if not match or match.group(2) not in _SUFFIX_BYTES:
        raise TranslationError(f"memory quantity {quantity!r} is not understood")
    return float(match.group(1)) * _SUFFIX_BYTES[match.group(2)] / 2**20


def _container_demand(container: JSON) -> tuple[float, float]:
    """CPU cores and MiB one container asks for: its limits, else its requests."""
    resources = container.get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    cpu = limits.get("cpu", requests.get("cpu", 0))
    memory = limits.get("memory", requests.get("memory", 0))
    return parse_cpu(cpu), parse_memory_mb(memory)


def pod_demand(spec: JSON) -> tuple[float, float]:
    """The pod's effective demand, as the scheduler computes it: the sum over the app
    containers, or the largest init container if that is bigger (init containers run alone)."""
    apps = [_container_demand(c) for c in spec.get("containers") or []]
    inits = [_container_demand(c) for c in spec.get("initContainers") or []]
    cpu = max([sum(c for c, _ in apps), *(c for c, _ in inits)])
    memory = max([sum(m for _, m in apps), *(m for _, m in inits)])
    return cpu, memory


def _round_up_count(kind: str, wanted: int) -> int | None:
    return next((n for n in CPU_COUNTS[kind] if n >= wanted), None)


def choose_guest(spec: JSON, annotations: Mapping[str, str]) -> GuestSize:
    """The rule (docs/kubernetes.md "Sizes"):

    1. memory = demand rounded up to 256 MB (minimum 256);
    2. cpus = demand rounded up to a whole CPU (minimum 1), raised until memory per CPU is at
       most 2048 MB, then to the next count the platform offers; kind shared;
    3. past 8 shared CPUs, kind performance with 2048–8192 MB per CPU;
    4. memory is then raised to the kind's minimum per CPU.
    `fly.io/size: <preset>` fixes kind and CPUs; memory still follows the resources.
    """
    cpu, memory = pod_demand(spec)
    memory_mb = max(MEMORY_STEP_MB, math.ceil(memory / MEMORY_STEP_MB) * MEMORY_STEP_MB)
    preset = annotations.get(SIZE_ANNOTATION)
    if preset:
        return _guest_from_preset(preset, memory_mb)
    wanted = max(1, math.ceil(cpu - 1e-9))
    for kind in ("shared", "performance"):
        low, high = MEMORY_PER_CPU_MB[kind]
        count = _round_up_count(kind, max(wanted, math.ceil(memory_mb / high)))
        if count is not None:
            return GuestSize(kind, count, max(memory_mb, low * count))
    raise TranslationError(
        f"the pod asks for {cpu:g} CPUs and {memory_mb} MB; the largest machine has 16 CPUs "
        f"and {16 * MEMORY_PER_CPU_MB['performance'][1]} MB",
        reason="OutOfResources",
    )


def _guest_from_preset(preset: str, memory_mb: int) -> GuestSize:
    match = _PRESET.match(preset.strip())
    kind = "shared" if match and match.group(1) == "shared-cpu" else "performance"
    if not match or int(match.group(2)) not in CPU_COUNTS[kind]:
        raise TranslationError(
            f"annotation {SIZE_ANNOTATION}={preset!r} is not a machine size "
            "(shared-cpu-1x…8x, performance-1x…16x)",
            reason="InvalidSize",
        )
    cpus = int(match.group(2))
    low, high = MEMORY_PER_CPU_MB[kind]
    memory_mb = max(memory_mb, low * cpus)
    if memory_mb > high * cpus:
        raise TranslationError(
            f"{preset} allows at most {high * cpus} MB, the pod asks for {memory_mb} MB",
            reason="InvalidSize",
        )
    return GuestSize(kind, cpus, memory_mb)


# --------------------------------------------------------------------------- names, region


def machine_name(pod: JSON) -> str:
    """Unique per app: the pod's name plus its UID's head, so that a pod re-created under the
    same name (StatefulSets) never collides with the machine of its predecessor."""
    meta = pod["metadata"]
    return f"{meta['name'][:54]}-{meta['uid'].replace('-', '')[:8]}"


def pod_region(pod: JSON, default_region: str) -> str:
    """The cluster's region, or the `fly.io/region` annotation, sent as written: a list like
    "iad,ord" allows fallback, and so does an expression the API resolves ("any", a group);
    a region code never moves (docs/kubernetes.md)."""
    annotations = pod["metadata"].get("annotations") or {}
    value = str(annotations.get(REGION_ANNOTATION, "")).replace(" ", "")
    return value or default_region


def allowed_regions(region: str) -> tuple[str, ...]:
    return tuple(r for r in region.split(",") if r)


# --------------------------------------------------------------------------- env


def _decode_secret_value(secret: JSON, key: str) -> str | None:
    data = secret.get("data") or {}
    if key in data:
        return base64.b64decode(data[key]).decode("utf-8", errors="replace")
    string_data = secret.get("stringData") or {}
    value = string_data.get(key)
    return None if value is None else str(value)


def _config_map_value(config_map: JSON, key: str) -> str | None:
    data = config_map.get("data") or {}
    if key in data:
        return str(data[key])
    binary = config_map.get("binaryData") or {}
    if key in binary:
        return base64.b64decode(binary[key]).decode("utf-8", errors="replace")
    return None


def _key_ref_value(ref: JSON, kind: str, objects: Mapping[str, JSON]) -> str | None:
    name, key, optional = ref.get("name", ""), ref["key"], bool(ref.get("optional"))
    obj = objects.get(name)
    value = None
    if obj is not None:
        value = _decode_secret_value(obj, key) if kind == "Secret" else _config_map_value(obj, key)
    if value is None and not optional:
        what = f"{kind} {name!r}" if obj is None else f"key {key!r} of {kind} {name!r}"
        raise TranslationError(f"{what} not found")
    return value


_LABEL_FIELD = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def _field_ref_value(pod: JSON, path: str, node: NodeFacts) -> str | None:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": node.node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": node.node_ip,
        "status.hostIPs": node.node_ip,
    }
    if path in simple:
        return str(simple[path] or "")
    match = _LABEL_FIELD.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    return None


@dataclass
class _Env:
    values: dict[str, str] = field(default_factory=dict)
    from_machine: list[JSON] = field(default_factory=list)  # env_from[] entries
    links: dict[str, str] = field(default_factory=dict)  # the Service links among `values`


def resolve_env(
    pod: JSON, container: JSON, path: str, sources: Sources, node: NodeFacts, warn: list[str]
) -> _Env:
    """Flatten the Service links, `envFrom` and `env` (in Kubernetes' precedence order)
    into plain values."""
    env = _Env()
    if (pod.get("spec") or {}).get("enableServiceLinks", True) is not False:
        env.links = service_link_env(sources.services)
        env.values.update(env.links)
    for index, source in enumerate(container.get("envFrom") or []):
        prefix = source.get("prefix", "")
        if "secretRef" in source:
            ref, objects, kind = source["secretRef"], sources.secrets, "Secret"
        elif "configMapRef" in source:
            ref, objects, kind = source["configMapRef"], sources.config_maps, "ConfigMap"
        else:
            warn.append(f"{path}.envFrom[{index}] is not supported yet")
            continue
        obj = objects.get(ref.get("name", ""))
        if obj is None:
            if not ref.get("optional"):
                raise TranslationError(f"{kind} {ref.get('name')!r} not found")
            continue
        keys = set(obj.get("data") or {}) | set(obj.get("binaryData") or {})
        keys |= set(obj.get("stringData") or {})
        for key in sorted(keys):
            value = (
                _decode_secret_value(obj, key) if kind == "Secret" else _config_map_value(obj, key)
            )
            if value is not None:
                env.values[prefix + key] = value
    for index, var in enumerate(container.get("env") or []):
        _resolve_one(pod, var, f"{path}.env[{index}]", sources, node, env, warn)
    return env


def _resolve_one(
    pod: JSON, var: JSON, path: str, sources: Sources, node: NodeFacts, env: _Env, warn: list[str]
) -> None:
    name = var["name"]
    value_from = var.get("valueFrom")
    if value_from is None:
        env.values[name] = expand_vars(str(var.get("value", "")), env.values)
        return
    value: str | None = None
    if "secretKeyRef" in value_from:
        value = _key_ref_value(value_from["secretKeyRef"], "Secret", sources.secrets)
    elif "configMapKeyRef" in value_from:
        value = _key_ref_value(value_from["configMapKeyRef"], "ConfigMap", sources.config_maps)
    elif "fieldRef" in value_from:
        field_path = value_from["fieldRef"].get("fieldPath", "")
        if field_path in MACHINE_FIELD_REFS:
            env.values.pop(name, None)
            env.from_machine.append({"env_var": name, "field_ref": MACHINE_FIELD_REFS[field_path]})
            return
        value = _field_ref_value(pod, field_path, node)
        if value is None:
            warn.append(f"{path}.valueFrom.fieldRef {field_path} is not supported yet")
            return
    else:
        warn.append(f"{path}.valueFrom.{next(iter(value_from), '?')} is not supported yet")
        return
    if value is not None:
        env.values[name] = value


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand_vars(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: known names are replaced, `$$` is a literal `$`,
    unknown references stay as written."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR_REF.sub(replace, text)


# --------------------------------------------------------------------------- files


def _volume_items(volume: JSON, sources: Sources) -> list[tuple[str, bytes, int | None]] | None:
    """(relative path, content, mode) for a configMap or secret volume; None if optional and
    absent."""
    if "configMap" in volume:
        src, objects, kind = volume["configMap"], sources.config_maps, "ConfigMap"
    else:
        src, objects, kind = volume["secret"], sources.secrets, "Secret"
    name = src.get("name") or src.get("secretName", "")
    obj = objects.get(name)
    if obj is None:
        if src.get("optional"):
            return None
        raise TranslationError(f"{kind} {name!r} not found (volume {volume['name']!r})")
    content = _object_bytes(obj, kind)
    default_mode = src.get("defaultMode")
    if src.get("items"):
        out = []
        for item in src["items"]:
            if item["key"] not in content:
                if src.get("optional"):
                    continue
                raise TranslationError(f"key {item['key']!r} of {kind} {name!r} not found")
            out.append((item["path"], content[item["key"]], item.get("mode", default_mode)))
        return out
    return [(key, value, default_mode) for key, value in sorted(content.items())]


def _object_bytes(obj: JSON, kind: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    if kind == "Secret":
        for key, value in (obj.get("data") or {}).items():
            out[key] = base64.b64decode(value)
        for key, value in (obj.get("stringData") or {}).items():
            out[key] = str(value).encode()
        return out
    for key, value in (obj.get("data") or {}).items():
        out[key] = str(value).encode()
    for key, value in (obj.get("binaryData") or {}).items():
        out[key] = base64.b64decode(value)
    return out


def container_files(
    container: JSON, path: str, volumes: Mapping[str, JSON], sources: Sources, warn: list[str]
) -> list[JSON]:
    """configMap and secret volumes mounted by one container, as `files[]`."""
    files: list[JSON] = []
    for index, mount in enumerate(container.get("volumeMounts") or []):
        volume = volumes.get(mount["name"])
        if volume is None:
            warn.append(f"{path}.volumeMounts[{index}] names no volume ({mount['name']})")
            continue
        if not ("configMap" in volume or "secret" in volume):
            continue  # the volume itself is reported by unsupported_fields
        items = _volume_items(volume, sources) or []
        target, sub_path = mount["mountPath"].rstrip("/"), mount.get("subPath")
        for rel, content, mode in items:
            if sub_path and rel != sub_path:
                continue
            guest_path = target if sub_path else f"{target}/{rel}"
            entry: JSON = {
                "guest_path": guest_path,
                "raw_value": base64.b64encode(content).decode(),
            }
            if mode is not None:
                entry["mode"] = mode
            files.append(entry)
    return files


# --------------------------------------------------------------------------- probes


def _probe_port(probe_handler: JSON, container: JSON) -> int | None:
    port = probe_handler.get("port")
    if isinstance(port, int):
        return port
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    if isinstance(port, str) and port.isdigit():
        return int(port)
    return None


def probe_check(probe: JSON, container: JSON, path: str, warn: list[str]) -> JSON | None:
    """One readiness or liveness probe as a top-level machine check (durations as Go strings)."""
    check: JSON = {
        "interval": f"{probe.get('periodSeconds', DEFAULT_PROBE_PERIOD)}s",
        "timeout": f"{probe.get('timeoutSeconds', DEFAULT_PROBE_TIMEOUT)}s",
        "grace_period": f"{probe.get('initialDelaySeconds', 0)}s",
    }
    if "httpGet" in probe:
        handler = probe["httpGet"]
        check.update(
            type="http",
            method="GET",
            path=handler.get("path", "/"),
            protocol=str(handler.get("scheme", "HTTP")).lower(),
        )
        headers = handler.get("httpHeaders") or []
        if headers:
            check["headers"] = [{"name": h["name"], "values": [h["value"]]} for h in headers]
    elif "tcpSocket" in probe:
        handler = probe["tcpSocket"]
        check["type"] = "tcp"
    else:
        kind = next((k for k in probe if k in ("exec", "grpc")), "handler")
        warn.append(f"{path}.{kind} is not supported yet (only httpGet and tcpSocket probes)")
        return None
    port = _probe_port(handler, container)
    if port is None:
        warn.append(f"{path} names port {handler.get('port')!r}, which the container lacks")
        return None
    check["port"] = port
    return check


def _probe_healthcheck(check: JSON, name: str, kind: str, probe: JSON) -> JSON:
    """The same probe as a per-container healthcheck (multi-container machines; integer seconds)."""
    seconds = {k: int(str(check[k]).rstrip("s")) for k in ("interval", "timeout", "grace_period")}
    target: JSON = {"port": check["port"]}
    if check["type"] == "http":
        target.update(method="GET", path=check["path"], scheme=check["protocol"])
    return {
        "name": name,
        "kind": kind,
        check["type"]: target,
        **seconds,
        "success_threshold": probe.get("successThreshold", 1),
        "failure_threshold": probe.get("failureThreshold", 3),
    }


# --------------------------------------------------------------------------- unsupported fields

# Pod spec keys that are translated, or that only the scheduler reads and so have no meaning
# for a machine (they are accepted without a warning; docs/kubernetes.md lists them).
SPEC_KEYS = {
    "containers",
    "initContainers",
    "volumes",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "nodeName",
    "schedulerName",
    "priority",
    "priorityClassName",
    "preemptionPolicy",
    "tolerations",
    "enableServiceLinks",
    "serviceAccountName",
    "serviceAccount",
    "automountServiceAccountToken",
    "dnsPolicy",
    "dnsConfig",
    # The scheduler matched these against the node's labels before binding the pod here.
    "nodeSelector",
    "os",
}
CONTAINER_KEYS = {
    "name",
    "image",
    "command",
    "args",
    "env",
    "envFrom",
    "resources",
    "volumeMounts",
    "livenessProbe",
    "readinessProbe",
    "ports",
    "imagePullPolicy",
    "terminationMessagePath",
    "terminationMessagePolicy",
}
# Values the API server fills in by default; anything else in these keys is a warning.
DEFAULT_VALUES: dict[str, tuple[Any, ...]] = {
    "securityContext": ({},),
}
SERVICE_ACCOUNT_VOLUME = re.compile(r"^kube-api-access-")
# volumeMounts: configMap and secret files are read-only in Kubernetes anyway, so `readOnly`
# changes nothing; `subPathExpr` and mount propagation are not carried over.
MOUNT_KEYS = {"name", "mountPath", "subPath", "readOnly"}
MOUNT_DEFAULTS: dict[str, tuple[Any, ...]] = {
    "mountPropagation": ("None",),
    "recursiveReadOnly": ("Disabled",),
}


# Volumes a machine carries: files, and one Fly volume (mounts.py) for a claim.
MAPPED_VOLUMES = ("configMap", "secret", "persistentVolumeClaim", "ephemeral")


def unsupported_fields(pod: JSON) -> list[str]:
    """One line per field of the pod that flyk does not carry over to the machine."""
    spec = pod.get("spec") or {}
    out: list[str] = []
    for key, value in spec.items():
        if key == "securityContext" and value in DEFAULT_VALUES["securityContext"]:
            continue
        if key not in SPEC_KEYS:
            out.append(f"spec.{key} is not supported yet")
    for group in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(group) or []):
            out.extend(_unsupported_container_fields(container, f"spec.{group}[{index}]"))
    for index, volume in enumerate(spec.get("volumes") or []):
        if any(kind in volume for kind in MAPPED_VOLUMES):
            continue
        kind = next((k for k in volume if k != "name"), "unknown")
        if kind == "projected" and SERVICE_ACCOUNT_VOLUME.match(volume["name"]):
            out.append(
                f"spec.volumes[{index}] ({volume['name']}, the service account token) "
                "is not supported yet"
            )
        else:
            out.append(f"spec.volumes[{index}].{kind} ({volume['name']}) is not supported yet")
    return out


def _unsupported_container_fields(container: JSON, path: str) -> list[str]:
    out = []
    for key, value in container.items():
        if key == "securityContext" and value in DEFAULT_VALUES["securityContext"]:
            continue
        if key not in CONTAINER_KEYS:
            out.append(f"{path}.{key} is not supported yet")
    resources = container.get("resources") or {}
    for section in resources:
        if section not in ("limits", "requests"):
            out.append(f"{path}.resources.{section} is not supported yet")
    for section in ("limits", "requests"):
        for name in resources.get(section) or {}:
            if name not in ("cpu", "memory"):
                out.append(f"{path}.resources.{section}.{name} is not supported yet")
    for index, mount in enumerate(container.get("volumeMounts") or []):
        for key, value in mount.items():
            if key not in MOUNT_KEYS and value not in MOUNT_DEFAULTS.get(key, ()):
                out.append(f"{path}.volumeMounts[{index}].{key} is not supported yet")
    for probe_key in ("readinessProbe", "livenessProbe"):
        probe = container.get(probe_key) or {}
        if "host" in (probe.get("httpGet") or {}):
            out.append(f"{path}.{probe_key}.httpGet.host is not supported yet")
        if "terminationGracePeriodSeconds" in probe:
            out.append(f"{path}.{probe_key}.terminationGracePeriodSeconds is not supported yet")
    return out


# --------------------------------------------------------------------------- the machine config


@dataclass
class _Container:
    name: str
    image: str
    entrypoint: list[str] | None
    cmd: list[str] | None
    env: _Env
    files: list[JSON]
    checks: dict[str, tuple[str, JSON, JSON]]  # check name -> (kind, check, probe)
    init: bool


def _build_container(
    pod: JSON,
    container: JSON,
    path: str,
    *,
    init: bool,
    volumes: Mapping[str, JSON],
    sources: Sources,
    node: NodeFacts,
    warn: list[str],
) -> _Container:
    env = resolve_env(pod, container, path, sources, node, warn)

    def expanded(items: list[str] | None) -> list[str] | None:
        return None if items is None else [expand_vars(str(i), env.values) for i in items]

    checks: dict[str, tuple[str, JSON, JSON]] = {}
    for probe_key, kind in (("readinessProbe", "readiness"), ("livenessProbe", "liveness")):
        probe = container.get(probe_key)
        if not probe:
            continue
        if init:
            warn.append(f"{path}.{probe_key} is not supported yet (init container)")
            continue
        check = probe_check(probe, container, f"{path}.{probe_key}", warn)
        if check is not None:
            checks[f"{kind}-{container['name']}"] = (kind, check, probe)
    if not container.get("image"):
        raise TranslationError(f"{path}.image is empty", reason="InvalidImageName")
    return _Container(
        name=container["name"],
        image=container["image"],
        entrypoint=expanded(container.get("command")),
        cmd=expanded(container.get("args")),
        env=env,
        files=container_files(container, path, volumes, sources, warn),
        checks=checks,
        init=init,
    )


def build_plan(pod: JSON, sources: Sources, node: NodeFacts) -> MachinePlan:
    """Translate a pod into the machine that runs it. Raises TranslationError when it cannot."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    annotations = meta.get("annotations") or {}
    warnings = unsupported_fields(pod)
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    warn: list[str] = []
    inits = [
        _build_container(
            pod, c, f"spec.initContainers[{i}]", init=True, volumes=volumes,
            sources=sources, node=node, warn=warn,
        )
        for i, c in enumerate(spec.get("initContainers") or [])
    ]  # fmt: skip
    apps = [
        _build_container(
            pod, c, f"spec.containers[{i}]", init=False, volumes=volumes,
            sources=sources, node=node, warn=warn,
        )
        for i, c in enumerate(spec.get("containers") or [])
    ]  # fmt: skip
    if not apps:
        raise TranslationError("the pod has no containers")
    size = choose_guest(spec, annotations)
    config = _base_config(pod, spec, size, node)
    if len(apps) == 1 and not inits:
        _single_container(config, apps[0])
    else:
        _multi_container(config, inits, apps)
    resolver, dns_warnings = pod_dns.machine_dns(pod, node.dns)
    warn.extend(dns_warnings)
    if resolver is not None:
        config["dns"] = resolver
    legacy_hash = config_hash(config)
    hashed = spec_hash(pod, [*inits, *apps], resolver)
    config["metadata"][records.META_SPEC_HASH] = hashed
    return MachinePlan(
        name=machine_name(pod),
        region=pod_region(pod, node.region),
        config=config,
        size=size,
        spec_hash=hashed,
        warnings=tuple(dict.fromkeys([*warnings, *warn])),
        config_hash=legacy_hash,
    )


# Spec keys the scheduler reads (and the API server may add to, as with tolerations): changing
# them changes nothing on the machine.
SCHEDULER_KEYS = frozenset(
    {
        "nodeName",
        "schedulerName",
        "priority",
        "priorityClassName",
        "preemptionPolicy",
        "tolerations",
        "nodeSelector",
        "os",
    }
)


def spec_hash(pod: JSON, containers: list[_Container], dns: JSON | None = None) -> str:
    """What decides whether a machine must be updated (restarted): the pod's spec (less the
    scheduler's keys), its `fly.io/size` annotation, the content resolved for each container
    (env from Secrets, ConfigMaps and the downward API; files from volumes) and the machine's
    `dns` config (a new cluster nameserver must reach running machines), under
    `SPEC_HASH_SCHEME`. Not the machine config: a flyk upgrade that translates the same pod
    differently does not restart its machine. (The region annotation is left out: an update
    does not move a machine.)"""
    spec = {k: v for k, v in (pod.get("spec") or {}).items() if k not in SCHEDULER_KEYS}
    annotations = pod["metadata"].get("annotations") or {}
    inputs = {
        "scheme": SPEC_HASH_SCHEME,
        "spec": spec,
        "size": annotations.get(SIZE_ANNOTATION),
        "resolved": [
            {
                "name": c.name,
                "init": c.init,
                # Service links are left out: a Service made later does not restart a pod.
                "env": {k: v for k, v in c.env.values.items() if c.env.links.get(k) != v},
                "env_from": c.env.from_machine,
                "files": c.files,
            }
            for c in containers
        ],
    }
    if dns is not None:  # absent, the hash is what flyk before cluster DNS computed
        inputs["dns"] = dns
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def _base_config(pod: JSON, spec: JSON, size: GuestSize, node: NodeFacts) -> JSON:
    meta = pod["metadata"]
    grace = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
    return {
        "guest": size.to_api(),
        "restart": {"policy": RESTART_POLICIES.get(spec.get("restartPolicy", "Always"), "always")},
        "stop_config": {"signal": "SIGTERM", "timeout": f"{grace}s"},
        "metadata": {
            records.META_CLUSTER: node.cluster,
            records.META_NAMESPACE: meta["namespace"],
            records.META_POD: meta["name"],
            records.META_POD_UID: meta["uid"],
        },
    }


def _single_container(config: JSON, app: _Container) -> None:
    config["image"] = app.image
    init: JSON = {}
    if app.entrypoint is not None:
        init["entrypoint"] = app.entrypoint
    if app.cmd is not None:
        init["cmd"] = app.cmd
    if init:
        config["init"] = init
    if app.env.values:
        config["env"] = dict(app.env.values)
    if app.env.from_machine:
        # Machine-level env has no env_from; a single process that repeats the command carries
        # it (the Machines API documents env_from as "used for Fly Kubernetes").
        process: JSON = {"env_from": app.env.from_machine}
        process.update(init)
        config["processes"] = [process]
    if app.files:
        config["files"] = app.files
    if app.checks:
        config["checks"] = {
            name: {**check, "kind": "readiness" if kind == "readiness" else "informational"}
            for name, (kind, check, _) in app.checks.items()
        }


def _multi_container(config: JSON, inits: list[_Container], apps: list[_Container]) -> None:
    """Several containers (and init containers) as `containers[]` of a multi-container machine:
    init containers run one after the other, the app containers after the last one exited 0."""
    containers: list[JSON] = []
    previous: str | None = None
    for item in inits:
        entry = _container_entry(item)
        entry["restart"] = {"policy": "no"}
        if previous:
            entry["depends_on"] = [{"name": previous, "condition": "exited_successfully"}]
        containers.append(entry)
        previous = item.name
    for item in apps:
        entry = _container_entry(item)
        if previous:
            entry["depends_on"] = [{"name": previous, "condition": "exited_successfully"}]
        containers.append(entry)
    config["image"] = apps[0].image
    config["containers"] = containers


def _container_entry(item: _Container) -> JSON:
    entry: JSON = {"name": item.name, "image": item.image}
    if item.entrypoint is not None:
        entry["entrypoint"] = item.entrypoint
    if item.cmd is not None:
        entry["cmd"] = item.cmd
    if item.env.values:
        entry["env"] = dict(item.env.values)
    if item.env.from_machine:
        entry["env_from"] = item.env.from_machine
    if item.files:
        entry["files"] = item.files
    if item.checks:
        entry["healthchecks"] = [
            _probe_healthcheck(check, name, kind, probe)
            for name, (kind, check, probe) in item.checks.items()
        ]
    return entry


def config_hash(config: JSON) -> str:
    """A short stable hash of a machine config, without the hash itself (what flyk stored as
    `flyk_spec_hash` before it hashed the pod instead; kept to recognise those machines)."""
    clean = dict(config)
    clean["metadata"] = {
        k: v for k, v in config.get("metadata", {}).items() if k != records.META_SPEC_HASH
    }
    digest = hashlib.sha256(json.dumps(clean, sort_keys=True).encode()).hexdigest()
    return digest[:16]


def iter_referenced(pod: JSON) -> Iterator[tuple[str, str]]:
    """("Secret"|"ConfigMap", name) for everything the pod's env and volumes reference."""
    spec = pod.get("spec") or {}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for source in container.get("envFrom") or []:
            if "secretRef" in source:
                yield "Secret", source["secretRef"].get("name", "")
            if "configMapRef" in source:
                yield "ConfigMap", source["configMapRef"].get("name", "")
        for var in container.get("env") or []:
            value_from = var.get("valueFrom") or {}
            if "secretKeyRef" in value_from:
                yield "Secret", value_from["secretKeyRef"].get("name", "")
            if "configMapKeyRef" in value_from:
                yield "ConfigMap", value_from["configMapKeyRef"].get("name", "")
    for volume in spec.get("volumes") or []:
        if "secret" in volume:
            yield "Secret", volume["secret"].get("secretName", "")
        if "configMap" in volume:
            yield "ConfigMap", volume["configMap"].get("name", "")
