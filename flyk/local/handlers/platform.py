"""Platform and tokens: regions (with capacity), placements, the current token."""

from __future__ import annotations

import hashlib
from typing import Any

from flyk.local.context import Ctx, Reply
from flyk.local.errors import bad_request
from flyk.local.handlers.volumes import volume_room_gb
from flyk.local.records import advance_region, get_org
from flyk.local.regions import NEAREST, REGIONS, resolve_expression
from flyk.local.validate import check_fields, require

# Memory of the named guest presets, for `?size=` and placement counts.
PRESET_MEMORY_MB = {
    "shared-cpu-1x": 256, "shared-cpu-2x": 512, "shared-cpu-4x": 1024, "shared-cpu-8x": 2048,
    "performance-1x": 2048, "performance-2x": 4096, "performance-4x": 8192,
    "performance-8x": 16384, "performance-16x": 32768,
}  # fmt: skip
PLACEMENT_FIELDS = {
    "org_slug": "str", "compute": "obj?", "region": "str?", "count": "int?",
    "volume_name": "str?", "volume_size_bytes": "int?", "weights": "obj?",
}  # fmt: skip
USER = "local@flyk.dev"


def _fits(ctx: Ctx, region: str, memory_mb: int) -> int:
    """How many more machines of `memory_mb` the region's budget holds."""
    free = ctx.settings.capacity.limit(region) - advance_region(
        ctx.db, region, ctx.now_ms, ctx.timing
    )
    return max(0, free // memory_mb)


def regions(ctx: Ctx) -> Reply:
    size = ctx.q("size") or "shared-cpu-1x"
    if size not in PRESET_MEMORY_MB:
        raise bad_request(f"unknown size {size!r}; use one of {', '.join(PRESET_MEMORY_MB)}")
    memory = PRESET_MEMORY_MB[size]
    rows = [REGIONS[code].to_json(_fits(ctx, code, memory)) for code in sorted(REGIONS)]
    return Reply(200, {"regions": rows, "nearest": NEAREST})


def placements(ctx: Ctx) -> Reply:
    body = ctx.json()
    check_fields(body, PLACEMENT_FIELDS, "placement request")
    get_org(ctx.db, require(body, "org_slug", "placement request"))
    compute = body.get("compute") or {}
    memory = compute.get("memory_mb") or 2048  # the spec's default: a performance-1x machine
    if isinstance(memory, bool) or not isinstance(memory, int) or memory <= 0:
        raise bad_request("invalid compute.memory_mb: must be a positive integer")
    count = body.get("count") or 0
    if count < 0:
        raise bad_request("invalid count: must be >= 0")
    volume_bytes = body.get("volume_size_bytes") or 0
    if isinstance(volume_bytes, bool) or not isinstance(volume_bytes, int) or volume_bytes < 0:
        raise bad_request("invalid volume_size_bytes: must be a positive integer")
    volume_gb = -(-volume_bytes // 1024**3)  # each machine placed gets a volume of its own
    result: list[dict[str, Any]] = []
    for region in resolve_expression(body.get("region") or f"{NEAREST},any"):
        fits = _fits(ctx, region, memory)
        if volume_gb:
            fits = min(fits, volume_room_gb(ctx, region) // volume_gb)
        placed = fits if count == 0 else min(count, fits)
        if placed > 0:
            result.append({"region": region, "count": placed, "concurrency": placed})
    return Reply(200, {"regions": result})


def current_token(ctx: Ctx) -> Reply:
    """Any token (or none) is accepted; it has access to every org the backend knows."""
    orgs = ctx.db.execute("SELECT * FROM orgs ORDER BY slug").fetchall()
    tokens = []
    for org in orgs:
        apps = ctx.db.execute(
            "SELECT name FROM apps WHERE org_slug = ? ORDER BY name", (org["slug"],)
        ).fetchall()
        tokens.append(
            {
                "token_id": hashlib.sha256(org["slug"].encode()).hexdigest()[:16],
                "org_slug": org["slug"],
                "organization": org["name"],
                "user": USER,
                "apps": [a["name"] for a in apps],
            }
        )
    return Reply(200, {"tokens": tokens})
