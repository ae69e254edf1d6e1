"""The 18 current Fly.io regions (docs reference/regions, 2026-08) and region expressions."""

from __future__ import annotations

from dataclasses import dataclass

from flyk.local.errors import bad_request

__all__ = ["NEAREST", "REGIONS", "Region", "resolve_expression"]


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    latitude: float
    longitude: float
    geo_region: str
    us: bool = False
    gateway_available: bool = True

    def to_json(self, capacity: int) -> dict[str, object]:
        return {
            "code": self.code,
            "name": self.name,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "gateway_available": self.gateway_available,
            "requires_paid_plan": False,
            "deprecated": False,
            "geo_region": self.geo_region,
            "capacity": capacity,
        }


_NA, _SA, _EU, _AP, _AF = "north_america", "south_america", "europe", "asia_pacific", "africa"

REGIONS: dict[str, Region] = {
    r.code: r
    for r in (
        Region("ams", "Amsterdam, Netherlands", 52.374342, 4.895439, _EU),
        Region("arn", "Stockholm, Sweden", 59.6512, 17.9178, _EU),
        Region("bom", "Mumbai, India", 19.097403, 72.874245, _AP),
        Region("cdg", "Paris, France", 48.860875, 2.353477, _EU),
        Region("dfw", "Dallas, Texas (US)", 32.778287, -96.7984, _NA, us=True),
        Region("ewr", "Secaucus, NJ (US)", 40.789543, -74.056315, _NA, us=True),
        Region("fra", "Frankfurt, Germany", 50.1167, 8.6833, _EU),
        Region("gru", "Sao Paulo, Brazil", -23.549664, -46.654351, _SA, gateway_available=False),
        Region("iad", "Ashburn, Virginia (US)", 39.02214, -77.462556, _NA, us=True),
        Region(
            "jnb", "Johannesburg, South Africa", -26.20227, 28.04363, _AF, gateway_available=False
        ),
        Region("lax", "Los Angeles, California (US)", 33.9416, -118.4085, _NA, us=True),
        Region("lhr", "London, United Kingdom", 51.516434, -0.125656, _EU),
        Region("nrt", "Tokyo, Japan", 35.621608, 139.741851, _AP),
        Region("ord", "Chicago, Illinois (US)", 41.891544, -87.630386, _NA, us=True),
        Region("sin", "Singapore, Singapore", 1.3, 103.8, _AP),
        Region("sjc", "San Jose, California (US)", 37.351601, -121.896744, _NA, us=True),
        Region("syd", "Sydney, Australia", -33.866034, 151.216613, _AP),
        Region("yyz", "Toronto, Canada", 43.644444, -79.383333, _NA),
    )
}

# The region "nearest the caller" when a create names none: the local backend is "in" iad.
NEAREST = "iad"

_ALIASES: dict[str, tuple[str, ...]] = {
    "us": tuple(c for c, r in REGIONS.items() if r.us),
    "na": tuple(c for c, r in REGIONS.items() if r.geo_region == _NA),
    "sa": tuple(c for c, r in REGIONS.items() if r.geo_region == _SA),
    "eu": tuple(c for c, r in REGIONS.items() if r.geo_region == _EU),
    "apac": tuple(c for c, r in REGIONS.items() if r.geo_region == _AP),
    "af": tuple(c for c, r in REGIONS.items() if r.geo_region == _AF),
    "any": (NEAREST, *(code for code in REGIONS if code != NEAREST)),
}


def resolve_expression(expression: str) -> list[str]:
    """Region codes in priority order for an expression like "lhr,eu" or "any".

    Raises a 400 for an empty expression or an unknown code or alias.
    """
    ordered: list[str] = []
    parts = [p.strip().lower() for p in expression.split(",")]
    if not parts or any(not p for p in parts):
        raise bad_request(f"invalid region expression {expression!r}")
    for part in parts:
        if part in REGIONS:
            codes: tuple[str, ...] = (part,)
        elif part in _ALIASES:
            codes = _ALIASES[part]
        else:
            raise bad_request(
                f"unknown region {part!r}; valid regions are {', '.join(sorted(REGIONS))}"
            )
        ordered.extend(c for c in codes if c not in ordered)
    return ordered
