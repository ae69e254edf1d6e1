"""Services on the real control plane: the kubelet's webhook gives each Service a Flycast
address as its cluster IP, and the Service controller routes it (through the real endpoints
controller's EndpointSlices) to exactly the selected pods' machines, as the local backend's
routing model reads the records (flyk/local/routing.py). Driven with the real kubectl."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flyk.k8s import bootstrap, webhook
from flyk.k8s.supervisor import free_port
from flyk.local import LocalBackend

from .conftest import eventually
from .harness import Harness
from .realkube import ControlPlane, Kube

JSON = dict[str, Any]


def flycast_prefix(backend: LocalBackend) -> str:
    """The org's Flycast /64 as the local backend draws its addresses."""
    with backend.store.transaction(write=False) as conn:
        org = conn.execute("SELECT numeric_id FROM orgs WHERE slug = 'personal'").fetchone()
    return f"fdaa:0:{org['numeric_id'] & 0xFFFF:x}::/64"


class Services:
    """A kubelet with its webhook registered for this test's namespaces, the org's Flycast
    range added to the API server's service ranges, and kubectl as an admin."""

    def __init__(self, plane: ControlPlane, kube: Kube, harness: Harness, tmp: Path) -> None:
        self.plane, self.kube, self.h = plane, kube, harness
        self.namespaces = [kube.ns("default"), kube.ns("shop")]
        serving = plane.pki.server_ca.sign_serving(["127.0.0.1"])
        cert, key = tmp / "webhook.crt", tmp / "webhook.key"
        cert.write_bytes(serving.cert_pem)
        key.write_bytes(serving.key_pem)
        port = free_port()
        harness.config = dataclasses.replace(
            harness.config, webhook_port=port, webhook_cert=str(cert), webhook_key=str(key)
        )
        self.hook = f"flyk-services-{kube.suffix}"
        self.cidr = f"flycast-{kube.suffix}"
        url = f"https://127.0.0.1:{port}/mutate-services"
        body = webhook.configuration(
            url, plane.pki.server_ca.cert_pem, name=self.hook, namespaces=self.namespaces
        )
        webhook.apply(kube.http, body)
        cidr = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "ServiceCIDR",
            "metadata": {"name": self.cidr},
            "spec": {"cidrs": [flycast_prefix(harness.backend)]},
        }
        kube.http.post("/apis/networking.k8s.io/v1/servicecidrs", json=cidr).raise_for_status()
        self.kubeconfig = plane.kubeconfig(tmp / "admin.kubeconfig", "admin", (bootstrap.MASTERS,))

    def close(self) -> None:
        path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
        self.kube.http.delete(f"{path}/{self.hook}")
        self.kube.http.delete(f"/apis/networking.k8s.io/v1/servicecidrs/{self.cidr}")

    def kubectl(self, *args: str, namespace: str = "default", check: bool = True) -> Any:
        ran = subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, "-n", self.kube.ns(namespace), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check:
            assert ran.returncode == 0, f"kubectl {' '.join(args)}: {ran.stderr}"
        return ran

    def deployment(
        self, name: str, replicas: int, namespace: str = "default", **labels: str
    ) -> None:
        """A Deployment whose pods are bound to this test's node (no scheduler needed)."""
        labels = labels or {"app": name}
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "nodeName": self.kube.node,
                        "containers": [
                            {
                                "name": "app",
                                "image": "nginx:1.27",
                                "ports": [{"containerPort": 8080}],
                            }
                        ],
                    },
                },
            },
        }
        self.kube.create("deployments", body, namespace)

    def service(self, name: str, namespace: str = "default") -> JSON:
        found = json.loads(
            self.kubectl("get", "svc", name, "-o", "json", namespace=namespace).stdout
        )
        return dict(found)

    def pods(self, selector: str, namespace: str = "default") -> list[JSON]:
        listed = json.loads(
            self.kubectl("get", "pods", "-l", selector, "-o", "json", namespace=namespace).stdout
        )
        return [
            p
            for p in listed["items"]
            if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
        ]

    def machines_of(self, pods: list[JSON], namespace: str = "default") -> set[str]:
        uids = {p["metadata"]["uid"] for p in pods}
        return {
            m["id"]
            for m in self.h.machines(namespace)
            if m["config"]["metadata"].get("flyk_pod_uid") in uids
        }

    def routes(self, address: str, port: int) -> set[str]:
        return {r["machine_id"] for r in self.h.observer.routes(address, port)["machines"]}

    def ips(self, namespace: str = "default") -> list[JSON]:
        return [ip.to_api() for ip in self.h.fly.ips.list(self.h.app(namespace))]

    def events(self, service: str, reason: str, namespace: str = "default") -> list[str]:
        return [
            e["message"]
            for e in self.kube.list("events", namespace)
            if e["involvedObject"].get("kind") == "Service"
            and e["involvedObject"]["name"] == service
            and e["reason"] == reason
        ]


