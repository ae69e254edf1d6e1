"""The backend's knobs: timing, capacity, rate limits, faults and strictness.

Each is a plain object owned by one `LocalBackend` (not stored in SQLite): tests set them through
the Python API, and a served backend exposes them under `/_flyk/`. They are thread-safe because the
served backend handles requests on many threads.

Strictness is the one knob read from the environment: `FLYK_LOCAL_STRICT=1` (or true, yes, on)
makes a backend refuse request fields the spec does not name (400 `unknown field`), where by
default it ignores them as the real API does. flyk's own test suite runs strict, so that a typo
in flyk's client is caught; `LocalBackend(strict=…)` or `backend.strict = …` overrides it.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

__all__ = [
    "STRICT_ENV_VAR",
    "Capacity",
    "FaultKind",
    "FaultRule",
    "Faults",
    "RateLimits",
    "Timing",
    "strict_from_env",
]

STRICT_ENV_VAR = "FLYK_LOCAL_STRICT"
_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


def strict_from_env(env: Mapping[str, str] | None = None) -> bool:
    """Whether `FLYK_LOCAL_STRICT` asks for strict request checking (1, true, yes, on)."""
    value = (os.environ if env is None else env).get(STRICT_ENV_VAR, "")
    return value.strip().lower() in _TRUE_WORDS


@dataclass(frozen=True)
class Timing:
    """How long the simulated transitions take, in seconds.

    Transitions are scheduled with these durations when a request arrives and then computed from
    recorded timestamps, so they progress between separate processes without a daemon.
    """

    boot: float = 0.0  # starting -> started (also resume from suspended)
    stop: float = 0.0  # stopping -> stopped, and the stop half of restart and replace
    suspend: float = 0.0  # suspending -> suspended
    destroy: float = 0.0  # destroying -> destroyed
    restart_delay: float = 0.0  # exit -> starting again when the restart policy restarts it

    @classmethod
    def instant(cls) -> Timing:
        """Every transition completes at once: for tests."""
        return cls()

    @classmethod
    def realistic(cls) -> Timing:
        """Roughly what a small Fly Machine feels like: for demos."""
        return cls(boot=1.0, stop=0.5, suspend=0.8, destroy=0.3, restart_delay=1.0)

    def to_json(self) -> dict[str, float]:
        return asdict(self)

    def updated(self, changes: dict[str, Any]) -> Timing:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown timing field(s): {', '.join(unknown)}")
        values: dict[str, float] = {}
        for name, value in changes.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"timing.{name} must be a number of seconds >= 0")
            values[name] = float(value)
        return replace(self, **values)


# Default budget per region: generous, so capacity errors happen only when a test asks for them.
DEFAULT_REGION_MEMORY_MB = 1_048_576
DEFAULT_REGION_VOLUME_GB = 1_048_576  # 1 PB of volumes per region: no budget unless set


class Capacity:
    """Budgets per region: memory for machines (MB), disk for volumes (GB).

    Machines that are not destroyed count against the memory budget, volumes that are not
    destroyed against the volume budget. Both default to effectively unlimited."""

    def __init__(
        self,
        default_memory_mb: int = DEFAULT_REGION_MEMORY_MB,
        default_volume_gb: int = DEFAULT_REGION_VOLUME_GB,
    ) -> None:
        self._lock = threading.Lock()
        self._default = default_memory_mb
        self._regions: dict[str, int] = {}
        self._volume_default = default_volume_gb
        self._volume_regions: dict[str, int] = {}

    def set(self, region: str, memory_mb: int) -> None:
        """Limit one region to `memory_mb` MB of machines (0: the region is full)."""
        with self._lock:
            self._regions[region] = memory_mb

    def set_default(self, memory_mb: int) -> None:
        with self._lock:
            self._default = memory_mb

    def limit(self, region: str) -> int:
        with self._lock:
            return self._regions.get(region, self._default)

    def set_volumes(self, region: str, size_gb: int) -> None:
        """Limit one region to `size_gb` GB of volumes (0: no volume fits)."""
        with self._lock:
            self._volume_regions[region] = size_gb

    def set_volume_default(self, size_gb: int) -> None:
        with self._lock:
            self._volume_default = size_gb

    def volume_limit(self, region: str) -> int:
        with self._lock:
            return self._volume_regions.get(region, self._volume_default)

    def reset(self) -> None:
        with self._lock:
            self._default = DEFAULT_REGION_MEMORY_MB
            self._regions.clear()
            self._volume_default = DEFAULT_REGION_VOLUME_GB
            self._volume_regions.clear()

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "default_memory_mb": self._default,
                "regions": dict(self._regions),
                "default_volume_gb": self._volume_default,
                "volume_regions": dict(self._volume_regions),
            }


@dataclass(frozen=True)
class _Bucket:
    rate: float  # tokens per second
    burst: int


class RateLimits:
    """Fly's documented limits as token buckets, per action and per machine (or app).

    Off by default; `enable()` turns them on. A limited request gets 429 with `Retry-After`.
    """

    ACTION = _Bucket(rate=1.0, burst=3)
    GET_MACHINE = _Bucket(rate=5.0, burst=10)
    # A request this early is still let through: it absorbs the jitter between when a client's
    # own limiter released a request and when the request arrives here.
    TOLERANCE_SECONDS = 0.025

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.enabled = False
        self._tokens: dict[tuple[str, str], tuple[float, float]] = {}  # key -> (tokens, at)

    def enable(self, enabled: bool = True) -> None:
        with self._lock:
            self.enabled = enabled
            self._tokens.clear()

    def reset(self) -> None:
        self.enable(False)

    def take(self, action: str, scope: str, *, get_machine: bool, now: float) -> float:
        """Take a token; return 0 when allowed, else the seconds until one is available."""
        bucket = self.GET_MACHINE if get_machine else self.ACTION
        with self._lock:
            if not self.enabled:
                return 0.0
            key = (action, scope)
            tokens, at = self._tokens.get(key, (float(bucket.burst), now))
            tokens = min(float(bucket.burst), tokens + max(0.0, now - at) * bucket.rate)
            if tokens >= 1.0 - self.TOLERANCE_SECONDS * bucket.rate:
                self._tokens[key] = (max(0.0, tokens - 1.0), now)
                return 0.0
            self._tokens[key] = (tokens, now)
            return (1.0 - tokens) / bucket.rate

    def to_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "action": {"per_second": self.ACTION.rate, "burst": self.ACTION.burst},
            "get_machine": {"per_second": self.GET_MACHINE.rate, "burst": self.GET_MACHINE.burst},
        }


FaultKind = Literal["latency", "rate_limit", "server_error", "drop_after_commit"]
FAULT_KINDS: tuple[str, ...] = ("latency", "rate_limit", "server_error", "drop_after_commit")


@dataclass
class FaultRule:
    """One scripted fault: it fires on matching `/v1` requests, `times` times (None: forever).

    - latency: sleep `seconds` before handling the request (then handle it normally);
    - rate_limit: answer 429 with `Retry-After: retry_after`, doing nothing;
    - server_error: answer `status` (5xx), doing nothing;
    - drop_after_commit: handle and commit the request, then drop the connection without a
      response (in-process: the transport raises `httpx.RemoteProtocolError`).
    """

    kind: FaultKind
    method: str | None = None  # e.g. "POST"; None matches every method
    path: str | None = None  # regular expression searched in the path (after /v1)
    times: int | None = 1
    status: int = 503
    seconds: float = 0.0
    retry_after: int = 1
    fired: int = field(default=0, compare=False)

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path is None or re.search(self.path, path) is not None

    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        known = {f.name for f in fields(cls)} - {"fired"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(unknown)}")
        kind = data.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}")
        rule = cls(**data)
        rule.validate()
        return rule

    def validate(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}")
        if self.times is not None and (not isinstance(self.times, int) or self.times < 1):
            raise ValueError("fault times must be a positive integer or null")
        if self.kind == "server_error" and not 500 <= self.status <= 599:
            raise ValueError("a server_error fault needs a 5xx status")
        if self.path is not None:
            re.compile(self.path)
        if self.seconds < 0 or not math.isfinite(self.seconds):
            raise ValueError("fault seconds must be >= 0")
        if self.retry_after < 0:
            raise ValueError("fault retry_after must be >= 0")


class Faults:
    """The scripted faults of one backend, tried in the order they were added."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(
        self,
        kind: FaultKind,
        *,
        method: str | None = None,
        path: str | None = None,
        times: int | None = 1,
        status: int = 503,
        seconds: float = 0.0,
        retry_after: int = 1,
    ) -> FaultRule:
        rule = FaultRule(kind, method, path, times, status, seconds, retry_after)
        rule.validate()
        self.add_rule(rule)
        return rule

    def add_rule(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def reset(self) -> None:
        self.clear()

    def take(self, method: str, path: str) -> list[FaultRule]:
        """The faults that fire for this request (at most one of each kind), counted as fired."""
        fired: list[FaultRule] = []
        kinds: set[str] = set()
        with self._lock:
            for rule in self._rules:
                if rule.kind in kinds or rule.exhausted() or not rule.matches(method, path):
                    continue
                rule.fired += 1
                kinds.add(rule.kind)
                fired.append(rule)
            self._rules = [r for r in self._rules if not r.exhausted()]
        return fired

    def to_json(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_json() for rule in self._rules]
