"""What the control plane signs for itself at every boot, from flyk's CAs.

The CAs (server, client, request-header) and the service-account key arrive as files from the
cluster app's secrets (controlplane.py `pki_files`). Every leaf the components need is signed
here, at each boot, into `Layout.tls`: the API server's serving certificate (SANs: every name
the kubeconfig uses, 127.0.0.1 and the `kubernetes` Service's names), its kubelet-client and
front-proxy certificates, a loopback serving certificate for the controller-manager's and the
scheduler's health endpoints, and one kubeconfig per client (controller-manager, scheduler,
the kubelet as the node `system:node:<node>`, CoreDNS, supervisor). Signing anew costs
milliseconds and means a new `--tls-san` or an expiring leaf never needs a migration; the CAs, which
kubeconfigs trust, never change. Files holding keys are 0600 in a 0700 directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from flyk.errors import ConfigError
from flyk.k8s import components
from flyk.k8s.components import Layout
from flyk.k8s.pki import CertificateAuthority, KeyPair

# The CA files the machine must have before anything starts (all of them, or nothing starts:
# a half-delivered set is a broken create, not something to paper over).
CA_FILES = (
    "server-ca.crt",
    "server-ca.key",
    "client-ca.crt",
    "client-ca.key",
    "request-header-ca.crt",
    "request-header-ca.key",
    "service.key",
)

# Who each component is to the API server (CN, groups). The controller-manager and the
# scheduler use the users the default RBAC policy binds; the API server's kubelet client is
# bound to system:kubelet-api-admin at start (rbac.py).
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
SCHEDULER_USER = "system:kube-scheduler"
KUBELET_CLIENT_USER = "kube-apiserver"
FRONT_PROXY_USER = "system:auth-proxy"
SUPERVISOR_USER = "flyk-supervisor"
# CoreDNS reads Services, EndpointSlices and namespaces as this user, bound at start to the one
# ClusterRole of rbac.py that allows exactly that.
COREDNS_USER = "flyk:coredns"
MASTERS = "system:masters"
# The virtual kubelet is a node to the API server: user `system:node:<node>` in group
# `system:nodes`, under the Node authorizer and NodeRestriction, plus the one ClusterRole of
# rbac.py for what a node may not do and the kubelet needs (docs/kubernetes.md, "Permissions").
NODES_GROUP = "system:nodes"
NODE_NAME_ENV = "FLYK_KUBELET_NODE_NAME"  # the kubelet's --node-name, from the environment
DEFAULT_NODE_NAME = "flyk"
# The machine's 6PN address on Fly: the node's InternalIP, where the API server reaches the
# kubelet's port.
PRIVATE_IP_ENV = "FLY_PRIVATE_IP"


def node_name() -> str:
    """The virtual node's name, as the kubelet the supervisor starts will read it."""
    return os.environ.get(NODE_NAME_ENV) or DEFAULT_NODE_NAME


def node_user(node: str) -> str:
    return f"system:node:{node}"


@dataclass(frozen=True)
class BootFiles:
    """The kubeconfigs the supervisor hands out."""

    controller_manager: Path
    scheduler: Path
    kubelet: Path
    coredns: Path
    supervisor_cert: Path
    supervisor_key: Path
    # The kubelet's HTTPS API: its serving certificate (server CA) and the CA its clients'
    # certificates must chain to (the API server's kubelet-client certificate's).
    kubelet_serving_cert: Path
    kubelet_serving_key: Path
    client_ca: Path


def _write(path: Path, data: bytes | str, mode: int = 0o600) -> None:
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(raw)
    os.chmod(tmp, mode)
    tmp.replace(path)


def _load_ca(layout: Layout, stem: str) -> CertificateAuthority:
    return CertificateAuthority.from_pem(
        layout.ca(f"{stem}.crt").read_bytes(), layout.ca(f"{stem}.key").read_bytes(), stem
    )


def check_cas(layout: Layout) -> None:
    """Every CA file is there, or a ConfigError naming what is missing."""
    missing = [name for name in CA_FILES if not layout.ca(name).is_file()]
    if missing:
        raise ConfigError(
            f"the control plane's CA files are missing from {layout.pki}: {', '.join(missing)}",
            hint="They come from the cluster app's FLYK_PKI_* secrets; "
            "`flyk ext k8s create NAME` again resumes a broken create.",
        )


