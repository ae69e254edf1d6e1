"""Read-only checks against the real Fly.io API: run with FLYK_TEST_LIVE=1 and FLY_API_TOKEN.

Skipped otherwise. They only read (token, regions, apps), so they cost nothing and change
nothing; the write paths are covered against the local backend, which follows the spec.
"""

from __future__ import annotations

import os

import pytest

from flyk.api import FlyClient, RateLimiter

# Read at import: the autouse isolation fixture removes the variables before each test.
_LIVE = os.environ.get("FLYK_TEST_LIVE") == "1"
_TOKEN = os.environ.get("FLY_API_TOKEN") or os.environ.get("FLY_ACCESS_TOKEN")
_BASE_URL = os.environ.get("FLY_FLAPS_BASE_URL")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not (_LIVE and _TOKEN), reason="needs FLYK_TEST_LIVE=1 and a token"),
]


@pytest.fixture
def live() -> FlyClient:
    return FlyClient(_BASE_URL, _TOKEN, rate_limiter=RateLimiter())


def test_token_regions_and_apps(live: FlyClient) -> None:
    info = live.tokens.current()
    regions = live.platform.regions()
    assert regions.regions and all(region.code for region in regions.regions)
    for org in info.org_slugs[:1] or ["personal"]:
        for app in live.apps.list(org):
            assert app.name
