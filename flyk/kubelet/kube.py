"""The Kubernetes API as the kubelet uses it, over lightkube's sync client.

Objects cross this boundary as the API's JSON (dicts): the translation and status code is
plain data, and lightkube's typed models stay here. Every call the kubelet makes to the API
server is one method below.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import httpx2
import yaml
from lightkube import ALL_NS, ApiError, Client, KubeConfig
from lightkube.core.exceptions import ConfigError as LightkubeConfigError
from lightkube.resources.core_v1 import (
    ConfigMap,
    Event,
    Namespace,
    Node,
    PersistentVolume,
    PersistentVolumeClaim,
    Pod,
    Secret,
    Service,
)
from lightkube.resources.discovery_v1 import EndpointSlice
from lightkube.resources.storage_v1 import StorageClass
from lightkube.types import OnErrorAction, OnErrorResult, PatchType

from flyk.errors import ConfigError

JSON = dict[str, Any]
NODE_LEASE_NAMESPACE = "kube-node-lease"
_LEASE_KIND = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease"}
_WATCHED: dict[str, Any] = {"Service": Service, "EndpointSlice": EndpointSlice}


class KubeError(Exception):
    """The API server refused a call; `code` is the HTTP status (0: not reached, or its
    answer could not be read)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# No answer, or one that is not what the API sends (a proxy's HTML page is no JSON: lightkube
# raises ValueError): every caller handles a KubeError, none of these.
_UNANSWERED = (httpx2.HTTPError, ValueError)
_FAILURES = (ApiError, *_UNANSWERED)


def _wrap(error: Exception) -> KubeError:
    if isinstance(error, ApiError):
        return KubeError(int(error.status.code or 0), str(error.status.message or error))
    if isinstance(error, httpx2.HTTPStatusError):
        return KubeError(error.response.status_code, str(error))
    return KubeError(0, f"{type(error).__name__}: {error}")


def _raise_on_error(_error: Exception, _count: int) -> OnErrorResult:
    return OnErrorResult(OnErrorAction.RAISE)


def _unusable(kubeconfig: str | None, why: str) -> ConfigError:
    where = kubeconfig or "in-cluster, else KUBECONFIG, else ~/.kube/config"
    return ConfigError(
        f"cannot use the kubeconfig ({where}): {why}",
        hint="pass --kubeconfig PATH (in the control-plane machine the entrypoint sets "
        "KUBECONFIG to K3s's admin kubeconfig)",
    )