def serving_names(tls_sans: Iterable[str], api_port_host: str = "") -> list[str]:
    """The API server's SANs: the kubeconfig's names, loopback, and the names pods use."""
    names = [
        *tls_sans,
        "127.0.0.1",
        "::1",
        "localhost",
        components.first_service_ip(),
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{components.CLUSTER_DOMAIN}",
    ]
    if api_port_host:
        names.append(api_port_host)
    return list(dict.fromkeys(n for n in names if n))


def _write_pair(layout: Layout, stem: str, pair: KeyPair) -> None:
    _write(layout.leaf(f"{stem}.crt"), pair.cert_pem, 0o644)
    _write(layout.leaf(f"{stem}.key"), pair.key_pem)


def kubeconfig_yaml(server: str, ca_pem: bytes, pair: KeyPair, user: str) -> str:
    import base64

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)},
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate-data": b64(pair.cert_pem),
                        "client-key-data": b64(pair.key_pem),
                    },
                }
            ],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
            "current-context": "local",
        },
        sort_keys=False,
    )


def kubelet_serving_names(node: str, node_ip: str) -> list[str]:
    """The kubelet's serving SANs: the node's InternalIP (the address the API server dials,
    `--kubelet-preferred-address-types` InternalIP first), its name, and loopback."""
    return list(dict.fromkeys([node_ip, node, "127.0.0.1", "::1", "localhost"]))


def prepare(layout: Layout, tls_sans: Sequence[str], node_ip: str = "127.0.0.1") -> BootFiles:
    """Sign this boot's certificates and kubeconfigs into `layout.tls`."""
    check_cas(layout)
    for directory in (layout.data, layout.tls, layout.database.parent):
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
    server_ca = _load_ca(layout, "server-ca")
    client_ca = _load_ca(layout, "client-ca")
    request_header_ca = _load_ca(layout, "request-header-ca")

    _write(layout.leaf("authentication.yaml"), components.AUTHENTICATION_CONFIG, 0o644)
    _write_pair(layout, "apiserver", server_ca.sign_serving(serving_names(tls_sans)))
    _write_pair(layout, "loopback-serving", server_ca.sign_serving(["127.0.0.1", "localhost"]))
    # The kubelet's Service address webhook (flyk/kubelet/admission.py), on loopback.
    _write_pair(layout, "service-webhook", server_ca.sign_serving(["127.0.0.1"]))
    _write_pair(layout, "apiserver-kubelet-client", client_ca.sign_client(KUBELET_CLIENT_USER))
    _write_pair(layout, "front-proxy-client", request_header_ca.sign_client(FRONT_PROXY_USER))
    _write_pair(layout, "supervisor", client_ca.sign_client(SUPERVISOR_USER, [MASTERS]))
    serving = server_ca.sign_serving(kubelet_serving_names(node_name(), node_ip))
    _write_pair(layout, "kubelet-serving", serving)

    server = f"https://127.0.0.1:{layout.api_port}"

    def kubeconfig(name: str, user: str, groups: Sequence[str] = ()) -> Path:
        path = layout.kubeconfig(name)
        pair = client_ca.sign_client(user, groups)
        _write(path, kubeconfig_yaml(server, server_ca.cert_pem, pair, user))
        return path

    return BootFiles(
        controller_manager=kubeconfig("kube-controller-manager", CONTROLLER_MANAGER_USER),
        scheduler=kubeconfig("kube-scheduler", SCHEDULER_USER),
        kubelet=kubeconfig("kubelet", node_user(node_name()), [NODES_GROUP]),
        coredns=kubeconfig("coredns", COREDNS_USER),
        supervisor_cert=layout.leaf("supervisor.crt"),
        supervisor_key=layout.leaf("supervisor.key"),
        kubelet_serving_cert=layout.leaf("kubelet-serving.crt"),
        kubelet_serving_key=layout.leaf("kubelet-serving.key"),
        client_ca=layout.ca("client-ca.crt"),
    )
