"""What the `on_exchange` hook (`--verbose`) sees: no token, no secret values, no file contents."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from flyk.api import FileConfig, FlyClient, MachineConfig, RateLimiter
from flyk.api._redact import REDACTED, redact_body, token_parts
from flyk.errors import NotFoundError

from .helpers import machine_json

TOKEN = "fm2_tokentokentoken"
Exchange = tuple[httpx.Request, httpx.Response]


def _client(handler: Any, exchanges: list[Exchange], token: str | None = TOKEN) -> FlyClient:
    return FlyClient(
        "https://api.test",
        token,
        transport=httpx.MockTransport(handler),
        rate_limiter=RateLimiter.unlimited(),
        on_exchange=lambda req, resp: exchanges.append((req, resp)),
    )


def _logged(exchanges: list[Exchange]) -> str:
    parts = []
    for request, response in exchanges:
        parts += [str(request.url), str(request.headers), request.content.decode()]
        parts += [str(response.headers), response.content.decode()]
    return "\n".join(parts)


def test_secret_values_in_responses_reach_the_caller_but_not_the_hook() -> None:
    listed = {"secrets": [{"name": "DB", "digest": "d1", "value": "hunter2"}]}
    one = {"name": "API", "digest": "d2", "value": "s3cr3t-api"}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/secrets"):
            return httpx.Response(200, json=listed)
        return httpx.Response(200, json=one)

    exchanges: list[Exchange] = []
    with _client(handler, exchanges) as fly:
        assert fly.secrets.list("a", show_secrets=True)[0].value == "hunter2"
        assert fly.secrets.get("a", "API", show_secrets=True).value == "s3cr3t-api"
    text = _logged(exchanges)
    assert "hunter2" not in text and "s3cr3t-api" not in text
    # what is not a value stays readable
    (_, listing), (_, single) = exchanges
    assert listing.json() == {"secrets": [{"name": "DB", "digest": "d1", "value": REDACTED}]}
    assert single.json() == {"name": "API", "digest": "d2", "value": REDACTED}
    assert listing.status_code == 200 and listing.request.url.params["show_secrets"] == "true"


def test_a_bulk_update_logs_the_names_and_deletions_only() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"version": 4, "secrets": [{"name": "DB"}]})

    exchanges: list[Exchange] = []
    with _client(handler, exchanges) as fly:
        assert fly.secrets.set("a", {"DB": "hunter2", "OLD": None}) == 4
    ((request, response),) = exchanges
    assert json.loads(request.content) == {"values": {"DB": REDACTED, "OLD": None}}
    assert request.headers["content-length"] == str(len(request.content))
    assert response.json() == {"version": 4, "secrets": [{"name": "DB"}]}


def test_file_contents_of_a_machine_config_are_redacted_both_ways() -> None:
    secret_file = FileConfig(guest_path="/etc/tls/key.pem", raw_value="UFJJVkFURSBLRVk=")
    config = MachineConfig(image="nginx", files=[secret_file], metadata={"value": "shown"})

    def handler(request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)
        return httpx.Response(200, json=machine_json(config=sent["config"], nonce="lease-nonce"))

    exchanges: list[Exchange] = []
    with _client(handler, exchanges) as fly:
        made = fly.machines.create("a", config, lease_ttl=30)
    assert made.config is not None and made.config.files[0].raw_value == "UFJJVkFURSBLRVk="
    ((request, response),) = exchanges
    assert "UFJJVkFURSBLRVk=" not in _logged(exchanges)
    for body in (json.loads(request.content), response.json()):
        files = body["config"]["files"]
        assert files == [{"guest_path": "/etc/tls/key.pem", "raw_value": REDACTED}]
        assert body["config"]["metadata"]["value"] == "shown"  # `value` is secret in secrets only
    assert response.json()["nonce"] == "lease-nonce"  # lease nonces are shown (see _redact)


def test_the_token_is_cut_out_of_bodies_that_echo_it() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": f"no app for token FlyV1 {TOKEN},fm2_second"})

    exchanges: list[Exchange] = []
    with (
        _client(handler, exchanges, token=f"{TOKEN},fm2_second") as fly,
        pytest.raises(NotFoundError),
    ):
        fly.apps.get("a")
    ((request, response),) = exchanges
    assert request.headers["authorization"] == "FlyV1 <redacted>"
    assert response.json() == {"error": "no app for token FlyV1 <redacted>"}


def test_a_body_with_nothing_to_hide_is_passed_on_as_sent() -> None:
    body = b'{ "name": "a",  "status": "deployed" }'

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    exchanges: list[Exchange] = []
    with _client(handler, exchanges) as fly:
        assert fly.apps.get("a").status == "deployed"
    assert exchanges[0][1].content == body


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/v1/apps/a/deploy_token", b'{"token":"FlyV1 fm2_x"}', {"token": REDACTED}),
        ("/v1/tokens/authenticate", b'{"header":"FlyV1 fm2_x"}', {"header": REDACTED}),
        (
            "/v1/tokens/authenticate",
            b'[{"permission_token":[1,2],"header":"h","nonce":{"rnd":[3]}}]',
            [{"permission_token": REDACTED, "header": REDACTED, "nonce": {"rnd": [3]}}],
        ),
        ("/v1/apps/a/secrets/DB", b'{"value":"v","version":2}', {"value": REDACTED, "version": 2}),
        ("/v1/apps/a/secretkeys/k", b'{"type":"t","value":[1]}', {"type": "t", "value": REDACTED}),
        ("/v1/apps/a/secretkeys/k/decrypt", b'{"plaintext":[1]}', {"plaintext": REDACTED}),
        (
            "/v1/apps/a/certificates/custom",
            b'{"fullchain":"c","private_key":"k"}',
            {"fullchain": "c", "private_key": REDACTED},
        ),
        (
            "/v1/apps/a/machines/m/metadata/value",
            b'{"value":"v"}',
            {"value": "v"},
        ),
        ("/v1/apps/secrets/machines", b'{"value":"v"}', {"value": "v"}),  # an app named secrets
    ],
)
def test_what_is_redacted_where(path: str, body: bytes, expected: Any) -> None:
    assert json.loads(redact_body(path, body)) == expected


@pytest.mark.parametrize("path", ["/v1/tokens/oidc", "/v1/tokens/kms", "/v1/apps/a/secrets"])
def test_a_body_that_is_not_json_on_a_secret_path_is_hidden_whole(path: str) -> None:
    assert redact_body(path, b"eyJhbGciOi.token.text") == REDACTED.encode()


def test_text_elsewhere_is_kept_but_loses_the_token() -> None:
    parts = token_parts(f"Bearer {TOKEN}")
    assert redact_body("/v1/apps", b"bad gateway", parts) == b"bad gateway"
    assert redact_body("/v1/apps", f"echo {TOKEN}".encode(), parts) == b"echo <redacted>"
    assert token_parts(None) == () and token_parts("short") == ()
