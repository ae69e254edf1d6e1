"""The real control plane for the kubelet's tests, envtest-style: the flyk-controlplane binary
(upstream kube-apiserver, controller-manager and scheduler on kine, and CoreDNS forwarding to a
DNS server of the test's own, tests/dns_upstream.py) started once per test session by flyk's
own supervisor, with production's flags (Node,RBAC authorization,
NodeRestriction); each test sees it through a `Kube` of its own (namespaces and node name
unique to the test, everything it made removed after it); and `Traffic`, which sits in the
kubelet's own HTTP client: it records what the kubelet asked and, where a test says so, answers
in the real server's place (a 5xx, a page that is not JSON, a slow or a half-open answer) — the
faults of the network and of proxies, which no real API server can be asked to produce."""

from __future__ import annotations

import contextlib
import json
import re
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import httpx2

from flyk.k8s import bootstrap, supervisor
from flyk.k8s.components import ClusterDNS, Layout
from flyk.k8s.pki import ClusterPKI
from flyk.kubelet.kube import KubeApi
from tests.dns_upstream import UpstreamDNS

JSON = dict[str, Any]

# plural -> (API prefix, namespaced)
RESOURCES: dict[str, tuple[str, bool]] = {
    "pods": ("/api/v1", True),
    "secrets": ("/api/v1", True),
    "configmaps": ("/api/v1", True),
    "events": ("/api/v1", True),
    "serviceaccounts": ("/api/v1", True),
    "namespaces": ("/api/v1", False),
    "nodes": ("/api/v1", False),
    "leases": ("/apis/coordination.k8s.io/v1", True),
    "jobs": ("/apis/batch/v1", True),
    "deployments": ("/apis/apps/v1", True),
    "replicasets": ("/apis/apps/v1", True),
    "statefulsets": ("/apis/apps/v1", True),
    "persistentvolumeclaims": ("/api/v1", True),
    "persistentvolumes": ("/api/v1", False),
    "storageclasses": ("/apis/storage.k8s.io/v1", False),
}
KINDS = {
    "pods": "Pod",
    "secrets": "Secret",
    "configmaps": "ConfigMap",
    "namespaces": "Namespace",
    "nodes": "Node",
    "leases": "Lease",
    "jobs": "Job",
    "deployments": "Deployment",
    "statefulsets": "StatefulSet",
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "persistentvolumes": "PersistentVolume",
}
SHARED_NAMESPACES = ("", "kube-node-lease", "kube-system", "kube-public")
# The nameserver pods are told (a 6PN address, as on Fly): the kube-dns EndpointSlice's.
NAMESERVER = "fdaa:0:1:a7b:1:2:3:2"


