"""Authorization header, base URL resolution and redaction. No I/O; env is passed in."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

from flyk.api._constants import API_PREFIX, BASE_URL_ENV_VARS, DEFAULT_BASE_URL, MACAROON_PREFIXES
from flyk.errors import ConfigError

_SCHEME = re.compile(r"^\s*(?:bearer|flyv1)(?:\s+|$)", re.IGNORECASE)
_REDACTED = "<redacted>"


def strip_scheme(token: str) -> str:
    """The bare token, whatever scheme(s) the user pasted in front of it ("Bearer FlyV1 fm2_…")."""
    bare = token.strip()
    while _SCHEME.match(bare):
        bare = _SCHEME.sub("", bare, count=1)
    return bare


def is_macaroon(token: str) -> bool:
    """True for Fly macaroon tokens; a bundle is comma-joined, so any part counts."""
    return any(part.strip().startswith(MACAROON_PREFIXES) for part in token.split(","))


def authorization_header(token: str | None) -> str | None:
    """The `Authorization` value for a token; None when there is no token (the local backend)."""
    if token is None:
        return None
    bare = strip_scheme(token)
    if not bare:
        return None
    scheme = "FlyV1" if is_macaroon(bare) else "Bearer"
    return f"{scheme} {bare}"


def resolve_base_url(base_url: str | None, env: Mapping[str, str]) -> str:
    """The API root with the `/v1` prefix added exactly once.

    Order: the explicit argument, then FLY_FLAPS_BASE_URL, then FLY_API_HOSTNAME, then
    https://api.machines.dev. A bare host ("api.example.com") is taken to mean https.
    """
    source = "base URL"
    chosen = base_url
    if not chosen:
        source, chosen = next(
            ((name, env[name]) for name in BASE_URL_ENV_VARS if env.get(name)),
            ("default base URL", DEFAULT_BASE_URL),
        )
    url = chosen.strip()
    if "://" not in url:
        url = f"https://{url}"
    _check_url(url, source, chosen)
    url = url.rstrip("/")
    if not url.endswith(API_PREFIX):
        url += API_PREFIX
    return url


def _check_url(url: str, source: str, given: str) -> None:
    """ConfigError (exit 2) naming where the URL came from, unless it is http(s)://host[:port]."""
    problem = None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (parsing the port is the check: it raises when it is not one)
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        problem = str(exc) or "it cannot be parsed"
    else:
        if parts.scheme.lower() not in {"http", "https"}:
            problem = f"the scheme must be http or https, not {parts.scheme!r}"
        elif not parts.hostname:
            problem = "it names no host"
    if problem is not None:
        raise ConfigError(
            f"invalid {source} {given!r}: {problem}",
            hint="Use a URL such as https://api.machines.dev or http://127.0.0.1:4280.",
        )


def redact_authorization(value: str) -> str:
    """Keep the scheme (useful when debugging) and hide the credential."""
    scheme, _, rest = value.partition(" ")
    return f"{scheme} {_REDACTED}" if rest else _REDACTED


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of the headers safe to print: no token, no cookie."""
    secret = {"authorization", "cookie", "set-cookie", "proxy-authorization"}
    redacted: dict[str, str] = {}
    for name, value in headers.items():
        if name.lower() == "authorization":
            redacted[name] = redact_authorization(value)
        elif name.lower() in secret:
            redacted[name] = _REDACTED
        else:
            redacted[name] = value
    return redacted


def redact_text(text: str, token: str | None) -> str:
    """Remove every occurrence of the token (and each macaroon of a bundle) from a text."""
    if not token:
        return text
    bare = strip_scheme(token)
    for part in sorted({bare, *bare.split(",")}, key=len, reverse=True):
        part = part.strip()
        if len(part) >= 8:
            text = text.replace(part, _REDACTED)
    return text
