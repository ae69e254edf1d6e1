"""`flyk ext k8s kubelet`: the virtual kubelet, run inside the control-plane machine.

Every setting is a flag or an environment variable. The control-plane entrypoint sets
FLYK_CLUSTER, FLYK_ORG, FLYK_REGION (machine env), FLY_API_TOKEN, FLY_FLAPS_BASE_URL and
KUBECONFIG; Fly sets FLY_PRIVATE_IP. lightkube and the controllers are imported only when
the command runs, so `flyk --help` stays fast.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flyk.cli.context import app_context
from flyk.errors import UsageError
from flyk.kubelet.config import Intervals, KubeletConfig, Serving, Taint, missing_kube_client

if TYPE_CHECKING:
    from flyk.api import FlyClient

_ENV = "FLYK_KUBELET_"


def _option(*names: str, metavar: str, envvar: list[str], help: str, **extra: Any) -> Any:
    """An option with its environment variables shown, and a metavar saying what it takes
    (else the help shows Python types: ``--cluster <str>``)."""
    return typer.Option(
        *names, metavar=metavar, envvar=envvar, show_envvar=True, help=help, **extra
    )


def build_config(
    *,
    cluster: str | None,
    org: str | None,
    region: str | None,
    node_name: str,
    node_ip: str,
    kubeconfig: str | None,
    taints: list[str],
    api_url: str | None = None,
    api_token: str | None = None,
    workers: int = 4,
    max_pods: int = 5000,
    intervals: Intervals | None = None,
    cluster_dns: list[str] | None = None,
    cluster_domain: str = "cluster.local",
    serving: Serving | None = None,
    webhook_port: int = 0,
    webhook_cert: str | None = None,
    webhook_key: str | None = None,
) -> KubeletConfig:
    """The kubelet's settings from the command's options; UsageError names what is missing."""
    missing = [
        flag
        for flag, value in (("--cluster", cluster), ("--org", org), ("--region", region))
        if not value
    ]
    if missing:
        raise UsageError(
            f"the kubelet needs {', '.join(missing)}",
            hint="Inside the control-plane machine FLYK_CLUSTER, FLYK_ORG and FLYK_REGION are set.",
        )
    try:
        parsed = tuple(Taint.parse(t) for t in taints)
    except ValueError as error:
        raise UsageError(str(error)) from error
    if workers < 1 or max_pods < 1:
        raise UsageError("--workers and --max-pods must be at least 1")
    for address in cluster_dns or []:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise UsageError(f"--cluster-dns {address!r} is not an IP address") from None
    serving = serving or Serving()
    if not 0 <= serving.port <= 65535:
        raise UsageError(f"--port {serving.port} is not a port (0-65535)")
    given = [serving.cert_file, serving.key_file, serving.client_ca_file]
    if any(given) and not all(given):
        raise UsageError(
            "the kubelet's API needs --tls-cert-file, --tls-private-key-file and "
            "--client-ca-file together",
            hint="The control-plane machine's supervisor passes all three.",
        )
    if not 0 <= webhook_port < 65536 or bool(webhook_port) != bool(webhook_cert and webhook_key):
        raise UsageError(
            "--webhook-port, --webhook-cert and --webhook-key go together (all three or none)"
        )
    assert cluster and org and region
    return KubeletConfig(
        cluster=cluster,
        org=org,
        region=region,
        node_name=node_name,
        node_ip=node_ip,
        kubeconfig=kubeconfig,
        api_url=api_url,
        api_token=api_token,
        workers_per_namespace=workers,
        max_pods=max_pods,
        taints=parsed,
        cluster_dns=tuple(cluster_dns or ()),
        cluster_domain=cluster_domain,
        intervals=intervals or Intervals(),
        serving=serving,
        webhook_port=webhook_port,
        webhook_cert=webhook_cert,
        webhook_key=webhook_key,
    )


def kubelet_command(
    ctx: typer.Context,
    cluster: Annotated[
        str | None,
        _option(
            "--cluster",
            metavar="NAME",
            envvar=[f"{_ENV}CLUSTER", "FLYK_CLUSTER"],
            help="Cluster name.",
        ),
    ] = None,
    org: Annotated[
        str | None,
        _option(
            "--org",
            metavar="ORG",
            envvar=[f"{_ENV}ORG", "FLYK_ORG"],
            help="Organization of the apps.",
        ),
    ] = None,
    region: Annotated[
        str | None,
        _option(
            "--region",
            metavar="REGION",
            envvar=[f"{_ENV}REGION", "FLYK_REGION", "FLY_REGION"],
            help="Default region of pods (a pod's fly.io/region annotation overrides it).",
        ),
    ] = None,
    node_name: Annotated[
        str,
        _option(
            "--node-name",
            metavar="NAME",
            envvar=[f"{_ENV}NODE_NAME"],
            help="Name of the virtual node.",
        ),
    ] = "flyk",
    node_ip: Annotated[
        str,
        _option(
            "--node-ip",
            metavar="IP",
            envvar=[f"{_ENV}NODE_IP", "FLY_PRIVATE_IP"],
            help="The node's InternalIP (the machine's 6PN address).",
        ),
    ] = "127.0.0.1",
    kubeconfig: Annotated[
        str | None,
        _option(
            "--kubeconfig",
            metavar="PATH",
            envvar=[f"{_ENV}KUBECONFIG", "KUBECONFIG"],
            help="Kubeconfig of the API server (default: in-cluster, then ~/.kube/config).",
        ),
    ] = None,
    api_url: Annotated[
        str | None,
        _option(
            "--api-url",
            metavar="URL",
            envvar=[f"{_ENV}API_URL", "FLY_FLAPS_BASE_URL"],
            help="Machines API URL (default: flyk's usual target).",
        ),
    ] = None,
    api_token: Annotated[
        str | None,
        _option(
            "--api-token",
            metavar="TOKEN",
            envvar=[f"{_ENV}API_TOKEN", "FLY_API_TOKEN"],
            help="Machines API token (never printed).",
            show_default=False,
        ),
    ] = None,
    taint: Annotated[
        list[str] | None,
        _option(
            "--taint",
            metavar="TAINT",
            envvar=[f"{_ENV}TAINTS"],
            help="key=value:Effect taint on the node (repeatable; none by default).",
        ),
    ] = None,
    workers: Annotated[
        int,
        _option("--workers", metavar="N", envvar=[f"{_ENV}WORKERS"], help="Workers per namespace."),
    ] = 4,
    max_pods: Annotated[
        int,
        _option(
            "--max-pods", metavar="N", envvar=[f"{_ENV}MAX_PODS"], help="The node's pod capacity."
        ),
    ] = 5000,
    cluster_dns: Annotated[
        list[str] | None,
        _option(
            "--cluster-dns",
            metavar="IP",
            envvar=[f"{_ENV}CLUSTER_DNS"],
            help="Nameserver of ClusterFirst pods (repeatable; the control plane passes its "
            "CoreDNS); without one, pods keep the machines' own resolver.",
        ),
    ] = None,
    cluster_domain: Annotated[
        str,
        _option(
            "--cluster-domain",
            metavar="DOMAIN",
            envvar=[f"{_ENV}CLUSTER_DOMAIN"],
            help="The cluster's DNS domain (pods' search path).",
        ),
    ] = "cluster.local",
    port: Annotated[
        int,
        _option(
            "--port",
            metavar="PORT",
            envvar=[f"{_ENV}PORT"],
            help="Port of the kubelet's HTTPS API (kubectl logs/exec); 0 picks a free one.",
        ),
    ] = 10250,
    tls_cert_file: Annotated[
        str | None,
        _option(
            "--tls-cert-file",
            metavar="PATH",
            envvar=[f"{_ENV}TLS_CERT_FILE"],
            help="Serving certificate of the kubelet's API (signed by the server CA). Without "
            "it, and the next two, the API is not served.",
        ),
    ] = None,
    tls_private_key_file: Annotated[
        str | None,
        _option(
            "--tls-private-key-file",
            metavar="PATH",
            envvar=[f"{_ENV}TLS_PRIVATE_KEY_FILE"],
            help="Its private key.",
        ),
    ] = None,
    client_ca_file: Annotated[
        str | None,
        _option(
            "--client-ca-file",
            metavar="PATH",
            envvar=[f"{_ENV}CLIENT_CA_FILE"],
            help="CA that client certificates (the API server's) must chain to.",
        ),
    ] = None,
    webhook_port: Annotated[
        int,
        _option(
            "--webhook-port",
            metavar="PORT",
            envvar=[f"{_ENV}WEBHOOK_PORT"],
            help="Loopback port of the Service address webhook (0: none).",
        ),
    ] = 0,
    webhook_cert: Annotated[
        str | None,
        _option(
            "--webhook-cert",
            metavar="PATH",
            envvar=[f"{_ENV}WEBHOOK_CERT"],
            help="The webhook's serving certificate (PEM).",
        ),
    ] = None,
    webhook_key: Annotated[
        str | None,
        _option(
            "--webhook-key",
            metavar="PATH",
            envvar=[f"{_ENV}WEBHOOK_KEY"],
            help="The webhook's private key (PEM).",
        ),
    ] = None,
    log_level: Annotated[
        str,
        _option(
            "--log-level",
            metavar="LEVEL",
            envvar=[f"{_ENV}LOG_LEVEL"],
            help="DEBUG, INFO, WARNING or ERROR.",
        ),
    ] = "INFO",
) -> None:
    """Register a virtual node and run every pod bound to it as a Fly Machine."""
    _require_kubelet_extra()
    config = build_config(
        cluster=cluster,
        org=org,
        region=region,
        node_name=node_name,
        node_ip=node_ip,
        kubeconfig=kubeconfig,
        taints=taint or [],
        api_url=api_url,
        api_token=api_token,
        workers=workers,
        max_pods=max_pods,
        cluster_dns=cluster_dns,
        cluster_domain=cluster_domain,
        serving=Serving(port, tls_cert_file, tls_private_key_file, client_ca_file),
        webhook_port=webhook_port,
        webhook_cert=webhook_cert,
        webhook_key=webhook_key,
    )
    _configure_logging(log_level)
    if not config.cluster_dns:
        logging.getLogger("flyk.kubelet").warning(
            "no --cluster-dns: ClusterFirst pods keep the machines' own resolver"
        )
    context = app_context(ctx)
    if api_token:
        context.output.add_secret(api_token)
    fly = _client(config) if (api_url or api_token) else context.client
    _run_until_signalled(config, fly)


def _require_kubelet_extra() -> None:
    """The Kubernetes client comes with `flyk[kubelet]` (the control-plane image has it); a
    plain install lacks it, and says so before anything else."""
    missing = missing_kube_client()
    if missing is not None:
        raise UsageError(
            f"the kubelet needs flyk's kubelet extra ({missing}), which is not installed",
            hint="Install it: pip install 'flyk[kubelet]'",
        )


def _client(config: KubeletConfig) -> FlyClient:
    from flyk.api import FlyClient

    return FlyClient(base_url=config.api_url, token=config.api_token)


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _configure_logging(level: str) -> None:
    if level.upper() not in _LOG_LEVELS:
        raise UsageError(f"--log-level {level!r} is not one of {', '.join(_LOG_LEVELS)}")
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # One line per HTTP request is noise at INFO (and URLs are all they would show).
    for noisy in ("httpx", "httpx2", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _run_until_signalled(config: KubeletConfig, fly: FlyClient) -> None:
    from flyk.kubelet.runner import Kubelet

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    kubelet = Kubelet(config, fly=fly).start()
    try:
        stop.wait()
    finally:
        kubelet.stop()
