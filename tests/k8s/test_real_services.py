"""Services end to end on the embedded default: `flyk ext k8s create` runs the control plane
and the kubelet (with its Service address webhook) as local processes, the real kubectl
exposes a Deployment, the local backend's routing model says where the address goes, and
`flyk ext k8s delete` releases it all."""

from __future__ import annotations

import json
from pathlib import Path

from flyk.local import LocalBackend

from .test_real_cluster import Cluster, cluster, eventually, namespace_app, pods_running

__all__ = ["cluster"]  # the fixture, shared with test_real_cluster.py


def routes(cluster: Cluster, address: str, port: int) -> set[str]:
    backend = LocalBackend(Path(cluster.env["FLYK_LOCAL_DB"]))
    return {r["machine_id"] for r in backend.routes(address, port)["machines"]}


def test_kubectl_expose_routes_a_flycast_cluster_ip_and_delete_releases_it(
    cluster: Cluster,
) -> None:
    cluster.flyk("ext", "k8s", "create", "svc")
    cluster.kubectl("create", "deployment", "web", "--image=nginx", "--replicas=2")
    eventually(lambda: len(pods_running(cluster, "app=web")) == 2, what="2 pods Running")
    app = namespace_app(cluster, "default")
    cluster.kubectl("expose", "deployment", "web", "--port", "80", "--target-port", "8080")
    service = json.loads(cluster.kubectl("get", "svc", "web", "-o", "json").stdout)
    address = service["spec"]["clusterIP"]
    assert address.startswith("fdaa:")
    kubernetes = json.loads(cluster.kubectl("get", "svc", "kubernetes", "-o", "json").stdout)
    assert kubernetes["spec"]["clusterIP"] == "10.43.0.1"  # still the API server's
    owner = LocalBackend(Path(cluster.env["FLYK_LOCAL_DB"])).routes(address, 80)
    assert (owner["app"], owner["service_name"]) == (app, "web")
    machines = {m["id"] for m in cluster.machines(app)}
    eventually(lambda: routes(cluster, address, 80) == machines, what="routed to both machines")

    cluster.kubectl("expose", "deployment", "web", "--type=LoadBalancer", "--port", "443",
                    "--target-port", "8080", "--name", "public")  # fmt: skip
    status = eventually(
        lambda: (
            json.loads(cluster.kubectl("get", "svc", "public", "-o", "json").stdout)
            .get("status", {})
            .get("loadBalancer", {})
            .get("ingress")
        ),
        what="the LoadBalancer's addresses",
    )
    public_v6 = status[1]["ip"]
    eventually(lambda: routes(cluster, public_v6, 443) == machines, what="public routes")

    cluster.flyk("ext", "k8s", "delete", "svc", "--yes")
    assert routes(cluster, address, 80) == set()
    assert routes(cluster, public_v6, 443) == set()
    backend = LocalBackend(Path(cluster.env["FLYK_LOCAL_DB"]))
    with backend.store.transaction(write=False) as conn:
        assert conn.execute("SELECT count(*) FROM ips").fetchone()[0] == 0
