"""Errors a handler raises; the core turns each into the API's error body.

The body is the spec's `ErrorResponse`: `{"error": "<message>", "status": "<code>"}` where
`status` is present only for the codes the spec names (`insufficient_capacity`, and `name_taken`
which newer API versions send).
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An HTTP error answer in the API's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message}
        if self.code is not None:
            body["status"] = self.code
        return body


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(what: str) -> ApiError:
    return ApiError(404, f"not_found: {what} not found")


def conflict(message: str) -> ApiError:
    return ApiError(409, message)


def precondition(message: str) -> ApiError:
    return ApiError(412, f"failed_precondition: {message}")


def insufficient_capacity(message: str) -> ApiError:
    # The real API's HTTP code for this body is undocumented (reference §9); 412 matches the
    # observed "insufficient resources" create failure, and clients key on the body's status.
    return ApiError(412, message, code="insufficient_capacity")
