"""The same flow on Fly.io with the published control-plane image: FLYK_TEST_LIVE=1, a token
(FLY_API_TOKEN) and FLYK_TEST_LIVE_ORG (an org the token may create apps in; billed).

Skipped otherwise. It creates a cluster, waits for the flyk node to be Ready, runs a
three-replica Deployment, and deletes the cluster, checking nothing is left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

# Read at import: the autouse isolation fixture removes the variables before each test.
_LIVE = os.environ.get("FLYK_TEST_LIVE") == "1"
_TOKEN = os.environ.get("FLY_API_TOKEN") or os.environ.get("FLY_ACCESS_TOKEN")
_ORG = os.environ.get("FLYK_TEST_LIVE_ORG", "personal")
_REGION = os.environ.get("FLYK_TEST_LIVE_REGION", "iad")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not (_LIVE and _TOKEN), reason="needs FLYK_TEST_LIVE=1 and a token"),
]


Run = Callable[..., subprocess.CompletedProcess[str]]


def _commands(tmp_path: Path) -> tuple[Run, Run]:
    """flyk and kubectl with the token and a kubeconfig of the test's own."""
    env = {**os.environ, "FLY_API_TOKEN": _TOKEN or "", "KUBECONFIG": str(tmp_path / "kube")}

    def flyk(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flyk", *args], env=env, capture_output=True, text=True
        )

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True)

    return flyk, kubectl


def test_a_cluster_on_fly_runs_a_deployment_and_leaves_nothing(tmp_path: Path) -> None:
    flyk, kubectl = _commands(tmp_path)
    name = f"live-{uuid.uuid4().hex[:6]}"

    created = flyk("ext", "k8s", "create", name, "-o", _ORG, "-r", _REGION, "--timeout", "15m")
    try:
        assert created.returncode == 0, created.stderr
        deadline = time.monotonic() + 300
        while " Ready" not in kubectl("get", "nodes").stdout:
            assert time.monotonic() < deadline, "the flyk node never became Ready"
            time.sleep(5)
        assert (
            kubectl("create", "deployment", "web", "--image=nginx", "--replicas=3").returncode == 0
        )
        deadline = time.monotonic() + 600
        while True:
            pods = json.loads(kubectl("get", "pods", "-o", "json").stdout)["items"]
            if sum(p["status"].get("phase") == "Running" for p in pods) == 3:
                break
            assert time.monotonic() < deadline, "the pods never ran"
            time.sleep(10)
        assert kubectl("scale", "deployment", "web", "--replicas=0").returncode == 0
    finally:
        deleted = flyk("ext", "k8s", "delete", name, "-o", _ORG, "--yes")
    assert deleted.returncode == 0, deleted.stderr
    listed = json.loads(flyk("ext", "k8s", "list", "-o", _ORG, "--json").stdout)
    assert name not in [c["name"] for c in listed]


def test_a_pod_on_fly_resolves_cluster_names_and_outside_names_through_coredns(
    tmp_path: Path,
) -> None:
    """Settles on Fly what the local backend cannot: a pod's machine, given the control
    plane's 6PN address as nameserver (machine `dns` config), reaches CoreDNS over UDP, which
    answers Service names and forwards the rest to fdaa::3. A Job whose pod looks up both
    names succeeds only if both answer (busybox's nslookup exits non-zero otherwise)."""
    flyk, kubectl = _commands(tmp_path)
    name = f"live-dns-{uuid.uuid4().hex[:6]}"

    lookups = (
        "nslookup kubernetes.default.svc.cluster.local"
        " && nslookup kube-dns.kube-system"  # the search path, ndots:5
        " && nslookup fly.io"
    )
    created = flyk("ext", "k8s", "create", name, "-o", _ORG, "-r", _REGION, "--timeout", "15m")
    try:
        assert created.returncode == 0, created.stderr
        job = kubectl("create", "job", "dns", "--image=busybox:1.36", "--", "sh", "-c", lookups)
        assert job.returncode == 0, job.stderr
        deadline = time.monotonic() + 600
        while True:
            got = json.loads(kubectl("get", "job", "dns", "-o", "json").stdout)["status"]
            if got.get("succeeded") or got.get("failed"):
                break
            assert time.monotonic() < deadline, "the DNS job never finished"
            time.sleep(10)
        assert got.get("succeeded") == 1, f"lookups failed in the pod: {got}"
    finally:
        deleted = flyk("ext", "k8s", "delete", name, "-o", _ORG, "--yes")
    assert deleted.returncode == 0, deleted.stderr
