"""The spec checker itself: it must fail on violations, or it proves nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.spec_check import SpecCheckingTransport


def client_answering(
    answer: Callable[[httpx.Request], httpx.Response], **options: Any
) -> httpx.Client:
    transport = SpecCheckingTransport(httpx.MockTransport(answer), **options)
    return httpx.Client(transport=transport, base_url="http://api/v1")


def json_answer(status: int, body: Any) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, json=body)


def test_a_valid_exchange_passes() -> None:
    with client_answering(json_answer(200, {"apps": [], "total_apps": 0})) as client:
        assert client.get("/apps", params={"org_slug": "personal"}).status_code == 200


def test_unknown_request_field_fails() -> None:
    with client_answering(json_answer(201, None)) as client, pytest.raises(AssertionError) as err:
        client.post("/apps", json={"name": "x", "org_slug": "personal", "nmae": "y"})
    assert "Apps_create" in str(err.value) and "nmae" in str(err.value)


def test_unknown_config_field_fails() -> None:
    with client_answering(json_answer(200, {})) as client, pytest.raises(AssertionError) as err:
        client.post("/apps/a/machines", json={"config": {"image": "x", "imgae": "y"}})
    assert "Machines_create" in str(err.value)


def test_wrong_request_type_fails() -> None:
    with client_answering(json_answer(200, {})) as client, pytest.raises(AssertionError):
        client.post("/apps/a/machines/m/signal", json={"signal": 9})


def test_missing_required_query_fails() -> None:
    with client_answering(json_answer(200, {"apps": []})) as client, pytest.raises(AssertionError):
        client.get("/apps")


def test_unknown_query_fails_and_documented_extras_pass() -> None:
    with client_answering(json_answer(200, {"ok": True})) as client:
        client.delete("/apps/a/machines/m", params={"kill": "true"})
        with pytest.raises(AssertionError, match="forse"):
            client.delete("/apps/a/machines/m", params={"forse": "true"})


def test_missing_required_header_fails() -> None:
    with client_answering(json_answer(200, {})) as client, pytest.raises(AssertionError):
        client.delete("/apps/a/machines/m/lease")


def test_bad_response_body_fails() -> None:
    bad = json_answer(200, {"id": 5, "state": ["started"]})
    with client_answering(bad) as client, pytest.raises(AssertionError) as err:
        client.get("/apps/a/machines/m")
    assert "Machines_show" in str(err.value) and "id" in str(err.value)


def test_undocumented_success_status_fails() -> None:
    with client_answering(json_answer(201, {})) as client, pytest.raises(AssertionError):
        client.post("/apps/a/machines", json={"config": {"image": "x"}})


def test_error_bodies() -> None:
    with client_answering(json_answer(404, {"message": "gone"})) as client:
        assert client.get("/apps/a").status_code == 404  # lenient by default
    with client_answering(json_answer(404, {"message": "gone"}), strict_errors=True) as client:
        with pytest.raises(AssertionError):
            client.get("/apps/a")
    with client_answering(json_answer(404, "gone")) as client, pytest.raises(AssertionError):
        client.get("/apps/a")
    status = {"error": "x", "status": "name_taken"}
    with client_answering(json_answer(422, status), strict_errors=True) as client:
        assert client.post("/apps", json={"name": "a", "org_slug": "b"}).status_code == 422
    wrong = {"error": "x", "status": "no_such_code"}
    with client_answering(json_answer(412, wrong), strict_errors=True) as client:
        with pytest.raises(AssertionError):
            client.post("/apps/a/machines", json={"config": {"image": "x"}})


def test_unknown_operation_fails() -> None:
    with client_answering(json_answer(200, {})) as client, pytest.raises(AssertionError):
        client.get("/apps/a/bananas")


def test_null_deletes_are_accepted() -> None:
    with client_answering(lambda r: httpx.Response(204)) as client:
        client.patch("/apps/a/machines/m/metadata", json={"metadata": {"k": None}})
