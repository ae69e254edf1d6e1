"""Check every request and response against the Machines API spec.

    from tests.spec_check import SpecCheckingTransport

    transport = SpecCheckingTransport(LocalBackend(path).transport())   # or any httpx transport
    client = httpx.Client(transport=transport, base_url="http://local/v1")

`SpecCheckingTransport(inner)` wraps any `httpx.BaseTransport`. For each request under the spec's
base path (`/v1`) it finds the spec operation (method + path template), checks the request
(query and header parameters, JSON body against the request schema, with unknown fields refused),
forwards it, then checks the response (status documented, JSON body against the documented
schema). A violation raises `AssertionError` naming the operation and what is wrong. Requests
outside `/v1` (the local backend's `/_flyk/` admin API) pass through unchecked.

The spec is `shared/specs/machines-openapi.json` beside the repository (CI has it there).

Options:
- `strict_errors=True`: an error status the operation does not document must still carry the
  spec's `ErrorResponse` body (`{"error": str, "status"?: enum}`); the default accepts any JSON
  object with a string `error` or `message` (the two shapes the real API sends, reference §9/§12.6),
  which is what a client-side test feeding odd bodies through a MockTransport needs.
- `strict_request_fields=False`: accept unknown request-body fields (default: refused, because
  the spec lists every field the API reads and an unknown one is a typo or a stale assumption).
- `check_requests=False`: check only responses, for tests that send bad requests on purpose
  (a request matching no operation then passes through unchecked).

Leniencies, each where the spec is known to be stale or to disagree with the live API
(reference/machines-api.md §1 "Staleness" and §12):
1. A response whose spec entry declares no content (start, stop, cordon, destroy, lease
   release, ...) is not checked: the live API answers those with small JSON bodies
   (`{"ok": true}`, fly-go decodes `{message, status, previous_state}` from start).
2. `ErrorResponse.status` may also be `name_taken` (fly-go 2026-08 added it; the spec has only
   `unknown` and `insufficient_capacity`).
3. Null values are accepted in `updateMetadataRequest.metadata` and
   `AppSecretsUpdateRequest.values`: null removes the key (docs; fly-go sends null to delete).
4. Query parameters the clients send that the spec omits: `kill` on destroy (fly-go, §12.2),
   `ttl` on lease create (fly-go, §12.1; the body may then be absent), `force_stop` on restart
   (fly-go), `wait` on app create (fly-go `CreateApp`), `metadata.<key>` filters on machine list
   (flyctl), `size` on regions (community announcement, §8), `instance_id` on wait (deprecated
   alias, §12.4, and in the spec anyway). `state` on wait may be repeated (§4).
5. Status codes the real API is documented to send outside the spec's lists are accepted as
   errors and checked only for the error shape: 401, 403, 404, 405, 408 (wait timeout, §4), 409
   (leases, versions), 412, 413, 422 (name taken), 429 (rate limits), 5xx, and 501 (an operation
   the local backend does not serve).
6. A property typed `object` whose `allOf` names a non-object schema (the Swagger 2 conversion
   does this for `main.TokenAccess.action`, an integer enum `resset.Action`) matches nothing as
   written; it is checked against the named schema only.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import jsonschema

__all__ = ["SPEC_PATH", "Operation", "Spec", "SpecCheckingTransport", "load_spec"]

SPEC_PATH = Path(__file__).resolve().parents[2] / "shared" / "specs" / "machines-openapi.json"

_METHODS = ("get", "post", "put", "patch", "delete")
_EXTRA_QUERY: dict[str, set[str]] = {
    "Machines_delete": {"kill"},
    "Machines_create_lease": {"ttl"},
    "Machines_restart": {"force_stop"},
    "Apps_create": {"wait"},
    "Platform_regions_get": {"size"},
    "Machines_wait": {"instance_id"},
}
_EXTRA_QUERY_PREFIXES: dict[str, tuple[str, ...]] = {"Machines_list": ("metadata.",)}
_REPEATABLE_QUERY: dict[str, set[str]] = {"Machines_wait": {"state"}}
_NULLABLE_MAPS = (("updateMetadataRequest", "metadata"), ("AppSecretsUpdateRequest", "values"))


def load_spec(path: Path = SPEC_PATH) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(
            f"the Machines API spec is not at {path}; it belongs in shared/specs/ beside the repo"
        )
    spec: dict[str, Any] = json.loads(path.read_text())
    return spec


class Operation:
    def __init__(self, method: str, template: str, entry: dict[str, Any]) -> None:
        self.method = method.upper()
        self.template = template
        self.entry = entry
        self.operation_id: str = entry.get("operationId", f"{self.method} {template}")
        parts = re.split(r"(\{[^}]+\})", template)
        self.pattern = re.compile(
            "^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$"
        )
        self.literal_segments = sum(1 for p in parts if p and not p.startswith("{"))

    @property
    def parameters(self) -> list[dict[str, Any]]:
        params: list[dict[str, Any]] = self.entry.get("parameters", [])
        return params

    def __repr__(self) -> str:
        return f"{self.operation_id} ({self.method} {self.template})"


def _close_objects(schema: Any) -> None:
    """Refuse unknown properties: every object schema listing properties gets
    additionalProperties false (the spec never combines properties with allOf)."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for value in schema.values():
            _close_objects(value)
    elif isinstance(schema, list):
        for value in schema:
            _close_objects(value)


