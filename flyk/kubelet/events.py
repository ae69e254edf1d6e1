"""The body of a core/v1 Event the kubelet records about a pod or a Service."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]


def event_body(involved: JSON, kind: str, reason: str, message: str, node_name: str) -> JSON:
    """An Event about `involved` (an object's JSON: kind, apiVersion and metadata are read)."""
    meta = involved["metadata"]
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
            "namespace": meta["namespace"],
        },
        "involvedObject": {
            "apiVersion": involved.get("apiVersion") or "v1",
            "kind": involved.get("kind") or "Pod",
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        },
        "reason": reason,
        "message": message,
        "type": kind,
        "count": 1,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "source": {"component": "flyk-kubelet", "host": node_name},
        "reportingComponent": "flyk-kubelet",
        "reportingInstance": node_name,
    }
