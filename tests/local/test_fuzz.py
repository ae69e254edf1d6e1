"""Random requests at every served operation never get a 5xx, and every answer (errors
included) is in the spec's shape.

Seeded, so a failure reproduces; the bodies mix the spec's own field names with wrong types.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error, response_schema_conformance

from flyk.local import LocalBackend
from flyk.local.routes import HANDLERS, SPEC_OPERATIONS
from tests.local.conftest import flyk_local_serve, make_app, make_machine
from tests.spec_check import SpecCheckingTransport, load_spec

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


# --- schemathesis: the official spec against `flyk local serve`, on seeded state -------------
#
# Every operation of the spec is drawn (positive data mostly, negative data one time in four)
# against a real `flyk local serve` process whose state is seeded before the run and re-seeded
# after every write: an app, two machines (one leased), a volume, a secret, two secret keys, a
# metadata key, a certificate and an IP. Path parameters name those resources nine times in ten
# (else what schemathesis drew, to fuzz the not-found paths too), so most operations act on real
# state instead of answering 404. Every answer must pass schemathesis's `not_a_server_error` and
# `response_schema_conformance` checks, and every error must be the spec's `ErrorResponse`.
#
# The suite runs FUZZ_EXAMPLES cases with a fixed seed (about 35 s); for a longer local run:
#     FLYK_FUZZ_EXAMPLES=5000 FLYK_FUZZ_SEED=7 .venv/bin/pytest tests/local/test_fuzz.py -k schema

FUZZ_EXAMPLES = int(os.environ.get("FLYK_FUZZ_EXAMPLES", "1500"))
FUZZ_SEED = int(os.environ.get("FLYK_FUZZ_SEED", "11"))
APP = "fuzz"
SECRET = "FUZZ_SECRET"
SIGNING_KEY, BOX_KEY = "fuzzsign", "fuzzbox"
METADATA_KEY = "role"
HOSTNAME = "fuzz.example.com"


@dataclass
class Seeded:
    """The resources the fuzzer's path parameters name, re-created whenever one is gone."""

    http: httpx.Client
    ids: dict[str, str] = field(default_factory=dict)

    def ensure(self) -> None:
        http = self.http
        if http.get(f"/apps/{APP}").status_code == 404:
            self.ids.clear()
            assert http.post("/apps", json={"name": APP, "org_slug": "personal"}).status_code == 201
        for name in ("machine", "leased"):
            machine = self.ids.get(name)
            shown = http.get(f"/apps/{APP}/machines/{machine}") if machine else None
            if shown is None or shown.status_code != 200 or shown.json()["state"] == "destroyed":
                created = http.post(f"/apps/{APP}/machines", json={"config": {"image": "nginx"}})
                self.ids[name] = created.json()["id"]
        leased = f"/apps/{APP}/machines/{self.ids['leased']}"
        if http.get(f"{leased}/lease").status_code != 200:
            lease = http.post(f"{leased}/lease", json={"ttl": 3600, "description": "fuzz"})
            self.ids["nonce"] = lease.json()["nonce"]
        volume = self.ids.get("volume")
        shown = http.get(f"/apps/{APP}/volumes/{volume}") if volume else None
        if shown is None or shown.status_code != 200 or shown.json()["state"] == "destroyed":
            created = http.post(
                f"/apps/{APP}/volumes", json={"name": "data", "region": "iad", "size_gb": 1}
            )
            self.ids["volume"] = created.json()["id"]
        if http.get(f"/apps/{APP}/secrets/{SECRET}").status_code == 404:
            http.post(f"/apps/{APP}/secrets/{SECRET}", json={"value": "s3cret"})
        for key, kind in ((SIGNING_KEY, "hs256"), (BOX_KEY, "xaes256gcm")):
            if http.get(f"/apps/{APP}/secretkeys/{key}").status_code == 404:
                http.post(f"/apps/{APP}/secretkeys/{key}/generate", json={"type": kind})
        http.post(
            f"/apps/{APP}/machines/{self.ids['machine']}/metadata/{METADATA_KEY}",
            json={"value": "db"},
        )
        if http.get(f"/apps/{APP}/certificates/{HOSTNAME}").status_code == 404:
            http.post(f"/apps/{APP}/certificates/acme", json={"hostname": HOSTNAME})
        ips = http.get(f"/apps/{APP}/ip_assignments").json().get("ips") or []
        if not ips:
            ips = [http.post(f"/apps/{APP}/ip_assignments", json={"type": "v6"}).json()]
        self.ids["ip"] = ips[0]["ip"]

    def path_value(self, name: str, path: str, rng: random.Random) -> str:
        if name == "secret_name" and "/secretkeys/" in path:
            if path.endswith(("/sign", "/verify")):
                return SIGNING_KEY
            if path.endswith(("/encrypt", "/decrypt")):
                return BOX_KEY
            return rng.choice([SIGNING_KEY, BOX_KEY])
        if name == "machine_id":
            return self.ids[rng.choice(["machine", "leased"])]
        fixed = {
            "app_name": APP,
            "secret_name": SECRET,
            "key": METADATA_KEY,
            "hostname": HOSTNAME,
            "org_slug": "personal",
        }
        return fixed.get(name) or self.ids[name.removesuffix("_id")]


