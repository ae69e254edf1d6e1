"""App secret keys (KMS-style): set, generate, list, get, delete, and encrypt/decrypt/sign/verify.

The cryptography is **simulated with the standard library** and is not meant to protect
anything: signing types use HMAC; encrypting types use a SHA-256 counter keystream with an
HMAC-SHA256 tag (encrypt-then-MAC). Only the shapes and the round trips match the real API.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from typing import Any

from flyk.local.context import Ctx, Reply
from flyk.local.errors import bad_request, not_found
from flyk.local.lifecycle import rfc3339
from flyk.local.records import get_app
from flyk.local.validate import SECRET_NAME, check_fields

_HASHES = {"hs256": hashlib.sha256, "hs384": hashlib.sha384, "hs512": hashlib.sha512}
SIGNING_TYPES = tuple(_HASHES)
ENCRYPTING_TYPES = ("xaes256gcm", "nacl_secretbox")
KEY_TYPES = SIGNING_TYPES + ENCRYPTING_TYPES
_PREFIX = "secret_type_kms_"  # Fly also spells types as SECRET_TYPE_KMS_HS256 and so on
_NONCE_BYTES = 16
_TAG_BYTES = 16
MAX_DATA_BYTES = 64 * 1024


def _key_type(value: Any) -> str:
    kind = str(value or "").lower().removeprefix(_PREFIX)
    if kind not in KEY_TYPES:
        raise bad_request(f"invalid secret key type {value!r}: use one of {', '.join(KEY_TYPES)}")
    return kind


def _bytes(value: Any, field: str) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, list) or not all(
        isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in value
    ):
        raise bad_request(f"invalid {field}: must be an array of byte values (0-255)")
    if len(value) > MAX_DATA_BYTES:
        raise bad_request(f"invalid {field}: at most {MAX_DATA_BYTES} bytes")
    return bytes(value)


def key_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "name": row["name"],
        "type": row["type"],
        "created_at": rfc3339(row["created_ms"]),
        "updated_at": rfc3339(row["updated_ms"]),
    }


def _bump(ctx: Ctx, app: str) -> int:
    ctx.db.execute("UPDATE apps SET secrets_version = secrets_version + 1 WHERE name = ?", (app,))
    return int(get_app(ctx.db, app)["secrets_version"])


def _load(ctx: Ctx) -> sqlite3.Row:
    app = get_app(ctx.db, ctx.params["app_name"])["name"]
    ctx.q_int("min_version")
    row: sqlite3.Row | None = ctx.db.execute(
        "SELECT * FROM secret_keys WHERE app = ? AND name = ?", (app, ctx.params["secret_name"])
    ).fetchone()
    if row is None:
        raise not_found(f"secret key {ctx.params['secret_name']!r}")
    return row


def list_keys(ctx: Ctx) -> Reply:
    app = get_app(ctx.db, ctx.params["app_name"])["name"]
    ctx.q_int("min_version")
    wanted = {_key_type(t) for t in ctx.q_all("types")}
    rows = ctx.db.execute(
        "SELECT * FROM secret_keys WHERE app = ? ORDER BY name", (app,)
    ).fetchall()
    keys = [key_json(r) for r in rows if not wanted or r["type"] in wanted]
    return Reply(200, {"secret_keys": keys})


def get_key(ctx: Ctx) -> Reply:
    return Reply(200, key_json(_load(ctx)))


def _store(ctx: Ctx, key: bytes, kind: str) -> Reply:
    app = get_app(ctx.db, ctx.params["app_name"])["name"]
    name = ctx.params["secret_name"]
    if not SECRET_NAME.match(name):
        raise bad_request(f"invalid secret key name {name!r}")
    ctx.db.execute(
        "INSERT INTO secret_keys (app, name, type, key, created_ms, updated_ms)"
        " VALUES (?,?,?,?,?,?) ON CONFLICT (app, name) DO UPDATE SET"
        " type = excluded.type, key = excluded.key, updated_ms = excluded.updated_ms",
        (app, name, kind, key.hex(), ctx.now_ms, ctx.now_ms),
    )
    version = _bump(ctx, app)
    row = ctx.db.execute(
        "SELECT * FROM secret_keys WHERE app = ? AND name = ?", (app, name)
    ).fetchone()
    return Reply(201, {**key_json(row), "version": version, "Version": version})


def set_key(ctx: Ctx) -> Reply:
    body = ctx.json()
    check_fields(body, {"type": "str", "value": "list"}, "secret key")
    key = _bytes(body.get("value"), "value")
    if len(key) < 16:
        raise bad_request("invalid value: a secret key needs at least 16 bytes")
    return _store(ctx, key, _key_type(body.get("type")))


def generate_key(ctx: Ctx) -> Reply:
    body = ctx.json()
    check_fields(body, {"type": "str", "value": "list?"}, "secret key")
    if body.get("value"):
        raise bad_request("generate makes its own value: leave value out")
    return _store(ctx, secrets.token_bytes(32), _key_type(body.get("type")))


def delete_key(ctx: Ctx) -> Reply:
    row = _load(ctx)
    ctx.db.execute("DELETE FROM secret_keys WHERE app = ? AND name = ?", (row["app"], row["name"]))
    version = _bump(ctx, row["app"])
    return Reply(200, {"version": version, "Version": version})


def _require(row: sqlite3.Row, kinds: tuple[str, ...], operation: str) -> bytes:
    if row["type"] not in kinds:
        raise bad_request(f"a {row['type']} key cannot {operation}")
    return bytes.fromhex(row["key"])


def _keystream(key: bytes, nonce: bytes, length: int) -> bytes:
    blocks = (length + 31) // 32
    return b"".join(
        hashlib.sha256(key + nonce + i.to_bytes(8, "big")).digest() for i in range(blocks)
    )[:length]


def _tag(key: bytes, nonce: bytes, associated: bytes, ciphertext: bytes) -> bytes:
    message = nonce + len(associated).to_bytes(8, "big") + associated + ciphertext
    return hmac.new(key, message, hashlib.sha256).digest()[:_TAG_BYTES]


def encrypt(ctx: Ctx) -> Reply:
    key = _require(_load(ctx), ENCRYPTING_TYPES, "encrypt")
    body = ctx.json()
    check_fields(body, {"plaintext": "list", "associated_data": "list?"}, "encrypt request")
    plaintext = _bytes(body.get("plaintext"), "plaintext")
    associated = _bytes(body.get("associated_data"), "associated_data")
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = bytes(
        a ^ b for a, b in zip(plaintext, _keystream(key, nonce, len(plaintext)), strict=True)
    )
    ciphertext = nonce + sealed + _tag(key, nonce, associated, sealed)
    return Reply(200, {"ciphertext": list(ciphertext)})


def decrypt(ctx: Ctx) -> Reply:
    key = _require(_load(ctx), ENCRYPTING_TYPES, "decrypt")
    body = ctx.json()
    check_fields(body, {"ciphertext": "list", "associated_data": "list?"}, "decrypt request")
    data = _bytes(body.get("ciphertext"), "ciphertext")
    associated = _bytes(body.get("associated_data"), "associated_data")
    if len(data) < _NONCE_BYTES + _TAG_BYTES:
        raise bad_request("decryption failed: ciphertext too short")
    nonce, sealed, tag = data[:_NONCE_BYTES], data[_NONCE_BYTES:-_TAG_BYTES], data[-_TAG_BYTES:]
    if not hmac.compare_digest(tag, _tag(key, nonce, associated, sealed)):
        raise bad_request("decryption failed: message authentication failed")
    plaintext = bytes(
        a ^ b for a, b in zip(sealed, _keystream(key, nonce, len(sealed)), strict=True)
    )
    return Reply(200, {"plaintext": list(plaintext)})


def _signature(row: sqlite3.Row, plaintext: bytes) -> bytes:
    key = _require(row, SIGNING_TYPES, "sign or verify")
    return hmac.new(key, plaintext, _HASHES[row["type"]]).digest()


def sign(ctx: Ctx) -> Reply:
    row = _load(ctx)
    body = ctx.json()
    check_fields(body, {"plaintext": "list"}, "sign request")
    return Reply(
        200, {"signature": list(_signature(row, _bytes(body.get("plaintext"), "plaintext")))}
    )


def verify(ctx: Ctx) -> Reply:
    row = _load(ctx)
    body = ctx.json()
    check_fields(body, {"plaintext": "list", "signature": "list"}, "verify request")
    expected = _signature(row, _bytes(body.get("plaintext"), "plaintext"))
    if not hmac.compare_digest(expected, _bytes(body.get("signature"), "signature")):
        raise bad_request("signature verification failed")
    return Reply(204)
