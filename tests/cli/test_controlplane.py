"""`flyk ext k8s control-plane`'s cluster DNS settings, from its flags and the machine's env."""

from __future__ import annotations

import pytest

from flyk.cli.controlplane import _cluster_dns
from flyk.errors import UsageError
from flyk.k8s import components


def test_on_fly_coredns_listens_on_the_6pn_address_port_53_and_forwards_to_fly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLY_PRIVATE_IP", "fdaa:0:1:a7b:1:0:0:2")  # told in its canonical form
    dns = _cluster_dns(None, [])
    assert dns == components.ClusterDNS(
        listen="fdaa:0:1:a7b:1::2", nameserver="fdaa:0:1:a7b:1::2", port=53, upstreams=("fdaa::3",)
    )


def test_the_local_backend_gives_loopback_its_published_port_and_the_hosts_resolvers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLY_PRIVATE_IP", "fdaa:0:1:a7b:1::2")
    monkeypatch.setenv("FLYK_LOCAL_PORT_53", "40053")
    dns = _cluster_dns("127.0.0.1", ["/etc/resolv.conf"])
    assert dns is not None
    assert (dns.listen, dns.port, dns.nameserver) == ("127.0.0.1", 40053, "fdaa:0:1:a7b:1::2")
    assert dns.upstreams == ("/etc/resolv.conf",)


def test_without_a_private_address_there_is_no_cluster_dns_and_a_bad_one_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FLY_PRIVATE_IP", raising=False)
    assert _cluster_dns(None, []) is None
    monkeypatch.setenv("FLY_PRIVATE_IP", "not-an-address")
    with pytest.raises(UsageError, match="FLY_PRIVATE_IP"):
        _cluster_dns(None, [])
    monkeypatch.setenv("FLY_PRIVATE_IP", "fdaa::2")
    monkeypatch.setenv("FLYK_LOCAL_PORT_53", "x")
    with pytest.raises(UsageError, match="FLYK_LOCAL_PORT_53"):
        _cluster_dns(None, [])
