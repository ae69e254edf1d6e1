"""The send loop: build a request, wait for the rate limiter, send, retry, map errors.

This is the only module that calls `httpx.Client.send`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from flyk._version import __version__
from flyk.api._auth import (
    authorization_header,
    redact_headers,
    resolve_base_url,
)
from flyk.api._constants import CONNECT_TIMEOUT, LEASE_NONCE_HEADER, READ_TIMEOUT
from flyk.api._errors import error_from_response
from flyk.api._ratelimit import RateLimiter, default_rate_limiter
from flyk.api._redact import redact_body, token_parts
from flyk.api._retry import RetryPolicy, fits_deadline, retry_delay, should_retry
from flyk.errors import FlykError, NetworkError

log = logging.getLogger("flyk.api")

# on_exchange(request, response): response is None when no answer came (a transport error)
ExchangeHook = Callable[[httpx.Request, httpx.Response | None], None]
# on_retry(attempt, reason, delay): attempt `attempt` (2, 3, ...) follows in `delay` seconds
# because of `reason` ("connection refused", "HTTP 503"); a hook that raises is ignored
RetryHook = Callable[[int, str, float], None]

# Transport errors raised before a single byte of the request left: safe to repeat anything.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def path(*segments: str) -> str:
    """An API path from raw segments, each percent-encoded (IPv6 colons kept readable)."""
    return "/" + "/".join(quote(segment, safe=":") for segment in segments)


@dataclass(frozen=True)
class Call:
    """One API call as the resources describe it; `_http` decides how to send it."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    nonce: str | None = None
    idempotent: bool = False
    # (action, machine-or-app) for the rate limiter; None: not throttled (waits)
    limit: tuple[str, str] | None = None
    # the region the request asked for, so a CapacityError can name it
    region: str | None = None
    # statuses handed back to the caller instead of raised (wait: 408 means "not yet")
    accept: frozenset[int] = field(default_factory=frozenset)
    read_timeout: float | None = None
    deadline: float | None = None  # absolute policy-clock time; None: policy.deadline from now


