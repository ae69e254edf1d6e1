"""Asking a cluster's API server how it is, with the credentials of its kubeconfig entry.

`/readyz` answers whether the API server is serving; `/version`, nodes and pods add the
counts `flyk ext k8s status` shows. TLS is verified against the cluster's own server CA and
the client presents a freshly signed admin certificate; nothing is written to disk except
the short-lived 0600 files `ssl` needs to load a client certificate.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from dataclasses import dataclass
from typing import Any

import httpx

from flyk.k8s.kubeconfig import KubeconfigEntry


@dataclass(frozen=True)
class ApiProbe:
    """What the API server said, if it was asked."""

    reachable: bool
    detail: str
    version: str | None = None
    nodes: int | None = None
    nodes_ready: int | None = None
    pods: int | None = None
    namespaces: int | None = None


def tls_context(entry: KubeconfigEntry) -> ssl.SSLContext:
    """Trust only the cluster's server CA; present the admin certificate."""
    context = ssl.create_default_context(cadata=entry.ca_pem.decode("ascii"))
    with tempfile.TemporaryDirectory(prefix="flyk-probe-") as directory:
        cert = os.path.join(directory, "client.crt")
        key = os.path.join(directory, "client.key")
        for file_path, data in ((cert, entry.client_cert_pem), (key, entry.client_key_pem)):
            fd = os.open(file_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        context.load_cert_chain(cert, key)
    return context


def probe_api_server(entry: KubeconfigEntry, *, timeout: float = 10.0) -> ApiProbe:
    """`/readyz`, then the version and the node and pod counts `status` shows."""
    return _probe(entry, timeout=timeout, counts=True)


def probe_ready(entry: KubeconfigEntry, *, timeout: float = 10.0) -> ApiProbe:
    """Whether the cluster serves yet (what create waits for): `/readyz` ok, and a node Ready
    (the virtual kubelet's), so that the first `kubectl get nodes` finds it."""
    return _probe(entry, timeout=timeout, counts=False)


def _probe(entry: KubeconfigEntry, *, timeout: float, counts: bool) -> ApiProbe:
    try:
        with httpx.Client(
            base_url=entry.server, verify=tls_context(entry), timeout=timeout
        ) as http:
            ready = http.get("/readyz")
            if ready.status_code != 200:
                said = ready.text.strip()[:200]
                return ApiProbe(False, f"/readyz said {ready.status_code}: {said}")
            if counts:
                return _counts(http)
            nodes = _json(http, "/api/v1/nodes").get("items") or []
            if not any(_node_ready(node) for node in nodes):
                return ApiProbe(False, "answering (/readyz ok); no node Ready yet")
            return ApiProbe(True, "answering (/readyz ok), node Ready")
    except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
        return ApiProbe(False, f"not answering at {entry.server}: {exc}")


def _counts(http: httpx.Client) -> ApiProbe:
    version = _json(http, "/version").get("gitVersion")
    nodes = _json(http, "/api/v1/nodes").get("items") or []
    pods = _json(http, "/api/v1/pods").get("items") or []
    ready = sum(1 for node in nodes if _node_ready(node))
    namespaces = {p.get("metadata", {}).get("namespace") for p in pods}
    return ApiProbe(
        True,
        "answering (/readyz ok)",
        version=version if isinstance(version, str) else None,
        nodes=len(nodes),
        nodes_ready=ready,
        pods=len(pods),
        namespaces=len(namespaces),
    )


def _json(http: httpx.Client, url: str) -> dict[str, Any]:
    response = http.get(url)
    if response.status_code != 200:
        return {}
    data = response.json()
    return data if isinstance(data, dict) else {}


def _node_ready(node: dict[str, Any]) -> bool:
    conditions = node.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
