"""Authorization header, base URL resolution and redaction."""

from __future__ import annotations

import httpx
import pytest

from flyk.api import (
    FlyClient,
    RetryPolicy,
    authorization_header,
    redact_headers,
    redact_text,
    resolve_base_url,
)
from flyk.errors import ConfigError, NetworkError


@pytest.mark.parametrize(
    ("token", "header"),
    [
        ("fm2_abc", "FlyV1 fm2_abc"),
        ("fm1r_abc", "FlyV1 fm1r_abc"),
        ("fm1a_abc", "FlyV1 fm1a_abc"),
        ("FlyV1 fm2_abc,fm2_def", "FlyV1 fm2_abc,fm2_def"),
        ("Bearer FlyV1 fm2_abc", "FlyV1 fm2_abc"),
        ("flyv1   fm2_abc", "FlyV1 fm2_abc"),
        ("fo1_user", "Bearer fo1_user"),
        ("Bearer fo1_user", "Bearer fo1_user"),
        ("  bearer fo1_user \n", "Bearer fo1_user"),
        ("plain-token", "Bearer plain-token"),
        (None, None),
        ("", None),
        ("Bearer ", None),
    ],
)
def test_authorization_header(token: str | None, header: str | None) -> None:
    assert authorization_header(token) == header


@pytest.mark.parametrize(
    ("argument", "env", "expected"),
    [
        (None, {}, "https://api.machines.dev/v1"),
        (None, {"FLY_FLAPS_BASE_URL": "http://localhost:4280"}, "http://localhost:4280/v1"),
        (None, {"FLY_API_HOSTNAME": "https://api.example.com/"}, "https://api.example.com/v1"),
        (
            None,
            {"FLY_FLAPS_BASE_URL": "http://flaps:4280", "FLY_API_HOSTNAME": "https://other"},
            "http://flaps:4280/v1",
        ),
        (None, {"FLY_FLAPS_BASE_URL": "", "FLY_API_HOSTNAME": "https://h"}, "https://h/v1"),
        ("https://x.dev/v1", {"FLY_FLAPS_BASE_URL": "http://ignored"}, "https://x.dev/v1"),
        ("https://x.dev/v1/", {}, "https://x.dev/v1"),
        ("http://127.0.0.1:9000/prefix", {}, "http://127.0.0.1:9000/prefix/v1"),
        ("api.example.com", {}, "https://api.example.com/v1"),
    ],
)
def test_resolve_base_url(argument: str | None, env: dict[str, str], expected: str) -> None:
    assert resolve_base_url(argument, env) == expected


@pytest.mark.parametrize(
    ("argument", "env", "named"),
    [
        ("http://[bad", {}, "base URL"),
        (None, {"FLY_FLAPS_BASE_URL": "http://[bad"}, "FLY_FLAPS_BASE_URL"),
        (None, {"FLY_API_HOSTNAME": "ftp://x"}, "FLY_API_HOSTNAME"),
        (None, {"FLY_FLAPS_BASE_URL": "http://"}, "FLY_FLAPS_BASE_URL"),
        ("http://h:abc", {}, "base URL"),
    ],
)
def test_a_malformed_base_url_is_a_config_error(
    argument: str | None, env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=f"invalid {named} ") as caught:
        resolve_base_url(argument, env)
    assert caught.value.exit_code == 2


def test_client_reads_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLY_FLAPS_BASE_URL", "http://flaps.internal:4280/v1")
    assert FlyClient().base_url == "http://flaps.internal:4280/v1"


def test_requests_carry_auth_user_agent_and_v1_prefix() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"apps": [], "total_apps": 0})

    with FlyClient(
        "https://api.test", "FlyV1 fm2_secret", transport=httpx.MockTransport(handler)
    ) as fly:
        fly.apps.list("personal")
    (request,) = seen
    assert request.url == "https://api.test/v1/apps?org_slug=personal"
    assert request.headers["authorization"] == "FlyV1 fm2_secret"
    assert request.headers["user-agent"].startswith("flyk/")


def test_no_token_sends_no_authorization_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"apps": []})

    with FlyClient("http://local", None, transport=httpx.MockTransport(handler)) as fly:
        fly.apps.list("personal")
    assert "authorization" not in seen[0].headers


def test_redact_headers_keeps_the_scheme_only() -> None:
    headers = {"Authorization": "FlyV1 fm2_secret", "Cookie": "a=b", "Accept": "x"}
    assert redact_headers(headers) == {
        "Authorization": "FlyV1 <redacted>",
        "Cookie": "<redacted>",
        "Accept": "x",
    }


def test_redact_text_removes_each_macaroon_of_a_bundle() -> None:
    text = "sent fm2_aaaaaaaaaa,fm2_bbbbbbbbbb and fm2_bbbbbbbbbb alone"
    redacted = redact_text(text, "FlyV1 fm2_aaaaaaaaaa,fm2_bbbbbbbbbb")
    assert "fm2_" not in redacted


def test_on_exchange_never_sees_the_token_or_secret_values() -> None:
    exchanges: list[tuple[httpx.Request, httpx.Response | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"version": 3, "secrets": []})

    with FlyClient(
        "https://api.test",
        "fm2_topsecret",
        transport=httpx.MockTransport(handler),
        on_exchange=lambda req, resp: exchanges.append((req, resp)),
    ) as fly:
        assert fly.secrets.set("app", {"DB_PASSWORD": "hunter2"}) == 3
    ((request, response),) = exchanges
    assert response is not None
    assert request.headers["authorization"] == "FlyV1 <redacted>"
    assert b"hunter2" not in request.content
    assert "fm2_topsecret" not in str(request.headers) + str(response.request.headers)
    assert response.json()["version"] == 3


def test_on_exchange_reports_a_request_that_got_no_answer() -> None:
    exchanges: list[tuple[httpx.Request, httpx.Response | None]] = []

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with (
        FlyClient(
            "https://api.test",
            "fm2_topsecret",
            transport=httpx.MockTransport(unreachable),
            retry=RetryPolicy.never(),
            on_exchange=lambda req, resp: exchanges.append((req, resp)),
        ) as fly,
        pytest.raises(NetworkError),
    ):
        fly.secrets.set("app", {"DB_PASSWORD": "hunter2"})
    ((request, response),) = exchanges
    assert response is None
    assert (request.method, request.url.path) == ("POST", "/v1/apps/app/secrets")
    assert request.headers["authorization"] == "FlyV1 <redacted>"
    assert b"hunter2" not in request.content
