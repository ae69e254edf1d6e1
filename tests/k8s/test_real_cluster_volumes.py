"""PersistentVolumeClaims on Fly volumes, the whole flow as a user runs it: `flyk ext k8s
create` (the real control plane and the kubelet as local processes), the real kubectl, and
`flyk ext k8s status` / `delete` finding the volumes on the platform."""

from __future__ import annotations

import json
from typing import Any

from tests.k8s.test_real_cluster import (  # the fixture and helpers of the real cluster
    Cluster,
    apply,
    cluster,
    eventually,
    namespace_app,
    node_ready,
    pods_running,
)

__all__ = ["cluster"]

STATEFULSET = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: db
        image: redis
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOncePod]
      resources: {requests: {storage: 1Gi}}
"""


def mounted(cluster: Cluster, app: str) -> dict[str, str]:
    """pod name -> the volume its started machine mounts (as `flyk volumes list` says)."""
    machines = {m["id"]: m for m in cluster.machines(app) if m["state"] == "started"}
    return {
        machines[v["attached_machine_id"]]["metadata"]["flyk_pod"]: v["id"]
        for v in volumes(cluster, app)
        if v.get("attached_machine_id") in machines
    }


def volumes(cluster: Cluster, app: str) -> list[dict[str, Any]]:
    return list(cluster.json("volumes", "list", "-a", app))


def test_a_statefulset_keeps_its_volumes_and_delete_removes_them(cluster: Cluster) -> None:
    cluster.flyk("ext", "k8s", "create", "vols")
    eventually(lambda: node_ready(cluster), what="the node Ready")
    classes = json.loads(cluster.kubectl("get", "storageclass", "-o", "json").stdout)["items"]
    assert {c["metadata"]["name"] for c in classes} >= {"flyio-volume", "flyio-volume-retain"}

    apply(cluster, STATEFULSET)
    cluster.kubectl("rollout", "status", "statefulset/db", "--timeout=180s")
    app = namespace_app(cluster, "default")
    before = eventually(lambda: len(mounted(cluster, app)) == 2 and mounted(cluster, app))
    assert sorted(before) == ["db-0", "db-1"] and before["db-0"] != before["db-1"]
    assert sorted(v["id"] for v in volumes(cluster, app)) == sorted(before.values())
    claims = json.loads(cluster.kubectl("get", "pvc", "-o", "json").stdout)["items"]
    assert sorted(c["status"]["phase"] for c in claims) == ["Bound", "Bound"]

    # The machine of db-0 is lost: its replacement mounts the same volume.
    lost = next(m for m in cluster.machines(app) if m["metadata"]["flyk_pod"] == "db-0")
    cluster.flyk("machine", "destroy", lost["id"], "-a", app, "--force", "--yes")

    def replaced() -> bool:
        now = mounted(cluster, app)
        ids = {m["id"] for m in cluster.machines(app)}
        return lost["id"] not in ids and now == before

    eventually(replaced, what="db-0 on a new machine with its volume")
    assert len(pods_running(cluster, "app=db")) == 2

    status = cluster.json("ext", "k8s", "status", "vols")
    assert status["claim_volumes"] == 2

    cluster.flyk("ext", "k8s", "delete", "vols", "--yes")
    assert cluster.json("apps", "list") == []  # the namespace app and its volumes went too
