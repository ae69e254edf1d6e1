"""Wiring: the node controller, the pod controller and the volume provisioner over one
Kubernetes and one Machines client, as `flyk ext k8s kubelet` runs them (blocking) or as
tests run them (start/stop)."""

from __future__ import annotations

import logging
import ssl
import threading
from typing import TYPE_CHECKING

from flyk.api import FlyClient
from flyk.errors import ConfigError
from flyk.kubelet.admission import AdmissionServer
from flyk.kubelet.config import KubeletConfig
from flyk.kubelet.kube import KubeApi
from flyk.kubelet.node import KUBELET_PORT, NodeController
from flyk.kubelet.pods import PodController
from flyk.kubelet.provisioner import VolumeProvisioner
from flyk.kubelet.services import ServiceController

if TYPE_CHECKING:
    from flyk.kubelet.server import KubeletServer

log = logging.getLogger("flyk.kubelet")


class Kubelet:
    """The virtual kubelet. `start()` returns at once; `stop()` ends every thread it began."""

    def __init__(self, config: KubeletConfig, *, fly: FlyClient | None = None) -> None:
        self.config = config
        self._own_fly = fly is None
        self.fly = fly or FlyClient(base_url=config.api_url, token=config.api_token)
        self.kube = KubeApi(config.kubeconfig)
        self.pods = PodController(
            self.kube, self.fly, config, watch_kube=KubeApi(config.kubeconfig)
        )
        self.services = ServiceController(
            self.kube, self.fly, config, watch_kube=lambda: KubeApi(config.kubeconfig)
        )
        self.pods.service_links = self.services.services_in
        self.admission: AdmissionServer | None = None
        if config.webhook_port and config.webhook_cert and config.webhook_key:
            self.admission = AdmissionServer(
                self._assign_address,
                config.webhook_cert,
                config.webhook_key,
                port=config.webhook_port,
            )
        self.server = self._serve() if config.serving.enabled else None
        port = self.server.bound_port if self.server is not None else config.serving.port
        self.node = NodeController(
            self.kube, config, ping=self.pods.health, port=port or KUBELET_PORT
        )
        self.pods.health.on_change = self.node.notify
        self.volumes = VolumeProvisioner(
            self.kube,
            self.fly,
            config,
            ensure_app=self.pods.ensure_namespace_app,
            watch_kube=lambda: KubeApi(config.kubeconfig),
        )
        self._stop = threading.Event()
        self._node_thread = threading.Thread(
            target=self.node.run, args=(self._stop,), name="flyk-node", daemon=True
        )

    def _serve(self) -> KubeletServer:
        """The HTTPS API for `kubectl logs/exec` (server.py), listening before the node says
        where it is."""
        from flyk.kubelet.access import NodeAuthorizer
        from flyk.kubelet.endpoints import Endpoints
        from flyk.kubelet.server import KubeletServer, tls_context

        serving = self.config.serving
        assert serving.cert_file and serving.key_file and serving.client_ca_file
        holder: list[KubeletServer] = []
        endpoints = Endpoints(self.pods, self.fly, lambda: holder[0])
        authorizer = NodeAuthorizer(self.kube, self.config.node_name, lambda: holder[0])
        try:
            tls = tls_context(serving.cert_file, serving.key_file, serving.client_ca_file)
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(
                f"the kubelet's API cannot use its TLS files ({serving.cert_file}, "
                f"{serving.key_file}, {serving.client_ca_file}): {error}"
            ) from error
        server = KubeletServer(
            host=self.config.node_ip,
            port=serving.port,
            tls=tls,
            routes=endpoints.routes(),
            authorize=authorizer,
        )
        holder.append(server)
        try:
            server.start()
        except OSError as error:
            raise ConfigError(
                f"the kubelet's API cannot listen on {self.config.node_ip}:{serving.port}: "
                f"{error.strerror or error}"
            ) from error
        log.info("kubelet API on https://%s:%d", self.config.node_ip, server.bound_port)
        return server

    def _assign_address(self, namespace: str, service: str) -> str:
        """A new Flycast address for `service`, on its namespace's app (made if missing)."""
        app = self.pods.ensure_namespace_app(namespace)
        return self.fly.ips.create(app, "private_v6", service_name=service).ip

    def start(self) -> Kubelet:
        log.info(
            "virtual kubelet %s for cluster %s (org %s, region %s)",
            self.config.node_name,
            self.config.cluster,
            self.config.org,
            self.config.region,
        )
        self._node_thread.start()
        self.pods.start(self._stop)
        self.volumes.start(self._stop)
        self.services.start(self._stop)
        if self.admission is not None:
            self.admission.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.node.notify()
        if self.admission is not None:
            self.admission.stop()
        self.pods.join(timeout)
        self.volumes.join(timeout)
        self.services.join(timeout)
        self._node_thread.join(timeout)
        if self.server is not None:
            self.server.stop()
        self.kube.close()
        if self._own_fly:
            self.fly.close()

    def __enter__(self) -> Kubelet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run(config: KubeletConfig, *, stop: threading.Event | None = None) -> None:
    """Run the kubelet until `stop` is set (forever when None)."""
    stop = stop or threading.Event()
    kubelet = Kubelet(config).start()
    try:
        stop.wait()
    finally:
        kubelet.stop()
