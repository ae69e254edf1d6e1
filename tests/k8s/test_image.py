"""images/control-plane/Dockerfile against what flyk runs and builds (no Docker engine here:
the binary and the supervisor are what the other tests run; this keeps the image in step)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from flyk.k8s import binary, components, local_launch
from flyk.k8s import controlplane as cp

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "images" / "control-plane" / "Dockerfile").read_text()


def test_the_entrypoint_is_the_supervisor_with_init_cmd_as_its_flags() -> None:
    (entrypoint,) = re.findall(r"^ENTRYPOINT (.*)$", DOCKERFILE, re.M)
    assert entrypoint == '["/usr/bin/tini", "--", "flyk", "ext", "k8s", "control-plane"]'


def test_the_binary_is_built_as_flyk_builds_it() -> None:
    assert "CGO_ENABLED=0 go build -trimpath -tags providerless" in DOCKERFILE
    assert "FROM rancher/k3s" not in DOCKERFILE and "k3s" not in DOCKERFILE.lower()
    pinned = binary.pinned_version(ROOT / "controlplane", "k8s.io/kubernetes")
    assert f"ARG KUBERNETES_VERSION={pinned}" in DOCKERFILE
    assert pinned == cp.KUBERNETES_VERSION  # the published image's tag
    for variable in ("gitVersion", "gitMajor", "gitMinor"):
        assert f"{variable}=" in DOCKERFILE and f"{variable}" in binary.ldflags("v1.2.3", "v0.1.0")


def test_the_image_names_the_binary_and_the_volume_flyk_mounts() -> None:
    assert "ENV FLYK_CONTROLPLANE_BIN=/usr/local/bin/flyk-controlplane" in DOCKERFILE
    assert f"VOLUME {components.DATA_DIR}" in DOCKERFILE
    assert f"EXPOSE {components.API_PORT}" in DOCKERFILE
    assert f"EXPOSE {components.DNS_PORT}/udp {components.DNS_PORT}/tcp" in DOCKERFILE


def test_the_local_backend_runs_the_image_with_its_dns_port_published(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As the image exposes it; CoreDNS on loopback, forwarding to the host's resolvers."""
    monkeypatch.setenv(binary.BINARY_ENV_VAR, sys.executable)  # any executable will do
    launch = local_launch.launcher({"image": cp.image_reference(), "init": {"cmd": ["--x"]}})
    assert launch is not None
    argv, _env, exposed = launch
    assert exposed == (components.DNS_PORT,)
    assert "--dns-address=127.0.0.1" in argv
    assert "--dns-upstream=/etc/resolv.conf" in argv and argv[-1] == "--x"
    assert local_launch.launcher({"image": "nginx"}) is None
    config = cp.machine_config(
        image="img",
        guest=cp.guest_for(),
        volume_id="vol_1",
        tls_sans=("a.fly.dev",),
        metadata={},
        env={},
    )
    assert config.mounts and config.mounts[0].path == components.DATA_DIR
    assert all(f.guest_path.startswith(components.PKI_DIR + "/") for f in config.files or [])


def test_init_cmd_holds_only_flags_the_supervisor_takes() -> None:
    import subprocess
    import sys

    shown = subprocess.run(
        [sys.executable, "-m", "flyk", "ext", "k8s", "control-plane", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    config = cp.machine_config(
        image="img",
        guest=cp.guest_for(),
        volume_id="vol_1",
        tls_sans=("a.fly.dev", "127.0.0.1"),
        metadata={},
        env={},
    )
    assert config.init is not None and config.init.cmd
    for arg in config.init.cmd:
        assert arg.partition("=")[0] in shown