class ControlPlane:
    """One real control plane, run by a `Supervisor` in a thread."""

    def __init__(self, binary: Path, root: Path) -> None:
        self.root = root
        self.layout = Layout(root=root, api_port=supervisor.free_port(), bind_address="127.0.0.1")
        self.pki = ClusterPKI.generate("test")
        self.layout.pki.mkdir(parents=True, exist_ok=True)
        for name, pem in self.pki.tls_files().items():
            (self.layout.pki / name).write_bytes(pem)
        self.url = f"https://127.0.0.1:{self.layout.api_port}"
        self.ca_file = self.layout.ca("server-ca.crt")
        self.upstream = UpstreamDNS().start()
        self.dns = ClusterDNS(
            listen="127.0.0.1",
            nameserver=NAMESERVER,
            port=supervisor.free_port(),
            upstreams=(self.upstream.address,),
        )
        processes = supervisor.control_plane(
            binary, self.layout, ["127.0.0.1"], with_kubelet=False, dns=self.dns
        )
        for process in processes:  # read them there when a test fails
            process.log = root / f"{process.name}.log"
        self.supervisor = supervisor.Supervisor(processes, max_restarts=50, max_backoff=1.0)
        self.result: list[int] = []
        self.thread = threading.Thread(
            target=lambda: self.result.append(self.supervisor.run()), daemon=True
        )
        admin = self.pki.client_ca.sign_client("test-admin", [bootstrap.MASTERS])
        self._admin_cert = root / "admin.crt"
        self._admin_key = root / "admin.key"
        self._admin_cert.write_bytes(admin.cert_pem)
        self._admin_key.write_bytes(admin.key_pem)

    def start(self, timeout: float = 180.0) -> ControlPlane:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.supervisor.up.wait(0.2):
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the control plane did not come up ({self.result})")
        return self

    def stop(self) -> list[int]:
        """Stop it all; the pids that outlived the stop (none, or a bug)."""
        self.supervisor.request_stop()
        self.thread.join(60)
        self.upstream.stop()
        return [
            p.popen.pid
            for p in self.supervisor.processes
            if p.popen is not None and p.popen.poll() is None
        ]

    def process(self, name: str) -> supervisor.Process:
        (found,) = [p for p in self.supervisor.processes if p.name == name]
        return found

    def restart_apiserver(self) -> None:
        """Kill the API server; the supervisor starts it again. Returns once it answers."""
        process = self.process("kube-apiserver")
        assert process.popen is not None
        old = process.popen
        old.kill()
        old.wait()
        with self.admin() as client:
            deadline = time.monotonic() + 120
            while True:
                if process.popen is not old:
                    try:
                        if client.get("/readyz").status_code == 200:
                            return
                    except httpx.HTTPError:
                        pass
                assert time.monotonic() < deadline, "the API server did not come back"
                time.sleep(0.1)

    def ssl_context(self, cert: Path, key: Path) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(cert), str(key))
        return context

    def admin(self) -> httpx.Client:
        context = self.ssl_context(self._admin_cert, self._admin_key)
        return httpx.Client(base_url=self.url, verify=context, timeout=30)

    def kubeconfig(self, path: Path, user: str, groups: tuple[str, ...] = ()) -> str:
        """A kubeconfig with a client certificate for `user` in `groups`."""
        pair = self.pki.client_ca.sign_client(user, groups)
        path.write_text(
            bootstrap.kubeconfig_yaml(self.url, self.pki.server_ca.cert_pem, pair, user)
        )
        return str(path)


@dataclass
class Fault:
    """What `Traffic` does in the server's place: requests whose method matches and whose
    path (with its query) matches `path` (a regular expression, searched), `times` times
    (None: for good)."""

    method: str
    path: str
    kind: str  # "fail", "garble", "delay", "stall"
    code: int = 0
    seconds: float = 0.0
    times: int | None = 1
    fired: int = 0

    def take(self, method: str, path: str) -> bool:
        if method != self.method or not re.search(self.path, path):
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        self.fired += 1
        return True


class _Stalled(httpx2.SyncByteStream):
    """A body that never comes: the connection of a peer that is gone without a FIN. As on
    a socket, the read gives up after the request's read timeout."""

    def __init__(self, read_timeout: float | None) -> None:
        self.read_timeout = read_timeout
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        self.closed.wait(self.read_timeout if self.read_timeout is not None else 600)
        raise httpx2.ReadTimeout("stalled")
        yield b""  # pragma: no cover

    def close(self) -> None:
        self.closed.set()


