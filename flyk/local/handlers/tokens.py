"""Token operations besides `/tokens/current`, simulated: every token is valid.

Answers have the spec's shapes; the tokens issued (KMS, OIDC) are recognisably fake: the OIDC
token is an unsigned JWT (`alg: none`), which nothing should trust.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

from flyk.local.context import Ctx, Reply
from flyk.local.errors import bad_request
from flyk.local.records import get_org
from flyk.local.validate import check_fields

ACCESS_FIELDS = {
    "action": "int?", "app_feature": "str?", "app_name": "str?", "command": "list?",
    "machine_feature": "str?", "machine_id": "str?", "mutation": "str?", "org_feature": "str?",
    "org_slug": "str?", "source_machine": "str?", "storage_object": "str?", "volume_id": "str?",
}  # fmt: skip
ACTIONS = (0, 1, 2, 4, 8, 16, 31)
OIDC_LIFETIME_SECONDS = 600


def _header(body: dict[str, Any]) -> str:
    header = body.get("header")
    if not isinstance(header, str) or not header.strip():
        raise bad_request("header is required: the Authorization header value to check")
    return header


def _verified(header: str) -> dict[str, Any]:
    return {
        "header": header,
        "caveats": {"caveats": []},
        "nonce": {"kid": [], "rnd": list(secrets.token_bytes(16)), "proof": False},
        "permission_token": [],
    }


def authenticate(ctx: Ctx) -> Reply:
    body = ctx.json()
    check_fields(body, {"header": "str"}, "authenticate request")
    return Reply(200, [_verified(_header(body))])


def authorize(ctx: Ctx) -> Reply:
    body = ctx.json()
    check_fields(body, {"header": "str", "access": "obj"}, "authorize request")
    header = _header(body)
    access = body.get("access") or {}
    check_fields(access, ACCESS_FIELDS, "access")
    action = access.get("action", 31)
    if action not in ACTIONS:
        raise bad_request(f"invalid access.action {action}: use one of {ACTIONS}")
    org_id = None
    if access.get("org_slug"):
        org_id = get_org(ctx.db, access["org_slug"])["numeric_id"]
    granted: dict[str, Any] = {"action": action}
    for source, target in (
        ("app_feature", "app_feature"), ("machine_id", "machine"),
        ("machine_feature", "machine_feature"), ("mutation", "mutation"),
        ("org_feature", "feature"), ("source_machine", "sourceMachine"),
        ("storage_object", "storage_object"), ("volume_id", "volume"), ("command", "command"),
    ):  # fmt: skip
        if access.get(source) is not None:
            granted[target] = access[source]
    if org_id is not None:
        granted["orgid"] = org_id
    return Reply(200, {"access": granted, "verified_token": _verified(header)})


def kms_token(_: Ctx) -> Reply:
    return Reply(200, text=f"FlyV1 fm2_local_kms_{secrets.token_urlsafe(24)}")


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def oidc_token(ctx: Ctx) -> Reply:
    body = ctx.json()
    check_fields(body, {"aud": "str?", "aws_principal_tags": "bool?"}, "OIDC request")
    now = ctx.now_ms // 1000
    claims = {
        "iss": "https://oidc.fly.io/personal",
        "aud": body.get("aud") or "https://fly.io/personal",
        "sub": "personal:local:local",
        "iat": now,
        "nbf": now,
        "exp": now + OIDC_LIFETIME_SECONDS,
    }
    return Reply(200, text=f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.")
