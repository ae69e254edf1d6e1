"""What the `on_exchange` hook (`--verbose`) may see: bodies with credentials taken out.

The hook gets copies of each request and response; this module decides what in their bodies
is replaced by `<redacted>` (headers are `_auth.redact_headers`' job). What is a credential:

- the token: every occurrence of it (or of one macaroon of a bundle) in any body;
- secret values: `value` in `/apps/{app}/secrets…` bodies (AppSecret, SetAppSecretRequest,
  SetAppSecretResponse) and each value of the `values` map of a bulk update (`null`, which
  deletes a secret, stays `null`: it is no value); `value` and `plaintext` in
  `/apps/{app}/secretkeys…` bodies (key material and what it decrypts);
- in any JSON body: `raw_value` (file contents of a machine config's `files[]`, also under
  `containers[]`: flyk puts Kubernetes secret volumes there), `private_key` (custom
  certificates), `token` (deploy tokens) and `permission_token`;
- under `/tokens/…`: `header` (the token sent to authenticate/authorize), and whole bodies that
  are not JSON (`/tokens/oidc` and `/tokens/kms` answer a bare token in text/plain); the same
  for any non-JSON body of a secrets, secretkeys or deploy-token path.

Shown on purpose: names, digests, versions, `secret_name` references, and lease nonces. A
nonce only lets the token's holder mutate one machine until the lease's TTL runs out, grants
nothing without the token, and is what one needs to see when debugging a lease conflict.
(`flyk.cli.output` may still hide the nonce header; that is the CLI's choice.)

A body with nothing to redact is passed on byte for byte; one with something to redact is
re-encoded as compact JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from flyk.api._auth import strip_scheme

REDACTED = "<redacted>"
_REDACTED_BYTES = REDACTED.encode()

# Keys whose value is a credential wherever they appear.
_ALWAYS = frozenset({"raw_value", "private_key", "token", "permission_token"})
# Keys that are credentials in the bodies of some paths only (`value` is also a metadata value).
_SECRETS = re.compile(r"/apps/[^/]+/secrets(?:/|$)")
_SECRET_KEYS = re.compile(r"/apps/[^/]+/secretkeys(?:/|$)")
_DEPLOY_TOKEN = re.compile(r"/apps/[^/]+/deploy_token$")
_TOKENS = re.compile(r"/tokens(?:/|$)")


def token_parts(token: str | None) -> tuple[bytes, ...]:
    """The strings to cut out of every body: the bare token and each macaroon of a bundle."""
    if not token:
        return ()
    bare = strip_scheme(token)
    parts = {bare, *(part.strip() for part in bare.split(","))}
    # longest first, so that a bundle goes before its parts; short strings are not tokens
    return tuple(p.encode() for p in sorted(parts, key=len, reverse=True) if len(p) >= 8)


def redact_body(path: str, content: bytes, tokens: Iterable[bytes] = ()) -> bytes:
    """`content` (a request or response body sent to or from `path`) safe to log."""
    for token in tokens:
        content = content.replace(token, _REDACTED_BYTES)
    if not content.strip():
        return content
    keys, sensitive_path = _keys_for(path)
    try:
        data = json.loads(content)
    except ValueError:
        return _REDACTED_BYTES if sensitive_path else content
    redacted, changed = _walk(data, keys)
    if not changed:
        return content
    return json.dumps(redacted, separators=(",", ":")).encode()


def _keys_for(path: str) -> tuple[frozenset[str], bool]:
    """The keys to redact in bodies of `path`, and whether a body there is a secret as a whole."""
    if _SECRETS.search(path):
        return _ALWAYS | {"value", "values"}, True
    if _SECRET_KEYS.search(path):
        return _ALWAYS | {"value", "plaintext"}, True
    if _TOKENS.search(path):
        return _ALWAYS | {"header"}, True
    return _ALWAYS, bool(_DEPLOY_TOKEN.search(path))


def _walk(data: Any, keys: frozenset[str]) -> tuple[Any, bool]:
    if isinstance(data, list):
        items = [_walk(item, keys) for item in data]
        return [item for item, _ in items], any(changed for _, changed in items)
    if not isinstance(data, dict):
        return data, False
    out: dict[str, Any] = {}
    changed = False
    for key, value in data.items():
        if key in keys and value is not None:
            out[key] = _hidden(value)
            changed = True
        else:
            out[key], inner = _walk(value, keys)
            changed |= inner
    return out, changed


def _hidden(value: Any) -> Any:
    """A map of secrets keeps its names (and its `null`s, which delete); anything else goes."""
    if isinstance(value, dict):
        return {name: None if item is None else REDACTED for name, item in value.items()}
    return REDACTED
