"""Helpers of the cluster workflow tests: specs, options, what an org holds, kubectl's view."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from flyk.api import FlyClient
from flyk.k8s import cluster
from flyk.k8s.plan import ClusterSpec

KUBECTL = "/usr/bin/kubectl"


def spec(name: str = "demo", **overrides: Any) -> ClusterSpec:
    values: dict[str, Any] = {"name": name, "org": "personal", "region": "iad"}
    values.update(overrides)
    return ClusterSpec(**values)


def options(tmp_path: Path, **overrides: Any) -> cluster.CreateOptions:
    kube = cluster.KubeconfigOptions(path=str(tmp_path / "kubeconfig"))
    values: dict[str, Any] = {"timeout": 60.0, "kubeconfig": kube, "kubelet_token": "tok"}
    values.update(overrides)
    return cluster.CreateOptions(**values)


def kube_options(tmp_path: Path) -> cluster.KubeconfigOptions:
    return cluster.KubeconfigOptions(path=str(tmp_path / "kubeconfig"))


def footprint(client: FlyClient, org: str = "personal") -> dict[str, Any]:
    """Everything the org holds, for before/after comparisons."""
    apps = sorted(a.name for a in client.apps.list(org))
    return {
        app: {
            "machines": sorted(m.id for m in client.machines.list(app)),
            "volumes": sorted(
                v.id for v in client.volumes.list(app) if v.state not in ("destroyed", "destroying")
            ),
            "ips": sorted(ip.ip for ip in client.ips.list(app)),
            "secrets": sorted(s.name for s in client.secrets.list(app)),
        }
        for app in apps
    }


def kubectl_view(path: Path) -> dict[str, Any]:
    result = subprocess.run(
        [KUBECTL, "config", "view", "--raw", "-o", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": str(path)},
        check=True,
    )
    data: dict[str, Any] = json.loads(result.stdout)
    return data
