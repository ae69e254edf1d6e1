"""Reading app secret values back (the CA material a kubeconfig rebuild needs).

The Machines API returns values only with `show_secrets=true`. The client's `secrets.list`
does not ask for them yet, and its `--verbose` hook redacts secret values in request bodies but
not in responses; until it does both, this module asks through the client's own send loop
(retries, rate limits, auth) and wraps the client's exchange hook so that every `value` in a
secrets response reaches the log as `<redacted>`. Values are returned to the caller only.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from flyk.api.models import Secret

if TYPE_CHECKING:
    from flyk.api import FlyClient

REDACTED = "<redacted>"
_MARK = "_flyk_redacts_secret_values"
_install_lock = threading.Lock()

Hook = Callable[[httpx.Request, httpx.Response], None]


def _redact_values(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: REDACTED if k == "value" else _redact_values(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_redact_values(item) for item in data]
    return data


def _redacting(hook: Hook) -> Hook:
    def exchange(request: httpx.Request, response: httpx.Response) -> None:
        if "/secrets" in request.url.path and response.content:
            try:
                body = json.dumps(_redact_values(response.json())).encode()
            except ValueError:
                body = REDACTED.encode()
            response = httpx.Response(
                response.status_code,
                headers={
                    k: v for k, v in response.headers.items() if k.lower() != "content-length"
                },
                content=body,
                request=request,
            )
        hook(request, response)

    setattr(exchange, _MARK, True)
    return exchange


def _protect_log(client: FlyClient) -> Any:
    """The client's core, with its exchange hook (if any) redacting secret values."""
    core: Any = getattr(client, "_core")  # noqa: B009 - the client has no public hook for this
    with _install_lock:
        hook = getattr(core, "_on_exchange", None)
        if hook is not None and not getattr(hook, _MARK, False):
            core._on_exchange = _redacting(hook)
    return core


def read_secret_values(client: FlyClient, app: str) -> dict[str, str]:
    """Name → value of the app's secrets."""
    core = _protect_log(client)
    lister: Any = client.secrets.list
    if "show_secrets" in inspect.signature(lister).parameters:
        listed: list[Secret] = lister(app, show_secrets=True)
    else:
        from flyk.api._http import Call, path
        from flyk.api._resource import as_list

        data = core.json(
            Call(
                "GET",
                path("apps", app, "secrets"),
                params={"show_secrets": "true"},
                idempotent=True,
                limit=("secret_list", app),
            )
        )
        listed = [Secret.from_api(item) for item in as_list(data, "secrets")]
    return {s.name: s.value for s in listed if s.value is not None}