class KubeApi:
    """One lightkube client per instance; the watch uses its own instance so that closing it
    ends a watch blocked on a quiet stream."""

    def __init__(self, kubeconfig: str | None, *, context: str | None = None) -> None:
        try:
            config = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
            self._client = Client(
                config.get(context) if context else config,
                timeout=httpx2.Timeout(30.0),
                field_manager="flyk-kubelet",
                trust_env=False,
            )
        except (LightkubeConfigError, OSError, yaml.YAMLError, ValueError) as error:
            # At start-up, before any thread: a bad kubeconfig is the user's input (exit 2).
            raise _unusable(kubeconfig, str(error).splitlines()[0]) from error
        except (KeyError, TypeError, AttributeError) as error:
            # lightkube reads a file of the wrong shape (empty, no `clusters`) this way.
            why = f"not a kubeconfig ({type(error).__name__}: {error})"
            raise _unusable(kubeconfig, why) from error

    def close(self) -> None:
        self._client.close()

    # pods -------------------------------------------------------------------------------
    def list_pods(self, node: str) -> tuple[list[JSON], str]:
        try:
            listing = self._client.list(Pod, namespace=ALL_NS, fields={"spec.nodeName": node})
            pods = [pod.to_dict() for pod in listing]
            return pods, listing.resourceVersion
        except _FAILURES as error:
            raise _wrap(error) from error

    def watch_pods(
        self, node: str, resource_version: str, *, server_timeout: int, read_timeout: float
    ) -> Iterator[tuple[str, JSON]]:
        """Events after `resource_version`; raises KubeError(410) when it is too old, and
        KubeError(0) when nothing at all arrives for `read_timeout` seconds.

        lightkube reads watches with no read timeout, so a half-open connection (the server
        gone without a FIN) would block forever; the server closes a watch after
        `server_timeout`, so silence well past that means the connection is dead. lightkube
        1.0 takes the watch timeout from its private `_watch_timeout` only: this instance
        watches and nothing else, so setting it here touches no other call."""
        return self._watch(
            Pod,
            resource_version,
            server_timeout,
            read_timeout,
            namespace=ALL_NS,
            fields={"spec.nodeName": node},
        )

    def _watch(
        self,
        res: Any,
        resource_version: str,
        server_timeout: int,
        read_timeout: float,
        **where: Any,
    ) -> Iterator[tuple[str, JSON]]:
        """Every watch the kubelet makes: `res`'s events after `resource_version`, with
        `read_timeout` set as watch_pods' docstring says, failures as KubeError."""
        generic: Any = self._client._client  # see watch_pods
        generic._watch_timeout = httpx2.Timeout(30.0, read=read_timeout)
        client: Any = self._client
        events = client.watch(
            res,
            resource_version=resource_version,
            server_timeout=server_timeout,
            on_error=_raise_on_error,
            **where,
        )
        try:
            for kind, obj in events:
                yield kind, obj.to_dict()
        except _FAILURES as error:
            raise _wrap(error) from error

    def patch_pod_status(self, namespace: str, name: str, uid: str, status: JSON) -> None:
        """A strategic merge patch of the status subresource, as the kubelet sends one:
        `conditions` merge by `type` (conditions others wrote stay), `podIPs` by `ip`; and
        `metadata.uid` as a precondition, so that a status meant for a pod deleted and
        created again under the same name is refused (409) instead of landing on the new one.
        """
        body = {"metadata": {"uid": uid}, "status": status}
        self._patch(Pod.Status, name, body, namespace, patch_type=PatchType.STRATEGIC)

    def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        """Remove the pod object now (grace 0), but only the incarnation with this UID.

        lightkube 1.0's `delete` takes no preconditions, so this one call goes through the
        client's own HTTP session (same base URL, TLS and credentials) with a DeleteOptions body.
        """
        options = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": uid},
        }
        self._raw("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", options)

    def list_namespaces(self) -> list[str]:
        try:
            return [str(ns.metadata.name) for ns in self._client.list(Namespace) if ns.metadata]
        except _FAILURES as error:
            raise _wrap(error) from error

    def namespace_exists(self, name: str) -> bool:
        return self._get_optional(Namespace, name, None) is not None

    # things pods reference --------------------------------------------------------------
    def get_secret(self, namespace: str, name: str) -> JSON | None:
        return self._get_optional(Secret, name, namespace)

    def get_config_map(self, namespace: str, name: str) -> JSON | None:
        return self._get_optional(ConfigMap, name, namespace)

    def create_event(self, namespace: str, event: JSON) -> None:
        try:
            self._client.create(cast(Event, Event.from_dict(event)), namespace=namespace)
        except _FAILURES as error:
            raise _wrap(error) from error

    # storage (the volume provisioner, provisioner.py) ------------------------------------
    def list_claims(self) -> tuple[list[JSON], str]:
        return self._list(PersistentVolumeClaim, ALL_NS)

    def list_volumes(self) -> tuple[list[JSON], str]:
        return self._list(PersistentVolume, None)

    def list_storage_classes(self) -> list[JSON]:
        return self._list(StorageClass, None)[0]

    def watch_storage(
        self, kind: str, resource_version: str, *, server_timeout: int, read_timeout: float
    ) -> Iterator[tuple[str, JSON]]:
        """Events of claims ("claims") or PersistentVolumes ("volumes"), as `watch_pods`
        (this instance must watch and do nothing else)."""
        res: Any = PersistentVolumeClaim if kind == "claims" else PersistentVolume
        where = {"namespace": ALL_NS} if kind == "claims" else {}
        return self._watch(res, resource_version, server_timeout, read_timeout, **where)

    def get_claim(self, namespace: str, name: str) -> JSON | None:
        return self._get_optional(PersistentVolumeClaim, name, namespace)

    def get_volume(self, name: str) -> JSON | None:
        return self._get_optional(PersistentVolume, name, None)

    def create_volume(self, volume: JSON) -> JSON:
        return self._raw("POST", "/api/v1/persistentvolumes", volume)

    def patch_volume(self, name: str, patch: JSON) -> None:
        self._patch(PersistentVolume, name, patch, None)

    def delete_volume(self, name: str, uid: str) -> None:
        """Delete this PV, only the incarnation with this UID."""
        options = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": uid}}
        self._raw("DELETE", f"/api/v1/persistentvolumes/{name}", options)

    def patch_claim_status(self, namespace: str, name: str, status: JSON) -> None:
        self._patch(PersistentVolumeClaim.Status, name, {"status": status}, namespace)

    # services (flyk/kubelet/services.py) -----------------------------------------------
    def list_all(self, kind: str) -> tuple[list[JSON], str]:
        """Every Service or EndpointSlice (`kind`) of every namespace, and the list's version."""
        return self._list(_WATCHED[kind], ALL_NS)

    def watch_all(
        self, kind: str, resource_version: str, *, server_timeout: int, read_timeout: float
    ) -> Iterator[tuple[str, JSON]]:
        """Events of `kind` after `resource_version`, as `watch_pods` reads them (same
        timeouts and errors; this instance must watch nothing else)."""
        return self._watch(
            _WATCHED[kind], resource_version, server_timeout, read_timeout, namespace=ALL_NS
        )

    def patch_service_status(self, namespace: str, name: str, status: JSON) -> None:
        """A merge patch of the status subresource (`loadBalancer.ingress` is replaced whole)."""
        self._patch(Service.Status, name, {"status": status}, namespace)

    # node and lease ---------------------------------------------------------------------
    def get_node(self, name: str) -> JSON | None:
        return self._get_optional(Node, name, None)

    def create_node(self, node: JSON) -> JSON:
        try:
            created: JSON = self._client.create(cast(Node, Node.from_dict(node))).to_dict()
            return created
        except _FAILURES as error:
            raise _wrap(error) from error

    def patch_node(self, name: str, patch: JSON) -> None:
        self._patch(Node, name, patch, None)

    def patch_node_status(self, name: str, status: JSON) -> None:
        self._patch(Node.Status, name, {"status": status}, None)

    def get_lease(self, name: str) -> JSON | None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{NODE_LEASE_NAMESPACE}/leases/{name}"
        try:
            return self._raw("GET", path, None)
        except KubeError as error:
            if error.code == 404:
                return None
            raise

    # The Lease goes as JSON, not through lightkube's model: the model turns `renewTime` into a
    # datetime and writes it back without its fraction when the microseconds are 0
    # (`…:05Z`), which the API server, parsing a MicroTime strictly, refuses with 400.
    def create_lease(self, lease: JSON) -> JSON:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{NODE_LEASE_NAMESPACE}/leases"
        return self._raw("POST", path, {**lease, **_LEASE_KIND})

    def replace_lease(self, lease: JSON) -> JSON:
        """PUT with the lease's resourceVersion: 409 when someone else wrote it meanwhile."""
        name = lease["metadata"]["name"]
        path = f"/apis/coordination.k8s.io/v1/namespaces/{NODE_LEASE_NAMESPACE}/leases/{name}"
        return self._raw("PUT", path, {**lease, **_LEASE_KIND})

    # the kubelet's API: who may use it --------------------------------------------------
    def review_access(
        self,
        user: str,
        groups: list[str],
        *,
        verb: str,
        resource: str,
        subresource: str,
        name: str,
    ) -> tuple[bool, str]:
        """A SubjectAccessReview: may `user` (in `groups`) `verb` `resource/subresource` named
        `name`? (allowed, the authorizer's reason)."""
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "groups": groups,
                "resourceAttributes": {
                    "verb": verb,
                    "version": "v1",
                    "resource": resource,
                    "subresource": subresource,
                    "name": name,
                },
            },
        }
        answer = self._raw("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body)
        status = answer.get("status") or {}
        return bool(status.get("allowed")), str(status.get("reason") or "")

    # helpers ----------------------------------------------------------------------------
    def _raw(self, method: str, path: str, body: JSON | None) -> JSON:
        """One request through the client's own HTTP session (same base URL, TLS and
        credentials), for what lightkube 1.0 cannot send as it is (see the callers)."""
        http: httpx2.Client = self._client._client._client
        try:
            response = http.request(
                method,
                path,
                params={"fieldManager": "flyk-kubelet"} if method in ("POST", "PUT") else None,
                content=None if body is None else json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
        except httpx2.HTTPError as error:
            raise _wrap(error) from error
        try:
            answer = response.json()
        except ValueError as error:
            if response.status_code >= 400:
                raise KubeError(response.status_code, response.text) from error
            raise _wrap(error) from error
        if response.status_code >= 400:
            message = answer.get("message", response.text) if isinstance(answer, dict) else ""
            raise KubeError(response.status_code, str(message or response.text))
        if not isinstance(answer, dict):
            raise KubeError(0, f"not an object: {response.text[:200]}")
        return answer

    def _list(self, res: Any, namespace: Any) -> tuple[list[JSON], str]:
        client: Any = self._client
        where = {} if namespace is None else {"namespace": namespace}
        try:
            listing = client.list(res, **where)
            items = [item.to_dict() for item in listing]
            return items, str(listing.resourceVersion)
        except _FAILURES as error:
            raise _wrap(error) from error

    def _get_optional(self, res: Any, name: str, namespace: str | None) -> JSON | None:
        try:
            if namespace is None:
                obj = self._client.get(res, name)
            else:
                obj = self._client.get(res, name, namespace=namespace)
        except ApiError as error:
            if error.status.code == 404:
                return None
            raise _wrap(error) from error
        except _UNANSWERED as error:
            raise _wrap(error) from error
        result: JSON = obj.to_dict()
        return result

    def _patch(
        self,
        res: Any,
        name: str,
        body: JSON,
        namespace: str | None,
        *,
        patch_type: PatchType = PatchType.MERGE,
    ) -> None:
        where: dict[str, str] = {} if namespace is None else {"namespace": namespace}
        client: Any = self._client  # the overloads cannot see that `where` fits the resource
        try:
            client.patch(res, name, body, patch_type=patch_type, **where)
        except _FAILURES as error:
            raise _wrap(error) from error