def _drop_contradictory_object_types(node: Any, schemas: dict[str, Any]) -> None:
    """`{"type": "object", "allOf": [{"$ref": X}]}` where X is not an object (the Swagger 2
    conversion does this for enums such as `resset.Action`) can match nothing: keep the ref."""
    if isinstance(node, dict):
        refs = [part.get("$ref", "") for part in node.get("allOf", []) if isinstance(part, dict)]
        if node.get("type") == "object" and len(refs) == 1 and refs[0]:
            target = schemas.get(refs[0].rsplit("/", 1)[-1], {})
            if target.get("type") not in (None, "object"):
                del node["type"]
        for value in node.values():
            _drop_contradictory_object_types(value, schemas)
    elif isinstance(node, list):
        for value in node:
            _drop_contradictory_object_types(value, schemas)


class Spec:
    """The spec, its operations, and validators for request and response schemas."""

    def __init__(self, document: dict[str, Any], *, strict_request_fields: bool = True) -> None:
        self.document = document
        self.base_path = re.sub(r"^https?://[^/]+", "", document["servers"][0]["url"]).rstrip("/")
        self.operations = [
            Operation(method, template, entry)
            for template, entries in document["paths"].items()
            for method, entry in entries.items()
            if method in _METHODS
        ]
        self._response_components = self._patched_components()
        self._request_components = copy.deepcopy(self._response_components)
        if strict_request_fields:
            _close_objects(self._request_components)

    def _patched_components(self) -> dict[str, Any]:
        components = copy.deepcopy(self.document["components"])
        schemas = components["schemas"]
        status = schemas["ErrorResponse"]["properties"]["status"]
        target = schemas[status["$ref"].rsplit("/", 1)[-1]] if "$ref" in status else status
        target["enum"] = [*target.get("enum", []), "name_taken"]  # leniency 2
        for schema_name, prop in _NULLABLE_MAPS:  # leniency 3
            schemas[schema_name]["properties"][prop]["additionalProperties"] = {
                "type": ["string", "null"]
            }
        _drop_contradictory_object_types(components, schemas)  # leniency 6
        return components

    @cached_property
    def error_schema(self) -> dict[str, Any]:
        return {"$ref": "#/components/schemas/ErrorResponse"}

    def find(self, method: str, path: str) -> Operation | None:
        """The operation for a path relative to the base path; a literal segment beats a
        parameter (`/metadata` vs `/metadata/{key}` cannot clash, `/{id}/lease` vs `/{id}`)."""
        candidates = [
            op for op in self.operations if op.method == method.upper() and op.pattern.match(path)
        ]
        if not candidates:
            return None
        return max(candidates, key=lambda op: op.literal_segments)

    def validate(self, schema: dict[str, Any], value: Any, *, request: bool) -> list[str]:
        components = self._request_components if request else self._response_components
        root = {"allOf": [schema], "components": components}
        validator = jsonschema.Draft4Validator(root)
        messages = []
        for error in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path)):
            where = "/".join(str(p) for p in error.absolute_path) or "(body)"
            messages.append(f"{where}: {error.message}")
        return messages


def _json_schema(content: dict[str, Any]) -> dict[str, Any] | None:
    for media_type, media in content.items():
        if "json" in media_type and "schema" in media:
            schema: dict[str, Any] = media["schema"]
            return schema
    return None


def _parse_json(raw: bytes) -> Any:
    return json.loads(raw)