@pytest.fixture
def svc(
    control_plane: ControlPlane, kube: Kube, kubeconfig: str, backend: LocalBackend, tmp_path: Path
) -> Iterator[Services]:
    harness = Harness(kube, kubeconfig, backend)
    services = Services(control_plane, kube, harness, tmp_path)
    harness.start()
    try:
        yield services
    finally:
        harness.close()
        services.close()


def routed_to_exactly(svc: Services, address: str, port: int, selector: str, count: int) -> bool:
    pods = svc.pods(selector)
    if len(pods) != count:
        return False
    wanted = svc.machines_of(pods)
    return len(wanted) == count and svc.routes(address, port) == wanted


def test_expose_gives_a_flycast_cluster_ip_that_routes_to_exactly_the_selected_machines(
    svc: Services,
) -> None:
    svc.deployment("web", 2)
    svc.deployment("other", 1)
    svc.kubectl("expose", "deployment", "web", "--port", "80", "--target-port", "8080")
    service = svc.service("web")
    address = service["spec"]["clusterIP"]
    assert ipaddress.ip_address(address).version == 6 and address.startswith("fdaa:")
    assert service["spec"]["clusterIPs"] == [address]
    assert service["metadata"]["annotations"]["fly.io/clusterip-allocator"] == "configured"
    # `kubectl get svc` shows the Flycast address as the cluster IP.
    shown = svc.kubectl("get", "svc", "web", "--no-headers").stdout.split()
    assert shown[:3] == ["web", "ClusterIP", address]
    # The namespace app's new address, with the Service's name.
    (assigned,) = [ip for ip in svc.ips() if ip["ip"] == address]
    assert assigned["service_name"] == "web"

    eventually(lambda: routed_to_exactly(svc, address, 80, "app=web", 2), what="2 routes")
    route = svc.h.observer.routes(address, 80)
    assert {m["internal_port"] for m in route["machines"]} == {8080}
    assert svc.routes(address, 8080) == set()  # the Service's port, not the pod's

    # Scaling follows.
    svc.kubectl("scale", "deployment", "web", "--replicas=3")
    eventually(lambda: routed_to_exactly(svc, address, 80, "app=web", 3), what="3 routes")
    svc.kubectl("scale", "deployment", "web", "--replicas=1")
    eventually(lambda: routed_to_exactly(svc, address, 80, "app=web", 1), what="1 route")

    # Relabelling a pod takes its machine out (the ReplicaSet makes a replacement, which joins).
    (kept,) = svc.pods("app=web")
    relabelled = svc.machines_of([kept])
    svc.kubectl("label", "pod", kept["metadata"]["name"], "app=elsewhere", "--overwrite")
    eventually(
        lambda: (
            routed_to_exactly(svc, address, 80, "app=web", 1)
            and not (svc.routes(address, 80) & relabelled)
        ),
        what="the relabelled pod's machine out, its replacement in",
    )
    (moved,) = [m for m in svc.h.machines() if m["id"] in relabelled]
    assert not any(k.startswith("flyk_service_") for k in moved["config"]["metadata"])
    assert not moved["config"].get("services")


