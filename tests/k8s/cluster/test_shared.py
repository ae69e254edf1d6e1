"""What the workflows share: finding a cluster on the platform, rebuilding its kubeconfig."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from flyk.api import FlyClient
from flyk.errors import (
    NotFoundError,
)
from flyk.k8s import cluster
from tests.k8s.cluster.helpers import kubectl_view, options, spec


def test_an_unrelated_app_with_the_cluster_app_name_is_not_a_cluster(client: FlyClient) -> None:
    client.apps.create("flyk-demo-personal", "personal")
    client.secrets.set("flyk-demo-personal", {"DATABASE_URL": "x"})
    with pytest.raises(NotFoundError):
        cluster.plan_deletion(client, "demo", "personal")


def test_kubeconfig_is_rebuilt_from_the_secrets_with_a_fresh_admin_cert(
    client: FlyClient, tmp_path: Path
) -> None:
    created = cluster.create(client, spec(), options(tmp_path))
    original = kubectl_view(tmp_path / "kubeconfig")["users"][0]["user"]
    entry = cluster.rebuild_kubeconfig(client, "demo", "personal")
    assert entry.server == created.plan.api_endpoint
    fresh = x509.load_pem_x509_certificate(entry.client_cert_pem)
    assert fresh.subject.rfc4514_string() == "CN=flyk-admin,O=system:masters"
    other = tmp_path / "elsewhere"
    cluster.KubeconfigOptions(output=str(other)).merge(entry)
    rebuilt = kubectl_view(other)
    assert (
        rebuilt["clusters"][0]["cluster"]["certificate-authority-data"]
        == (
            kubectl_view(tmp_path / "kubeconfig")["clusters"][0]["cluster"][
                "certificate-authority-data"
            ]
        )
    )
    assert (
        rebuilt["users"][0]["user"]["client-certificate-data"]
        != (original["client-certificate-data"])
    )


def test_unknown_cluster_is_not_found(client: FlyClient) -> None:
    for call in (
        lambda: cluster.status(client, "ghost", "personal", probe_api=False),
        lambda: cluster.rebuild_kubeconfig(client, "ghost", "personal"),
        lambda: cluster.plan_deletion(client, "ghost", "personal"),
    ):
        with pytest.raises(NotFoundError, match="no cluster ghost"):
            call()
