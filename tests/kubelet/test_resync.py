# ruff: noqa: E501  (the table reads best one case per line)
"""How soon a settled namespace is listed again: pure, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from flyk.kubelet import Intervals
from flyk.kubelet.pods import settled_interval

INTERVALS = Intervals(resync=30.0, liveness_floor=5.0)
TCP = {"tcpSocket": {"port": 8080}}


def pod(uid: str, *probes: dict[str, Any] | None, phase: str = "Running", deleting: bool = False):
    containers = [
        {"name": f"c{i}", "image": "x", **({"livenessProbe": p} if p is not None else {})}
        for i, p in enumerate(probes or (None,))
    ]
    meta: dict[str, Any] = {"name": uid, "namespace": "n", "uid": uid}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-25T10:00:00Z"
    return {"metadata": meta, "spec": {"containers": containers}, "status": {"phase": phase}}


def machine(state: str = "started", *checks: str) -> dict[str, Any]:
    return {"state": state, "checks": [{"name": "liveness-c0", "status": s} for s in checks]}


CASES = [
    # pods, machines by uid, seconds
    ([], {}, 30.0),
    ([pod("a")], {"a": machine()}, 30.0),  # no probe: the slow resync
    ([pod("a", TCP)], {"a": machine("started", "passing")}, 30.0),  # defaults: 10 s × 3
    ([pod("a", {**TCP, "periodSeconds": 4})], {"a": machine("started", "passing")}, 12.0),
    ([pod("a", {**TCP, "periodSeconds": 4, "failureThreshold": 1})], {"a": machine("started", "passing")}, 5.0),  # the floor
    ([pod("a", {**TCP, "periodSeconds": 20})], {"a": machine("started", "passing")}, 30.0),  # never slower
    ([pod("a", TCP)], {"a": machine("started", "critical")}, 10.0),  # failing: the period alone
    ([pod("a", TCP)], {"a": machine("started", "warning")}, 10.0),
    ([pod("a", {"httpGet": {"port": 80}, "periodSeconds": 7})], {"a": machine("started", "passing")}, 21.0),
    ([pod("a", {"exec": {"command": ["true"]}, "periodSeconds": 1})], {"a": machine()}, 30.0),  # not a check
    ([pod("a", TCP)], {"a": machine("stopped")}, 30.0),  # not running: nothing to watch
    ([pod("a", TCP)], {}, 30.0),  # no machine yet
    ([pod("a", TCP, phase="Succeeded")], {"a": machine("started", "critical")}, 30.0),
    ([pod("a", TCP, deleting=True)], {"a": machine("started", "critical")}, 30.0),
    # the smallest over the namespace's pods and containers
    ([pod("a", TCP), pod("b", None, {**TCP, "periodSeconds": 3})], {"a": machine("started", "passing"), "b": machine("started", "passing")}, 9.0),
]  # fmt: skip


@pytest.mark.parametrize(("pods", "machines", "seconds"), CASES)
def test_settled_interval(
    pods: list[dict[str, Any]], machines: dict[str, Any], seconds: float
) -> None:
    assert settled_interval(pods, machines, INTERVALS) == seconds


def test_the_interval_does_not_grow_with_pods() -> None:
    """However many pods share a namespace, it is still one list per interval."""
    probe = {**TCP, "periodSeconds": 2}
    few = [pod(f"p{i}", probe) for i in range(2)]
    many = [pod(f"p{i}", probe) for i in range(500)]
    machines = {f"p{i}": machine("started", "passing") for i in range(500)}
    assert (
        settled_interval(few, machines, INTERVALS)
        == settled_interval(many, machines, INTERVALS)
        == 6.0
    )