class SpecCheckingTransport(httpx.BaseTransport):
    """Validates each exchange against the spec; raises AssertionError on a violation."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        *,
        spec: Spec | None = None,
        strict_errors: bool = False,
        strict_request_fields: bool = True,
        check_requests: bool = True,
    ) -> None:
        self.inner = inner
        self.spec = spec or _default_spec(strict_request_fields)
        self.strict_errors = strict_errors
        self.check_requests = check_requests
        self.checked: list[str] = []  # operation ids seen, in order (tests may assert coverage)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if not path.startswith(self.spec.base_path + "/"):
            return self.inner.handle_request(request)
        relative = path[len(self.spec.base_path) :]
        operation = self.spec.find(request.method, relative)
        if operation is None:
            if not self.check_requests:
                return self.inner.handle_request(request)
            raise AssertionError(f"{request.method} {relative}: no such operation in the spec")
        if self.check_requests:
            self._check_request(operation, request)
        response = self.inner.handle_request(request)
        response.read()
        self._check_response(operation, response)
        self.checked.append(operation.operation_id)
        return response

    def close(self) -> None:
        self.inner.close()

    # --- requests ---------------------------------------------------------------------------

    def _fail(self, operation: Operation, what: str) -> AssertionError:
        return AssertionError(f"{operation}: {what}")

    def _check_request(self, operation: Operation, request: httpx.Request) -> None:
        self._check_query(operation, request)
        for param in operation.parameters:
            if param.get("in") == "header" and param.get("required"):
                if param["name"].lower() not in {k.lower() for k in request.headers}:
                    raise self._fail(operation, f"request: missing required header {param['name']}")
        self._check_request_body(operation, request)

    def _check_query(self, operation: Operation, request: httpx.Request) -> None:
        declared = {p["name"]: p for p in operation.parameters if p.get("in") == "query"}
        extra = _EXTRA_QUERY.get(operation.operation_id, set())
        prefixes = _EXTRA_QUERY_PREFIXES.get(operation.operation_id, ())
        repeatable = _REPEATABLE_QUERY.get(operation.operation_id, set())
        pairs = parse_qsl(request.url.query.decode(), keep_blank_values=True)
        seen: dict[str, int] = {}
        for name, value in pairs:
            seen[name] = seen.get(name, 0) + 1
            if name in declared:
                self._check_query_value(operation, declared[name], value)
            elif name not in extra and not name.startswith(prefixes):
                raise self._fail(operation, f"request: query parameter {name!r} is not in the spec")
        for name, count in seen.items():
            if count > 1 and name not in repeatable:
                raise self._fail(operation, f"request: query parameter {name!r} repeated")
        for name, param in declared.items():
            if param.get("required") and name not in seen:
                raise self._fail(operation, f"request: missing required query parameter {name!r}")

    def _check_query_value(self, operation: Operation, param: dict[str, Any], value: str) -> None:
        kind = param.get("schema", {}).get("type")
        ok = True
        if kind == "integer":
            ok = re.fullmatch(r"-?\d+", value) is not None
        elif kind == "boolean":
            ok = value in {"true", "false", "1", "0"}
        if not ok:
            raise self._fail(
                operation, f"request: query parameter {param['name']}={value!r} is not a {kind}"
            )

    def _check_request_body(self, operation: Operation, request: httpx.Request) -> None:
        body_spec = operation.entry.get("requestBody")
        raw = request.read()  # also buffers a streamed body, so the inner transport can send it
        if body_spec is None:
            if raw:
                raise self._fail(operation, "request: the operation takes no body")
            return
        if not raw:
            ttl_in_query = operation.operation_id == "Machines_create_lease" and (
                "ttl" in dict(parse_qsl(request.url.query.decode()))
            )
            if body_spec.get("required") and not ttl_in_query:
                raise self._fail(operation, "request: a JSON body is required")
            return
        schema = _json_schema(body_spec.get("content", {}))
        try:
            value = _parse_json(raw)
        except ValueError as exc:
            raise self._fail(operation, f"request: body is not JSON ({exc})") from None
        if schema is not None:
            problems = self.spec.validate(schema, value, request=True)
            if problems:
                raise self._fail(operation, "request body: " + "; ".join(problems))

    # --- responses --------------------------------------------------------------------------

    def _check_response(self, operation: Operation, response: httpx.Response) -> None:
        status = response.status_code
        documented = operation.entry.get("responses", {})
        entry = documented.get(str(status))
        if entry is None:
            if status < 400:
                raise self._fail(
                    operation,
                    f"response: status {status} is not documented "
                    f"(documented: {', '.join(documented)})",
                )
            self._check_error_body(operation, response, schema=None)
            return
        schema = _json_schema(entry.get("content", {}))
        if schema is None:
            return  # leniency 1: no content declared
        if status >= 400:
            self._check_error_body(operation, response, schema=schema)
            return
        value = self._response_json(operation, response)
        problems = self.spec.validate(schema, value, request=False)
        if problems:
            raise self._fail(operation, f"response {status} body: " + "; ".join(problems))

    def _response_json(self, operation: Operation, response: httpx.Response) -> Any:
        try:
            return _parse_json(response.content)
        except ValueError:
            raise self._fail(
                operation,
                f"response {response.status_code}: body is not JSON: {response.content[:200]!r}",
            ) from None

    def _check_error_body(
        self, operation: Operation, response: httpx.Response, schema: dict[str, Any] | None
    ) -> None:
        value = self._response_json(operation, response)
        status = response.status_code
        if schema is not None or self.strict_errors:
            problems = self.spec.validate(schema or self.spec.error_schema, value, request=False)
            if not isinstance(value, dict) or not isinstance(value.get("error"), str):
                problems.append("an error body needs a string 'error'")
            if problems:
                raise self._fail(operation, f"response {status} error body: " + "; ".join(problems))
            return
        if not isinstance(value, dict) or not (
            isinstance(value.get("error"), str) or isinstance(value.get("message"), str)
        ):
            raise self._fail(
                operation, f"response {status}: error body has no 'error' or 'message': {value!r}"
            )


_SPECS: dict[bool, Spec] = {}


def _default_spec(strict_request_fields: bool) -> Spec:
    if strict_request_fields not in _SPECS:
        _SPECS[strict_request_fields] = Spec(
            load_spec(), strict_request_fields=strict_request_fields
        )
    return _SPECS[strict_request_fields]