def test_schemathesis_with_the_official_spec_reaches_the_state(tmp_path: Path) -> None:
    schema = schemathesis.openapi.from_dict(load_spec())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(SPEC_OPERATIONS)
    modes = [schemathesis.GenerationMode.POSITIVE] * 3 + [schemathesis.GenerationMode.NEGATIVE]
    strategies: dict[tuple[str, Any], Any] = {}
    rng = random.Random(FUZZ_SEED)
    statuses: dict[str, Counter[int]] = defaultdict(Counter)
    problems: list[str] = []

    with flyk_local_serve(tmp_path) as served, httpx.Client(base_url=f"{served.url}/v1") as http:
        seeded = Seeded(http)
        seeded.ensure()

        @hypothesis.seed(FUZZ_SEED)  # the same cases every run, unless FLYK_FUZZ_SEED says
        @hypothesis.settings(
            max_examples=FUZZ_EXAMPLES,
            database=None,
            deadline=None,
            phases=[hypothesis.Phase.generate],  # a failure is reported as found, not shrunk
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        @hypothesis.given(data=hypothesis.strategies.data())
        def fuzz(data: Any) -> None:
            operation = data.draw(hypothesis.strategies.sampled_from(operations))
            mode = data.draw(hypothesis.strategies.sampled_from(modes))
            key = (operation.label, mode)
            if key not in strategies:
                strategies[key] = operation.as_strategy(generation_mode=mode)
            case = data.draw(strategies[key])
            for name in list(case.path_parameters or {}):
                if rng.random() < 0.9:
                    case.path_parameters[name] = seeded.path_value(name, operation.path, rng)
            if (
                case.path_parameters
                and case.path_parameters.get("machine_id") == seeded.ids["leased"]
                and rng.random() < 0.5
            ):
                case.headers = {
                    **(case.headers or {}),
                    "fly-machine-lease-nonce": seeded.ids["nonce"],
                }
            query = dict(case.query or {})
            if operation.path.endswith("/wait"):
                query["timeout"] = 0  # a long-poll would spend the budget waiting
            if "org_slug" in query and rng.random() < 0.8:
                query["org_slug"] = "personal"
            case.query = query
            if isinstance(case.body, dict) and "org_slug" in case.body and rng.random() < 0.8:
                case.body["org_slug"] = "personal"
            response = case.call(base_url=f"{served.url}/v1", timeout=30)
            statuses[operation.label][response.status_code] += 1
            try:
                case.validate_response(
                    response, checks=[not_a_server_error, response_schema_conformance]
                )
            except Exception as failure:  # schemathesis's FailureGroup: keep going, report all
                problems.append(f"{operation.label} {response.status_code}: {failure}"[:2000])
            if response.status_code >= 400:
                try:
                    error = response.json()
                    assert isinstance(error, dict) and isinstance(error.get("error"), str)
                except (ValueError, AssertionError):
                    problems.append(f"{operation.label}: not the API's error: {response.text!r}")
            if operation.method.upper() != "GET" and response.status_code < 300:
                seeded.ensure()

        fuzz()

    assert problems == [], "\n".join(problems[:20])
    assert "Traceback" not in served.stderr, served.stderr
    answered = {label for label, seen in statuses.items() if set(seen) - {404}}
    mostly = {label for label, seen in statuses.items() if seen[404] * 2 < sum(seen.values())}
    summary = {label: dict(seen) for label, seen in sorted(statuses.items())}
    # shown with -s: the figures of a run (operations reached, answered other than 404)
    print(
        f"\n{sum(map(sum, map(Counter.values, statuses.values())))} requests, "
        f"{len(statuses)} operations reached, {len(answered)} answered other than 404, "
        f"{len(mostly)} mostly other than 404"
    )
    for label, seen in summary.items():
        print(f"  {label}: {seen}")
    assert len(statuses) == len(operations), summary
    assert len(answered) >= 70 and len(mostly) >= 60, (len(answered), len(mostly), summary)
