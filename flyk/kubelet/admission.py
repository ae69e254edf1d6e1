"""The mutating admission webhook that gives each new Service its Flycast address as
`spec.clusterIP`, served by the kubelet on loopback HTTPS (flyk/k8s/webhook.py registers it).

Why a webhook: a Service's cluster IP is fixed when it is created and immutable after, and
the address must be the one the Machines API assigns (`POST ip_assignments`, type
`private_v6`, `service_name` = the Service's name) — the API server cannot pick it. So the
address is assigned while the Service is admitted, and written in before it is stored. When
the Machines API cannot assign one, the Service is refused with the reason (never stored
pointing nowhere). The API server accepts the address because its service range includes the
Flycast prefix (components.FLYCAST_CIDR).

Only Services that leave `clusterIP` empty and are not `ExternalName` are sent here (the
registration's match condition): headless Services, an explicit address (the `kubernetes`
Service, kube-dns) pass untouched. A dry run assigns nothing and changes nothing.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from flyk.errors import FlykError
from flyk.kubelet.service_config import ALLOCATOR_ANNOTATION

log = logging.getLogger("flyk.kubelet.admission")
JSON = dict[str, Any]
PATH = "/mutate-services"
MAX_BODY = 3 * 1024 * 1024  # the API server's own request limit

# (namespace, service name) -> the Flycast address assigned to it
Allocate = Callable[[str, str], str]


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def review(body: JSON, allocate: Allocate) -> JSON:
    """The AdmissionReview answering `body`."""
    request = body.get("request") or {}
    uid = request.get("uid", "")
    answer: JSON = {"uid": uid, "allowed": True}
    obj = request.get("object") or {}
    spec = obj.get("spec") or {}
    meta = obj.get("metadata") or {}
    wanted = (
        request.get("operation") == "CREATE"
        and (request.get("kind") or {}).get("kind") == "Service"
        and spec.get("type", "ClusterIP") != "ExternalName"
        and not spec.get("clusterIP")
        and not request.get("dryRun")
    )
    if wanted:
        namespace = request.get("namespace") or meta.get("namespace") or ""
        name = meta.get("name") or request.get("name") or ""
        try:
            if not name:
                raise ValueError("a Service needs a name before flyk can assign its address")
            # Canonical (RFC 5952), as the API server and CoreDNS show it: one spelling for
            # kubectl, DNS answers and the routing that compares them.
            address = str(ipaddress.ip_address(allocate(namespace, name)))
        except (FlykError, ValueError) as error:
            message = getattr(error, "message", None) or str(error)
            log.warning("no Flycast address for service %s/%s: %s", namespace, name, message)
            answer["allowed"] = False
            answer["status"] = {
                "code": 503,
                "reason": "ServiceUnavailable",
                "message": f"flyk could not assign the Service a Flycast address: {message}",
            }
        else:
            log.info("service %s/%s gets cluster IP %s", namespace, name, address)
            patch = [
                {"op": "add", "path": "/spec/clusterIP", "value": address},
                {"op": "add", "path": "/spec/clusterIPs", "value": [address]},
                {"op": "add", "path": "/spec/ipFamilies", "value": ["IPv6"]},
                {"op": "add", "path": "/spec/ipFamilyPolicy", "value": "SingleStack"},
            ]
            if meta.get("annotations"):
                key = f"/metadata/annotations/{_escape(ALLOCATOR_ANNOTATION)}"
                patch.append({"op": "add", "path": key, "value": "configured"})
            else:
                value = {ALLOCATOR_ANNOTATION: "configured"}
                patch.append({"op": "add", "path": "/metadata/annotations", "value": value})
            answer["patchType"] = "JSONPatch"
            answer["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": answer}


class AdmissionServer:
    """HTTPS on `host`:`port` (0: any free port; `.port` says which), one thread per request."""

    def __init__(
        self, allocate: Allocate, cert: str, key: str, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if self.path.split("?")[0] != PATH or not 0 < length <= MAX_BODY:
                    self.send_error(404 if self.path.split("?")[0] != PATH else 400)
                    return
                try:
                    body = json.loads(self.rfile.read(length))
                except ValueError:
                    self.send_error(400, "not JSON")
                    return
                data = json.dumps(review(body, allocate)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug(format, *args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="flyk-admission", daemon=True
        )

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}{PATH}"

    def start(self) -> AdmissionServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
