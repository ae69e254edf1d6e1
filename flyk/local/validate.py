"""Request validation: JSON bodies, field types, names and machine config.

Everything here raises a 400-class `ApiError` with a message; nothing a client sends may cause a
500. Field tables list the spec's request properties (plus the documented client variants).

A field a table does not list is ignored, as the real API (a Go service decoding JSON into
structs) ignores it; in strict mode (`FLYK_LOCAL_STRICT`, see `knobs.py`) it is refused the way a
typo deserves. The mode is per request: the core sets it with `strictness()` around each one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from flyk.local.config_schema import ROOT, SCHEMAS
from flyk.local.errors import ApiError, bad_request

__all__ = [
    "APP_NAME",
    "check_fields",
    "parse_json_object",
    "strictness",
    "validate_config",
]

_STRICT: ContextVar[bool] = ContextVar("flyk_local_strict", default=False)


@contextmanager
def strictness(strict: bool) -> Iterator[None]:
    """Within: unknown request fields are refused (True) or ignored (False)."""
    token = _STRICT.set(strict)
    try:
        yield
    finally:
        _STRICT.reset(token)


def is_strict() -> bool:
    return _STRICT.get()


MAX_BODY_BYTES = 1024 * 1024

# A DNS label (<app>.fly.dev, <app>.internal): flyk.config's rule, which the CLI checks first.
APP_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MACHINE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9_.-]{0,61}[a-z0-9])?$")
VOLUME_NAME = re.compile(r"^[a-z0-9_]{1,30}$")
SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,255}$")
METADATA_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")  # Go's time.ParseDuration

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "num": (int, float),
    "bool": (bool,),
    "obj": (dict,),
    "list": (list,),
}


def parse_json_object(raw: bytes, *, allow_empty: bool = True) -> dict[str, Any]:
    """The body as a JSON object; an empty body is `{}` when `allow_empty`."""
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, f"request body too large: limit is {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        if allow_empty:
            return {}
        raise bad_request("request body is required")
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"invalid JSON body: {exc}") from None
    except RecursionError:
        raise bad_request("invalid JSON body: nested too deeply") from None
    if not isinstance(value, dict):
        raise bad_request("invalid JSON body: expected an object")
    _check_encodable(value)
    return value


def _check_encodable(value: Any) -> None:
    """Refuse strings that are not valid Unicode (a lone surrogate such as "\\ud800").

    JSON's escapes can spell them, Python keeps them, but they cannot be stored, echoed back
    or compared as UTF-8; the real API refuses them as invalid JSON. The message does not
    quote the string: it could not be encoded either.
    """
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request(
            "invalid JSON body: a string holds an unpaired surrogate (not valid Unicode)"
        ) from None


# Integers beyond what SQLite (and Go's int64 on the real API) can hold are refused as input.
MAX_INT = 2**53


def _type_ok(value: Any, kind: str) -> bool:
    nullable = kind.endswith("?")
    kind = kind.rstrip("?")
    if value is None:
        return nullable
    if isinstance(value, bool) and kind in {"int", "num"}:
        return False
    if isinstance(value, int) and abs(value) > MAX_INT:
        return False
    return isinstance(value, _PY_TYPES[kind])


def check_fields(body: Mapping[str, Any], allowed: Mapping[str, str], where: str) -> None:
    """Refuse fields of the wrong type, and unknown fields in strict mode (else they are
    ignored). Types: str int num bool obj list, with a trailing `?` when null is accepted."""
    for key, value in body.items():
        if key not in allowed:
            if _STRICT.get():
                raise bad_request(f"invalid {where}: unknown field {key!r}")
            continue
        if not _type_ok(value, allowed[key]):
            expected = allowed[key].rstrip("?")
            raise bad_request(f"invalid {where}: field {key!r} must be {_NAMES[expected]}")


_NAMES = {
    "str": "a string",
    "int": "an integer",
    "num": "a number",
    "bool": "a boolean",
    "obj": "an object",
    "list": "an array",
}


def require(body: Mapping[str, Any], key: str, where: str) -> Any:
    value = body.get(key)
    if value is None or value == "":
        raise bad_request(f"invalid {where}: {key} is required")
    return value


def check_app_name(name: str) -> None:
    if not APP_NAME.match(name):
        raise bad_request(
            f"invalid app name {name!r}: use 1-63 lowercase letters, digits and dashes, "
            "not starting or ending with a dash"
        )


def check_machine_name(name: str) -> None:
    if not MACHINE_NAME.match(name):
        raise bad_request(
            f"invalid machine name {name!r}: use 1-63 lowercase letters, digits, dashes, "
            "dots and underscores, starting and ending with a letter or digit"
        )


def string_map(value: Any, where: str, *, nullable_values: bool = False) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_request(f"invalid {where}: must be an object of strings")
    for key, item in value.items():
        if item is None and nullable_values:
            continue
        if not isinstance(item, str):
            raise bad_request(f"invalid {where}: value of {key!r} must be a string")
    return value


# --- machine config --------------------------------------------------------------------------

CONFIG_FIELDS = {
    "auto_destroy": "bool?", "cache_drive": "obj?", "checks": "obj?", "containers": "list?",
    "disable_machine_autostart": "bool?", "dns": "obj?", "env": "obj?", "files": "list?",
    "guest": "obj?", "image": "str?", "init": "obj?", "metadata": "obj?", "metrics": "obj?",
    "mounts": "list?", "processes": "list?", "restart": "obj?", "rootfs": "obj?",
    "schedule": "str?", "services": "list?", "size": "str?", "standbys": "list?",
    "statics": "list?", "stop_config": "obj?",
}  # fmt: skip
GUEST_FIELDS = {
    "cpu_kind": "str?", "cpus": "int?", "gpu_kind": "str?", "gpus": "int?",
    "host_dedication_id": "str?", "kernel_args": "list?", "max_memory_mb": "int?",
    "memory_mb": "int?", "persist_rootfs": "str?",
}  # fmt: skip
MOUNT_FIELDS = {
    "add_size_gb": "int?", "encrypted": "bool?", "extend_threshold_percent": "int?",
    "name": "str?", "path": "str?", "size_gb": "int?", "size_gb_limit": "int?", "volume": "str?",
}  # fmt: skip
RESTART_FIELDS = {"gpu_bid_price": "num?", "max_retries": "int?", "policy": "str?"}
RESTART_POLICIES = ("no", "always", "on-failure", "spot-price")
CPU_KINDS = {"shared": (256, 2048), "performance": (2048, 8192)}  # MB per CPU, min and max
# The CPU counts of Fly's presets (fly-go machine_types.go: shared-cpu-{1,2,4,6,8}x,
# performance-{1,2,4,6,8,10,12,14,16}x).
CPU_COUNTS = {"shared": (1, 2, 4, 6, 8), "performance": (1, 2, 4, 6, 8, 10, 12, 14, 16)}
DEFAULT_GUEST = {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256}


def validate_config(config: Any) -> dict[str, Any]:
    """Check a machine config and return it with defaults (guest) filled in."""
    if not isinstance(config, dict):
        raise bad_request("invalid config: must be an object")
    check_fields(config, CONFIG_FIELDS, "config")
    check_schema(config, f"@{ROOT}", "config")
    _check_config_strings(config)
    image = config.get("image")
    if not isinstance(image, str) or not image.strip():
        raise bad_request("invalid config.image: an image is required")
    checked: dict[str, Any] = prune(config, f"@{ROOT}")
    checked["guest"] = prune(_validate_guest(config.get("guest")), SCHEMAS[ROOT]["guest"])
    if config.get("env") is not None:
        string_map(config["env"], "config.env")
    if config.get("metadata") is not None:
        string_map(config["metadata"], "config.metadata")
    _validate_restart(config.get("restart"))
    _validate_mounts(config.get("mounts"))
    _validate_checks(config.get("checks"))
    _validate_files(config.get("files"))
    return checked


# Values the spec types as plain strings but which only mean something in one form.
SCHEDULES = ("hourly", "daily", "weekly", "monthly")  # reference §6
_DURATIONS = ("interval", "timeout", "grace_period")
_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "object": "an object",
}


def check_schema(value: Any, kind: str, where: str) -> None:
    """Refuse a value whose type is not the spec's (see `config_schema`); null is accepted
    anywhere, as Go reads it as the zero value. Fields the spec does not name are left alone:
    those the API refuses are refused by the field tables above."""
    if value is None or kind == "any":
        return
    if kind.startswith("@"):
        if not isinstance(value, dict):
            raise bad_request(f"invalid {where}: must be an object")
        props = SCHEMAS[kind[1:]]
        for key, item in value.items():
            if key in props:
                check_schema(item, props[key], f"{where}.{key}")
        return
    if kind.startswith("["):
        if not isinstance(value, list):
            raise bad_request(f"invalid {where}: must be an array")
        for index, item in enumerate(value):
            check_schema(item, kind[1:-1], f"{where}[{index}]")
        return
    if kind.startswith("{"):
        if not isinstance(value, dict):
            raise bad_request(f"invalid {where}: must be an object")
        for key, item in value.items():
            check_schema(item, kind[1:-1], f"{where}.{key}")
        return
    if kind.startswith("enum:"):
        choices = kind.removeprefix("enum:").split(",")
        if value not in choices:
            raise bad_request(f"invalid {where} {value!r}: use one of {', '.join(choices)}")
        return
    short = {"string": "str", "integer": "int", "number": "num", "boolean": "bool"}
    if not _type_ok(value, short.get(kind, "obj")):
        raise bad_request(f"invalid {where}: must be {_TYPE_NAMES.get(kind, kind)}")


def prune(value: Any, kind: str) -> Any:
    """The value without the fields its schema does not name, at any depth: what the real API
    keeps of a config once Go has decoded it (a field it does not know is dropped, not echoed
    back). Call after `check_schema`, which checked the shapes."""
    if value is None:
        return None
    if kind.startswith("@") and isinstance(value, dict):
        props = SCHEMAS[kind[1:]]
        return {key: prune(item, props[key]) for key, item in value.items() if key in props}
    if kind.startswith("[") and isinstance(value, list):
        return [prune(item, kind[1:-1]) for item in value]
    if kind.startswith("{") and isinstance(value, dict):
        return {key: prune(item, kind[1:-1]) for key, item in value.items()}
    return value


def _check_config_strings(config: dict[str, Any]) -> None:
    """The strings of a config whose form matters: the schedule and the Go durations."""
    schedule = config.get("schedule")
    if schedule not in (None, "") and schedule not in SCHEDULES:
        raise bad_request(f"invalid config.schedule {schedule!r}: use {', '.join(SCHEDULES)}")
    _check_duration((config.get("stop_config") or {}).get("timeout"), "config.stop_config.timeout")
    for name, check in (config.get("checks") or {}).items():
        for key in _DURATIONS:
            _check_duration((check or {}).get(key), f"config.checks.{name}.{key}")
    for index, service in enumerate(config.get("services") or []):
        for number, check in enumerate((service or {}).get("checks") or []):
            for key in _DURATIONS:
                where = f"config.services[{index}].checks[{number}].{key}"
                _check_duration((check or {}).get(key), where)


def _check_duration(value: Any, where: str) -> None:
    if value is not None and not DURATION.match(value):
        raise bad_request(f"invalid {where} {value!r}: use a duration such as 10s or 1m30s")


def _validate_guest(guest: Any) -> dict[str, Any]:
    if guest is None:
        return dict(DEFAULT_GUEST)
    check_fields(guest, GUEST_FIELDS, "config.guest")
    merged = {**DEFAULT_GUEST, **{k: v for k, v in guest.items() if v is not None}}
    kind, cpus, memory = merged["cpu_kind"], merged["cpus"], merged["memory_mb"]
    if kind not in CPU_KINDS:
        raise bad_request(f"invalid config.guest.cpu_kind {kind!r}: use shared or performance")
    if cpus not in CPU_COUNTS[kind]:
        choices = ", ".join(map(str, CPU_COUNTS[kind]))
        raise bad_request(f"invalid config.guest.cpus {cpus} for {kind}: use one of {choices}")
    if memory <= 0 or memory % 256:
        raise bad_request(f"invalid config.guest.memory_mb {memory}: must be a multiple of 256")
    low, high = CPU_KINDS[kind]
    if memory < low * cpus:
        raise bad_request(
            f"invalid config.guest.memory_mb, minimum required {low * cpus} MiB "
            f"for {cpus} {kind} cpu(s)"
        )
    if memory > high * cpus:
        raise bad_request(
            f"invalid config.guest.memory_mb, maximum allowed {high * cpus} MiB "
            f"for {cpus} {kind} cpu(s)"
        )
    return merged


def _validate_restart(restart: Any) -> None:
    if restart is None:
        return
    check_fields(restart, RESTART_FIELDS, "config.restart")
    policy = restart.get("policy")
    if policy is not None and policy not in RESTART_POLICIES:
        raise bad_request(
            f"invalid config.restart.policy {policy!r}: use {', '.join(RESTART_POLICIES)}"
        )
    retries = restart.get("max_retries")
    if retries is not None and retries < 0:
        raise bad_request("invalid config.restart.max_retries: must be >= 0")


def _validate_mounts(mounts: Any) -> None:
    if mounts is None:
        return
    if len(mounts) > 1:
        raise bad_request("invalid config.mounts: a machine can mount at most one volume")
    for mount in mounts:
        if not isinstance(mount, dict):
            raise bad_request("invalid config.mounts: each mount must be an object")
        check_fields(mount, MOUNT_FIELDS, "config.mounts[]")
        if not mount.get("volume"):
            raise bad_request("invalid config.mounts[].volume: a volume id is required")
        path = mount.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise bad_request("invalid config.mounts[].path: an absolute path is required")


def _validate_checks(checks: Any) -> None:
    if checks is None:
        return
    for name, check in checks.items():
        if not isinstance(check, dict):
            raise bad_request(f"invalid config.checks.{name}: must be an object")
        kind = check.get("type")
        if kind is not None and kind not in {"tcp", "http"}:
            raise bad_request(f"invalid config.checks.{name}.type {kind!r}: use tcp or http")


def _validate_files(files: Any) -> None:
    if files is None:
        return
    for item in files:
        if not isinstance(item, dict):
            raise bad_request("invalid config.files: each file must be an object")
        path = item.get("guest_path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise bad_request("invalid config.files[].guest_path: an absolute path is required")
