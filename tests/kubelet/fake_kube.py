"""A small Kubernetes API server over real HTTP, honouring exactly what the kubelet relies on.

No kubelet test uses it any more: they run against the real control plane (realkube.py),
which showed where this fake is wrong (a status patch with an old uid is 422 there, not 409;
finalizers, asynchronous garbage collection, the node lifecycle controller, NodeRestriction:
docs/kubernetes.md "Testing it"). It stays only because bench/bench_kubelet.py still serves its
pods from it.

Semantics kept from the real API server (and checked by tests of their own):
- every write takes the next value of one global, monotonically increasing resourceVersion;
  objects get a uid and a creationTimestamp;
- list returns the collection's resourceVersion; watch streams `{"type","object"}` lines
  from a resourceVersion (410 Gone, as an ERROR event, when it is older than the retained
  history; `compact()` drops history), honours `timeoutSeconds`, and without a
  resourceVersion first replays the current objects as ADDED;
- `fieldSelector` `spec.nodeName`, `metadata.name`, `metadata.namespace` (=, ==, !=);
- the `status` subresource of pods and nodes (a PATCH there changes only `.status`); JSON
  merge patch; strategic merge patch with the merge keys of the lists the kubelet patches
  (pod `status.conditions` by `type`, `status.podIPs`/`hostIPs` by `ip`; node
  `status.conditions` and `status.addresses` by `type`; `$patch: delete` items), other lists
  replaced; a `metadata.uid` in a patch is a precondition (409 when it is not the object's);
- delete with `gracePeriodSeconds` and `preconditions.uid`: a pod bound to a node and deleted
  with a grace period only gets `deletionTimestamp`; grace 0 removes it; a wrong uid is 409;
- PUT with a stale resourceVersion is 409 (leases rely on it); create of an existing name 409;
- deleting an object deletes the objects it owns (`ownerReferences` by uid), as the garbage
  collector does: `kubectl delete node` takes the node's Lease along;
Resources: pods, nodes, leases (coordination.k8s.io/v1), events, secrets, configmaps,
namespaces. Anything else is 404. `requests` records (method, path) for call counting,
`bodies` (method, path, body) for what was sent; `fail(...)` scripts refusals (a test's seam
for an API server that is down or that rejects one object); `stall_next_watch()` makes one
watch go silent for good (a half-open connection); `delay(...)` slows chosen answers;
`garble(...)` answers 200 with a body that is not JSON.
A client that drops its connection mid-request is counted (`clients_gone`), not printed.
"""

from __future__ import annotations

import copy
import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

JSON = dict[str, Any]

# plural -> (group/version prefix, kind, namespaced)
RESOURCES: dict[str, tuple[str, str, bool]] = {
    "pods": ("api/v1", "Pod", True),
    "nodes": ("api/v1", "Node", False),
    "events": ("api/v1", "Event", True),
    "secrets": ("api/v1", "Secret", True),
    "configmaps": ("api/v1", "ConfigMap", True),
    "namespaces": ("api/v1", "Namespace", False),
    "leases": ("apis/coordination.k8s.io/v1", "Lease", True),
}
API_VERSION = {"api/v1": "v1", "apis/coordination.k8s.io/v1": "coordination.k8s.io/v1"}