def test_two_services_on_port_80_in_one_namespace_route_apart(svc: Services) -> None:
    svc.deployment("web", 2)
    svc.deployment("api", 1)
    svc.kubectl("expose", "deployment", "web", "--port", "80", "--target-port", "8080")
    svc.kubectl("expose", "deployment", "api", "--port", "80", "--target-port", "9090")
    web, api = svc.service("web")["spec"]["clusterIP"], svc.service("api")["spec"]["clusterIP"]
    assert web != api
    eventually(lambda: routed_to_exactly(svc, web, 80, "app=web", 2), what="web routed")
    eventually(lambda: routed_to_exactly(svc, api, 80, "app=api", 1), what="api routed")
    assert {m["internal_port"] for m in svc.h.observer.routes(api, 80)["machines"]} == {9090}


def test_a_load_balancer_gets_public_addresses_and_status(svc: Services) -> None:
    svc.deployment("shop", 1)
    svc.kubectl(
        "expose", "deployment", "shop", "--type=LoadBalancer", "--port", "443",
        "--target-port", "8080", "--name", "shop",
    )  # fmt: skip
    svc.kubectl(
        "annotate", "svc", "shop", "service.fly.io/443-handlers=tls,http",
        "service.fly.io/443-tls-alpn=h2,http/1.1",
    )  # fmt: skip
    app = svc.h.app()

    def status() -> list[JSON]:
        ingress = svc.service("shop").get("status", {}).get("loadBalancer", {}).get("ingress")
        return list(ingress or [])

    ingress = eventually(lambda: len(status()) == 3 and status(), what="LoadBalancer status")
    assert ingress[0] == {"hostname": f"shop.svc.{app}.fly.dev"}
    v6, v4 = ingress[1]["ip"], ingress[2]["ip"]
    assert ipaddress.ip_address(v6).version == 6 and not v6.startswith("fdaa:")
    assert ipaddress.ip_address(v4).version == 4
    named = {ip["ip"]: ip for ip in svc.ips() if ip["service_name"] == "shop"}
    assert set(named) == {svc.service("shop")["spec"]["clusterIP"], v6, v4}
    assert named[v4]["shared"] is True
    # `kubectl get svc` shows hostname and addresses as EXTERNAL-IP, as FKS does (the API
    # server's table printer sorts them).
    row = svc.kubectl("get", "svc", "shop", "--no-headers").stdout.split()
    assert row[3] == ",".join(sorted([f"shop.svc.{app}.fly.dev", v6, v4]))

    wanted = svc.machines_of(svc.pods("app=shop"))
    eventually(lambda: svc.routes(v6, 443) == wanted, what="public v6 routed")
    eventually(lambda: svc.routes(v4, 443) == wanted, what="shared v4 routed")

    def handlers() -> Any:
        (machine,) = [m for m in svc.h.machines() if m["id"] in wanted]
        ports = [p for s in machine["config"].get("services") or [] for p in s["ports"]]
        return ports and ports[0].get("handlers") == ["tls", "http"] and ports[0]

    port = eventually(handlers, what="the annotation's handlers on the machine")
    assert port["tls_options"] == {"alpn": ["h2", "http/1.1"]}


