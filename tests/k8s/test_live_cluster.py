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


def test_a_cluster_on_fly_runs_a_deployment_and_leaves_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "FLY_API_TOKEN": _TOKEN or "", "KUBECONFIG": str(tmp_path / "kube")}
    name = f"live-{uuid.uuid4().hex[:6]}"

    def flyk(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flyk", *args], env=env, capture_output=True, text=True
        )

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True)

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