@dataclass
class Traffic(httpx2.BaseTransport):
    """The kubelet's requests to the API server (method, path with query, JSON body), and the
    faults scripted on them."""

    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    answers: list[tuple[str, str, int]] = field(default_factory=list)  # the real server's
    lock: threading.Lock = field(default_factory=threading.Lock)
    inner: dict[int, httpx2.BaseTransport] = field(default_factory=dict)

    def attach(self, api: KubeApi) -> KubeApi:
        http: httpx2.Client = api._client._client._client  # type: ignore[attr-defined]
        real = http._transport
        traffic = self

        class Hooked(httpx2.BaseTransport):
            def handle_request(self, request: httpx2.Request) -> httpx2.Response:
                return traffic.handle(request, real)

            def close(self) -> None:
                real.close()

        http._transport = Hooked()
        return api

    def handle(self, request: httpx2.Request, real: httpx2.BaseTransport) -> httpx2.Response:
        path = request.url.raw_path.decode()
        try:
            body = json.loads(request.content) if request.content else None
        except (ValueError, httpx2.RequestNotRead):
            body = None
        with self.lock:
            self.requests.append((request.method, path, body))
            taken = [f for f in self.faults if f.take(request.method, path)]
        for fault in taken:
            if fault.kind == "delay":
                time.sleep(fault.seconds)
            elif fault.kind == "fail":
                status = {"kind": "Status", "apiVersion": "v1", "status": "Failure"}
                message = {"message": "injected", "code": fault.code}
                return httpx2.Response(fault.code, json={**status, **message}, request=request)
            elif fault.kind == "garble":
                page = b"<html><body>502 Bad Gateway</body></html>"
                headers = {"content-type": "text/html"}
                return httpx2.Response(200, content=page, headers=headers, request=request)
            elif fault.kind == "stall":
                headers = {"content-type": "application/json"}
                read = (request.extensions.get("timeout") or {}).get("read")
                stalled = _Stalled(read)
                return httpx2.Response(200, stream=stalled, headers=headers, request=request)
        response = real.handle_request(request)
        with self.lock:
            self.answers.append((request.method, path, response.status_code))
        return response

    def refused(self, code: int) -> list[tuple[str, str]]:
        """The requests the real server answered `code`."""
        with self.lock:
            return [(m, p) for m, p, c in self.answers if c == code]

    def add(self, method: str, path: str, kind: str, **values: Any) -> Fault:
        fault = Fault(method, path, kind, **values)
        with self.lock:
            self.faults.append(fault)
        return fault

    def fail(self, method: str, path: str, code: int, *, times: int | None = 1) -> Fault:
        return self.add(method, path, "fail", code=code, times=times)

    def garble(self, method: str, path: str, *, times: int | None = 1) -> Fault:
        return self.add(method, path, "garble", times=times)

    def delay(self, method: str, path: str, seconds: float, *, times: int | None = 1) -> Fault:
        return self.add(method, path, "delay", seconds=seconds, times=times)

    def stall(self, method: str, path: str) -> Fault:
        return self.add(method, path, "stall")

    def count(self, method: str, fragment: str = "") -> int:
        with self.lock:
            return sum(1 for m, p, _ in self.requests if m == method and fragment in p)

    def sent(self, method: str, fragment: str = "") -> list[Any]:
        with self.lock:
            return [b for m, p, b in self.requests if m == method and fragment in p]

    def lists(self, fragment: str = "/api/v1/pods") -> int:
        """GETs of `fragment` that are lists, not watches."""
        with self.lock:
            return sum(
                1
                for m, p, _ in self.requests
                if m == "GET" and p.startswith(fragment) and "watch=" not in p
            )

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:  # pragma: no cover
        raise NotImplementedError("attach() to a KubeApi")


