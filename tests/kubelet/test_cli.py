"""`flyk ext k8s kubelet`: settings from flags and environment, and a real run in a process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flyk.cli.kubelet import build_config
from flyk.errors import UsageError
from flyk.kubelet import Taint, namespace_app_name
from flyk.local import LocalBackend, Timing

from .conftest import eventually
from .fake_kube import FakeKube, make_pod


def test_build_config_names_what_is_missing() -> None:
    with pytest.raises(UsageError, match="--org, --region"):
        build_config(
            cluster="demo",
            org=None,
            region="",
            node_name="n",
            node_ip="::1",
            kubeconfig=None,
            taints=[],
        )


def test_build_config_parses_taints_and_keeps_the_token_out_of_repr() -> None:
    config = build_config(
        cluster="demo", org="acme", region="iad", node_name="n", node_ip="::1", kubeconfig=None,
        taints=["flyk.io/pods=only:NoSchedule"], api_token="fm2_secret",
    )  # fmt: skip
    assert config.taints == (Taint("flyk.io/pods", "only", "NoSchedule"),)
    assert "fm2_secret" not in repr(config)
    with pytest.raises(UsageError, match="taint"):
        build_config(
            cluster="d",
            org="o",
            region="r",
            node_name="n",
            node_ip="x",
            kubeconfig=None,
            taints=["bad"],
        )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    backend = LocalBackend(tmp_path / "served.db", Timing.instant(), orgs=["personal"])
    server = backend.serve()
    yield server.url
    server.close()


def test_the_command_runs_a_pod_and_stops_on_sigterm(
    kube: FakeKube, kubeconfig: str, served: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "FLYK_CLUSTER": "demo",
        "FLYK_ORG": "personal",
        "FLYK_REGION": "iad",
        "FLY_PRIVATE_IP": "fdaa::7",
        "FLY_FLAPS_BASE_URL": served,
        "FLY_API_TOKEN": "fo1_not_a_real_token",
        "KUBECONFIG": kubeconfig,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "flyk", "ext", "k8s", "kubelet", "--node-name", "flyk-node"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        node = eventually(lambda: kube.get("nodes", "flyk-node"), what="node registered")
        assert {"type": "InternalIP", "address": "fdaa::7"} in node["status"]["addresses"]
        kube.create("pods", make_pod("web", node="flyk-node"), "default")
        eventually(
            lambda: (
                (kube.get("pods", "web", "default") or {}).get("status", {}).get("phase")
                == "Running"
            )
        )
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "fo1_not_a_real_token" not in stderr
    assert namespace_app_name("demo", "default", "personal") in stderr  # "created app …"