class ApiFailure(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> JSON:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


def now_iso() -> str:
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# (resource, path of the list) -> its merge key, as the API's types declare `patchMergeKey`.
MERGE_KEYS: dict[tuple[str, str], str] = {
    ("pods", "status.conditions"): "type",
    ("pods", "status.podIPs"): "ip",
    ("pods", "status.hostIPs"): "ip",
    ("nodes", "status.conditions"): "type",
    ("nodes", "status.addresses"): "type",
}


def strategic_merge(target: Any, patch: Any, plural: str, where: str = "") -> Any:
    """A strategic merge patch for the lists in MERGE_KEYS: items merge by their key (an item
    `{"$patch": "delete", key: …}` removes one); every other value merges as in merge_patch."""
    if not isinstance(patch, dict):
        key = MERGE_KEYS.get((plural, where))
        if key is not None and isinstance(patch, list):
            return _merge_list(target if isinstance(target, list) else [], patch, key)
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if name.startswith("$"):
            continue  # directives such as $setElementOrder: order is not kept by the fake
        if value is None:
            result.pop(name, None)
        else:
            path = f"{where}.{name}" if where else name
            result[name] = strategic_merge(result.get(name), value, plural, path)
    return result


def _merge_list(target: list[Any], patch: list[Any], key: str) -> list[Any]:
    result = [copy.deepcopy(item) for item in target]
    for item in patch:
        index = next((i for i, old in enumerate(result) if old.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(merge_patch({}, item))
        else:
            result[index] = merge_patch(result[index], item)
    return result


@dataclass
class WatchEvent:
    rv: int
    type: str
    plural: str
    obj: JSON


def _field_value(obj: JSON, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def parse_field_selector(text: str | None) -> list[tuple[str, str, bool]]:
    """`a=b,c!=d` -> [(a, b, True), (c, d, False)]; only the fields the fake supports."""
    out = []
    for term in filter(None, (text or "").split(",")):
        negate = "!=" in term
        key, _, value = term.replace("!=", "=").replace("==", "=").partition("=")
        if key not in ("spec.nodeName", "metadata.name", "metadata.namespace"):
            raise ApiFailure(400, "BadRequest", f"field label not supported: {key}")
        out.append((key, value, not negate))
    return out


def matches(obj: JSON, selector: list[tuple[str, str, bool]]) -> bool:
    return all((_field_value(obj, key) == value) == equal for key, value, equal in selector)


@dataclass
class Store:
    """All objects and the event history, under one lock."""

    history_limit: int = 10_000
    objects: dict[tuple[str, str, str], JSON] = field(default_factory=dict)
    history: list[WatchEvent] = field(default_factory=list)
    rv: int = 100
    compacted_rv: int = 100
    lock: threading.Condition = field(default_factory=threading.Condition)
    closed: bool = False
    watch_generation: int = 0  # bumping it ends every open watch
    watch_gate: threading.Event = field(default_factory=threading.Event)  # clear: watches wait

    def _record(self, kind: str, plural: str, obj: JSON) -> None:
        self.history.append(WatchEvent(self.rv, kind, plural, copy.deepcopy(obj)))
        if len(self.history) > self.history_limit:
            dropped = self.history.pop(0)
            self.compacted_rv = dropped.rv
        self.lock.notify_all()

    def _bump(self, obj: JSON) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)

    def create(self, plural: str, namespace: str, obj: JSON) -> JSON:
        prefix, kind, namespaced = RESOURCES[plural]
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if not meta.get("name"):
            raise ApiFailure(422, "Invalid", "metadata.name: Required value")
        key = (plural, namespace if namespaced else "", meta["name"])
        with self.lock:
            if key in self.objects:
                raise ApiFailure(409, "AlreadyExists", f'{plural} "{meta["name"]}" already exists')
            obj["apiVersion"], obj["kind"] = API_VERSION[prefix], kind
            if namespaced:
                meta["namespace"] = namespace
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_iso()
            meta.pop("deletionTimestamp", None)
            if plural == "pods":
                obj.setdefault("status", {"phase": "Pending"})
            self._bump(obj)
            self.objects[key] = obj
            self._record("ADDED", plural, obj)
            return copy.deepcopy(obj)

    def get(self, plural: str, namespace: str, name: str) -> JSON:
        with self.lock:
            obj = self.objects.get((plural, namespace, name))
            if obj is None:
                raise ApiFailure(404, "NotFound", f'{plural} "{name}" not found')
            return copy.deepcopy(obj)

    def list(
        self, plural: str, namespace: str | None, selector: list[tuple[str, str, bool]]
    ) -> tuple[list[JSON], int]:
        with self.lock:
            items = [
                copy.deepcopy(obj)
                for (p, ns, _), obj in sorted(self.objects.items())
                if p == plural and (namespace is None or ns == namespace) and matches(obj, selector)
            ]
            return items, self.rv

    def modify(self, plural: str, namespace: str, name: str, change: Any) -> JSON:
        """Apply `change(obj) -> obj` under the lock and record a MODIFIED event."""
        with self.lock:
            key = (plural, namespace, name)
            if key not in self.objects:
                raise ApiFailure(404, "NotFound", f'{plural} "{name}" not found')
            before = self.objects[key]
            after = change(copy.deepcopy(before))
            for keep in ("uid", "creationTimestamp", "name", "namespace"):
                if keep in before["metadata"]:
                    after["metadata"][keep] = before["metadata"][keep]
            if after == before:
                return copy.deepcopy(before)  # no-op writes do not bump the version
            self._bump(after)
            self.objects[key] = after
            self._record("MODIFIED", plural, after)
            return copy.deepcopy(after)

    def remove(self, plural: str, namespace: str, name: str) -> JSON:
        """Delete an object, and (as the garbage collector does, in the background) every
        object whose `ownerReferences` name it by uid: a deleted Node takes its Lease along."""
        with self.lock:
            obj = self.objects.pop((plural, namespace, name))
            self._bump(obj)
            self._record("DELETED", plural, obj)
            uid = obj["metadata"].get("uid")
            owned = [
                key
                for key, other in self.objects.items()
                if any(o.get("uid") == uid for o in other["metadata"].get("ownerReferences") or [])
            ]
            for key in owned:
                if key in self.objects:  # a cascade above may have taken it already
                    self.remove(*key)
            return copy.deepcopy(obj)

    def __post_init__(self) -> None:
        self.watch_gate.set()

    def compact(self) -> None:
        """Forget all history, so that any watch from an older resourceVersion gets 410."""
        with self.lock:
            self.history.clear()
            self.compacted_rv = self.rv

    def events_after(self, rv: int) -> list[WatchEvent]:
        return [e for e in self.history if e.rv > rv]


@dataclass
class Failure:
    """A scripted refusal: requests whose method matches and whose path matches `path` (a
    regular expression, searched) are answered `code`, `times` times (None: forever)."""

    method: str
    path: str
    code: int
    times: int | None = 1
    fired: int = 0
    seconds: float = 0.0  # for a delay: how long the answer waits

    def take(self, method: str, path: str) -> bool:
        if method != self.method or not re.search(self.path, path):
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        self.fired += 1
        return True


class FakeKube:
    """The server; `url` for clients, `store` for tests to arrange and inspect state."""

    def __init__(self, *, history_limit: int = 10_000) -> None:
        self.store = Store(history_limit=history_limit)
        self.requests: list[tuple[str, str]] = []
        self.bodies: list[tuple[str, str, Any]] = []
        self.failures: list[Failure] = []
        self.delays: list[Failure] = []
        self.garbles: list[Failure] = []
        self.stalls = 0  # watches still to stall (stall_next_watch)
        self.clients_gone = 0  # connections a client dropped mid-request (not printed)
        self._requests_lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _QuietServer(("127.0.0.1", 0), handler)
        self._server.fake = self
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        with self.store.lock:
            self.store.closed = True
            self.store.lock.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def interrupt_watches(self) -> None:
        """End every open watch and hold new ones until `resume_watches` (an API server
        restart, as the kubelet sees it)."""
        with self.store.lock:
            self.store.watch_gate.clear()
            self.store.watch_generation += 1
            self.store.lock.notify_all()

    def resume_watches(self) -> None:
        self.store.watch_gate.set()

    def stall_next_watch(self) -> None:
        """End every open watch; the next one to start answers its headers and then nothing,
        ever, whatever its timeoutSeconds (a half-open connection: the peer is gone)."""
        with self.store.lock:
            self.stalls += 1
            self.store.watch_generation += 1
            self.store.lock.notify_all()

    def _take_stall(self) -> bool:
        with self.store.lock:
            if self.stalls == 0:
                return False
            self.stalls -= 1
            return True

    def record(self, method: str, path: str) -> None:
        with self._requests_lock:
            self.requests.append((method, path))

    def record_body(self, method: str, path: str, body: Any) -> None:
        with self._requests_lock:
            self.bodies.append((method, path, copy.deepcopy(body)))

    def sent(self, method: str, fragment: str = "") -> list[Any]:
        """The bodies of the requests with this method whose path contains `fragment`."""
        with self._requests_lock:
            return [b for m, p, b in self.bodies if m == method and fragment in p]

    def fail(self, method: str, path: str, code: int, *, times: int | None = 1) -> Failure:
        """Answer `code` to the next `times` requests matching (None: until removed)."""
        failure = Failure(method, path, code, times)
        with self._requests_lock:
            self.failures.append(failure)
        return failure

    def delay(self, method: str, path: str, seconds: float, *, times: int | None = 1) -> Failure:
        """Answer the next `times` requests matching only after `seconds` (a slow API server)."""
        delay = Failure(method, path, 0, times)
        delay.seconds = seconds
        with self._requests_lock:
            self.delays.append(delay)
        return delay

    def garble(self, method: str, path: str, *, times: int | None = 1) -> Failure:
        """Answer the next `times` requests matching 200 with a body that is not JSON (a
        proxy's error page, say): what no client code expects."""
        garble = Failure(method, path, 200, times)
        with self._requests_lock:
            self.garbles.append(garble)
        return garble

    def _garbled(self, method: str, path: str) -> bool:
        with self._requests_lock:
            return any(g.take(method, path) for g in self.garbles)

    def _delay(self, method: str, path: str) -> float:
        with self._requests_lock:
            return sum(d.seconds for d in self.delays if d.take(method, path))

    def _failure(self, method: str, path: str) -> int | None:
        with self._requests_lock:
            for failure in self.failures:
                if failure.take(method, path):
                    return failure.code
        return None

    def count(self, method: str, fragment: str = "") -> int:
        with self._requests_lock:
            return sum(1 for m, p in self.requests if m == method and fragment in p)

    # conveniences for tests -------------------------------------------------------------
    def create(self, plural: str, obj: JSON, namespace: str = "") -> JSON:
        return self.store.create(plural, namespace, obj)

    def get(self, plural: str, name: str, namespace: str = "") -> JSON | None:
        try:
            return self.store.get(plural, namespace, name)
        except ApiFailure:
            return None

    def list(self, plural: str, namespace: str | None = None) -> list[JSON]:
        return self.store.list(plural, namespace, [])[0]


class _QuietServer(ThreadingHTTPServer):
    fake: FakeKube

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that left (a reset while the request line was read, as clients closing
        at shutdown do) is not the server's error: counted, not printed with a traceback.
        Anything else is still printed."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            with self.fake._requests_lock:
                self.fake.clients_gone += 1
            return
        super().handle_error(request, client_address)


@dataclass
class _Route:
    plural: str
    namespace: str
    name: str | None
    subresource: str | None


def parse_path(path: str) -> _Route:
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        rest, prefix = parts[2:], "api/v1"
    elif parts[:3] == ["apis", "coordination.k8s.io", "v1"]:
        rest, prefix = parts[3:], "apis/coordination.k8s.io/v1"
    else:
        raise ApiFailure(404, "NotFound", f"the server could not find {path}")
    namespace = ""
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    if not rest or rest[0] not in RESOURCES or RESOURCES[rest[0]][0] != prefix:
        raise ApiFailure(404, "NotFound", f"the server could not find {path}")
    return _Route(rest[0], namespace, rest[1] if len(rest) > 1 else None, _at(rest, 2))


def _at(items: list[str], index: int) -> str | None:
    return items[index] if len(items) > index else None


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKube
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else None

    def _send(self, code: int, body: JSON) -> None:
        self._send_raw(code, json.dumps(body).encode(), "application/json")

    def _send_raw(self, code: int, data: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        watching = query.get("watch") in ("true", "1")
        self.fake.record(method, url.path + ("?watch" if watching else ""))
        try:
            route = parse_path(url.path)
            body = self._body() if method in ("POST", "PUT", "PATCH", "DELETE") else None
            self.fake.record_body(method, url.path, body)
            time.sleep(self.fake._delay(method, url.path))
            code = self.fake._failure(method, url.path)
            if code is not None:
                raise ApiFailure(code, "Injected", f"injected failure {code}")
            if self.fake._garbled(method, url.path):
                self._send_raw(200, b"<html>502 Bad Gateway</html>", "text/html")
                return
            if method == "GET" and watching:
                self._watch(route, query)
                return
            code, result = _handle(self.fake.store, method, route, query, body, self.headers)
            self._send(code, result)
        except ApiFailure as failure:
            self._send(failure.code, failure.status())
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # watch ------------------------------------------------------------------------------
    def _watch(self, route: _Route, query: dict[str, str]) -> None:
        store = self.fake.store
        selector = parse_field_selector(query.get("fieldSelector"))
        namespace = route.namespace or None
        timeout = float(query.get("timeoutSeconds") or 3600)
        deadline = time.monotonic() + timeout
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.fake._take_stall():
            self.wfile.flush()
            while not store.closed:  # silent until the server itself goes away
                time.sleep(0.05)
            self.close_connection = True
            return
        try:
            for line in self._watch_lines(
                store, route.plural, namespace, selector, query, deadline
            ):
                self._chunk(json.dumps(line).encode() + b"\n")
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _watch_lines(
        self,
        store: Store,
        plural: str,
        namespace: str | None,
        selector: list[tuple[str, str, bool]],
        query: dict[str, str],
        deadline: float,
    ) -> Iterator[JSON]:
        while not store.watch_gate.wait(0.05):
            if store.closed or time.monotonic() > deadline:
                return
        with store.lock:
            generation = store.watch_generation
            requested = query.get("resourceVersion")
            if requested in (None, "", "0"):
                items, since = store.list(plural, namespace, selector)
                initial = [{"type": "ADDED", "object": obj} for obj in items]
            else:
                since, initial = int(requested), []
                if since < store.compacted_rv:
                    gone = ApiFailure(410, "Expired", f"too old resource version: {since}")
                    initial = [{"type": "ERROR", "object": gone.status()}]
                    since = -1
        yield from initial
        if since < 0:
            return
        while True:
            with store.lock:
                pending = store.events_after(since)
                while not pending and not store.closed and generation == store.watch_generation:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return
                    store.lock.wait(min(remaining, 0.5))
                    pending = store.events_after(since)
                if store.closed or generation != store.watch_generation:
                    return
            for event in pending:
                since = event.rv
                if event.plural != plural:
                    continue
                ns = event.obj["metadata"].get("namespace")
                if namespace is not None and ns != namespace:
                    continue
                if matches(event.obj, selector):
                    yield {"type": event.type, "object": event.obj}


def _handle(
    store: Store, method: str, route: _Route, query: dict[str, str], body: Any, headers: Any
) -> tuple[int, JSON]:
    plural, ns, name, sub = route.plural, route.namespace, route.name, route.subresource
    if method == "GET" and name is None:
        items, rv = store.list(plural, ns or None, parse_field_selector(query.get("fieldSelector")))
        kind = RESOURCES[plural][1]
        return 200, {
            "kind": f"{kind}List",
            "apiVersion": API_VERSION[RESOURCES[plural][0]],
            "metadata": {"resourceVersion": str(rv)},
            "items": items,
        }
    if method == "GET":
        assert name is not None
        return 200, store.get(plural, ns, name)
    if method == "POST" and name is None:
        return 201, store.create(plural, ns, body or {})
    if name is None:
        raise ApiFailure(405, "MethodNotAllowed", f"{method} on a collection")
    if method == "PUT":
        return 200, _replace(store, plural, ns, name, sub, body)
    if method == "PATCH":
        content_type = str(headers.get("Content-Type", ""))
        if "json-patch+json" in content_type:
            raise ApiFailure(415, "UnsupportedMediaType", "the fake speaks merge patches only")
        strategic = "strategic-merge-patch+json" in content_type
        return 200, _patch(store, plural, ns, name, sub, body, strategic=strategic)
    if method == "DELETE":
        return 200, _delete(store, plural, ns, name, body or {}, query)
    raise ApiFailure(405, "MethodNotAllowed", method)


def _replace(store: Store, plural: str, ns: str, name: str, sub: str | None, body: JSON) -> JSON:
    wanted = str((body.get("metadata") or {}).get("resourceVersion") or "")

    def change(obj: JSON) -> JSON:
        if wanted and wanted != obj["metadata"]["resourceVersion"]:
            raise ApiFailure(409, "Conflict", f'the object "{name}" has been modified')
        if sub == "status":
            obj["status"] = body.get("status", {})
            return obj
        new = copy.deepcopy(body)
        if "status" in obj and plural in ("pods", "nodes"):
            new["status"] = obj["status"]  # PUT on the main resource ignores status
        new.setdefault("metadata", {})
        new["apiVersion"], new["kind"] = obj["apiVersion"], obj["kind"]
        return new

    return store.modify(plural, ns, name, change)


def _patch(
    store: Store,
    plural: str,
    ns: str,
    name: str,
    sub: str | None,
    body: JSON,
    *,
    strategic: bool = False,
) -> JSON:
    def merge(target: Any, patch: Any, where: str) -> Any:
        if strategic:
            return strategic_merge(target, patch, plural, where)
        return merge_patch(target, patch)

    def change(obj: JSON) -> JSON:
        wanted_uid = (body.get("metadata") or {}).get("uid")
        if wanted_uid and wanted_uid != obj["metadata"]["uid"]:
            raise ApiFailure(
                409, "Conflict", f"Precondition failed: UID in precondition: {wanted_uid}, "
                f"UID in object meta: {obj['metadata']['uid']}"
            )  # fmt: skip
        if sub == "status":
            obj["status"] = merge(obj.get("status", {}), body.get("status", {}), "status")
            return obj
        status = obj.get("status")
        patched: JSON = merge(obj, {k: v for k, v in body.items() if k != "status"}, "")
        if status is not None and plural in ("pods", "nodes"):
            patched["status"] = status  # the main resource ignores status changes
        return patched

    return store.modify(plural, ns, name, change)


def _delete(
    store: Store, plural: str, ns: str, name: str, options: JSON, query: dict[str, str]
) -> JSON:
    obj = store.get(plural, ns, name)
    wanted_uid = (options.get("preconditions") or {}).get("uid")
    if wanted_uid and wanted_uid != obj["metadata"]["uid"]:
        raise ApiFailure(
            409, "Conflict", f"Precondition failed: UID in precondition: {wanted_uid}, "
            f"UID in object meta: {obj['metadata']['uid']}"
        )  # fmt: skip
    grace_text = options.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
    if plural != "pods":
        return store.remove(plural, ns, name)
    grace = (
        int(grace_text)
        if grace_text is not None
        else int(obj.get("spec", {}).get("terminationGracePeriodSeconds", 30))
    )
    bound = bool(obj.get("spec", {}).get("nodeName"))
    if grace == 0 or not bound:
        return store.remove(plural, ns, name)
    if obj["metadata"].get("deletionTimestamp"):
        return obj  # already terminating

    def mark(pod: JSON) -> JSON:
        pod["metadata"]["deletionTimestamp"] = now_iso()
        pod["metadata"]["deletionGracePeriodSeconds"] = grace
        return pod

    return store.modify(plural, ns, name, mark)


# helpers for tests ------------------------------------------------------------------------


def make_pod(
    name: str,
    *,
    namespace: str = "default",
    node: str | None = "flyk-node",
    image: str = "nginx:1.27",
    containers: list[JSON] | None = None,
    **spec: Any,
) -> JSON:
    body_spec: JSON = {"containers": containers or [{"name": "app", "image": image}], **spec}
    if node:
        body_spec["nodeName"] = node
    annotations = body_spec.pop("annotations", None)
    meta: JSON = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": body_spec}