class Kube:
    """One test's view of the shared control plane. Namespace names a test uses ("default",
    "shop") are its own (`ns`: "default-<suffix>", made on first use), the node is
    `flyk-<suffix>`, and `close` removes what the test left (pods, namespaces, the node)."""

    def __init__(self, plane: ControlPlane, tmp: Path) -> None:
        self.plane = plane
        self.tmp = tmp
        self.suffix = uuid.uuid4().hex[:8]
        self.node = f"flyk-{self.suffix}"
        self.url = plane.url
        self.http = plane.admin()
        self._made: set[str] = set()
        self.history: list[tuple[str, JSON]] = []  # every pod event on the node, in order
        self._history_stop = threading.Event()
        self._history_thread = threading.Thread(target=self._watch_history, daemon=True)
        self._history_ready = threading.Event()
        self._history_thread.start()
        self._history_ready.wait(30)

    # naming -----------------------------------------------------------------------------
    def name(self, namespace: str) -> str:
        """The test's own name for `namespace` (not created)."""
        if namespace in SHARED_NAMESPACES or namespace.endswith(self.suffix):
            return namespace
        return f"{namespace}-{self.suffix}"

    def forget(self, namespace: str) -> None:
        """A deleted namespace: `ns` makes it again."""
        self._made.discard(self.name(namespace))

    def ns(self, name: str) -> str:
        """The test's namespace for `name`, created on first use."""
        real = self.name(name)
        if real not in self._made and real not in SHARED_NAMESPACES:
            self._made.add(real)
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": real}}
            response = self.http.post("/api/v1/namespaces", json=body)
            if response.status_code != 409:
                response.raise_for_status()
            # Pods are admitted once the namespace's `default` ServiceAccount exists (the
            # controller-manager makes it a moment after the namespace).
            deadline = time.monotonic() + 30
            path = f"/api/v1/namespaces/{real}/serviceaccounts/default"
            while self.http.get(path).status_code == 404:
                assert time.monotonic() < deadline, f"no default ServiceAccount in {real}"
                time.sleep(0.05)
        return real

    def path(self, plural: str, namespace: str = "", name: str = "", sub: str = "") -> str:
        prefix, namespaced = RESOURCES[plural]
        parts = [prefix]
        if namespaced and namespace:
            parts.append(f"namespaces/{self.ns(namespace)}")
        parts.append(plural)
        if name:
            parts.append(name)
        if sub:
            parts.append(sub)
        return "/".join(parts)

    # objects ----------------------------------------------------------------------------
    def create(self, plural: str, obj: JSON, namespace: str = "") -> JSON:
        body = json.loads(json.dumps(obj))
        prefix, _ = RESOURCES[plural]
        body.setdefault("apiVersion", prefix.removeprefix("/api/").removeprefix("/apis/"))
        body.setdefault("kind", KINDS.get(plural, ""))
        if plural == "namespaces":
            return self.get("namespaces", self.ns(body["metadata"]["name"])) or {}
        namespace = namespace or body["metadata"].get("namespace", "")
        body["metadata"].pop("namespace", None)
        response = self.http.post(self.path(plural, namespace), json=body)
        response.raise_for_status()
        created: JSON = response.json()
        return created

    def get(self, plural: str, name: str, namespace: str = "") -> JSON | None:
        if plural == "namespaces":
            name = self.name(name)
        response = self.http.get(self.path(plural, namespace, name))
        if response.status_code == 404:
            return None
        response.raise_for_status()
        found: JSON = response.json()
        return found

    def list(self, plural: str, namespace: str | None = None, **params: str) -> list[JSON]:
        response = self.http.get(self.path(plural, namespace or ""), params=params)
        response.raise_for_status()
        items: list[JSON] = response.json()["items"]
        return items

    def delete(self, plural: str, name: str, namespace: str = "", **options: Any) -> int:
        """DELETE with these DeleteOptions; the status code (404 included)."""
        if plural == "namespaces":
            name = self.name(name)
        response = self.http.request(
            "DELETE", self.path(plural, namespace, name), json=options or None
        )
        if response.status_code != 404:
            response.raise_for_status()
        return response.status_code

    def patch(
        self,
        plural: str,
        name: str,
        body: JSON,
        namespace: str = "",
        *,
        sub: str = "",
        kind: str = "merge-patch",
    ) -> httpx.Response:
        return self.http.patch(
            self.path(plural, namespace, name, sub),
            content=json.dumps(body),
            headers={"Content-Type": f"application/{kind}+json"},
        )

    def modify(
        self, plural: str, namespace: str, name: str, change: Callable[[JSON], JSON]
    ) -> JSON:
        """GET, change, PUT; again on a conflict."""
        for _ in range(20):
            current = self.get(plural, name, namespace)
            assert current is not None, f"{plural} {namespace}/{name} not found"
            response = self.http.put(self.path(plural, namespace, name), json=change(current))
            if response.status_code == 409:
                continue
            response.raise_for_status()
            changed: JSON = response.json()
            return changed
        raise AssertionError(f"{plural} {namespace}/{name}: conflicts")

    # history ----------------------------------------------------------------------------
    def _watch_history(self) -> None:
        """Watch the node's pods into `history`. A watch the server cannot resume (410, as
        after an API server restart) lists again: the pods then come as ADDED, and what
        happened to them in between is not seen."""
        params = {"fieldSelector": f"spec.nodeName={self.node}"}
        version = self._relist_history(params, first=True)
        while not self._history_stop.is_set():
            if version is None:
                try:
                    version = self._relist_history(params)
                except (httpx.HTTPError, ValueError, KeyError):
                    if self._history_stop.wait(0.2):
                        return
                    continue
            query = {**params, "watch": "1", "resourceVersion": version, "timeoutSeconds": "5"}
            try:
                with self.http.stream("GET", "/api/v1/pods", params=query, timeout=30) as stream:
                    if stream.status_code != 200:
                        version = None
                        continue
                    for line in stream.iter_lines():
                        event = json.loads(line)
                        if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                            self.history.append((event["type"], event["object"]))
                            version = event["object"]["metadata"]["resourceVersion"]
                        elif event["type"] == "ERROR":
                            version = None
                            break
                        if self._history_stop.is_set():
                            return
            except (httpx.HTTPError, ValueError, KeyError):
                if self._history_stop.wait(0.2):
                    return

    def _relist_history(self, params: dict[str, str], *, first: bool = False) -> str:
        listed = self.http.get("/api/v1/pods", params=params)
        listed.raise_for_status()
        page = listed.json()
        if first:
            self._history_ready.set()
        else:
            self.history.extend(("ADDED", pod) for pod in page["items"])
        version: str = page["metadata"]["resourceVersion"]
        return version

    def phases(self, name: str) -> list[str]:
        """Every phase the pod went through, in order, as the API server told watchers."""
        out: list[str] = []
        for _kind, pod in list(self.history):
            if pod["metadata"]["name"] == name:
                phase = (pod.get("status") or {}).get("phase")
                if phase and (not out or out[-1] != phase):
                    out.append(phase)
        return out

    # the kubelet's identity -------------------------------------------------------------
    def kubeconfig(self) -> str:
        """The kubelet's kubeconfig, with the identity production gives it: the node
        `system:node:<node>` in `system:nodes`."""
        return self.plane.kubeconfig(
            self.tmp / f"kubelet-{self.suffix}.kubeconfig",
            bootstrap.node_user(self.node),
            (bootstrap.NODES_GROUP,),
        )

    # an administrator --------------------------------------------------------------------
    def kubectl(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The real kubectl, as a cluster administrator (`system:masters`)."""
        ran = subprocess.run(
            ["kubectl", "--kubeconfig", self.admin_kubeconfig(), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if check:
            assert ran.returncode == 0, f"kubectl {' '.join(args)}: {ran.stderr}"
        return ran

    def admin_kubeconfig(self) -> str:
        path = self.tmp / f"admin-{self.suffix}.kubeconfig"
        if not path.exists():
            self.plane.kubeconfig(path, "test-admin", (bootstrap.MASTERS,))
        return str(path)

    # clean-up ---------------------------------------------------------------------------
    def close(self) -> None:
        self._history_stop.set()
        with contextlib.suppress(httpx.HTTPError):
            pods = self.list("pods", fieldSelector=f"spec.nodeName={self.node}")
            for pod in pods:
                meta = pod["metadata"]
                where = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
                if meta.get("finalizers"):
                    self.http.patch(
                        where,
                        content=json.dumps({"metadata": {"finalizers": None}}),
                        headers={"Content-Type": "application/merge-patch+json"},
                    )
                self.http.request("DELETE", where, json={"gracePeriodSeconds": 0})
            for namespace in self._made:
                self.http.delete(f"/api/v1/namespaces/{namespace}")
            self.http.delete(f"/api/v1/nodes/{self.node}")
            self.http.delete(f"{self.path('leases', 'kube-node-lease')}/{self.node}")
        self._history_thread.join(10)
        self.http.close()
