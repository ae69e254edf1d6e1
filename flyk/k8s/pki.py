"""The cluster's certificate authorities and the certificates flyk signs with them.

flyk generates the CAs here, so that it can sign the admin client certificate of the
kubeconfig itself and rebuild a kubeconfig later from the CA material kept in the cluster
app's secrets, without ever reading anything back out of the machine. The control plane
signs its own leaf certificates from the same CAs at boot (bootstrap.py), in the layout K3s
uses for custom CAs (reference virtual-kubelet-k3s.md §3.2).

Keys are ECDSA P-256 (what K3s generates for its own CAs) except the service-account signing key,
which is RSA 2048 as in K3s's custom-CA script. Private keys leave this module only as PEM bytes
for secrets, the kubeconfig and 0600 files; nothing here prints or logs them.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from flyk.errors import ConfigError

CA_VALIDITY = datetime.timedelta(days=3650)
LEAF_VALIDITY = datetime.timedelta(days=365)
# Tolerate clocks a little behind ours (the machine's, the user's laptop).
CLOCK_SKEW = datetime.timedelta(minutes=5)

ADMIN_COMMON_NAME = "flyk-admin"
ADMIN_ORGANIZATION = "system:masters"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _new_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _load_key(pem: bytes, what: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{what} is not a PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ConfigError(f"{what} is neither an EC nor an RSA key")
    return key


def _spki(public_key: object) -> bytes:
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise ConfigError("the CA certificate holds neither an EC nor an RSA key")
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _load_cert(pem: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise ConfigError(f"{what} is not a PEM certificate") from exc


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes = b""

    @property
    def certificate(self) -> x509.Certificate:
        return _load_cert(self.cert_pem, "certificate")

    def __repr__(self) -> str:  # never show key bytes in tracebacks or logs
        return f"KeyPair(subject={self.certificate.subject.rfc4514_string()!r}, key=<redacted>)"


@dataclass(frozen=True)
class CertificateAuthority:
    """A self-signed CA that can sign leaf certificates."""

    pair: KeyPair

    @classmethod
    def generate(cls, common_name: str) -> CertificateAuthority:
        key = _new_ec_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(KeyPair(_cert_pem(cert), _key_pem(key)))

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes, what: str = "CA") -> CertificateAuthority:
        cert = _load_cert(cert_pem, f"{what} certificate")
        key = _load_key(key_pem, f"{what} key")
        if _spki(cert.public_key()) != _spki(key.public_key()):
            raise ConfigError(f"{what} certificate and key do not belong together")
        return cls(KeyPair(cert_pem, key_pem))

    @property
    def cert_pem(self) -> bytes:
        return self.pair.cert_pem

    @property
    def key_pem(self) -> bytes:
        return self.pair.key_pem

    def sign_client(
        self,
        common_name: str,
        organizations: Iterable[str] = (),
        validity: datetime.timedelta = LEAF_VALIDITY,
    ) -> KeyPair:
        """A client certificate (CN = user, O = groups), as the API server reads them."""
        attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        return self._sign_leaf(
            x509.Name(attributes), ExtendedKeyUsageOID.CLIENT_AUTH, sans=(), validity=validity
        )

    def sign_serving(
        self,
        hostnames: Iterable[str],
        validity: datetime.timedelta = LEAF_VALIDITY,
    ) -> KeyPair:
        """A TLS server certificate for the given DNS names and IP addresses."""
        names = list(hostnames)
        if not names:
            raise ValueError("a serving certificate needs at least one name")
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])])
        return self._sign_leaf(subject, ExtendedKeyUsageOID.SERVER_AUTH, names, validity)

    def _sign_leaf(
        self,
        subject: x509.Name,
        usage: x509.ObjectIdentifier,
        sans: Iterable[str],
        validity: datetime.timedelta,
    ) -> KeyPair:
        ca_cert = _load_cert(self.cert_pem, "CA certificate")
        ca_key = _load_key(self.key_pem, "CA key")
        key = _new_ec_key()
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(min(now + validity, ca_cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_leaf_key_usage(), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        alt_names = [_general_name(n) for n in sans]
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), False)
        cert = builder.sign(ca_key, hashes.SHA256())
        return KeyPair(_cert_pem(cert), _key_pem(key))


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


# The CA files under the machine's /etc/flyk/pki/ (K3s's names), and the app secret holding each
# (base64 PEM, as machine `files[].secret_name` wants it). kine on SQLite speaks to the API server
# over a local socket, so there are no etcd CAs.
TLS_FILES: dict[str, str] = {
    "server-ca.crt": "FLYK_PKI_SERVER_CA_CRT",
    "server-ca.key": "FLYK_PKI_SERVER_CA_KEY",
    "client-ca.crt": "FLYK_PKI_CLIENT_CA_CRT",
    "client-ca.key": "FLYK_PKI_CLIENT_CA_KEY",
    "request-header-ca.crt": "FLYK_PKI_REQUEST_HEADER_CA_CRT",
    "request-header-ca.key": "FLYK_PKI_REQUEST_HEADER_CA_KEY",
    "service.key": "FLYK_PKI_SERVICE_ACCOUNT_KEY",
}

# What `kubeconfig NAME` needs back from the secrets to sign a fresh admin certificate.
RECOVERY_SECRETS = (
    TLS_FILES["server-ca.crt"],
    TLS_FILES["client-ca.crt"],
    TLS_FILES["client-ca.key"],
)


@dataclass(frozen=True)
class ClusterPKI:
    """Every CA and key the control plane takes from us."""

    server_ca: CertificateAuthority
    client_ca: CertificateAuthority
    request_header_ca: CertificateAuthority
    service_account_key_pem: bytes

    @classmethod
    def generate(cls, cluster: str) -> ClusterPKI:
        return cls(
            server_ca=CertificateAuthority.generate(f"flyk-{cluster}-server-ca"),
            client_ca=CertificateAuthority.generate(f"flyk-{cluster}-client-ca"),
            request_header_ca=CertificateAuthority.generate(f"flyk-{cluster}-request-header-ca"),
            service_account_key_pem=_key_pem(
                rsa.generate_private_key(public_exponent=65537, key_size=2048)
            ),
        )

    def __repr__(self) -> str:
        return "ClusterPKI(<redacted>)"

    def tls_files(self) -> dict[str, bytes]:
        """File name under the machine's PKI dir → PEM bytes."""
        files: dict[str, bytes] = {"service.key": self.service_account_key_pem}
        for stem, ca in self._cas().items():
            files[f"{stem}.crt"] = ca.cert_pem
            files[f"{stem}.key"] = ca.key_pem
        return files

    def _cas(self) -> dict[str, CertificateAuthority]:
        return {
            "server-ca": self.server_ca,
            "client-ca": self.client_ca,
            "request-header-ca": self.request_header_ca,
        }

    def to_secrets(self) -> dict[str, str]:
        """App secret name → base64 of the PEM (the form `files[].secret_name` decodes)."""
        return {
            TLS_FILES[path]: base64.b64encode(pem).decode("ascii")
            for path, pem in self.tls_files().items()
        }

    def admin_credentials(self) -> KeyPair:
        return issue_admin(self.client_ca)

    @classmethod
    def from_secrets(cls, values: Mapping[str, str]) -> ClusterPKI:
        """The CAs a create stored as app secrets (base64 PEM), so that resuming a create
        reuses them: kubeconfigs already signed stay valid. A missing or broken one is a
        ConfigError."""
        missing = [name for name in TLS_FILES.values() if not values.get(name)]
        if missing:
            raise ConfigError(f"the cluster's secrets lack {', '.join(missing)}")

        def pem(path: str) -> bytes:
            try:
                return base64.b64decode(values[TLS_FILES[path]], validate=True)
            except ValueError as exc:
                raise ConfigError(f"secret {TLS_FILES[path]} is not base64") from exc

        def ca(stem: str) -> CertificateAuthority:
            return CertificateAuthority.from_pem(pem(f"{stem}.crt"), pem(f"{stem}.key"), stem)

        service_key = pem("service.key")
        _load_key(service_key, "service-account key")
        return cls(
            server_ca=ca("server-ca"),
            client_ca=ca("client-ca"),
            request_header_ca=ca("request-header-ca"),
            service_account_key_pem=service_key,
        )


