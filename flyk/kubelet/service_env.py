"""`enableServiceLinks`: the environment variables Kubernetes gives a container for each
Service of its namespace that existed when the pod's machine was made (docker-link style):

    WEB_SERVICE_HOST=fdaa:0:1::3   WEB_SERVICE_PORT=80   WEB_SERVICE_PORT_HTTP=80
    WEB_PORT=tcp://[fdaa:0:1::3]:80
    WEB_PORT_80_TCP=tcp://[fdaa:0:1::3]:80   WEB_PORT_80_TCP_PROTO=tcp
    WEB_PORT_80_TCP_PORT=80   WEB_PORT_80_TCP_ADDR=fdaa:0:1::3

as the kubelet's `envvars.FromServices` makes them: the name upper-cased with `-` as `_`,
the first port as the Service's port, an IPv6 address in brackets inside URLs. Services
without a cluster IP (headless, ExternalName) give none. Pure data; translate.py merges them
beneath the container's own `envFrom` and `env`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any


def _name(text: str) -> str:
    return text.upper().replace("-", "_")


def _url(protocol: str, host: str, port: int) -> str:
    try:
        bracketed = ipaddress.ip_address(host).version == 6
    except ValueError:
        bracketed = False
    return f"{protocol}://[{host}]:{port}" if bracketed else f"{protocol}://{host}:{port}"


def service_link_env(services: Iterable[dict[str, Any]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for service in sorted(services, key=lambda s: str(s["metadata"]["name"])):
        spec = service.get("spec") or {}
        host = spec.get("clusterIP")
        ports = spec.get("ports") or []
        if not host or host == "None" or not ports:
            continue
        prefix = _name(service["metadata"]["name"])
        env[f"{prefix}_SERVICE_HOST"] = host
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for port in ports:
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{_name(port['name'])}"] = str(port["port"])
        first = ports[0]
        env[f"{prefix}_PORT"] = _url(
            str(first.get("protocol") or "TCP").lower(), host, first["port"]
        )
        for port in ports:
            protocol = str(port.get("protocol") or "TCP")
            base = f"{prefix}_PORT_{port['port']}_{protocol.upper()}"
            env[base] = _url(protocol.lower(), host, port["port"])
            env[f"{base}_PROTO"] = protocol.lower()
            env[f"{base}_PORT"] = str(port["port"])
            env[f"{base}_ADDR"] = host
    return env
