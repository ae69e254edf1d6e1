"""The control-plane image's entrypoint, run with stand-ins for `k3s` and `flyk` on PATH."""

from __future__ import annotations

import base64
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from flyk.k8s.pki import TLS_FILES, ClusterPKI

ENTRYPOINT = Path(__file__).resolve().parents[2] / "images" / "control-plane" / "entrypoint.sh"

# `k3s server …` records its arguments and environment, writes the admin kubeconfig and
# stays up; `k3s kubectl … /readyz` answers once that file exists.
FAKE_K3S = """#!/bin/sh
if [ "$1" = "kubectl" ]; then
  [ -f "$K3S_KUBECONFIG_PATH" ]
  exit $?
fi
echo "$@" > "$RECORD/k3s.args"
env > "$RECORD/k3s.env"
ls "$K3S_DATA_DIR/server/tls" > "$RECORD/tls.at-start"
mkdir -p "$(dirname "$K3S_KUBECONFIG_PATH")"
echo "apiVersion: v1" > "$K3S_KUBECONFIG_PATH"
exec sleep 30
"""
# The kubelet records its environment and exits, which must take the machine down.
FAKE_FLYK = """#!/bin/sh
echo "$@" > "$RECORD/flyk.args"
env > "$RECORD/flyk.env"
exit 0
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def machine(tmp_path: Path) -> dict[str, Path]:
    """A fake machine: bin/ with the stand-ins, the PKI files as `files[]` writes them."""
    paths = {name: tmp_path / name for name in ("bin", "pki", "data", "record", "etc")}
    for path in paths.values():
        path.mkdir()
    _executable(paths["bin"] / "k3s", FAKE_K3S)
    _executable(paths["bin"] / "flyk", FAKE_FLYK)
    pki = ClusterPKI.generate("entry")
    for relative, pem in pki.tls_files().items():
        target = paths["pki"] / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(pem)
        target.chmod(0o600)
    return paths


def _env(machine: dict[str, Path]) -> dict[str, str]:
    pki = ClusterPKI.generate("env")
    return {
        "PATH": f"{machine['bin']}:/usr/bin:/bin",
        "RECORD": str(machine["record"]),
        "K3S_DATA_DIR": str(machine["data"]),
        "FLYK_PKI_DIR": str(machine["pki"]),
        "K3S_KUBECONFIG_PATH": str(machine["etc"] / "k3s.yaml"),
        "FLYK_KUBELET_TOKEN": "kubelet-token",
        "FLYK_API_URL": "http://_api.internal:4280",
        "FLYK_ENTRYPOINT_POLL_SECONDS": "0.05",
        # App secrets arrive as environment variables too; the CA keys must not reach k3s.
        **{name: base64.b64encode(b"secret").decode() for name in pki.to_secrets()},
    }


def _run(machine: dict[str, Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ENTRYPOINT), "--disable-agent", "--tls-san=x.fly.dev"],
        env=_env(machine),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_places_cas_before_k3s_starts_then_runs_the_kubelet(machine: dict[str, Path]) -> None:
    result = _run(machine)
    record = machine["record"]
    # The kubelet exited, so the entrypoint stops everything and exits non-zero (Fly restarts).
    assert result.returncode == 1, result.stderr
    tls = machine["data"] / "server" / "tls"
    for relative in TLS_FILES:
        placed = tls / relative
        assert placed.read_bytes() == (machine["pki"] / relative).read_bytes()
        assert stat.S_IMODE(placed.stat().st_mode) == 0o600
    assert "server-ca.crt" in (record / "tls.at-start").read_text()
    assert (record / "k3s.args").read_text().split() == [
        "server",
        "--disable-agent",
        "--tls-san=x.fly.dev",
    ]
    k3s_env = (record / "k3s.env").read_text()
    assert "FLYK_PKI_" not in k3s_env
    assert "kubelet-token" not in k3s_env  # the kubelet's token is the kubelet's alone
    assert (record / "flyk.args").read_text().split() == ["ext", "k8s", "kubelet"]
    kubelet_env = dict(
        line.split("=", 1) for line in (record / "flyk.env").read_text().splitlines() if "=" in line
    )
    assert kubelet_env["FLY_API_TOKEN"] == "kubelet-token"
    assert kubelet_env["FLY_FLAPS_BASE_URL"] == "http://_api.internal:4280"
    assert kubelet_env["KUBECONFIG"] == str(machine["etc"] / "k3s.yaml")
    assert not any(name.startswith("FLYK_PKI_") for name in kubelet_env)


def test_a_restart_keeps_the_cas_k3s_already_has(machine: dict[str, Path]) -> None:
    _run(machine)
    server_ca = machine["data"] / "server" / "tls" / "server-ca.crt"
    original = server_ca.read_bytes()
    (machine["pki"] / "server-ca.crt").write_bytes(b"a different CA")
    _run(machine)
    assert server_ca.read_bytes() == original


def test_refuses_to_start_without_the_ca_files(machine: dict[str, Path]) -> None:
    for path in sorted(machine["pki"].rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    result = _run(machine)
    assert result.returncode == 1
    assert "no CA files" in result.stderr
    assert not (machine["record"] / "k3s.args").exists()


def test_a_missing_ca_file_places_none_so_the_next_boot_tries_again(
    machine: dict[str, Path],
) -> None:
    kept = (machine["pki"] / "service.key").read_bytes()
    (machine["pki"] / "service.key").unlink()
    result = _run(machine)
    assert result.returncode == 1
    assert "service.key is missing" in result.stderr
    assert not (machine["record"] / "k3s.args").exists()
    # Had server-ca.crt been placed, the next boot would take the CAs as there and K3s would
    # make its own service.key.
    assert not (machine["data"] / "server" / "tls" / "server-ca.crt").exists()
    (machine["pki"] / "service.key").write_bytes(kept)
    _run(machine)
    assert (machine["data"] / "server" / "tls" / "service.key").read_bytes() == kept


def test_sigterm_stops_both_and_exits_0(machine: dict[str, Path]) -> None:
    # A kubelet that stays up until it is told to stop, as the real one does.
    _executable(machine["bin"] / "flyk", 'echo up > "$RECORD/flyk.up"\nexec sleep 30\n')
    process = subprocess.Popen(
        ["sh", str(ENTRYPOINT)],
        env=_env(machine),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(400):
            if (machine["record"] / "flyk.up").exists() or process.poll() is not None:
                break
            time.sleep(0.05)
        assert (machine["record"] / "flyk.up").exists()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "so that Fly restarts it" not in stderr


@pytest.mark.skipif(os.name != "posix", reason="POSIX shell script")
def test_entrypoint_is_valid_posix_sh() -> None:
    subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=True)
