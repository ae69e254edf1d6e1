"""The generated PKI proven by real TLS handshakes (stdlib ssl on 127.0.0.1), not by inspection."""

from __future__ import annotations

import base64
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from flyk.errors import ConfigError
from flyk.k8s import kubeconfig as kc
from flyk.k8s.pki import (
    RECOVERY_SECRETS,
    TLS_FILES,
    CertificateAuthority,
    ClusterPKI,
    KeyPair,
    issue_admin,
    recover_from_secrets,
)


@pytest.fixture(scope="module")
def pki() -> ClusterPKI:
    return ClusterPKI.generate("demo")


def _write_pair(tmp: Path, stem: str, pair: KeyPair) -> tuple[str, str]:
    cert, key = tmp / f"{stem}.crt", tmp / f"{stem}.key"
    cert.write_bytes(pair.cert_pem)
    key.write_bytes(pair.key_pem)
    key.chmod(0o600)
    return str(cert), str(key)


@contextmanager
def tls_server(
    tmp: Path, serving: KeyPair, client_ca_pem: bytes | None = None
) -> Iterator[tuple[int, list[BaseException | str]]]:
    """A one-connection TLS server; reports the peer's CN or the handshake error."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*_write_pair(tmp, "serving", serving))
    if client_ca_pem is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=client_ca_pem.decode())
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    outcome: list[BaseException | str] = []

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                peer = tls.getpeercert()
                names = [pair for rdn in (peer or {}).get("subject", ()) for pair in rdn]
                common = [pair[1] for pair in names if pair[0] == "commonName"]
                outcome.append(str(common[0]) if common else "")
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            outcome.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port, outcome
    finally:
        thread.join(timeout=10)
        listener.close()


def _client_context(ca_pem: bytes, client: KeyPair | None, tmp: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=ca_pem.decode())
    if client is not None:
        context.load_cert_chain(*_write_pair(tmp, "client", client))
    return context


def _handshake(port: int, context: ssl.SSLContext, hostname: str) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=hostname) as tls,
    ):
        return tls.recv(2)


def test_serving_cert_is_trusted_through_the_kubeconfig_ca_data(
    pki: ClusterPKI, tmp_path: Path
) -> None:
    admin = pki.admin_credentials()
    entry = kc.KubeconfigEntry("demo", "https://localhost:6443", pki.server_ca.cert_pem,
                               admin.cert_pem, admin.key_pem)  # fmt: skip
    doc = yaml.safe_load(entry.render())
    ca_from_kubeconfig = base64.b64decode(
        doc["clusters"][0]["cluster"]["certificate-authority-data"]
    )
    serving = pki.server_ca.sign_serving(["localhost", "127.0.0.1"])
    with tls_server(tmp_path, serving) as (port, _outcome):
        assert (
            _handshake(port, _client_context(ca_from_kubeconfig, None, tmp_path), "localhost")
            == b"ok"
        )


def test_serving_cert_of_another_ca_is_refused(pki: ClusterPKI, tmp_path: Path) -> None:
    stranger = CertificateAuthority.generate("stranger").sign_serving(["localhost"])
    with tls_server(tmp_path, stranger) as (port, _outcome):
        with pytest.raises(ssl.SSLCertVerificationError):
            _handshake(port, _client_context(pki.server_ca.cert_pem, None, tmp_path), "localhost")


def test_admin_cert_is_accepted_by_a_server_requiring_the_client_ca(
    pki: ClusterPKI, tmp_path: Path
) -> None:
    serving = pki.server_ca.sign_serving(["127.0.0.1"])
    admin = pki.admin_credentials()
    with tls_server(tmp_path, serving, client_ca_pem=pki.client_ca.cert_pem) as (port, outcome):
        context = _client_context(pki.server_ca.cert_pem, admin, tmp_path)
        assert _handshake(port, context, "127.0.0.1") == b"ok"
    assert outcome == ["flyk-admin"]


def test_client_cert_of_another_ca_is_refused(pki: ClusterPKI, tmp_path: Path) -> None:
    serving = pki.server_ca.sign_serving(["127.0.0.1"])
    forged = CertificateAuthority.generate("other").sign_client("flyk-admin", ["system:masters"])
    with tls_server(tmp_path, serving, client_ca_pem=pki.client_ca.cert_pem) as (port, outcome):
        context = _client_context(pki.server_ca.cert_pem, forged, tmp_path)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _handshake(port, context, "127.0.0.1")
    assert len(outcome) == 1 and isinstance(outcome[0], ssl.SSLError)


def test_admin_identity_is_cluster_admin(pki: ClusterPKI) -> None:
    cert = pki.admin_credentials().certificate
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "flyk-admin"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "system:masters"
    )
    assert cert.issuer == x509.load_pem_x509_certificate(pki.client_ca.cert_pem).subject


def test_tls_files_are_the_set_k3s_expects(pki: ClusterPKI) -> None:
    files = pki.tls_files()
    assert set(files) == set(TLS_FILES)
    for name, pem in files.items():
        marker = b"PRIVATE KEY" if name.endswith(".key") else b"CERTIFICATE"
        assert marker in pem, name
    cas = [x509.load_pem_x509_certificate(pem) for n, pem in files.items() if n.endswith(".crt")]
    assert all(c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca for c in cas)


def test_secrets_round_trip_recovers_a_working_client_ca(pki: ClusterPKI, tmp_path: Path) -> None:
    secrets = pki.to_secrets()
    assert set(RECOVERY_SECRETS) <= set(secrets)
    recovered = recover_from_secrets(secrets)
    assert recovered.server_ca_pem == pki.server_ca.cert_pem
    fresh_admin = issue_admin(recovered.client_ca)
    serving = pki.server_ca.sign_serving(["127.0.0.1"])
    with tls_server(tmp_path, serving, client_ca_pem=pki.client_ca.cert_pem) as (port, outcome):
        context = _client_context(recovered.server_ca_pem, fresh_admin, tmp_path)
        assert _handshake(port, context, "127.0.0.1") == b"ok"
    assert outcome == ["flyk-admin"]


def test_recovery_refuses_missing_or_mismatched_material(pki: ClusterPKI) -> None:
    secrets = pki.to_secrets()
    with pytest.raises(ConfigError, match="cannot be recovered"):
        recover_from_secrets({k: v for k, v in secrets.items() if k != RECOVERY_SECRETS[2]})
    swapped = dict(secrets)
    swapped[TLS_FILES["client-ca.key"]] = secrets[TLS_FILES["server-ca.key"]]
    with pytest.raises(ConfigError, match="do not belong together"):
        recover_from_secrets(swapped)


def test_nothing_secret_in_reprs(pki: ClusterPKI) -> None:
    admin = pki.admin_credentials()
    for text in (repr(pki), repr(admin), repr(recover_from_secrets(pki.to_secrets()))):
        assert "PRIVATE" not in text and "BEGIN" not in text
    entry = kc.KubeconfigEntry("d", "https://x:6443", b"ca", admin.cert_pem, admin.key_pem)
    assert "PRIVATE" not in repr(entry) and "client_key_pem" not in repr(entry)
