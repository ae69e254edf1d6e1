"""Which machines Fly Proxy would send a connection to, from the records the backend keeps:
the app's IP assignments and its machines' `services` and metadata. No traffic moves; tests
ask this instead of connecting (`route()` in Python, `GET /_flyk/routes` over HTTP).

The model (docs/local-backend.md, "Routing"):

- An address belongs to one app. Without a `service_name` it is the app's own: a connection
  to port P goes to every started machine of the app with a `services[]` entry (of that
  protocol) whose ports include P, to that entry's `internal_port`.
- With a `service_name` S (Fly's "virtual services", what flyk gives each Kubernetes Service)
  it goes only to the started machines that joined S: their `config.metadata` has
  `SERVICE_KEY_PREFIX + S` listing `port/protocol=internal_port` pairs (see
  `service_ports`), *and* a `services[]` entry that serves that port on that internal port.
  The Machines API documents no field tying a machine to a `service_name`; this metadata is
  flyk's reading of it, an open question for a live test (docs/kubernetes.md, "Services").
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from flyk.local.knobs import Timing
from flyk.local.records import load_app_machines

SERVICE_KEY_PREFIX = "flyk_service_"


@dataclass(frozen=True)
class Route:
    machine_id: str
    internal_port: int

    def to_json(self) -> dict[str, Any]:
        return {"machine_id": self.machine_id, "internal_port": self.internal_port}


def service_ports(value: str) -> dict[tuple[int, str], int]:
    """`"80/tcp=8080,53/udp=5353"` → {(80, "tcp"): 8080, (53, "udp"): 5353}; malformed
    pairs are skipped (Fly Proxy would not route on them either)."""
    pairs: dict[tuple[int, str], int] = {}
    for item in value.split(","):
        head, _, internal = item.strip().partition("=")
        port, _, protocol = head.partition("/")
        if port.isdigit() and internal.isdigit():
            pairs[(int(port), (protocol or "tcp").lower())] = int(internal)
    return pairs


def _serves(config: dict[str, Any], port: int, protocol: str, internal: int | None) -> int | None:
    """The internal port of the first `services[]` entry serving `port`/`protocol` (and,
    when given, on `internal`), else None."""
    for service in config.get("services") or []:
        if (service.get("protocol") or "tcp").lower() != protocol:
            continue
        target = service.get("internal_port")
        if not isinstance(target, int) or (internal is not None and target != internal):
            continue
        for entry in service.get("ports") or []:
            start, end = entry.get("start_port"), entry.get("end_port")
            if entry.get("port") == port or (
                isinstance(start, int) and isinstance(end, int) and start <= port <= end
            ):
                return target
    return None


def find_address(conn: sqlite3.Connection, address: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM ips WHERE lower(ip) = lower(?)", (address,)
    ).fetchone()
    return row


def route(
    conn: sqlite3.Connection,
    address: str,
    port: int,
    protocol: str = "tcp",
    *,
    now_ms: int,
    timing: Timing,
) -> list[Route]:
    """The machines a connection to `address`:`port` reaches, in creation order."""
    row = find_address(conn, address)
    if row is None:
        return []
    protocol = protocol.lower()
    service_name = row["service_name"]
    routes: list[Route] = []
    for machine in load_app_machines(conn, row["app"], now_ms, timing):
        if machine.state != "started":
            continue
        wanted: int | None = None
        if service_name:
            joined = (machine.config.get("metadata") or {}).get(SERVICE_KEY_PREFIX + service_name)
            wanted = service_ports(joined or "").get((port, protocol))
            if wanted is None:
                continue
        internal = _serves(machine.config, port, protocol, wanted)
        if internal is not None:
            routes.append(Route(machine.id, internal))
    return routes
