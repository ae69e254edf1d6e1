"""The Service address webhook (flyk/kubelet/admission.py): the review it answers, and the
server over real TLS (the API server's side of it runs in tests/kubelet/test_services.py)."""

from __future__ import annotations

import base64
import json
import ssl
from pathlib import Path
from typing import Any

import httpx

from flyk.errors import InvalidRequestError
from flyk.k8s.pki import ClusterPKI
from flyk.kubelet.admission import PATH, AdmissionServer, review

JSON = dict[str, Any]


def request(
    spec: JSON | None = None, *, dry_run: bool = False, annotations: JSON | None = None
) -> JSON:
    meta: JSON = {"name": "web", "namespace": "shop"}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "42",
            "kind": {"group": "", "version": "v1", "kind": "Service"},
            "operation": "CREATE",
            "namespace": "shop",
            "dryRun": dry_run,
            "object": {"metadata": meta, "spec": spec or {"ports": [{"port": 80}]}},
        },
    }


def patch_of(answer: JSON) -> list[JSON]:
    return list(json.loads(base64.b64decode(answer["response"]["patch"])))


def test_a_new_service_gets_the_assigned_address_as_its_cluster_ip() -> None:
    asked: list[tuple[str, str]] = []

    def allocate(namespace: str, name: str) -> str:
        asked.append((namespace, name))
        return "fdaa:0:1::7"

    answer = review(request(), allocate)
    assert asked == [("shop", "web")]
    assert answer["response"]["uid"] == "42" and answer["response"]["allowed"] is True
    ops = {op["path"]: op["value"] for op in patch_of(answer)}
    assert ops["/spec/clusterIP"] == "fdaa:0:1::7"
    assert ops["/spec/clusterIPs"] == ["fdaa:0:1::7"]
    assert ops["/spec/ipFamilies"] == ["IPv6"]
    assert ops["/metadata/annotations"] == {"fly.io/clusterip-allocator": "configured"}
    with_annotations = review(request(annotations={"a": "b"}), allocate)
    paths = [op["path"] for op in patch_of(with_annotations)]
    assert "/metadata/annotations/fly.io~1clusterip-allocator" in paths


def test_the_cluster_ip_is_written_in_canonical_form() -> None:
    """However the Machines API spells the address, the Service shows the one spelling that
    kubectl, CoreDNS's answers and the routing compare."""

    def allocate(namespace: str, name: str) -> str:
        return "fdaa:0:4ff0:0::8c09:a95d"

    ops = {op["path"]: op["value"] for op in patch_of(review(request(), allocate))}
    assert ops["/spec/clusterIP"] == "fdaa:0:4ff0::8c09:a95d"
    assert ops["/spec/clusterIPs"] == ["fdaa:0:4ff0::8c09:a95d"]


def test_headless_explicit_external_name_and_dry_runs_pass_untouched() -> None:
    def allocate(namespace: str, name: str) -> str:
        raise AssertionError("no address for this one")

    for spec in ({"clusterIP": "None"}, {"clusterIP": "10.43.0.10"}, {"type": "ExternalName"}):
        answer = review(request(spec), allocate)
        assert answer["response"] == {"uid": "42", "allowed": True}
    assert review(request(dry_run=True), allocate)["response"]["allowed"] is True


def test_when_no_address_can_be_assigned_the_service_is_refused_with_the_reason() -> None:
    def allocate(namespace: str, name: str) -> str:
        raise InvalidRequestError("ip assignment refused: out of addresses")

    response = review(request(), allocate)["response"]
    assert response["allowed"] is False
    assert "out of addresses" in response["status"]["message"]
    assert "patch" not in response


def test_the_server_answers_over_tls(tmp_path: Path) -> None:
    pki = ClusterPKI.generate("test")
    pair = pki.server_ca.sign_serving(["127.0.0.1"])
    (tmp_path / "c.pem").write_bytes(pair.cert_pem)
    (tmp_path / "k.pem").write_bytes(pair.key_pem)
    (tmp_path / "ca.pem").write_bytes(pki.server_ca.cert_pem)
    server = AdmissionServer(
        lambda _ns, _name: "fdaa:0:1::8", str(tmp_path / "c.pem"), str(tmp_path / "k.pem")
    ).start()
    try:
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        with httpx.Client(verify=context) as client:
            answer = client.post(server.url, json=request()).json()
            assert patch_of(answer)[0]["value"] == "fdaa:0:1::8"
            assert client.post(server.url.replace(PATH, "/other"), json={}).status_code == 404
            bad = client.post(server.url, content=b"not json")
            assert bad.status_code == 400
    finally:
        server.stop()
