"""Helpers: run flyk in-process, as a user would, and capture stdout, stderr and the exit code.

`flyk(...)` goes through `flyk.cli.main.run`, the same path as the `flyk` executable, so the
error-to-exit-code mapping is under test too. The client's transport is the only seam:
pass `transport=` (an `httpx.MockTransport`) to script the API; otherwise the command uses
whatever target it resolves (the local backend, in this isolated environment).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from typer.testing import CliRunner  # noqa: TID251 - CLI tests drive Typer directly

from flyk.api import RateLimiter, RetryPolicy
from flyk.cli.main import run


@dataclass(frozen=True)
class Result:
    exit_code: int
    stdout: str
    stderr: str


Flyk = Callable[..., Result]


def invoke(
    *args: str,
    input: str | None = None,
    env: Mapping[str, str | None] | None = None,
    transport: httpx.BaseTransport | None = None,
    client_options: dict[str, Any] | None = None,
) -> Result:
    # each flyk run is a process of its own: it starts with a fresh rate limiter
    options = {"rate_limiter": RateLimiter(), **(client_options or {})}
    runner = CliRunner()
    with runner.isolation(input=input, env=env) as (out, err, _):
        code = run(list(args), transport=transport, client_options=options)
        sys.stdout.flush()
        sys.stderr.flush()
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    return Result(code, stdout, stderr)


def no_retries() -> dict[str, Any]:
    """Client options for tests that script failures: one attempt, no sleeping."""
    return {"retry": RetryPolicy(max_attempts=1, sleep=lambda _s: None)}


def json_response(
    status: int, body: Any, headers: Mapping[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(status, json=body, headers=dict(headers or {}))