def issue_admin(client_ca: CertificateAuthority) -> KeyPair:
    """The kubeconfig's user: cluster-admin through the system:masters group."""
    return client_ca.sign_client(ADMIN_COMMON_NAME, [ADMIN_ORGANIZATION])


@dataclass(frozen=True)
class RecoveredCAs:
    """What a kubeconfig rebuild needs: the server CA to trust and the client CA to sign with."""

    server_ca_pem: bytes
    client_ca: CertificateAuthority

    def __repr__(self) -> str:
        return "RecoveredCAs(<redacted>)"


def cluster_named_in(values: Mapping[str, str]) -> str | None:
    """The cluster a stored server CA was made for (its common name is
    `flyk-NAME-server-ca`), or None when there is none or it says something else."""
    try:
        pem = base64.b64decode(values.get(TLS_FILES["server-ca.crt"], ""), validate=True)
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common = str(names[0].value) if names else ""
    prefix, suffix = "flyk-", "-server-ca"
    if not (common.startswith(prefix) and common.endswith(suffix)):
        return None
    return common[len(prefix) : -len(suffix)] or None


def recover_from_secrets(values: Mapping[str, str]) -> RecoveredCAs:
    """Decode the recovery secrets (base64 PEM) back into CAs; a missing one is a ConfigError."""
    missing = [name for name in RECOVERY_SECRETS if not values.get(name)]
    if missing:
        raise ConfigError(
            f"the cluster's secrets lack {', '.join(missing)}; its CA material cannot be recovered"
        )

    def decoded(name: str) -> bytes:
        try:
            return base64.b64decode(values[name], validate=True)
        except ValueError as exc:
            raise ConfigError(f"secret {name} is not base64") from exc

    server_ca_pem = decoded(TLS_FILES["server-ca.crt"])
    _load_cert(server_ca_pem, "server CA certificate")
    client_ca = CertificateAuthority.from_pem(
        decoded(TLS_FILES["client-ca.crt"]), decoded(TLS_FILES["client-ca.key"]), "client CA"
    )
    return RecoveredCAs(server_ca_pem, client_ca)
