"""The admin API under `/_flyk/` (not part of the Machines API): reset and the knobs.

POST   /_flyk/reset                       clear all state (orgs back to the defaults)
GET    /_flyk/timing   PUT {boot?, stop?, suspend?, destroy?, restart_delay?} | {preset}
GET    /_flyk/capacity PUT {default_memory_mb?, regions?: {code: memory_mb},
                            default_volume_gb?, volume_regions?: {code: gb}}
GET    /_flyk/rate_limits  PUT {enabled}
GET    /_flyk/faults   POST {kind, method?, path?, times?, status?, seconds?, retry_after?}
                       DELETE (clear all)
GET    /_flyk/orgs     POST {slug, name?}
GET    /_flyk/coverage which spec operations are served
POST   /_flyk/publish  {app, port} → {host_port}: the loopback port that stands for an app's
                       service port (made once, kept); machines that run for real listen there
GET    /_flyk/processes the machines that run for real: pid, log file, published ports
GET    /_flyk/routes?address=A&port=P[&protocol=tcp|udp]  the machines Fly Proxy would send
                       a connection to A:P to (routing.py), with the app and service_name
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from flyk.local.context import Reply
from flyk.local.core import LocalRequest, method_not_allowed, parse_admin_body, routed_method
from flyk.local.errors import ApiError, bad_request
from flyk.local.knobs import FaultRule, Timing
from flyk.local.regions import REGIONS
from flyk.local.routes import HANDLERS, SPEC_OPERATIONS
from flyk.local.runtime import Runtime
from flyk.local.validate import APP_NAME

if TYPE_CHECKING:
    from flyk.local.backend import LocalBackend

__all__ = ["AdminApi"]


class AdminApi:
    def __init__(self, backend: LocalBackend) -> None:
        self.backend = backend
        self._routes: dict[tuple[str, str], Callable[[LocalRequest], Reply]] = {
            ("POST", "reset"): self._reset,
            ("GET", "timing"): self._get_timing,
            ("PUT", "timing"): self._put_timing,
            ("GET", "capacity"): self._get_capacity,
            ("PUT", "capacity"): self._put_capacity,
            ("GET", "rate_limits"): self._get_rate_limits,
            ("PUT", "rate_limits"): self._put_rate_limits,
            ("GET", "faults"): self._get_faults,
            ("POST", "faults"): self._add_fault,
            ("DELETE", "faults"): self._clear_faults,
            ("GET", "orgs"): self._get_orgs,
            ("POST", "orgs"): self._add_org,
            ("GET", "coverage"): self._coverage,
            ("POST", "publish"): self._publish,
            ("GET", "processes"): self._processes,
            ("GET", "routes"): self._routes_to,
        }

    def routes(self) -> list[tuple[str, str]]:
        """(method, path) of every admin route."""
        return [(method, f"/_flyk/{name}") for method, name in self._routes]

    def __call__(self, request: LocalRequest) -> Reply:
        name = request.path.removeprefix("/_flyk").strip("/")
        handler = self._routes.get((routed_method(request.method), name))
        if handler is None:
            allowed = tuple(method for method, path in self._routes if path == name)
            if allowed:
                raise method_not_allowed(request.method, f"/_flyk/{name}", allowed)
            raise ApiError(404, f"not_found: no admin route /_flyk/{name}")
        return handler(request)

    def _publish(self, request: LocalRequest) -> Reply:
        body = parse_admin_body(request)
        app, port = body.get("app"), body.get("port")
        if not isinstance(app, str) or not APP_NAME.match(app):
            raise bad_request("publish needs an app name")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise bad_request("publish needs a port between 1 and 65535")
        runtime = self.backend.runtime or Runtime(self.backend.store, lambda _config: None)
        with self.backend.store.transaction() as conn:
            host_port = runtime.publish(conn, app, port)
        return Reply(200, {"app": app, "port": port, "host_port": host_port})

    def _routes_to(self, request: LocalRequest) -> Reply:
        query = dict(parse_qsl(request.query, keep_blank_values=True))
        address, port = query.get("address", ""), query.get("port", "")
        protocol = query.get("protocol", "tcp").lower()
        if not address:
            raise bad_request("routes needs ?address=")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise bad_request("routes needs ?port= between 1 and 65535")
        if protocol not in ("tcp", "udp"):
            raise bad_request("routes takes protocol tcp or udp")
        return Reply(200, self.backend.routes(address, int(port), protocol))

    def _processes(self, _: LocalRequest) -> Reply:
        runtime = self.backend.runtime or Runtime(self.backend.store, lambda _config: None)
        return Reply(200, runtime.status())

    def _reset(self, _: LocalRequest) -> Reply:
        self.backend.reset()
        return Reply(200, {"ok": True})

    def _get_timing(self, _: LocalRequest) -> Reply:
        return Reply(200, self.backend.timing.to_json())

    def _put_timing(self, request: LocalRequest) -> Reply:
        body = parse_admin_body(request)
        preset = body.pop("preset", None)
        base = self.backend.timing
        if preset is not None:
            presets = {"instant": Timing.instant, "realistic": Timing.realistic}
            if preset not in presets:
                raise bad_request("timing preset must be instant or realistic")
            base = presets[preset]()
        try:
            self.backend.timing = base.updated(body)
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        return Reply(200, self.backend.timing.to_json())

    def _get_capacity(self, _: LocalRequest) -> Reply:
        return Reply(200, self.backend.capacity.to_json())

    def _put_capacity(self, request: LocalRequest) -> Reply:
        body = parse_admin_body(request)
        known = {"default_memory_mb", "regions", "default_volume_gb", "volume_regions"}
        unknown = set(body) - known
        if unknown:
            raise bad_request(f"unknown capacity field(s): {', '.join(sorted(unknown))}")
        capacity = self.backend.capacity
        if (default := body.get("default_memory_mb")) is not None:
            capacity.set_default(_amount(default, "default_memory_mb", "MB"))
        if (default := body.get("default_volume_gb")) is not None:
            capacity.set_volume_default(_amount(default, "default_volume_gb", "GB"))
        for code, memory in _per_region(body.get("regions"), "regions", "memory_mb").items():
            capacity.set(code, _amount(memory, f"regions.{code}", "MB"))
        for code, size in _per_region(body.get("volume_regions"), "volume_regions", "gb").items():
            capacity.set_volumes(code, _amount(size, f"volume_regions.{code}", "GB"))
        return Reply(200, capacity.to_json())

    def _get_rate_limits(self, _: LocalRequest) -> Reply:
        return Reply(200, self.backend.rate_limits.to_json())

    def _put_rate_limits(self, request: LocalRequest) -> Reply:
        body = parse_admin_body(request)
        enabled = body.get("enabled")
        if set(body) != {"enabled"} or not isinstance(enabled, bool):
            raise bad_request('rate_limits takes {"enabled": true|false}')
        self.backend.rate_limits.enable(enabled)
        return Reply(200, self.backend.rate_limits.to_json())

    def _get_faults(self, _: LocalRequest) -> Reply:
        return Reply(200, {"faults": self.backend.faults.to_json()})

    def _add_fault(self, request: LocalRequest) -> Reply:
        body = parse_admin_body(request)
        try:
            rule = FaultRule.from_json(body)
        except (TypeError, ValueError) as exc:
            raise bad_request(f"invalid fault: {exc}") from None
        self.backend.faults.add_rule(rule)
        return Reply(201, rule.to_json())

    def _clear_faults(self, _: LocalRequest) -> Reply:
        self.backend.faults.clear()
        return Reply(200, {"faults": []})

    def _get_orgs(self, _: LocalRequest) -> Reply:
        return Reply(200, {"orgs": self.backend.orgs()})

    def _add_org(self, request: LocalRequest) -> Reply:
        body = parse_admin_body(request)
        slug = body.get("slug")
        name = body.get("name")
        if not isinstance(slug, str) or not APP_NAME.match(slug):
            raise bad_request("org slug must be lowercase letters, digits and dashes")
        if name is not None and not isinstance(name, str):
            raise bad_request("org name must be a string")
        self.backend.add_org(slug, name)
        return Reply(201, {"orgs": self.backend.orgs()})

    def _coverage(self, _: LocalRequest) -> Reply:
        operations: list[dict[str, Any]] = [
            {"method": method, "path": path, "operation_id": op, "served": op in HANDLERS}
            for method, path, op in SPEC_OPERATIONS
        ]
        return Reply(200, {"operations": operations})


def _per_region(value: Any, field: str, unit: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_request(f"capacity {field} must be an object of region: {unit}")
    for code in value:
        if code not in REGIONS:
            raise bad_request(f"unknown region {code!r}")
    return value


def _amount(value: Any, where: str, unit: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise bad_request(f"capacity {where} must be a whole number of {unit} >= 0")
    return value
