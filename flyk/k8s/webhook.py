"""The MutatingWebhookConfiguration through which the kubelet assigns Services their Flycast
addresses (flyk/kubelet/admission.py says why a webhook). The supervisor writes it at every
start (the kubelet's port is chosen then), as `system:masters`, like rbac.py's objects."""

from __future__ import annotations

import base64
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

NAME = "flyk-service-addresses"
_PATH = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
# Only Services that ask for an address: not headless (clusterIP "None"), not one with an
# address of its own (the `kubernetes` Service, kube-dns), not ExternalName.
MATCH = (
    "object.spec.type != 'ExternalName' && "
    "(!has(object.spec.clusterIP) || object.spec.clusterIP == '')"
)


def configuration(
    url: str, ca_pem: bytes, *, name: str = NAME, namespaces: Sequence[str] | None = None
) -> dict[str, Any]:
    """The object; `namespaces` limits it (tests sharing one control plane), None: all."""
    hook: dict[str, Any] = {
        "name": "services.flyk.fly.io",
        "admissionReviewVersions": ["v1"],
        "clientConfig": {"url": url, "caBundle": base64.b64encode(ca_pem).decode()},
        "rules": [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["services"],
                "scope": "Namespaced",
            }
        ],
        "matchConditions": [{"name": "needs-an-address", "expression": MATCH}],
        # Refused while the kubelet is away: a Service stored without its Flycast address
        # would point nowhere, for good (cluster IPs are immutable).
        "failurePolicy": "Fail",
        "sideEffects": "NoneOnDryRun",
        "reinvocationPolicy": "Never",
        "timeoutSeconds": 15,
    }
    if namespaces is not None:
        hook["namespaceSelector"] = {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "In",
                    "values": list(namespaces),
                }
            ]
        }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [hook],
    }


def apply(client: httpx.Client, body: dict[str, Any]) -> None:
    """Create the configuration, or replace the one there (its URL changes with the port)."""
    name = body["metadata"]["name"]
    current = client.get(f"{_PATH}/{name}")
    if current.status_code == 404:
        client.post(_PATH, json=body).raise_for_status()
        return
    current.raise_for_status()
    version = current.json()["metadata"]["resourceVersion"]
    replaced = {**body, "metadata": {**body["metadata"], "resourceVersion": version}}
    client.put(f"{_PATH}/{name}", json=replaced).raise_for_status()


def ensure(server: str, ca_file: Path, cert_file: Path, key_file: Path, url: str) -> None:
    """As the supervisor: the configuration pointing at `url`, trusting flyk's server CA."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.load_cert_chain(str(cert_file), str(key_file))
    with httpx.Client(base_url=server, verify=context, timeout=10) as client:
        apply(client, configuration(url, ca_file.read_bytes()))
