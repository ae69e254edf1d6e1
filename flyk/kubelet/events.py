"""Kubernetes Events about any object the kubelet's controllers look after (pods have their
own, in pods.py): the body, and a sender that tells each (object, reason, message) once."""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from flyk.kubelet.kube import KubeApi, KubeError

JSON = dict[str, Any]
log = logging.getLogger("flyk.kubelet.events")


def event_body(
    obj: JSON,
    *,
    kind: str,
    event_type: str,
    reason: str,
    message: str,
    component: str,
    host: str,
) -> JSON:
    """A core/v1 Event about `obj` (its metadata names it; `kind` is its Kind, core/v1),
    in its namespace; a cluster-scoped object's go to `default` (the API server's rule),
    where `kubectl describe` finds them."""
    meta = obj["metadata"]
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    involved = {"apiVersion": "v1", "kind": kind, "name": meta["name"], "uid": meta["uid"]}
    namespace = meta.get("namespace") or "default"
    if meta.get("namespace"):
        involved["namespace"] = meta["namespace"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": namespace},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": event_type,
        "count": 1,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "source": {"component": component, "host": host},
        "reportingComponent": component,
        "reportingInstance": host,
    }


class Recorder:
    """Sends Events, each (object uid, reason, message) once per run; best effort."""

    def __init__(self, kube: KubeApi, component: str, host: str) -> None:
        self._kube = kube
        self._component = component
        self._host = host
        self._told: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def __call__(
        self,
        obj: JSON,
        kind: str,
        event_type: str,
        reason: str,
        message: str,
    ) -> None:
        key = (obj["metadata"]["uid"], reason, message)
        with self._lock:
            if key in self._told:
                return
            self._told.add(key)
        body = event_body(
            obj,
            kind=kind,
            event_type=event_type,
            reason=reason,
            message=message,
            component=self._component,
            host=self._host,
        )
        try:
            self._kube.create_event(body["metadata"]["namespace"], body)
        except KubeError as error:
            log.warning("event %s on %s not recorded: %s", reason, obj["metadata"]["name"], error)

    def forget(self, uid: str) -> None:
        with self._lock:
            self._told = {key for key in self._told if key[0] != uid}

    def keep_only(self, uids: set[str]) -> None:
        """Forget what was told about objects no longer there."""
        with self._lock:
            self._told = {key for key in self._told if key[0] in uids}
