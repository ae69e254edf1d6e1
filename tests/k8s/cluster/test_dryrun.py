"""create --dry-run: create's checks, no writes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from flyk.api import FlyClient
from flyk.errors import (
    AlreadyExistsError,
    CapacityError,
    NotFoundError,
    UsageError,
)
from flyk.k8s import cluster
from flyk.local import LocalBackend
from tests.k8s.cluster.helpers import footprint, options, spec
from tests.k8s.conftest import CountingTransport


def _writes_besides_placements(transport: CountingTransport) -> list[tuple[str, str]]:
    """Placements is a POST that only reads (where a machine would fit)."""
    return [w for w in transport.writes() if not w[1].endswith("/platform/placements")]


def test_dry_run_plan_writes_nothing(
    counting: Callable[[], tuple[FlyClient, CountingTransport]], tmp_path: Path
) -> None:
    client, transport = counting()
    checked = cluster.dry_run(client, spec(), options(tmp_path))
    assert checked.plan.describe()["resources"][-1]["config"]["image"]
    assert checked.resuming is None
    assert ("GET", "/v1/apps/flyk-demo-personal") in transport.calls  # it did check
    assert _writes_besides_placements(transport) == []
    assert footprint(client) == {} and not (tmp_path / "kubeconfig").exists()


def test_dry_run_gives_the_errors_a_create_would_and_writes_nothing(
    backend: LocalBackend,
    counting: Callable[[], tuple[FlyClient, CountingTransport]],
    tmp_path: Path,
) -> None:
    client, transport = counting()
    with pytest.raises(NotFoundError) as unknown_org:
        cluster.dry_run(client, spec(org="nope"), options(tmp_path))
    with pytest.raises(NotFoundError) as real_org:
        cluster.create(client, spec(org="nope"), options(tmp_path))
    assert unknown_org.value.exit_code == real_org.value.exit_code == 3
    assert unknown_org.value.message == real_org.value.message
    cluster.create(client, spec(), options(tmp_path))
    before, kube_before = footprint(client), (tmp_path / "kubeconfig").read_bytes()
    transport.calls.clear()
    with pytest.raises(AlreadyExistsError):
        cluster.dry_run(client, spec(), options(tmp_path))
    backend.capacity.set("ams", 0)
    with pytest.raises(CapacityError) as full:
        cluster.dry_run(client, spec("other", region="ams"), options(tmp_path))
    assert full.value.exit_code == 8 and full.value.region == "ams"
    assert full.value.alternatives and "ams" not in full.value.alternatives
    assert _writes_besides_placements(transport) == []
    assert footprint(client) == before
    assert (tmp_path / "kubeconfig").read_bytes() == kube_before


def test_dry_run_refuses_a_region_without_volume_room_as_create_does(
    backend: LocalBackend, client: FlyClient, tmp_path: Path
) -> None:
    backend.capacity.set_volumes("ams", 0)
    with pytest.raises(CapacityError) as dry:
        cluster.dry_run(client, spec(region="ams"), options(tmp_path))
    with pytest.raises(CapacityError) as real:
        cluster.create(client, spec(region="ams"), options(tmp_path))
    assert dry.value.exit_code == real.value.exit_code == 8
    assert dry.value.region == real.value.region == "ams"
    assert footprint(client) == {}


def test_a_volume_larger_than_the_api_allows_is_refused_before_any_call() -> None:
    with pytest.raises(UsageError, match="1 to 500 GB"):
        spec(volume_size_gb=100000)
