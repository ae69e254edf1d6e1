"""The route table: every operation of the Machines API spec, and the handler serving it.

`SPEC_OPERATIONS` lists the spec's 76 operations (method, path template, operationId) in the
spec's order; `tests/local/test_docs.py` checks it against the spec and `docs/local-backend.md`.
An operation without a handler answers 501 in the API's error shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from flyk.local.context import Ctx, Reply
from flyk.local.handlers import (
    actions,
    apps,
    certificates,
    ips,
    leases,
    machines,
    metadata,
    orgs,
    platform,
    processes,
    secretkeys,
    secrets,
    tokens,
    volumes,
)

__all__ = ["SPEC_OPERATIONS", "Route", "match"]

Handler = Callable[[Ctx], Reply]

SPEC_OPERATIONS: tuple[tuple[str, str, str], ...] = (
    ("GET", "/apps", "Apps_list"),
    ("POST", "/apps", "Apps_create"),
    ("GET", "/apps/{app_name}", "Apps_show"),
    ("DELETE", "/apps/{app_name}", "Apps_delete"),
    ("GET", "/apps/{app_name}/certificates", "App_Certificates_list"),
    ("POST", "/apps/{app_name}/certificates/acme", "App_Certificates_acme_create"),
    ("POST", "/apps/{app_name}/certificates/custom", "App_Certificates_custom_create"),
    ("GET", "/apps/{app_name}/certificates/{hostname}", "App_Certificates_show"),
    ("DELETE", "/apps/{app_name}/certificates/{hostname}", "App_Certificates_delete"),
    ("DELETE", "/apps/{app_name}/certificates/{hostname}/acme", "App_Certificates_acme_delete"),
    ("POST", "/apps/{app_name}/certificates/{hostname}/check", "App_Certificates_check"),
    ("DELETE", "/apps/{app_name}/certificates/{hostname}/custom", "App_Certificates_custom_delete"),
    ("POST", "/apps/{app_name}/deploy_token", "App_create_deploy_token"),
    ("GET", "/apps/{app_name}/ip_assignments", "App_IPAssignments_list"),
    ("POST", "/apps/{app_name}/ip_assignments", "App_IPAssignments_create"),
    ("DELETE", "/apps/{app_name}/ip_assignments/{ip}", "App_IPAssignments_delete"),
    ("GET", "/apps/{app_name}/machines", "Machines_list"),
    ("POST", "/apps/{app_name}/machines", "Machines_create"),
    ("GET", "/apps/{app_name}/machines/{machine_id}", "Machines_show"),
    ("POST", "/apps/{app_name}/machines/{machine_id}", "Machines_update"),
    ("DELETE", "/apps/{app_name}/machines/{machine_id}", "Machines_delete"),
    ("POST", "/apps/{app_name}/machines/{machine_id}/cordon", "Machines_cordon"),
    ("GET", "/apps/{app_name}/machines/{machine_id}/events", "Machines_list_events"),
    ("POST", "/apps/{app_name}/machines/{machine_id}/exec", "Machines_exec"),
    ("GET", "/apps/{app_name}/machines/{machine_id}/lease", "Machines_show_lease"),
    ("POST", "/apps/{app_name}/machines/{machine_id}/lease", "Machines_create_lease"),
    ("DELETE", "/apps/{app_name}/machines/{machine_id}/lease", "Machines_release_lease"),
    ("GET", "/apps/{app_name}/machines/{machine_id}/memory", "Machines_get_memory"),
    ("PUT", "/apps/{app_name}/machines/{machine_id}/memory", "Machines_set_memory_limit"),
    ("POST", "/apps/{app_name}/machines/{machine_id}/memory/reclaim", "Machines_reclaim_memory"),
    ("GET", "/apps/{app_name}/machines/{machine_id}/metadata", "Machines_show_metadata"),
    ("PUT", "/apps/{app_name}/machines/{machine_id}/metadata", "Machines_update_metadata"),
    ("PATCH", "/apps/{app_name}/machines/{machine_id}/metadata", "Machines_update_metadata"),
    ("GET", "/apps/{app_name}/machines/{machine_id}/metadata/{key}", "Machines_get_metadata_key"),
    ("POST", "/apps/{app_name}/machines/{machine_id}/metadata/{key}", "Machines_upsert_metadata"),
    ("DELETE", "/apps/{app_name}/machines/{machine_id}/metadata/{key}", "Machines_delete_metadata"),
    ("GET", "/apps/{app_name}/machines/{machine_id}/ps", "Machines_list_processes"),
    ("POST", "/apps/{app_name}/machines/{machine_id}/restart", "Machines_restart"),
    ("POST", "/apps/{app_name}/machines/{machine_id}/signal", "Machines_signal"),
    ("POST", "/apps/{app_name}/machines/{machine_id}/start", "Machines_start"),
    ("POST", "/apps/{app_name}/machines/{machine_id}/stop", "Machines_stop"),
    ("POST", "/apps/{app_name}/machines/{machine_id}/suspend", "Machines_suspend"),
    ("POST", "/apps/{app_name}/machines/{machine_id}/uncordon", "Machines_uncordon"),
    ("GET", "/apps/{app_name}/machines/{machine_id}/versions", "Machines_list_versions"),
    ("GET", "/apps/{app_name}/machines/{machine_id}/wait", "Machines_wait"),
    ("GET", "/apps/{app_name}/secretkeys", "Secretkeys_list"),
    ("GET", "/apps/{app_name}/secretkeys/{secret_name}", "Secretkey_get"),
    ("POST", "/apps/{app_name}/secretkeys/{secret_name}", "Secretkey_set"),
    ("DELETE", "/apps/{app_name}/secretkeys/{secret_name}", "Secretkey_delete"),
    ("POST", "/apps/{app_name}/secretkeys/{secret_name}/decrypt", "Secretkey_decrypt"),
    ("POST", "/apps/{app_name}/secretkeys/{secret_name}/encrypt", "Secretkey_encrypt"),
    ("POST", "/apps/{app_name}/secretkeys/{secret_name}/generate", "Secretkey_generate"),
    ("POST", "/apps/{app_name}/secretkeys/{secret_name}/sign", "Secretkey_sign"),
    ("POST", "/apps/{app_name}/secretkeys/{secret_name}/verify", "Secretkey_verify"),
    ("GET", "/apps/{app_name}/secrets", "Secrets_list"),
    ("POST", "/apps/{app_name}/secrets", "Secrets_update"),
    ("GET", "/apps/{app_name}/secrets/{secret_name}", "Secret_get"),
    ("POST", "/apps/{app_name}/secrets/{secret_name}", "Secret_create"),
    ("DELETE", "/apps/{app_name}/secrets/{secret_name}", "Secret_delete"),
    ("GET", "/apps/{app_name}/volumes", "Volumes_list"),
    ("POST", "/apps/{app_name}/volumes", "Volumes_create"),
    ("GET", "/apps/{app_name}/volumes/{volume_id}", "Volumes_get_by_id"),
    ("PUT", "/apps/{app_name}/volumes/{volume_id}", "Volumes_update"),
    ("DELETE", "/apps/{app_name}/volumes/{volume_id}", "Volume_delete"),
    ("PUT", "/apps/{app_name}/volumes/{volume_id}/extend", "Volumes_extend"),
    ("GET", "/apps/{app_name}/volumes/{volume_id}/snapshots", "Volumes_list_snapshots"),
    ("POST", "/apps/{app_name}/volumes/{volume_id}/snapshots", "createVolumeSnapshot"),
    ("GET", "/orgs/{org_slug}/machines", "Machines_org_list"),
    ("GET", "/orgs/{org_slug}/volumes", "Volumes_org_list"),
    ("POST", "/platform/placements", "Platform_placements_post"),
    ("GET", "/platform/regions", "Platform_regions_get"),
    ("POST", "/tokens/authenticate", "Tokens_authenticate"),
    ("POST", "/tokens/authorize", "Tokens_authorize"),
    ("GET", "/tokens/current", "CurrentToken_show"),
    ("POST", "/tokens/kms", "Tokens_request_Kms"),
    ("POST", "/tokens/oidc", "Tokens_request_OIDC"),
)

HANDLERS: dict[str, Handler] = {
    "Apps_list": apps.list_apps,
    "Apps_create": apps.create_app,
    "Apps_show": apps.show_app,
    "Apps_delete": apps.delete_app,
    "App_IPAssignments_list": ips.list_ips,
    "App_IPAssignments_create": ips.create_ip,
    "App_IPAssignments_delete": ips.delete_ip,
    "Machines_list": machines.list_machines,
    "Machines_create": machines.create_machine,
    "Machines_show": machines.show_machine,
    "Machines_update": machines.update_machine,
    "Machines_delete": machines.destroy_machine,
    "Machines_cordon": actions.cordon,
    "Machines_uncordon": actions.uncordon,
    "Machines_list_events": machines.list_events,
    "Machines_exec": actions.exec_command,
    "Machines_show_lease": leases.show_lease,
    "Machines_create_lease": leases.acquire_lease,
    "Machines_release_lease": leases.release_lease,
    "Machines_show_metadata": metadata.show_metadata,
    "Machines_update_metadata": metadata.update_metadata,
    "Machines_get_metadata_key": metadata.get_key,
    "Machines_upsert_metadata": metadata.set_key,
    "Machines_delete_metadata": metadata.delete_key,
    "Machines_restart": actions.restart,
    "Machines_signal": actions.signal,
    "Machines_start": actions.start,
    "Machines_stop": actions.stop,
    "Machines_suspend": actions.suspend,
    "Machines_list_versions": machines.list_versions,
    "Machines_wait": actions.wait,
    "Secrets_list": secrets.list_secrets,
    "Secrets_update": secrets.update_secrets,
    "Secret_get": secrets.get_secret,
    "Secret_create": secrets.set_secret,
    "Secret_delete": secrets.delete_secret,
    "Volumes_list": volumes.list_volumes,
    "Volumes_create": volumes.create_volume,
    "Volumes_get_by_id": volumes.show_volume,
    "Volumes_update": volumes.update_volume,
    "Volume_delete": volumes.delete_volume,
    "Volumes_extend": volumes.extend_volume,
    "Platform_placements_post": platform.placements,
    "Platform_regions_get": platform.regions,
    "CurrentToken_show": platform.current_token,
    "App_create_deploy_token": apps.create_deploy_token,
    "Machines_list_processes": processes.list_processes,
    "Machines_get_memory": processes.get_memory,
    "Machines_set_memory_limit": processes.set_memory_limit,
    "Machines_reclaim_memory": processes.reclaim_memory,
    "Volumes_list_snapshots": volumes.list_snapshots,
    "createVolumeSnapshot": volumes.create_snapshot,
    "Machines_org_list": orgs.list_org_machines,
    "Volumes_org_list": orgs.list_org_volumes,
    "App_Certificates_list": certificates.list_certificates,
    "App_Certificates_acme_create": certificates.create_acme,
    "App_Certificates_custom_create": certificates.create_custom,
    "App_Certificates_show": certificates.show_certificate,
    "App_Certificates_delete": certificates.delete_certificate,
    "App_Certificates_acme_delete": certificates.delete_acme,
    "App_Certificates_check": certificates.check_certificate,
    "App_Certificates_custom_delete": certificates.delete_custom,
    "Secretkeys_list": secretkeys.list_keys,
    "Secretkey_get": secretkeys.get_key,
    "Secretkey_set": secretkeys.set_key,
    "Secretkey_delete": secretkeys.delete_key,
    "Secretkey_decrypt": secretkeys.decrypt,
    "Secretkey_encrypt": secretkeys.encrypt,
    "Secretkey_generate": secretkeys.generate_key,
    "Secretkey_sign": secretkeys.sign,
    "Secretkey_verify": secretkeys.verify,
    "Tokens_authenticate": tokens.authenticate,
    "Tokens_authorize": tokens.authorize,
    "Tokens_request_Kms": tokens.kms_token,
    "Tokens_request_OIDC": tokens.oidc_token,
}

# Routes that open their own short transactions (a long-poll must not hold the write lock).
OWNS_TRANSACTIONS = frozenset({"Machines_wait"})


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    operation_id: str
    pattern: re.Pattern[str]

    @property
    def handler(self) -> Handler | None:
        return HANDLERS.get(self.operation_id)


def _compile(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[a-z_]+\})", template)
    regex = "".join(
        f"(?P<{part[1:-1]}>[^/]+)" if part.startswith("{") else re.escape(part) for part in parts
    )
    return re.compile(f"^{regex}$")


ROUTES: tuple[Route, ...] = tuple(
    Route(method, template, op, _compile(template)) for method, template, op in SPEC_OPERATIONS
)


def match(method: str, path: str) -> tuple[Route | None, dict[str, str], tuple[str, ...]]:
    """The route for a request, its path parameters, and the methods the path takes (empty for
    a path the API does not have: 404, else 405 with them in `Allow`). A literal segment wins
    over a parameter (`/metadata` vs `/{key}`)."""
    allowed: list[str] = []
    best: tuple[Route, dict[str, str]] | None = None
    for route in ROUTES:
        found = route.pattern.match(path)
        if found is None:
            continue
        if route.method not in allowed:
            allowed.append(route.method)
        if route.method != method:
            continue
        params = {k: unquote(v) for k, v in found.groupdict().items()}
        if best is None or len(params) < len(best[1]):
            best = (route, params)
    if best is None:
        return None, {}, tuple(allowed)
    return best[0], best[1], tuple(allowed)
