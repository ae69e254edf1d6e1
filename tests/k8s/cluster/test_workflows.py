"""The workflows one after another: create, list, status, kubeconfig and delete together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flyk.api import FlyClient, RateLimiter
from flyk.errors import (
    CapacityError,
)
from flyk.k8s import cluster
from flyk.local import LocalBackend
from tests.k8s.cluster.helpers import footprint, kube_options, options, spec
from tests.k8s.conftest import make_client


def test_create_then_delete_then_create_again(client: FlyClient, tmp_path: Path) -> None:
    cluster.create(client, spec(), options(tmp_path))
    cluster.delete(
        client, cluster.plan_deletion(client, "demo", "personal"), kubeconfig=kube_options(tmp_path)
    )
    cluster.create(client, spec(), options(tmp_path))
    assert [c.name for c in cluster.list_clusters(client, ["personal"])] == ["demo"]


def test_secret_values_never_reach_the_verbose_log(backend: LocalBackend, tmp_path: Path) -> None:
    """What `--verbose` prints is what the client's `on_exchange` hook is handed."""
    token = "fm2_verbose-log-token"
    logged: list[str] = []

    def log(request: Any, response: Any) -> None:
        logged.append(f"> {request.method} {request.url} {dict(request.headers)}")
        logged.append(request.content.decode(errors="replace"))
        logged.append(f"< {response.status_code} {dict(response.headers)}")
        logged.append(response.content.decode(errors="replace"))

    client = FlyClient(
        base_url="http://local.flyk",
        token=token,
        transport=backend.transport(),
        rate_limiter=RateLimiter.unlimited(),
        on_exchange=log,
    )
    cluster.create(client, spec(), options(tmp_path, kubelet_token="TOKEN-VALUE"))
    entry = cluster.rebuild_kubeconfig(client, "demo", "personal")
    cluster.status(client, "demo", "personal", probe_api=False)
    assert entry.cluster == "demo"  # the values did reach the caller
    text = "\n".join(logged)
    # the secrets were written, and read back with their values, through the hook
    assert "/secrets?show_secrets=true" in text
    assert '"value":"<redacted>"' in text
    for needle in ("LS0tLS1CRUdJTi", "PRIVATE KEY", "TOKEN-VALUE", token):
        assert needle not in text


@pytest.mark.served
def test_create_and_delete_over_real_http(backend: LocalBackend, tmp_path: Path) -> None:
    served = backend.serve()
    try:
        client = FlyClient(base_url=served.url, rate_limiter=RateLimiter.unlimited())
        created = cluster.create(client, spec(), options(tmp_path))
        assert created.machine.state == "started"
        plan = cluster.plan_deletion(client, "demo", "personal")
        assert cluster.delete(client, plan, kubeconfig=kube_options(tmp_path)).leftovers == ()
        assert footprint(client) == {}
        client.close()
    finally:
        served.close()


def test_every_call_of_every_workflow_matches_the_machines_api_spec(
    backend: LocalBackend, tmp_path: Path
) -> None:
    from tests.spec_check import SpecCheckingTransport

    client = make_client(SpecCheckingTransport(backend.transport()))
    cluster.create(client, spec(), options(tmp_path))
    cluster.create(client, spec("private", private=True, dedicated_ipv4=False), options(tmp_path))
    cluster.list_clusters(client, ["personal"])
    cluster.status(client, "demo", "personal", probe_api=False)
    cluster.rebuild_kubeconfig(client, "demo", "personal")
    for name in ("demo", "private"):
        plan = cluster.plan_deletion(client, name, "personal")
        cluster.delete(client, plan, kubeconfig=kube_options(tmp_path))
    backend.capacity.set("iad", 0)
    with pytest.raises(CapacityError):
        cluster.create(client, spec("full"), options(tmp_path))
