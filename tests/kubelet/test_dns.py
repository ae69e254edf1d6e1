"""A pod's dnsPolicy and dnsConfig as its machine's `dns` config (flyk/kubelet/dns.py), and
through the whole translation (build_plan)."""

from __future__ import annotations

from typing import Any

import pytest

from flyk.kubelet import dns
from flyk.kubelet import translate as tr

CLUSTER = dns.ClusterDNS(("fdaa:0:1:a7b:1::2",))
SEARCH = ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"]
NDOTS = [{"name": "ndots", "value": "5"}]
FIRST = {"nameservers": ["fdaa:0:1:a7b:1::2"], "searches": SEARCH, "options": NDOTS}


def pod(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
        "spec": {"containers": [{"name": "app", "image": "nginx"}], **spec},
    }


CASES = [
    # (pod spec, expected machine dns config)
    ({}, FIRST),  # ClusterFirst is the default
    ({"dnsPolicy": "ClusterFirst"}, FIRST),
    ({"dnsPolicy": "ClusterFirstWithHostNet"}, FIRST),
    ({"dnsPolicy": "ClusterFirstWithHostNet", "hostNetwork": True}, FIRST),
    (
        {"dnsPolicy": "ClusterFirst", "hostNetwork": True},
        None,
    ),  # Kubernetes gives such a pod Default
    ({"dnsPolicy": "Default"}, None),  # Fly's own resolver
    (
        {"dnsPolicy": "Default", "dnsConfig": {"searches": ["corp.example"]}},
        {"nameservers": ["fdaa::3"], "searches": ["corp.example"]},
    ),
    (
        {
            "dnsPolicy": "None",
            "dnsConfig": {
                "nameservers": ["1.1.1.1"],
                "searches": ["a.example"],
                "options": [{"name": "edns0"}],
            },
        },
        {"nameservers": ["1.1.1.1"], "searches": ["a.example"], "options": [{"name": "edns0"}]},
    ),
    (
        {
            "dnsConfig": {
                "nameservers": ["9.9.9.9", "fdaa:0:1:a7b:1::2"],
                "searches": ["svc.cluster.local", "b.example"],
                "options": [{"name": "ndots", "value": "2"}, {"name": "timeout", "value": "1"}],
            }
        },
        {
            "nameservers": ["fdaa:0:1:a7b:1::2", "9.9.9.9"],
            "searches": [*SEARCH, "b.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "timeout", "value": "1"}],
        },
    ),
]


@pytest.mark.parametrize(("spec", "expected"), CASES)
def test_policy_and_config_become_the_machine_dns(spec: dict[str, Any], expected: Any) -> None:
    config, warnings = dns.machine_dns(pod(**spec), CLUSTER)
    assert config == expected
    assert warnings == []


def test_without_cluster_dns_cluster_first_keeps_the_machines_resolver() -> None:
    assert dns.machine_dns(pod(), dns.ClusterDNS()) == (None, [])
    config, _ = dns.machine_dns(pod(dnsConfig={"options": [{"name": "edns0"}]}), dns.ClusterDNS())
    assert config == {"nameservers": ["fdaa::3"], "options": [{"name": "edns0"}]}


def test_another_cluster_domain_names_the_search_path() -> None:
    config, _ = dns.machine_dns(pod(), dns.ClusterDNS(("10.0.0.10",), "corp.internal"))
    assert config is not None
    assert config["searches"] == ["shop.svc.corp.internal", "svc.corp.internal", "corp.internal"]


def test_the_kubelets_limits_are_kept_with_a_warning() -> None:
    many = {
        "nameservers": ["1.1.1.1", "8.8.8.8", "9.9.9.9"],
        "searches": [f"d{i}.example" for i in range(40)],
    }
    config, warnings = dns.machine_dns(pod(dnsConfig=many), CLUSTER)
    assert config is not None
    assert config["nameservers"] == ["fdaa:0:1:a7b:1::2", "1.1.1.1", "8.8.8.8"]
    assert len(config["searches"]) == dns.MAX_SEARCHES and config["searches"][:3] == SEARCH
    assert len(warnings) == 2
    assert "at most 3 nameservers" in warnings[0] and "search path limits" in warnings[1]
    long = {"searches": ["x" * 250 + f".{i}.example" for i in range(10)]}
    config, warnings = dns.machine_dns(pod(dnsPolicy="None", dnsConfig=long), CLUSTER)
    assert config is not None and len(" ".join(config["searches"])) <= dns.MAX_SEARCH_CHARS
    assert len(config["searches"]) == 7 and warnings


NODE = tr.NodeFacts(cluster="demo", node_name="flyk", node_ip="fdaa::2", region="iad", dns=CLUSTER)


def test_the_machine_config_carries_the_dns_and_no_warning() -> None:
    plan = tr.build_plan(pod(dnsPolicy="ClusterFirst"), tr.Sources(), NODE)
    assert plan.config["dns"] == FIRST
    assert plan.warnings == ()
    default = tr.build_plan(pod(dnsPolicy="Default"), tr.Sources(), NODE)
    assert "dns" not in default.config


def test_a_new_cluster_nameserver_restarts_the_machine_and_no_dns_keeps_the_old_hash() -> None:
    """The nameserver is in the spec hash (running machines must learn a new one); a pod with
    no dns config hashes as before cluster DNS, so upgrading flyk restarts only the machines
    that gain one."""
    moved = tr.NodeFacts(
        cluster="demo",
        node_name="flyk",
        node_ip="fdaa::2",
        region="iad",
        dns=dns.ClusterDNS(("fdaa:0:1:a7b:2::2",)),
    )
    without = tr.NodeFacts(cluster="demo", node_name="flyk", node_ip="fdaa::2", region="iad")
    first = tr.build_plan(pod(), tr.Sources(), NODE).spec_hash
    assert tr.build_plan(pod(), tr.Sources(), moved).spec_hash != first
    assert tr.build_plan(pod(), tr.Sources(), without).spec_hash != first
    default = pod(dnsPolicy="Default")
    assert (
        tr.build_plan(default, tr.Sources(), NODE).spec_hash
        == tr.build_plan(default, tr.Sources(), without).spec_hash
    )
