"""Fly's logs API as the local backend serves it (`GET /api/v1/apps/{app}/logs`), with the lines
its simulated workloads write; read through flyk's client, in process and over HTTP."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from flyk.api import FlyClient, RateLimiter
from flyk.api.logs import FLY_LOGS_BASE, logs_base_url
from flyk.errors import InvalidRequestError, NotFoundError
from flyk.local import LocalBackend
from flyk.local.handlers.logs import PAGE_SIZE

from .conftest import FakeClock, checked_client, make_app, make_machine


def _client(backend: LocalBackend) -> FlyClient:
    return FlyClient(transport=backend.transport(), rate_limiter=RateLimiter.unlimited())


def _messages(fly: FlyClient, app: str, **query: str) -> list[str]:
    return [e.message for e in fly.logs.page(app, **query).entries if e.from_app]


def test_a_machine_writes_its_lines_at_each_start_and_ticks_while_started(
    clocked: Callable[..., LocalBackend], clock: FakeClock
) -> None:
    backend = clocked()
    with checked_client(backend.transport()) as http, _client(backend) as fly:
        make_app(http)
        env = {"FLYK_SIM_LOG": "hello\nworld", "FLYK_SIM_LOG_EVERY": "2"}
        machine = make_machine(http, config={"image": "nginx", "env": env})
        make_machine(http, config={"image": "redis", "env": {"FLYK_SIM_LOG": "neighbour"}})
        clock.advance(5)
        page = fly.logs.page("demo", instance=machine["id"])
        assert [e.message for e in page.entries if e.from_app] == [
            "hello",
            "world",
            "tick 1",
            "tick 2",
        ]
        platform = [e for e in page.entries if not e.from_app]
        assert [e.provider for e in platform] == ["runner", "runner"]  # pulled, started
        assert all(e.instance == machine["id"] and e.region == "iad" for e in page.entries)
        # After the cursor: only what came since, oldest first; nothing new keeps the cursor.
        clock.advance(2)
        later = fly.logs.page("demo", instance=machine["id"], next_token=page.next_token)
        assert [e.message for e in later.entries] == ["tick 3"]
        again = fly.logs.page("demo", instance=machine["id"], next_token=later.next_token)
        assert again.entries == [] and again.next_token == later.next_token
        # The app's logs, every machine's; the stop's exit is a platform line.
        assert sorted(_messages(fly, "demo")) == sorted(
            ["hello", "world", "tick 1", "tick 2", "tick 3", "neighbour"]
        )
        http.post(f"/apps/demo/machines/{machine['id']}/stop")
        clock.advance(60)
        tail = fly.logs.page("demo", instance=machine["id"], next_token=later.next_token)
        assert "Main child exited normally with code: 0" in [e.message for e in tail.entries]
        assert not any(e.message.startswith("tick") for e in tail.entries[-1:])


def test_the_first_page_is_the_newest_lines(
    clocked: Callable[..., LocalBackend], clock: FakeClock
) -> None:
    backend = clocked()
    with checked_client(backend.transport()) as http, _client(backend) as fly:
        make_app(http)
        make_machine(http, config={"image": "nginx", "env": {"FLYK_SIM_LOG_EVERY": "1"}})
        clock.advance(PAGE_SIZE + 50.5)
        page = fly.logs.page("demo")
        assert len(page.entries) == PAGE_SIZE
        assert page.entries[-1].message == f"tick {PAGE_SIZE + 50}"


def test_unknown_apps_and_cursors_are_refused(backend: LocalBackend) -> None:
    with _client(backend) as fly:
        with pytest.raises(NotFoundError):
            fly.logs.page("nope")
        with checked_client(backend.transport()) as http:
            make_app(http)
        with pytest.raises(InvalidRequestError):
            fly.logs.page("demo", next_token="garbage")


def test_served_over_http_beside_the_machines_api(backend: LocalBackend) -> None:
    with backend.serve() as served, checked_client(httpx.HTTPTransport(), served.url) as http:
        make_app(http)
        make_machine(http, config={"image": "nginx", "env": {"FLYK_SIM_LOG": "over http"}})
        with FlyClient(base_url=served.url, rate_limiter=RateLimiter.unlimited()) as fly:
            assert _messages(fly, "demo") == ["over http"]


def test_where_the_logs_api_is() -> None:
    assert logs_base_url("https://api.machines.dev/v1", {}) == FLY_LOGS_BASE
    assert logs_base_url("http://_api.internal:4280/v1", {}) == FLY_LOGS_BASE
    assert logs_base_url("http://127.0.0.1:4280/v1", {}) == "http://127.0.0.1:4280"
    explicit = {"FLY_API_BASE_URL": "https://logs.example/"}
    assert logs_base_url("https://api.machines.dev/v1", explicit) == "https://logs.example"
