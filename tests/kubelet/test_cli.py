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
from .harness import make_pod
from .realkube import Kube


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
    kube: Kube, kubeconfig: str, served: str, tmp_path: Path
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
        [sys.executable, "-m", "flyk", "ext", "k8s", "kubelet", "--node-name", kube.node],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        node = eventually(lambda: kube.get("nodes", kube.node), what="node registered")
        assert {"type": "InternalIP", "address": "fdaa::7"} in node["status"]["addresses"]
        kube.create("pods", make_pod("web", namespace=kube.ns("default"), node=kube.node))
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
    assert namespace_app_name("demo", kube.ns("default"), "personal") in stderr  # "created app …"


def _kubelet(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "FLYK_LOCAL_DB": str(tmp_path / "local.db"),
        "NO_COLOR": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "flyk", "ext", "k8s", "kubelet", "--cluster", "c", "--org",
         "personal", "--region", "iad", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("content", [None, "", "clusters: [\n", "apiVersion: v1\nkind: Config\n"])
def test_an_unusable_kubeconfig_is_bad_input_in_one_line(
    tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "kubeconfig"
    if content is not None:
        path.write_text(content)
    result = _kubelet(tmp_path, "--kubeconfig", str(path))
    assert result.returncode == 2, result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert f"cannot use the kubeconfig ({path})" in error and "unexpected" not in error
    assert "Traceback" not in result.stderr


def test_an_unknown_log_level_is_bad_input(tmp_path: Path) -> None:
    result = _kubelet(tmp_path, "--log-level", "LOUD")
    assert result.returncode == 2
    assert "--log-level 'LOUD' is not one of DEBUG, INFO, WARNING, ERROR" in result.stderr


def test_an_install_without_the_kubelet_extra_names_it_in_one_line(tmp_path: Path) -> None:
    """A plain `pip install flyk` has no lightkube: stood in for by a module that is missing
    as an uninstalled one is, first on the path."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "lightkube.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'lightkube'\", name='lightkube')\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "flyk", "ext", "k8s", "kubelet", "--cluster", "c"],
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PYTHONPATH": str(shadow)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        "Error: the kubelet needs flyk's kubelet extra (lightkube), which is not installed\n"
        "       Install it: pip install 'flyk[kubelet]'\n"
    )


def test_the_kubelet_api_files_go_together_and_must_be_usable(tmp_path: Path) -> None:
    from flyk.k8s import bootstrap
    from flyk.k8s.pki import ClusterPKI

    pki = ClusterPKI.generate("cli")
    kubeconfig = tmp_path / "kubeconfig"
    pair = pki.client_ca.sign_client("system:node:flyk", [bootstrap.NODES_GROUP])
    kubeconfig.write_text(
        bootstrap.kubeconfig_yaml("https://127.0.0.1:1", pki.server_ca.cert_pem, pair, "node")
    )
    alone = _kubelet(tmp_path, "--kubeconfig", str(kubeconfig), "--tls-cert-file", "x.crt")
    assert alone.returncode == 2
    assert "--tls-cert-file, --tls-private-key-file and --client-ca-file together" in alone.stderr
    missing = _kubelet(
        tmp_path, "--kubeconfig", str(kubeconfig), "--tls-cert-file", str(tmp_path / "no.crt"),
        "--tls-private-key-file", str(tmp_path / "no.key"),
        "--client-ca-file", str(tmp_path / "no-ca.crt"),
    )  # fmt: skip
    assert missing.returncode == 2, missing.stderr
    (error,) = [line for line in missing.stderr.splitlines() if line.startswith("Error:")]
    assert "the kubelet's API cannot use its TLS files" in error
    assert "Traceback" not in missing.stderr
