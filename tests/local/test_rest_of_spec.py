"""Certificates, secret keys and token operations: simulated, in the spec's shapes."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from tests.local.conftest import make_app

PEM_CHAIN = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
PEM_KEY = "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n"


def test_acme_certificate_is_issued_on_check(any_client: httpx.Client) -> None:
    make_app(any_client)
    any_client.post("/apps/demo/ip_assignments", json={"type": "v6"})
    created = any_client.post("/apps/demo/certificates/acme", json={"hostname": "www.example.com"})
    assert created.status_code == 201
    detail = created.json()
    assert detail["status"] == "Awaiting configuration" and detail["configured"] is False
    assert detail["certificates"][0]["status"] == "pending_validation"
    assert detail["dns_requirements"]["aaaa"] and detail["dns_requirements"]["cname"]
    checked = any_client.post("/apps/demo/certificates/www.example.com/check").json()
    assert checked["status"] == "Ready" and checked["certificates"][0]["status"] == "active"
    listed = any_client.get("/apps/demo/certificates").json()
    assert listed["total_count"] == 1 and listed["certificates"][0]["has_fly_certificate"]
    again = any_client.post("/apps/demo/certificates/acme", json={"hostname": "www.example.com"})
    assert again.status_code == 422
    assert any_client.delete("/apps/demo/certificates/www.example.com").status_code == 204
    assert any_client.get("/apps/demo/certificates/www.example.com").status_code == 404


def test_custom_certificate(client: httpx.Client) -> None:
    make_app(client)
    body = {"hostname": "api.example.com", "fullchain": PEM_CHAIN, "private_key": PEM_KEY}
    assert client.post("/apps/demo/certificates/custom", json=body).json()["status"] == "Ready"
    client.post("/apps/demo/certificates/acme", json={"hostname": "api.example.com"})
    removed = client.delete("/apps/demo/certificates/api.example.com/custom").json()
    assert [c["source"] for c in removed["certificates"]] == ["fly"]
    assert "warning" not in removed
    acme_gone = client.delete("/apps/demo/certificates/api.example.com/acme").json()
    assert acme_gone["certificates"] == []
    bad = client.post("/apps/demo/certificates/custom", json={**body, "private_key": "nope"})
    assert bad.status_code == 422
    assert client.post("/apps/demo/certificates/acme", json={"hostname": "x"}).status_code == 422


def test_certificate_list_filter_and_cursor(client: httpx.Client) -> None:
    make_app(client)
    for host in ("a.example.com", "b.example.com", "c.other.org"):
        client.post("/apps/demo/certificates/acme", json={"hostname": host})
    first = client.get("/apps/demo/certificates", params={"limit": 2}).json()
    assert [c["hostname"] for c in first["certificates"]] == ["a.example.com", "b.example.com"]
    rest = client.get(
        "/apps/demo/certificates", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [c["hostname"] for c in rest["certificates"]] == ["c.other.org"]
    filtered = client.get("/apps/demo/certificates", params={"filter": "example"}).json()
    assert filtered["total_count"] == 2


def test_signing_key(client: httpx.Client) -> None:
    make_app(client)
    made = client.post("/apps/demo/secretkeys/SIGNER/generate", json={"type": "hs256"})
    assert made.status_code == 201 and made.json()["version"] == 1
    base = "/apps/demo/secretkeys/SIGNER"
    message = list(b"hello")
    signature = client.post(f"{base}/sign", json={"plaintext": message}).json()["signature"]
    assert len(signature) == 32
    ok = client.post(f"{base}/verify", json={"plaintext": message, "signature": signature})
    assert ok.status_code == 204
    forged = client.post(
        f"{base}/verify", json={"plaintext": list(b"hellO"), "signature": signature}
    )
    assert forged.status_code == 400
    assert client.post(f"{base}/encrypt", json={"plaintext": message}).status_code == 400


def test_encrypting_key_round_trip(client: httpx.Client) -> None:
    make_app(client)
    key = list(range(32))
    set_ = client.post(
        "/apps/demo/secretkeys/BOX", json={"type": "SECRET_TYPE_KMS_XAES256GCM", "value": key}
    )
    assert set_.status_code == 201 and set_.json()["type"] == "xaes256gcm"
    base = "/apps/demo/secretkeys/BOX"
    sealed = client.post(
        f"{base}/encrypt", json={"plaintext": list(b"secret"), "associated_data": [1]}
    ).json()["ciphertext"]
    opened = client.post(f"{base}/decrypt", json={"ciphertext": sealed, "associated_data": [1]})
    assert bytes(opened.json()["plaintext"]) == b"secret"
    tampered = [*sealed[:-1], (sealed[-1] + 1) % 256]
    assert (
        client.post(
            f"{base}/decrypt", json={"ciphertext": tampered, "associated_data": [1]}
        ).status_code
        == 400
    )
    wrong_ad = client.post(f"{base}/decrypt", json={"ciphertext": sealed, "associated_data": [2]})
    assert wrong_ad.status_code == 400
    keys = client.get("/apps/demo/secretkeys").json()["secret_keys"]
    assert [k["name"] for k in keys] == ["BOX"]
    assert (
        client.get("/apps/demo/secretkeys", params={"types": "hs256"}).json()["secret_keys"] == []
    )
    assert client.get(base).json()["type"] == "xaes256gcm"
    assert client.delete(base).json()["version"] == 2
    assert client.get(base).status_code == 404


@pytest.mark.parametrize(
    "body",
    [{"type": "rot13", "value": list(range(32))}, {"type": "hs256", "value": [1, 2]},
     {"type": "hs256", "value": [300] * 32}],
    ids=["unknown-type", "too-short", "not-bytes"],
)  # fmt: skip
def test_bad_secret_keys(client: httpx.Client, body: dict[str, object]) -> None:
    make_app(client)
    assert client.post("/apps/demo/secretkeys/K", json=body).status_code == 400


def test_token_operations(any_client: httpx.Client) -> None:
    verified = any_client.post("/tokens/authenticate", json={"header": "FlyV1 fm2_x"}).json()
    assert verified[0]["header"] == "FlyV1 fm2_x"
    access = {"org_slug": "personal", "action": 1, "app_name": "demo"}
    authorized = any_client.post(
        "/tokens/authorize", json={"header": "Bearer x", "access": access}
    ).json()
    assert authorized["access"]["action"] == 1 and authorized["access"]["orgid"] >= 0
    assert any_client.post("/tokens/authenticate", json={}).status_code == 400
    kms = any_client.post("/tokens/kms")
    assert kms.headers["content-type"].startswith("text/plain")
    assert kms.text.startswith("FlyV1 ")
    jwt = any_client.post("/tokens/oidc", json={"aud": "sts.amazonaws.com"}).text
    _, claims, signature = jwt.split(".")
    payload = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert payload["aud"] == "sts.amazonaws.com" and signature == ""
