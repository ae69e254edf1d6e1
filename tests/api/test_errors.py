"""HTTP status and body → error class, message, request id and capacity classification."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from flyk.errors import (
    AlreadyExistsError,
    CapacityError,
    ConflictError,
    FlykError,
    ForbiddenError,
    InvalidRequestError,
    LeaseHeldError,
    NetworkError,
    NotFoundError,
    PreconditionFailedError,
    RateLimitedError,
    ServerError,
    UnauthorizedError,
    WaitTimeoutError,
)

from .helpers import make_client


def _fail(status: int, body: Any, *, path: str = "/apps/a/machines/m1") -> FlykError:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers={"fly-request-id": "req-123"})
        return httpx.Response(status, json=body, headers={"fly-request-id": "req-123"})

    # no retries, so each status is seen exactly once
    with make_client(handler, max_attempts=1) as fly:
        with pytest.raises(FlykError) as caught:
            fly._core.send(_call(path))
    return caught.value


def _call(path: str) -> Any:
    from flyk.api._http import Call

    return Call("POST", path, json={}, region="ord")


@pytest.mark.parametrize(
    ("status", "body", "cls", "message"),
    [
        (
            401,
            {"error": "Authenticate: token validation error"},
            UnauthorizedError,
            "Authenticate: token validation error",
        ),
        (403, {"error": "forbidden"}, ForbiddenError, "forbidden"),
        (
            404,
            {"error": "not_found: machine not found"},
            NotFoundError,
            "not_found: machine not found",
        ),
        (409, {"error": "machine has moved on"}, ConflictError, "machine has moved on"),
        (
            409,
            {"status": "error", "message": "lease currently held"},
            LeaseHeldError,
            "lease currently held",
        ),
        (412, {"error": "volume in use"}, PreconditionFailedError, "volume in use"),
        (
            400,
            {"error": "invalid config.guest.memory_mb"},
            InvalidRequestError,
            "invalid config.guest.memory_mb",
        ),
        (
            422,
            {"error": "To create more than 1 machine per app please add a payment method"},
            InvalidRequestError,
            "To create more than 1 machine per app please add a payment method",
        ),
        (
            422,
            {"error": "Name has already been taken"},
            AlreadyExistsError,
            "Name has already been taken",
        ),
        (400, {"error": "taken", "status": "name_taken"}, AlreadyExistsError, "taken"),
        (408, {"error": "deadline exceeded"}, WaitTimeoutError, "deadline exceeded"),
        (429, {"error": "rate limited"}, RateLimitedError, "rate limited"),
        (500, {"error": "boom"}, ServerError, "boom"),
        (503, "upstream unavailable", ServerError, "upstream unavailable"),
        (502, "", ServerError, "502 Bad Gateway"),
        # message first, then error (reference §9)
        (
            400,
            {"message": "from message", "error": "from error"},
            InvalidRequestError,
            "from message",
        ),
        (400, ["not", "an", "object"], InvalidRequestError, '["not","an","object"]'),
    ],
)
def test_status_maps_to_class_and_message(
    status: int, body: Any, cls: type[FlykError], message: str
) -> None:
    error = _fail(status, body)
    assert type(error) is cls
    assert error.message == message
    assert error.details is not None
    assert error.details.status == status
    assert error.request_id == "req-123"
    assert error.details.method == "POST"
    assert error.details.url == "https://api.test/v1/apps/a/machines/m1"


def test_409_on_the_lease_endpoint_is_lease_held() -> None:
    error = _fail(409, {"error": "conflict"}, path="/apps/a/machines/m1/lease")
    assert isinstance(error, LeaseHeldError)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, {"error": "no capacity", "status": "unknown"}),
        (500, {"error": "try again", "status": "insufficient_capacity"}),
        (
            412,
            {"error": "insufficient resources to create new machine with existing volume 'vol_1'"},
        ),
        (
            409,
            {
                "error": "aborted: could not reserve resource for machine: "
                "insufficient memory available to fulfill request"
            },
        ),
        (
            403,
            {
                "error": 'organization "x" is using 2048 MB of memory in dfw '
                "which is over the allowed quota. "
                "please consider other regions"
            },
        ),
        (409, {"error": "insufficient CPU available"}),
    ],
)
def test_capacity_failures_are_classified(status: int, body: dict[str, str]) -> None:
    error = _fail(status, body)
    assert isinstance(error, CapacityError)
    assert error.region == "ord"
    assert error.message == body["error"]
    assert error.details is not None and error.details.request_id == "req-123"


def test_capacity_phrases_on_other_statuses_are_not_capacity() -> None:
    assert type(_fail(404, {"error": "no capacity"})) is NotFoundError


def test_body_status_code_is_kept_on_details() -> None:
    error = _fail(500, {"error": "full", "status": "insufficient_capacity"})
    assert error.details is not None and error.details.code == "insufficient_capacity"


def test_transport_error_is_network_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with make_client(handler, max_attempts=1) as fly, pytest.raises(NetworkError):
        fly.apps.get("a")
