"""Who may use the kubelet's API: a kubelet's own rule (kubelet `--authorization-mode=Webhook`).

The client is who its certificate says (server.py verified it against the cluster's client CA).
Each request is then asked of the API server as a SubjectAccessReview on the node: resource
`nodes`, name the node, subresource `stats` (`/stats…`), `metrics` (`/metrics…`), `log`
(`/logs…`) or `proxy` (everything else: `/containerLogs` and `/exec` included); the verb from
the HTTP method (GET get, POST create, …), exactly as the kubelet's
`nodeAuthorizerAttributesGetter` does. The API server's own kubelet-client certificate (user
`kube-apiserver`) passes through its ClusterRoleBinding `kube-apiserver-kubelet-admin` →
`system:kubelet-api-admin`; an administrator with `nodes/proxy` may call the port directly;
anyone else is 403, with the kubelet's message.

Why a review rather than trusting one certificate name: it is what kubelets do, so RBAC stays the
one place that says who reaches a node, and nothing here needs to change when it does. Answers
are cached as the kubelet caches them (allowed 5 min, denied 30 s), so the review costs one call
per user and verb, not one per request. A node may create SubjectAccessReviews (the Node
authorizer allows it to every node).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from flyk.kubelet.kube import KubeApi, KubeError
from flyk.kubelet.server import Identity, KubeletServer, Request

ALLOWED_TTL = 300.0
DENIED_TTL = 30.0
_VERBS = {
    "GET": "get",
    "HEAD": "get",
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}


def subresource(path: str) -> str:
    for prefix, name in (("/stats", "stats"), ("/metrics", "metrics"), ("/logs", "log")):
        if path == prefix or path.startswith(prefix + "/"):
            return name
    return "proxy"


class NodeAuthorizer:
    def __init__(
        self,
        kube: KubeApi,
        node: str,
        server: Callable[[], KubeletServer],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._node = node
        self._server = server
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[Identity, str, str], tuple[float, bool, str]] = {}

    async def __call__(self, request: Request) -> tuple[int, str] | None:
        """None when allowed; else the status and message to answer with."""
        identity = request.identity
        assert identity is not None
        verb = _VERBS.get(request.method, request.method.lower())
        sub = subresource(request.path)
        key = (identity, verb, sub)
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            allowed, reason = cached[1], cached[2]
        else:
            try:
                allowed, reason = await self._server().call(self._review, identity, verb, sub)
            except KubeError as error:
                return (
                    500,
                    f"Authorization error (user={identity.user}, verb={verb}, "
                    f"resource=nodes, subresource={sub}): {error.message}\n",
                )
            ttl = ALLOWED_TTL if allowed else DENIED_TTL
            with self._lock:
                self._cache[key] = (now + ttl, allowed, reason)
        if allowed:
            return None
        why = f": {reason}" if reason else ""
        return 403, (
            f"Forbidden (user={identity.user}, verb={verb}, resource=nodes, "
            f"subresource(s)=[{sub}]){why}\n"
        )

    def _review(self, identity: Identity, verb: str, sub: str) -> tuple[bool, str]:
        return self._kube.review_access(
            identity.user,
            list(identity.groups),
            verb=verb,
            resource="nodes",
            subresource=sub,
            name=self._node,
        )
