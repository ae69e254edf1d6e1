"""The Service controller against the local backend, its Kubernetes side fed by hand (as its
watches would feed it): which calls a reconcile makes and what it leaves in the records. The
real control plane's part is in test_services.py."""

from __future__ import annotations

import uuid
from typing import Any

from flyk.api import FlyClient, MachineConfig
from flyk.k8s import records
from flyk.kubelet import KubeletConfig, namespace_app_name
from flyk.kubelet.services import ServiceController
from flyk.local import LocalBackend

JSON = dict[str, Any]
CONFIG = KubeletConfig(cluster="demo", org="personal", region="iad")
APP = namespace_app_name("demo", "shop", "personal")


class Kube:
    """What the controller writes to the API server."""

    def __init__(self) -> None:
        self.events: list[JSON] = []
        self.statuses: list[tuple[str, JSON]] = []

    def create_event(self, namespace: str, event: JSON) -> None:
        self.events.append(event)

    def patch_service_status(self, namespace: str, name: str, status: JSON) -> None:
        self.statuses.append((name, status))


def service(name: str, address: str, kind: str = "ClusterIP", **spec: Any) -> JSON:
    return {
        "metadata": {"name": name, "namespace": "shop", "uid": str(uuid.uuid4()),
                     "annotations": {"fly.io/clusterip-allocator": "configured"}},
        "spec": {"type": kind, "clusterIP": address, "clusterIPs": [address],
                 "ports": [{"port": 80, "protocol": "TCP"}], **spec},
    }  # fmt: skip


def endpoint_slice(name: str, *uids: str) -> JSON:
    return {
        "metadata": {"name": f"{name}-x", "namespace": "shop",
                     "labels": {"kubernetes.io/service-name": name}},
        "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"targetRef": {"kind": "Pod", "uid": u}, "conditions": {}} for u in uids],
    }  # fmt: skip


def setup(fly: FlyClient, pods: int) -> list[str]:
    fly.apps.create(APP, "personal")
    uids = [str(uuid.uuid4()) for _ in range(pods)]
    for uid in uids:
        metadata = {records.META_CLUSTER: "demo", records.META_POD_UID: uid}
        config = MachineConfig.from_api({"image": "nginx", "metadata": metadata})
        fly.machines.create(APP, config, region="iad")
    return uids


def expose(
    fly: FlyClient, name: str, uids: list[str], **spec: Any
) -> tuple[Kube, ServiceController, JSON]:
    """As the webhook and the watches would: an address, the Service, its slice; reconciled."""
    address = fly.ips.create(APP, "private_v6", service_name=name).ip
    kube = Kube()
    controller = ServiceController(kube, fly, CONFIG)  # type: ignore[arg-type]
    body = service(name, address, **spec)
    controller.observe("Service", "ADDED", body)
    controller.observe("EndpointSlice", "ADDED", endpoint_slice(name, *uids))
    controller.reconcile("shop")
    return kube, controller, body


def routed(backend: LocalBackend, address: str, port: int = 80) -> set[str]:
    return {m["machine_id"] for m in backend.routes(address, port)["machines"]}


def test_a_reconcile_joins_the_members_and_an_idle_one_only_lists(
    fly: FlyClient, backend: LocalBackend
) -> None:
    uids = setup(fly, 3)
    kube, controller, body = expose(fly, "web", uids[:2])
    address = body["spec"]["clusterIP"]
    members = {m.id for m in fly.machines.list(APP) if m.metadata[records.META_POD_UID] in uids[:2]}
    assert routed(backend, address) == members
    versions = {m.id: m.instance_id for m in fly.machines.list(APP)}
    controller.reconcile("shop")  # nothing changed: no machine is touched
    assert {m.id: m.instance_id for m in fly.machines.list(APP)} == versions
    assert kube.events == []


def test_a_load_balancer_gets_its_addresses_and_a_deleted_service_releases_them(
    fly: FlyClient, backend: LocalBackend
) -> None:
    uids = setup(fly, 1)
    kube, controller, lb = expose(fly, "shop", uids, kind="LoadBalancer",
                                  allocateLoadBalancerNodePorts=False)  # fmt: skip
    address = lb["spec"]["clusterIP"]
    (name, status) = kube.statuses[-1]
    ingress = status["loadBalancer"]["ingress"]
    assert name == "shop" and ingress[0] == {"hostname": f"shop.svc.{APP}.fly.dev"}
    assert {ip.ip for ip in fly.ips.list(APP)} == {address, ingress[1]["ip"], ingress[2]["ip"]}
    assert len(routed(backend, ingress[1]["ip"])) == 1
    assert kube.events == []  # nothing unsupported in it

    lb["status"] = status
    controller.observe("Service", "DELETED", lb)
    controller.reconcile("shop")
    assert fly.ips.list(APP) == []
    (machine,) = fly.machines.list(APP)
    assert not machine.to_api()["config"].get("services")


def test_an_address_whose_service_never_came_is_released_once_old(
    fly: FlyClient, backend: LocalBackend
) -> None:
    setup(fly, 0)
    young = fly.ips.create(APP, "private_v6", service_name="refused").ip
    now = backend.clock
    backend.clock = lambda: now() - 120  # assigned two minutes ago
    old = fly.ips.create(APP, "private_v6", service_name="refused-too").ip
    backend.clock = now
    controller = ServiceController(Kube(), fly, CONFIG)  # type: ignore[arg-type]
    controller.reconcile("shop")
    # The young one's Service may be on its way; the old one's never came.
    assert [ip.ip for ip in fly.ips.list(APP)] == [young]
    assert old != young
