"""Guest presets, memory parsing and the size rules."""

from __future__ import annotations

import pytest

from flyk.api import GuestConfig
from flyk.api.machine_sizes import PRESETS, guest_for, parse_memory_mb, preset, validate_guest
from flyk.errors import UsageError


@pytest.mark.parametrize(
    ("name", "kind", "cpus", "memory"),
    [
        ("shared-cpu-1x", "shared", 1, 256),
        ("shared-cpu-2x", "shared", 2, 512),
        ("shared-cpu-4x", "shared", 4, 1024),
        ("shared-cpu-8x", "shared", 8, 2048),
        ("performance-1x", "performance", 1, 2048),
        ("performance-2x", "performance", 2, 4096),
        ("performance-16x", "performance", 16, 32768),
    ],
)
def test_presets(name: str, kind: str, cpus: int, memory: int) -> None:
    assert preset(name) == GuestConfig(cpu_kind=kind, cpus=cpus, memory_mb=memory)


def test_every_preset_is_valid() -> None:
    assert len(PRESETS) == 9
    for guest in PRESETS.values():
        validate_guest(guest)


@pytest.mark.parametrize(
    ("text", "mb"),
    [
        ("512", 512),
        ("512mb", 512),
        ("2048MB", 2048),
        ("1gb", 1024),
        ("1.5gb", 1536),
        ("2g", 2048),
        (" 256 ", 256),
        (768, 768),
    ],
)
def test_parse_memory(text: str | int, mb: int) -> None:
    assert parse_memory_mb(text) == mb


@pytest.mark.parametrize("text", ["", "lots", "1tb", "-5", "0.1mb"])
def test_parse_memory_rejects_nonsense(text: str) -> None:
    with pytest.raises(UsageError):
        parse_memory_mb(text)


@pytest.mark.parametrize(
    ("guest", "message"),
    [
        (
            GuestConfig(cpu_kind="shared", cpus=1, memory_mb=300),
            "multiple of 256 MB, got 300 MB; try 512 MB",
        ),
        (GuestConfig(cpu_kind="shared", cpus=1, memory_mb=4096), "1 shared CPU takes 256–2048 MB"),
        (GuestConfig(cpu_kind="shared", cpus=2, memory_mb=256), "2 shared CPUs take 512–4096 MB"),
        (
            GuestConfig(cpu_kind="performance", cpus=1, memory_mb=1024),
            "1 performance CPU takes 2048–8192 MB",
        ),
        (
            GuestConfig(cpu_kind="performance", cpus=2, memory_mb=32768),
            "2 performance CPUs take 4096–16384 MB",
        ),
        (GuestConfig(cpu_kind="gpu", cpus=1, memory_mb=256), "unknown CPU kind 'gpu'"),
        (GuestConfig(cpu_kind="shared", cpus=0, memory_mb=256), "at least 1 CPU"),
    ],
)
def test_validation_says_what_is_wrong(guest: GuestConfig, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        validate_guest(guest)
    assert message in caught.value.message
    assert "\n" not in caught.value.message


def test_guest_for_applies_memory_and_validates() -> None:
    assert guest_for("shared-cpu-2x", memory="1gb") == GuestConfig(
        cpu_kind="shared", cpus=2, memory_mb=1024
    )
    assert guest_for() == preset("shared-cpu-1x")
    with pytest.raises(UsageError, match="256–2048"):
        guest_for("shared-cpu-1x", memory="4gb")
    with pytest.raises(UsageError, match="unknown machine size"):
        guest_for("huge")
