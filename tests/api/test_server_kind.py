"""`FlyClient.server_kind`: what answers, read from responses the client already received."""

from __future__ import annotations

from pathlib import Path

import pytest

from flyk.api import FlyClient, RateLimiter
from flyk.errors import NotFoundError
from flyk.local import LocalBackend, Timing
from tests.api.helpers import Script, make_client, reply


def test_server_kind_is_read_from_the_latest_response_with_a_server_header(
    script: Script,
) -> None:
    script.on("GET /apps/a", reply(200, {"name": "a"}, {"server": "flyk-local Python/3.12.3"}))
    script.on("GET /apps/b", reply(200, {"name": "b"}))
    script.on("GET /apps/c", reply(404, {"error": "not found"}, {"server": "Fly/8e44c1b (2025)"}))
    client = make_client(script)
    assert client.server_kind is None  # nothing received yet
    client.apps.get("a")
    assert client.server_kind == "flyk-local"
    client.apps.get("b")  # no header: what was learnt stays
    assert client.server_kind == "flyk-local"
    with pytest.raises(NotFoundError):
        client.apps.get("c")  # an error response says who answered as well
    assert client.server_kind == "Fly"


@pytest.mark.served
def test_a_served_local_backend_says_it_is_flyk_local(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "db", timing=Timing.instant())
    served = backend.serve()
    try:
        with FlyClient(base_url=served.url, rate_limiter=RateLimiter.unlimited()) as client:
            client.platform.regions()
            assert client.server_kind == "flyk-local"
    finally:
        served.close()
