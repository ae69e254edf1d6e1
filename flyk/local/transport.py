"""The in-process transport: httpx requests straight into the core, no sockets."""

from __future__ import annotations

import httpx

from flyk.local.core import Core, LocalRequest

__all__ = ["LocalTransport"]


class LocalTransport(httpx.BaseTransport):
    def __init__(self, core: Core) -> None:
        self._core = core

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        local = LocalRequest(
            method=request.method.upper(),
            path=request.url.path,
            query=request.url.query.decode("ascii", "replace"),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=request.read(),
        )
        response = self._core.handle(local)
        if response.storage_error is not None:
            raise response.storage_error  # not an answer the API could give: the CLI says it
        if response.drop_connection:
            # The write is committed; the client never learns it: exactly the ambiguous failure
            # a dropped connection causes against the real API.
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        # Named as `flyk local serve` names itself, so a client can tell it is talking to
        # the local backend however it reached it.
        headers = {**response.headers, "server": "flyk-local"}
        return httpx.Response(
            response.status, headers=headers, content=response.body, request=request
        )
