"""Random requests at every served operation never get a 5xx, and every answer (errors
included) is in the spec's shape.

Seeded, so a failure reproduces; the bodies mix the spec's own field names with wrong types.
"""

from __future__ import annotations

import json
import random
from typing import Any

import httpx
import pytest

from flyk.local import LocalBackend
from flyk.local.routes import HANDLERS, SPEC_OPERATIONS
from tests.local.conftest import make_app, make_machine
from tests.spec_check import SpecCheckingTransport

FIELDS = [
    "config", "image", "guest", "memory_mb", "cpus", "cpu_kind", "env", "mounts", "volume",
    "path", "region", "name", "ttl", "signal", "timeout", "metadata", "machine_version",
    "values", "value", "size_gb", "type", "org_slug", "command", "restart", "policy",
    "lease_ttl", "skip_launch", "current_version", "count", "compute", "limit_mb", "amount_mb",
    "auto_destroy", "checks", "files", "guest_path", "source_volume_id", "expiry",
]  # fmt: skip
JSON = {"content-type": "application/json"}
QUERY = ["force", "kill", "state", "timeout", "limit", "ttl", "summary", "region", "size",
         "include_deleted", "version", "org_slug", "show_secrets", "cursor", "sort_by"]  # fmt: skip


def random_value(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(9 if depth < 3 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, 1, 256, 7, 2**40, 10**20, 3.5])
    if choice == 3:
        return rng.choice(
            ["", "x", "iad", "SIGTERM", "started", "10s", "vol_x", "/data", "é", "\ud800"]
        )
    if choice == 4:
        return rng.choice(["nginx", "lhr,eu", "any", "mars", "always", "shared", "-1"])
    if choice == 5:
        return []
    if choice == 6:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {rng.choice(FIELDS): random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def query_value(rng: random.Random) -> str:
    # a URL cannot carry a lone surrogate (httpx refuses to encode it): its text stands in
    return str(random_value(rng)).encode("utf-8", "backslashreplace").decode()


def fill(template: str, ids: dict[str, str], rng: random.Random) -> str:
    values = {
        "{app_name}": ids["app"] if rng.random() < 0.8 else "nope",
        "{machine_id}": ids["machine"] if rng.random() < 0.8 else "0123456789abcd",
        "{volume_id}": ids["volume"] if rng.random() < 0.8 else "vol_nope",
        "{org_slug}": "personal",
        "{key}": rng.choice(["role", "bad key", "x" * 200]),
        "{secret_name}": rng.choice(["A", "1BAD"]),
        "{ip}": "fdaa::1",
        "{hostname}": "example.com",
    }
    for name, value in values.items():
        template = template.replace(name, value)
    return template


@pytest.mark.parametrize("seed", range(4))
def test_random_requests_never_fail_the_server(backend: LocalBackend, seed: int) -> None:
    rng = random.Random(seed)
    transport = SpecCheckingTransport(backend.transport(), strict_errors=True, check_requests=False)
    with httpx.Client(transport=transport, base_url="http://local/v1") as client:
        ids = {"app": make_app(client)}
        ids["machine"] = make_machine(client)["id"]
        volume = client.post(
            "/apps/demo/volumes", json={"name": "d", "region": "iad", "size_gb": 1}
        ).json()
        ids["volume"] = volume["id"]
        served = [op for op in SPEC_OPERATIONS if op[2] in HANDLERS]
        for _ in range(400):
            method, template, operation = rng.choice(served)
            params = {rng.choice(QUERY): query_value(rng) for _ in range(rng.randrange(3))}
            if operation == "Machines_wait":
                params["timeout"] = "0"
            body = random_value(rng)
            # json.dumps writes a lone surrogate as an ASCII escape (httpx's encoder cannot)
            content = None if body is None else json.dumps(body).encode()
            response = client.request(
                method, fill(template, ids, rng), params=params, content=content, headers=JSON
            )
            assert response.status_code < 500, (operation, params, body, response.text)
            if response.status_code >= 400:
                error = response.json()
                assert isinstance(error.get("error"), str), (operation, response.text)
