"""The request-handling core shared by the in-process transport and the HTTP server.

`Core.handle(LocalRequest) -> LocalResponse`: admin requests under `/_flyk/`, API requests under
`/v1`. For an API request: size limit, route, faults, rate limits, then the handler inside one
SQLite transaction; an `ApiError` becomes the API's error body, anything else a 500 with a message
(never a traceback on the wire).
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from flyk.local import ids
from flyk.local.context import Ctx, Reply, Settings
from flyk.local.errors import ApiError
from flyk.local.handlers import logs
from flyk.local.knobs import Faults, RateLimits
from flyk.local.routes import OWNS_TRANSACTIONS, Route, match
from flyk.local.store import LocalStorageError
from flyk.local.validate import MAX_BODY_BYTES, parse_json_object, strictness

__all__ = ["ADMIN_PREFIX", "API_PREFIX", "Core", "LocalRequest", "LocalResponse"]

API_PREFIX = "/v1"
ADMIN_PREFIX = "/_flyk"
# Fly's logs API lives on another host (api.fly.io) under this path; the backend serves it
# beside the Machines API (handlers/logs.py).
LOGS_PATH = re.compile(r"^/api/v1/apps/(?P<app_name>[^/]+)/logs$")


@dataclass
class LocalRequest:
    method: str
    path: str
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    too_large: bool = False  # the server refused to read a body over the limit


@dataclass
class LocalResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    drop_connection: bool = False  # a drop_after_commit fault: no response reaches the client
    # The database's storage refused a write: the in-process transport raises it (the CLI
    # names the file); over HTTP the client gets the 507 and its message.
    storage_error: LocalStorageError | None = None


def _encode(reply: Reply) -> LocalResponse:
    headers = {"fly-request-id": ids.ulid()}
    body = b""
    if reply.text is not None:
        body = reply.text.encode()
        headers["content-type"] = "text/plain; charset=utf-8"
    elif reply.body is not None:
        body = json.dumps(reply.body, separators=(",", ":")).encode()
        headers["content-type"] = "application/json; charset=utf-8"
    headers.update(reply.headers)
    return LocalResponse(reply.status, headers, body)


def allow_header(methods: tuple[str, ...]) -> str:
    """`Allow` for a path that takes `methods`: HEAD goes with GET."""
    listed = list(methods)
    if "GET" in listed:
        listed.insert(listed.index("GET") + 1, "HEAD")
    return ", ".join(listed)


def routed_method(method: str) -> str:
    """The method a request is routed as: HEAD goes wherever GET does."""
    return "GET" if method == "HEAD" else method


def _printable(method: str) -> str:
    """A method as a client sent it, safe to echo in a message (any token is a method)."""
    return method.encode("ascii", "backslashreplace").decode()[:32]


def method_not_allowed(method: str, path: str, allowed: tuple[str, ...]) -> ApiError:
    allow = allow_header(allowed)
    return ApiError(
        405,
        f"method {_printable(method)} not allowed for {path} (allowed: {allow})",
        headers={"allow": allow},
    )


def error_reply(error: ApiError) -> Reply:
    return Reply(error.status, error.body(), dict(error.headers))


AdminHandler = Callable[[LocalRequest], Reply]


class Core:
    def __init__(
        self,
        settings: Settings,
        faults: Faults,
        rate_limits: RateLimits,
        admin: AdminHandler,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.faults = faults
        self.rate_limits = rate_limits
        self._admin = admin
        self._sleep = sleep

    def handle(self, request: LocalRequest) -> LocalResponse:
        response = self._handle(request)
        if request.method == "HEAD":  # GET's answer without its body (RFC 9110 §9.3.2)
            response.body = b""
        return response

    def _handle(self, request: LocalRequest) -> LocalResponse:
        try:
            if request.path == ADMIN_PREFIX or request.path.startswith(ADMIN_PREFIX + "/"):
                return _encode(self._admin(request))
            if (logs := LOGS_PATH.match(request.path)) is not None:
                return self._handle_logs(request, unquote(logs["app_name"]))
            response = self._handle_api(request)
            self._sync_runtime()
            return response
        except ApiError as error:
            return _encode(error_reply(error))
        except LocalStorageError as exc:  # the user's disk, not a bug: no traceback
            response = _encode(Reply(507, {"error": str(exc)}))
            response.storage_error = exc
            return response
        except Exception as exc:  # a bug in the backend: say so, without a traceback on the wire
            traceback.print_exc(file=sys.stderr)
            message = f"internal error in the flyk local backend: {type(exc).__name__}: {exc}"
            return _encode(Reply(500, {"error": message}))

    def _handle_api(self, request: LocalRequest) -> LocalResponse:
        if not (request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/")):
            raise ApiError(404, f"not_found: no route for {request.path} (the API is under /v1)")
        path = request.path[len(API_PREFIX) :] or "/"
        if request.too_large or len(request.body) > MAX_BODY_BYTES:
            raise ApiError(413, f"request body too large: the limit is {MAX_BODY_BYTES} bytes")
        route, params, allowed = match(routed_method(request.method), path)
        if route is None:
            if allowed:
                raise method_not_allowed(request.method, path, allowed)
            raise ApiError(404, f"not_found: no route for {_printable(request.method)} {path}")
        handler = route.handler
        if handler is None:
            raise ApiError(
                501,
                f"not implemented: {route.operation_id} ({route.method} {route.template}) "
                "is not served by the flyk local backend",
            )
        drop = self._apply_faults(request.method, path)
        self._apply_rate_limits(route, params)
        ctx = Ctx(
            method=routed_method(request.method),
            path=path,
            params=params,
            query=parse_qsl(request.query, keep_blank_values=True),
            headers=request.headers,
            raw_body=request.body,
            settings=self.settings,
            now_ms=round(self.settings.clock() * 1000),
        )
        with strictness(self.settings.strict()):
            if route.operation_id in OWNS_TRANSACTIONS:
                reply = handler(ctx)
            else:
                with self.settings.store.transaction() as conn:
                    ctx.conn = conn
                    reply = handler(ctx)
        response = _encode(reply)
        response.drop_connection = drop
        return response

    def _handle_logs(self, request: LocalRequest, app: str) -> LocalResponse:
        """Fly's logs API (not in the Machines spec): GET only, faults apply, no rate limit."""
        if routed_method(request.method) != "GET":
            raise method_not_allowed(request.method, request.path, ("GET",))
        drop = self._apply_faults(request.method, request.path)
        ctx = Ctx(
            method="GET",
            path=request.path,
            params={"app_name": app},
            query=parse_qsl(request.query, keep_blank_values=True),
            headers=request.headers,
            raw_body=b"",
            settings=self.settings,
            now_ms=round(self.settings.clock() * 1000),
        )
        with self.settings.store.transaction() as conn:
            ctx.conn = conn
            response = _encode(logs.app_logs(ctx))
        response.drop_connection = drop
        return response

    def _sync_runtime(self) -> None:
        """Machines that run for real follow the state this request left them in."""
        if self.settings.runtime is not None:
            self.settings.runtime.sync()

    def _apply_faults(self, method: str, path: str) -> bool:
        """Sleep for latency faults, raise for 429/5xx faults; True for drop_after_commit."""
        drop = False
        failure: ApiError | None = None
        for rule in self.faults.take(method, path):
            if rule.kind == "latency":
                self._sleep(rule.seconds)
            elif rule.kind == "rate_limit":
                failure = ApiError(
                    429,
                    "rate limit exceeded (injected fault)",
                    headers={"retry-after": str(rule.retry_after)},
                )
            elif rule.kind == "server_error":
                failure = ApiError(rule.status, f"injected server error {rule.status}")
            else:
                drop = True
        if failure is not None:
            raise failure
        return drop

    def _apply_rate_limits(self, route: Route, params: dict[str, str]) -> None:
        """Fly's documented limits: actions (non-GET) 1/s burst 3, get machine 5/s burst 10,
        per operation and per machine (else per app)."""
        get_machine = route.operation_id == "Machines_show"
        if route.method == "GET" and not get_machine:
            return
        scope = params.get("machine_id") or params.get("app_name") or "-"
        wait = self.rate_limits.take(
            route.operation_id, scope, get_machine=get_machine, now=self.settings.clock()
        )
        if wait > 0:
            raise ApiError(
                429,
                f"rate limit exceeded for {route.operation_id} on {scope}: retry in {wait:.2f}s",
                headers={"retry-after": str(max(1, math.ceil(wait)))},
            )


def parse_admin_body(request: LocalRequest) -> dict[str, Any]:
    return parse_json_object(request.body)
