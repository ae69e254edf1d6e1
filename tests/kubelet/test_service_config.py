"""Services as machine config (flyk/kubelet/service_config.py) and as Service link variables
(flyk/kubelet/service_env.py): pure data."""

from __future__ import annotations

from typing import Any

from flyk.kubelet import service_config as sc
from flyk.kubelet.service_env import service_link_env
from flyk.local import routing

JSON = dict[str, Any]


def service(name: str = "web", **spec: Any) -> JSON:
    annotations = spec.pop("annotations", {sc.ALLOCATOR_ANNOTATION: "configured"})
    body = {"clusterIP": "fdaa:0:1::5", "ports": [{"name": "http", "port": 80}], **spec}
    return {
        "metadata": {"name": name, "namespace": "default", "uid": "u", "annotations": annotations},
        "spec": body,
    }


def endpoint_slice(*uids: str, terminating: set[str] | None = None, port: int = 8080) -> JSON:
    return {
        "metadata": {"labels": {sc.SERVICE_NAME_LABEL: "web"}},
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": ["fdaa::1"],
                "conditions": {"ready": False, "terminating": uid in (terminating or set())},
                "targetRef": {"kind": "Pod", "uid": uid},
            }
            for uid in uids
        ],
    }


def test_members_follow_the_slices_less_terminating_pods_and_regardless_of_readiness() -> None:
    found = sc.members(service(), [endpoint_slice("a", "b", "c", terminating={"c"})])
    assert found == {"a": {(80, "tcp"): 8080}, "b": {(80, "tcp"): 8080}}


def test_the_metadata_format_is_the_one_the_local_backend_routes_by() -> None:
    ports = {(80, "tcp"): 8080, (443, "tcp"): 8443}
    encoded = sc.encode(ports)
    assert sc.decode(encoded) == ports
    assert routing.service_ports(encoded) == ports
    assert sc.SERVICE_KEY_PREFIX == routing.SERVICE_KEY_PREFIX


def test_with_services_replaces_only_what_services_own_and_carry_routing_keeps_it() -> None:
    config = {"image": "nginx", "metadata": {"flyk_pod": "p", "flyk_service_old": "80/tcp=1"}}
    joined = {"web": {(80, "tcp"): 8080}}
    new = sc.with_services(config, joined, {"web": service()})
    assert new["metadata"] == {"flyk_pod": "p", "flyk_service_web": "80/tcp=8080"}
    (entry,) = new["services"]
    assert entry["internal_port"] == 8080 and entry["ports"] == [{"port": 80}]
    assert entry["concurrency"] == {"type": "connections", "soft_limit": 20, "hard_limit": 25}
    rebuilt = sc.carry_routing({"image": "nginx:2", "metadata": {"flyk_pod": "p"}}, new)
    assert rebuilt["services"] == new["services"]
    assert rebuilt["metadata"]["flyk_service_web"] == "80/tcp=8080"
    assert "services" not in sc.with_services(new, {}, {})


def test_fks_annotations_become_handlers_tls_options_and_concurrency() -> None:
    annotations = {
        sc.ALLOCATOR_ANNOTATION: "configured",
        "service.fly.io/http-handlers": "tls, http",
        "service.fly.io/80-tls-alpn": "h2,http/1.1",
        "service.fly.io/http-tls-versions": "TLSv1.3",
        "service.fly.io/80-tls-default-self-signed": "true",
        "service.fly.io/concurrency-kind": "requests",
        "service.fly.io/concurrency-limit-soft": "100",
        "service.fly.io/concurrency-limit-hard": "lots",
    }
    svc = service(annotations=annotations)
    assert sc.port_options(svc, 80, "tcp") == {
        "port": 80,
        "handlers": ["tls", "http"],
        "tls_options": {"alpn": ["h2", "http/1.1"], "versions": ["TLSv1.3"],
                        "default_self_signed": True},
    }  # fmt: skip
    assert sc.concurrency(svc) == {"type": "requests", "soft_limit": 100, "hard_limit": 25}


def test_only_services_flyk_addressed_are_managed() -> None:
    assert sc.is_managed(service())
    assert not sc.is_managed(service(annotations={}))
    assert not sc.is_managed(service(clusterIP="None"))
    assert not sc.is_managed(service(type="ExternalName"))


def test_what_fly_proxy_cannot_honour_is_named() -> None:
    odd = service(
        type="LoadBalancer",
        externalTrafficPolicy="Local",
        internalTrafficPolicy="Local",
        sessionAffinity="ClientIP",
        loadBalancerSourceRanges=["10.0.0.0/8"],
        externalIPs=["1.2.3.4"],
        ports=[{"port": 53, "protocol": "UDP"}, {"port": 9, "protocol": "SCTP"}],
    )
    text = "\n".join(sc.unsupported(odd))
    needles = ("node ports", "externalTrafficPolicy", "internalTrafficPolicy", "sessionAffinity")
    for needle in (*needles, "SourceRanges", "externalIPs", "53/UDP", "9/SCTP"):
        assert needle in text
    assert sc.unsupported(service()) == []
    assert "NodePort" in sc.unsupported(service(type="NodePort"))[0]


def test_service_link_variables_are_kubernetes_own() -> None:
    web = service(
        "web-front",
        ports=[
            {"name": "http", "port": 80, "protocol": "TCP"},
            {"name": "metrics-x", "port": 9100},
        ],
    )
    env = service_link_env(
        [web, service("db", clusterIP="None"), service("v4", clusterIP="10.0.0.3")]
    )
    assert env["WEB_FRONT_SERVICE_HOST"] == "fdaa:0:1::5"
    assert env["WEB_FRONT_SERVICE_PORT"] == "80"
    assert env["WEB_FRONT_SERVICE_PORT_HTTP"] == "80"
    assert env["WEB_FRONT_SERVICE_PORT_METRICS_X"] == "9100"
    assert env["WEB_FRONT_PORT"] == "tcp://[fdaa:0:1::5]:80"
    assert env["WEB_FRONT_PORT_9100_TCP"] == "tcp://[fdaa:0:1::5]:9100"
    assert env["WEB_FRONT_PORT_80_TCP_PROTO"] == "tcp"
    assert env["WEB_FRONT_PORT_80_TCP_PORT"] == "80"
    assert env["WEB_FRONT_PORT_80_TCP_ADDR"] == "fdaa:0:1::5"
    assert env["V4_PORT"] == "tcp://10.0.0.3:80"
    assert not any(k.startswith("DB_") for k in env)
