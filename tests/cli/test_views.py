"""Every JSON document a command prints has its keys documented (views.EXTRA_SHAPES)."""

from __future__ import annotations

import json

import pytest

from flyk.cli import views
from tests.cli.helpers import Flyk


def _documented(shape: str, *extra_views: views.View[object]) -> set[str]:
    keys = {key.removeprefix("[].") for key, _ in views.EXTRA_SHAPES[shape]} - {"…"}
    for view in extra_views:
        keys |= set(view.keys)
    return keys


@pytest.fixture
def machine_id(flyk: Flyk) -> str:
    assert flyk("--local", "apps", "create", "web").exit_code == 0
    result = flyk("--local", "machine", "run", "nginx", "-a", "web", "--json")
    return str(json.loads(result.stdout)["id"])


def _json(flyk: Flyk, *args: str) -> object:
    result = flyk("--local", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


LIFECYCLE = "machine start, stop, restart, suspend, cordon, uncordon, destroy"


@pytest.mark.parametrize("verb", ["stop", "start", "cordon", "uncordon", "restart"])
def test_lifecycle_documents(flyk: Flyk, machine_id: str, verb: str) -> None:
    document = _json(flyk, "machine", verb, machine_id, "-a", "web")
    assert document == [{"id": machine_id, "action": verb, "app": "web", "error": None}]
    assert set(document[0]) == _documented(LIFECYCLE)  # type: ignore[index]


def test_wait_status_and_lease_documents(flyk: Flyk, machine_id: str) -> None:
    wait = _json(flyk, "machine", "wait", machine_id, "-a", "web")
    assert set(wait) == _documented("machine wait")  # type: ignore[arg-type]
    status = _json(flyk, "machine", "status", machine_id, "-a", "web", "-d")
    assert set(status) == _documented("machine status", views.MACHINE)  # type: ignore[arg-type]
    lease = _json(flyk, "machine", "leases", "view", machine_id, "-a", "web")
    assert lease == {
        "id": machine_id,
        "leased": False,
        "owner": None,
        "description": None,
        "expires_at": None,
        "expires": None,
        "version": None,
    }
    assert set(lease) == _documented("machine leases view", views.LEASE)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("shape", "args"),
    [("version", ["version"]), ("local status", ["local", "status"])],
)
def test_other_documents(flyk: Flyk, shape: str, args: list[str]) -> None:
    assert set(_json(flyk, *args)) == _documented(shape)  # type: ignore[arg-type]