class HttpCore:
    """Owns the httpx.Client; thread-safe (httpx clients are)."""

    def __init__(
        self,
        *,
        base_url: str | None,
        token: str | None,
        transport: httpx.BaseTransport | None,
        retry: RetryPolicy,
        rate_limiter: RateLimiter | None,
        on_exchange: ExchangeHook | None,
        env: Mapping[str, str] | None = None,
        on_retry: RetryHook | None = None,
    ) -> None:
        self.env = os.environ if env is None else env
        self.base_url = resolve_base_url(base_url, self.env)
        self.retry = retry
        self.rate_limiter = rate_limiter if rate_limiter is not None else default_rate_limiter()
        self._on_exchange = on_exchange
        # the `server` header of the latest response that had one (FlyClient.server_kind)
        self.server: str | None = None
        self._on_retry = on_retry
        # what to cut out of logged bodies, should the API ever echo the token
        self._token_parts = token_parts(token) if on_exchange is not None else ()
        headers = {"User-Agent": f"flyk/{__version__}", "Accept": "application/json"}
        auth = authorization_header(token)
        if auth is not None:
            headers["Authorization"] = auth
        self._client = httpx.Client(
            base_url=self.base_url,
            transport=transport,
            headers=headers,
            timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
        )

    def close(self) -> None:
        self._client.close()

    # -- sending -----------------------------------------------------------------------------

    def json(self, call: Call) -> Any:
        """Send and decode the JSON body (None for an empty body)."""
        response = self.send(call)
        if not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise FlykError(
                f"{call.method} {call.path}: the API answered {response.status_code} with a "
                "body that is not JSON"
            ) from exc

    def send(self, call: Call) -> httpx.Response:
        """Send with rate limiting and retries; a non-2xx status outside `accept` raises."""
        policy = self.retry
        deadline = call.deadline if call.deadline is not None else policy.clock() + policy.deadline
        attempt = 0
        while True:
            attempt += 1
            if call.limit is not None:
                self.rate_limiter.acquire(*call.limit)
            try:
                response = self._send_once(call)
            except httpx.TransportError as exc:
                sent = not isinstance(exc, _NOT_SENT)
                if should_retry(None, idempotent=call.idempotent, sent=sent):
                    delay = retry_delay(policy, attempt)
                    if delay is not None and fits_deadline(policy, deadline, delay):
                        log.debug("retrying %s %s after %r", call.method, call.path, exc)
                        self._retrying(attempt + 1, _transport_reason(exc), delay)
                        policy.sleep(delay)
                        continue
                raise NetworkError(
                    f"{call.method} {call.path}: the API could not be reached ({exc})",
                    hint="Check the network, or FLY_FLAPS_BASE_URL.",
                ) from exc
            status = response.status_code
            if response.is_success or status in call.accept:
                return response
            if should_retry(status, idempotent=call.idempotent):
                delay = retry_delay(policy, attempt, response.headers)
                if delay is not None and fits_deadline(policy, deadline, delay):
                    log.debug("retrying %s %s after HTTP %d", call.method, call.path, status)
                    self._retrying(attempt + 1, f"HTTP {status}", delay)
                    policy.sleep(delay)
                    continue
            raise error_from_response(response, region=call.region)

    def _retrying(self, attempt: int, reason: str, delay: float) -> None:
        if self._on_retry is None:
            return
        try:
            self._on_retry(attempt, reason, delay)
        except Exception:  # a notice must never break a call
            log.exception("on_retry hook failed")

    def _send_once(self, call: Call) -> httpx.Response:
        headers = {LEASE_NONCE_HEADER: call.nonce} if call.nonce else None
        timeout: httpx.Timeout | None = None
        if call.read_timeout is not None:
            timeout = httpx.Timeout(call.read_timeout, connect=CONNECT_TIMEOUT)
        request = self._client.build_request(
            call.method,
            call.path.lstrip("/"),
            params=_query(call.params),
            json=call.json,
            headers=headers,
            timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )
        try:
            response = self._client.send(request)
            try:
                response.read()
            finally:
                response.close()
        except httpx.TransportError:
            # `--verbose` shows what was tried even when nothing came back (an unreachable API)
            if self._on_exchange is not None:
                self._report(request, None)
            raise
        server = response.headers.get("server")
        if server:
            self.server = server
        if self._on_exchange is not None:
            self._report(request, response)
        return response

    def _report(self, request: httpx.Request, response: httpx.Response | None) -> None:
        """Hand the hook copies without credentials: no token, no secret values (`_redact`).
        `response` is None when the request got no answer."""
        assert self._on_exchange is not None
        path = request.url.path
        safe_request = httpx.Request(
            request.method,
            request.url,
            headers=redact_headers(_without_framing(request.headers)),
            content=redact_body(path, request.content, self._token_parts),
        )
        safe_response = None
        if response is not None:
            safe_response = httpx.Response(
                response.status_code,
                # the body is already decoded (and maybe redacted): the wire framing no longer fits
                headers=redact_headers(_without_framing(response.headers)),
                content=redact_body(path, response.content, self._token_parts),
                request=safe_request,
            )
        try:
            self._on_exchange(safe_request, safe_response)
        except Exception:  # a logging hook must never break a call
            log.exception("on_exchange hook failed")


def _transport_reason(exc: httpx.TransportError) -> str:
    """A short reason: "connection refused" rather than "[Errno 111] Connection refused"."""
    text = str(exc).strip()
    if text.startswith("[Errno") and "]" in text:
        text = text.split("]", 1)[1].strip()
    text = text or type(exc).__name__
    return text[:1].lower() + text[1:]


def _without_framing(headers: httpx.Headers) -> dict[str, str]:
    """Headers minus those that describe the wire encoding of a body we re-make."""
    framing = ("content-encoding", "content-length", "transfer-encoding")
    return {name: value for name, value in headers.items() if name.lower() not in framing}


def _query(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Drop unset values and spell booleans the way Go's strconv reads them."""
    if not params:
        return None
    query: dict[str, Any] = {}
    for name, value in params.items():
        if value is None:
            continue
        query[name] = ("true" if value else "false") if isinstance(value, bool) else value
    return query or None
