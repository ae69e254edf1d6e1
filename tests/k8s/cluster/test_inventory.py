"""List and status, read from the platform."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from flyk.api import FlyClient, RetryPolicy
from flyk.errors import (
    FlykError,
)
from flyk.k8s import cluster, records
from flyk.k8s import controlplane as cp
from flyk.local import LocalBackend
from tests.k8s.cluster.helpers import options, spec
from tests.k8s.conftest import make_client


def test_list_reads_the_platform(client: FlyClient, tmp_path: Path) -> None:
    assert cluster.list_clusters(client, ["personal"]) == []
    cluster.create(client, spec("one"), options(tmp_path))
    cluster.create(client, spec("two", private=True), options(tmp_path))
    client.apps.create("unrelated", "personal")
    found = cluster.list_clusters(client, ["personal"])
    assert [(c.name, c.org, c.region, c.state) for c in found] == [
        ("one", "personal", "iad", "started"),
        ("two", "personal", "iad", "started"),
    ]
    assert re.fullmatch(r"https://127\.0\.0\.1:\d+", found[1].api_endpoint)
    assert json.dumps([c.to_json() for c in found])


def test_status_on_the_local_backend_says_the_api_is_simulated(
    client: FlyClient, tmp_path: Path
) -> None:
    cluster.create(client, spec(), options(tmp_path))
    result = cluster.status(client, "demo", "personal", probe_api=False)
    assert result.summary.state == "started"
    assert not result.api.reachable and "simulated" in result.api.detail
    assert dict(result.checks).get(cp.CHECK_NAME) == "passing"


def test_list_names_an_incomplete_cluster_whose_app_name_is_hashed(
    backend: LocalBackend, tmp_path: Path
) -> None:
    org = "a-rather-long-organization-slug"
    backend.add_org(org, "Long")
    name = "a-cluster-name-long-enough-to-be-hashed"
    client = make_client(backend.transport(), RetryPolicy.never())
    backend.faults.add("server_error", method="POST", path=r"/machines$", times=None)
    with pytest.raises(FlykError):
        cluster.create(client, spec(name, org=org), options(tmp_path, keep_on_failure=True))
    backend.faults.clear()
    (found,) = cluster.list_clusters(client, [org])
    assert found.app != f"flyk-{name}-{org}"  # hashed: the name is not in it
    assert (found.name, found.org, found.state) == (name, org, "incomplete")


def test_an_incomplete_cluster_is_known_by_the_markers_on_its_app_not_its_name(
    backend: LocalBackend, tmp_path: Path
) -> None:
    client = make_client(backend.transport(), RetryPolicy.never())
    backend.faults.add("server_error", method="POST", path=r"/machines$", times=None)
    with pytest.raises(FlykError):
        cluster.create(client, spec("kept"), options(tmp_path, keep_on_failure=True))
    backend.faults.clear()
    values = {s.name: s.value for s in client.secrets.list("flyk-kept-personal", show_secrets=True)}
    assert values[records.MARKER_CLUSTER] == "kept" and values[records.MARKER_ORG] == "personal"
    # An app that merely looks like a cluster's by its name is not one.
    client.apps.create("flyk-lookalike-personal", "personal")
    found = cluster.list_clusters(client, ["personal"])
    assert [(c.name, c.org, c.state) for c in found] == [("kept", "personal", "incomplete")]


def test_an_incomplete_cluster_is_listed_in_its_volume_region(
    backend: LocalBackend, tmp_path: Path
) -> None:
    client = make_client(backend.transport(), RetryPolicy.never())
    backend.faults.add("server_error", method="POST", path=r"/machines$", times=None)
    with pytest.raises(FlykError):
        cluster.create(client, spec(region="ams"), options(tmp_path, keep_on_failure=True))
    (listed,) = cluster.list_clusters(client, ["personal"])
    assert (listed.state, listed.region) == ("incomplete", "ams")
    assert cluster.status(client, "demo", "personal", probe_api=False).summary.region == "ams"
