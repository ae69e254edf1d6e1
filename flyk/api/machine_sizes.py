"""Guest presets (`shared-cpu-1x` …) and the rules the API enforces on guest sizes.

Shared CPUs take 256–2048 MB per CPU (256 MB per CPU by default); performance CPUs take
2048–8192 MB per CPU (2048 MB per CPU by default); memory is always a multiple of 256 MB
(reference §7, fly-go `machine_types.go`). Validating here turns an API round trip and a
terse 400 into a one-line message that says how to fix the size.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from flyk.api.models import GuestConfig
from flyk.errors import UsageError

MEMORY_STEP_MB = 256


@dataclass(frozen=True)
class CpuKind:
    name: str
    min_mb_per_cpu: int
    max_mb_per_cpu: int
    default_mb_per_cpu: int
    cpu_counts: tuple[int, ...]


SHARED = CpuKind("shared", 256, 2048, 256, (1, 2, 4, 8))
PERFORMANCE = CpuKind("performance", 2048, 8192, 2048, (1, 2, 4, 8, 16))
CPU_KINDS = {kind.name: kind for kind in (SHARED, PERFORMANCE)}


def _preset_name(kind: CpuKind, cpus: int) -> str:
    prefix = "shared-cpu" if kind is SHARED else "performance"
    return f"{prefix}-{cpus}x"


PRESETS: dict[str, GuestConfig] = {
    _preset_name(kind, cpus): GuestConfig(
        cpu_kind=kind.name, cpus=cpus, memory_mb=cpus * kind.default_mb_per_cpu
    )
    for kind in (SHARED, PERFORMANCE)
    for cpus in kind.cpu_counts
}
DEFAULT_SIZE = "shared-cpu-1x"


# The largest sizes Fly offers (the presets): CPUs per kind, and memory of any machine.
MAX_CPUS: dict[str, int] = {
    kind.name: max(g.cpus or 0 for g in PRESETS.values() if g.cpu_kind == kind.name)
    for kind in (SHARED, PERFORMANCE)
}
MAX_MEMORY_MB = max(MAX_CPUS[kind.name] * kind.max_mb_per_cpu for kind in (SHARED, PERFORMANCE))


def preset(name: str) -> GuestConfig:
    """The guest for a preset name such as "shared-cpu-2x" or "performance-4x"."""
    guest = PRESETS.get(name.strip().lower())
    if guest is None:
        raise UsageError(
            f"unknown machine size {name!r}; choose one of: {', '.join(PRESETS)}",
        )
    return guest


def guest_for(
    size: str | None = None, *, memory: str | int | None = None, memory_flag: str = "--memory"
) -> GuestConfig:
    """A validated guest from a preset name and an optional `--memory` override (named
    `memory_flag` in messages, for commands that call it something else)."""
    guest = preset(size or DEFAULT_SIZE)
    if memory is not None:
        guest = GuestConfig(
            cpu_kind=guest.cpu_kind, cpus=guest.cpus, memory_mb=parse_memory_mb(memory)
        )
    validate_guest(guest, memory_flag=memory_flag)
    return guest


_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(gb|g|gib|mb|m|mib)?\s*$", re.IGNORECASE)


def parse_memory_mb(value: str | int) -> int:
    """Parse `--memory`: "512" and "512mb" are megabytes, "1gb" is 1024 MB."""
    if isinstance(value, int):
        return value
    match = _MEMORY.match(value)
    if match is None:
        raise UsageError(
            f"cannot read memory {value!r}; write megabytes or gigabytes, e.g. 512, 2048mb, 1gb"
        )
    number, unit = float(match.group(1)), (match.group(2) or "mb").lower()
    megabytes = number * 1024 if unit.startswith("g") else number
    if not math.isfinite(megabytes) or megabytes > MAX_MEMORY_MB:
        raise UsageError(
            f"memory {value!r} is more than any machine has (at most {MAX_MEMORY_MB} MB)"
        )
    if megabytes != int(megabytes):
        raise UsageError(f"memory {value!r} is not a whole number of megabytes")
    return int(megabytes)


def validate_guest(guest: GuestConfig, *, memory_flag: str = "--memory") -> None:
    """Raise UsageError (one line: what is wrong and how to fix it) for a size the API rejects."""
    kind = CPU_KINDS.get(guest.cpu_kind or "")
    if kind is None:
        raise UsageError(
            f"unknown CPU kind {guest.cpu_kind!r}; use 'shared' or 'performance'",
        )
    cpus, memory = guest.cpus or 0, guest.memory_mb or 0
    if cpus < 1:
        raise UsageError(f"a machine needs at least 1 CPU, got {cpus}")
    if cpus > MAX_CPUS[kind.name]:
        raise UsageError(
            f"a {kind.name} machine has at most {MAX_CPUS[kind.name]} CPUs, got {cpus}"
        )
    if memory <= 0 or memory % MEMORY_STEP_MB:
        rounded = max(MEMORY_STEP_MB, -(-memory // MEMORY_STEP_MB) * MEMORY_STEP_MB)
        raise UsageError(
            f"memory must be a multiple of {MEMORY_STEP_MB} MB, got {memory} MB; try {rounded} MB"
        )
    low, high = cpus * kind.min_mb_per_cpu, cpus * kind.max_mb_per_cpu
    if not low <= memory <= high:
        raise UsageError(
            f"{cpus} {kind.name} {'CPUs take' if cpus > 1 else 'CPU takes'} {low}–{high} MB "
            "of memory, "
            f"got {memory} MB; change {memory_flag} or pick another size"
        )
