"""HTTP status and body → one class of `flyk.errors`. The only place that mapping lives."""

from __future__ import annotations

import json
from typing import Any

import httpx

from flyk.api._constants import REQUEST_ID_HEADER
from flyk.errors import (
    AlreadyExistsError,
    ApiDetails,
    CapacityError,
    ConflictError,
    FlykError,
    ForbiddenError,
    InvalidRequestError,
    LeaseHeldError,
    NotFoundError,
    PreconditionFailedError,
    RateLimitedError,
    ServerError,
    UnauthorizedError,
    WaitTimeoutError,
)

# Substrings the API uses when a host or region is full (reference §9).
CAPACITY_PHRASES = (
    "insufficient resources",
    "could not reserve resource",
    "insufficient memory",
    "insufficient cpu",
    "no capacity",
    "over the allowed quota",
)
_CAPACITY_STATUSES = frozenset({400, 403, 409, 412})
_TAKEN_PHRASES = ("already been taken", "already exists", "name_taken")
_BODY_LIMIT = 4000


def parse_error_body(text: str) -> tuple[str, str | None]:
    """(message, code) from an error body: `message` first, then `error`, else the raw text."""
    try:
        data: Any = json.loads(text)
    except ValueError:
        return text.strip(), None
    if not isinstance(data, dict):
        return text.strip(), None
    message = next(
        (str(data[key]) for key in ("message", "error") if isinstance(data.get(key), str)), ""
    )
    status = data.get("status")
    code = status if isinstance(status, str) and status not in ("error", "success") else None
    if code is None and isinstance(data.get("code"), str):
        code = data["code"]
    return (message or text.strip()), code


def is_capacity_error(status: int, message: str, code: str | None) -> bool:
    """Reference §9's classifier: the body's status code first, then known phrases."""
    if code == "insufficient_capacity":
        return True
    lowered = message.lower()
    return status in _CAPACITY_STATUSES and any(p in lowered for p in CAPACITY_PHRASES)


def _is_name_taken(message: str, code: str | None) -> bool:
    return code == "name_taken" or any(p in message.lower() for p in _TAKEN_PHRASES)


def _is_about_lease(message: str, url: str) -> bool:
    return "lease" in message.lower() or url.rstrip("/").endswith("/lease")


def error_for_status(
    status: int,
    message: str,
    details: ApiDetails,
    *,
    region: str | None = None,
) -> FlykError:
    """Pick the error class for a refused call; `region` is the one the request asked for."""
    code = details.code
    if is_capacity_error(status, message, code):
        where = f" in {region}" if region else ""
        return CapacityError(
            message,
            region=region,
            hint=f"The region has no room{where} now; choose another region (flyk never moves "
            "work silently).",
            details=details,
        )
    if status in (400, 409, 422) and _is_name_taken(message, code):
        return AlreadyExistsError(message, details=details)
    if status == 401:
        return UnauthorizedError(message, hint="Check the token (FLY_API_TOKEN).", details=details)
    if status == 403:
        return ForbiddenError(message, details=details)
    if status == 404:
        return NotFoundError(message, details=details)
    if status == 409:
        if _is_about_lease(message, details.url):
            return LeaseHeldError(message, details=details)
        return ConflictError(message, details=details)
    if status == 412:
        return PreconditionFailedError(message, details=details)
    if status in (400, 422):
        return InvalidRequestError(message, details=details)
    if status == 408:
        return WaitTimeoutError(message, details=details)
    if status == 429:
        return RateLimitedError(message, hint="Wait a little and try again.", details=details)
    if status >= 500:
        return ServerError(message, details=details)
    return FlykError(message, details=details)


def error_from_response(response: httpx.Response, *, region: str | None = None) -> FlykError:
    """The error for a non-2xx response (the body must have been read)."""
    text = response.text
    message, code = parse_error_body(text)
    request = response.request
    if not message:
        message = f"{response.status_code} {response.reason_phrase}".strip()
    details = ApiDetails(
        status=response.status_code,
        method=request.method,
        url=str(request.url),
        request_id=response.headers.get(REQUEST_ID_HEADER),
        code=code,
        body=text[:_BODY_LIMIT],
    )
    return error_for_status(response.status_code, message, details, region=region)