def test_deleting_a_service_releases_its_addresses_and_its_services_entries(
    svc: Services,
) -> None:
    svc.deployment("web", 2)
    svc.kubectl("expose", "deployment", "web", "--port", "80", "--target-port", "8080")
    svc.kubectl("expose", "deployment", "web", "--type=LoadBalancer", "--port", "443",
                "--target-port", "8080", "--name", "web-public")  # fmt: skip
    address = svc.service("web")["spec"]["clusterIP"]
    eventually(lambda: routed_to_exactly(svc, address, 80, "app=web", 2), what="routed")
    eventually(lambda: len([ip for ip in svc.ips() if ip["service_name"] == "web-public"]) == 3,
               what="the LoadBalancer's three addresses")  # fmt: skip

    svc.kubectl("delete", "svc", "web", "web-public")
    eventually(lambda: not [ip for ip in svc.ips() if ip["service_name"]], what="released")
    machines = svc.machines_of(svc.pods("app=web"))

    def cleared() -> bool:
        mine = [m for m in svc.h.machines() if m["id"] in machines]
        return len(mine) == 2 and all(
            not m["config"].get("services")
            and not any(k.startswith("flyk_service_") for k in m["config"]["metadata"])
            for m in mine
        )

    eventually(cleared, what="the machines' services entries removed")
    assert svc.routes(address, 80) == set()


def test_unsupported_fields_produce_warning_events(svc: Services) -> None:
    svc.deployment("web", 1)
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "odd"},
        "spec": {
            "type": "NodePort",
            "selector": {"app": "web"},
            "sessionAffinity": "ClientIP",
            "externalTrafficPolicy": "Local",
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "web", "port": 80, "protocol": "TCP", "targetPort": 8080},
            ],
        },
    }
    svc.kube.http.post(
        f"/api/v1/namespaces/{svc.kube.ns('default')}/services", json=body
    ).raise_for_status()
    messages = eventually(
        lambda: (found := svc.events("odd", "UnsupportedField")) and len(found) >= 4 and found,
        what="Warning events",
    )
    text = "\n".join(messages)
    for needle in ("NodePort", "sessionAffinity", "externalTrafficPolicy", "53/UDP"):
        assert needle in text, text
    # The TCP port still routes; the UDP one does not.
    address = svc.service("odd")["spec"]["clusterIP"]
    eventually(lambda: routed_to_exactly(svc, address, 80, "app=web", 1), what="tcp routed")
    assert svc.h.observer.routes(address, 53, "udp")["machines"] == []


def test_a_service_the_machines_api_cannot_address_is_refused(svc: Services) -> None:
    svc.h.backend.faults.add(
        "server_error", method="POST", path="ip_assignments", status=503, times=None
    )
    ran = svc.kubectl("create", "service", "clusterip", "web", "--tcp=80:8080", check=False)
    assert ran.returncode != 0
    assert "flyk could not assign the Service a Flycast address" in ran.stderr
    assert svc.kubectl("get", "svc", "web", check=False).returncode != 0  # never stored
    # Headless Services need no address and pass.
    svc.kubectl("create", "service", "clusterip", "db", "--clusterip=None")
    assert svc.service("db")["spec"]["clusterIP"] == "None"


def test_pods_get_service_link_variables_for_services_that_existed(svc: Services) -> None:
    svc.deployment("web", 1)
    svc.kubectl("expose", "deployment", "web", "--port", "80", "--target-port", "8080")
    address = svc.service("web")["spec"]["clusterIP"]
    eventually(lambda: svc.h.kubelet and svc.h.kubelet.services.services_in(svc.kube.ns("default")),
               what="the Service seen")  # fmt: skip
    svc.h.create_pod("client")
    svc.h.create_pod("quiet", enableServiceLinks=False)
    svc.h.wait_phase("client", "Running")
    svc.h.wait_phase("quiet", "Running")
    client = svc.h.machine_of("client")
    quiet = svc.h.machine_of("quiet")
    assert client is not None and quiet is not None
    env = client["config"]["env"]
    assert env["WEB_SERVICE_HOST"] == address
    assert env["WEB_SERVICE_PORT"] == "80"
    assert env["WEB_PORT"] == f"tcp://[{address}]:80"
    assert env["WEB_PORT_80_TCP_ADDR"] == address
    assert "WEB_SERVICE_HOST" not in (quiet["config"].get("env") or {})
