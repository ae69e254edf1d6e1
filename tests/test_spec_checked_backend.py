"""The suites outside tests/api and tests/local (CLI, k8s, kubelet) talk to a spec-checked
local backend without asking for it (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from flyk.local import LocalBackend, Timing
from tests.spec_check import SpecCheckingTransport


def test_the_backend_transport_is_spec_checked(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "local.db", Timing.instant())
    transport = backend.transport()
    assert isinstance(transport, SpecCheckingTransport)
    with httpx.Client(transport=transport, base_url="http://local/v1") as client:
        body = {"name": "demo", "org_slug": "personal"}
        assert client.post("/apps", json=body).status_code == 201
        # a field the spec does not know fails the test that sent it, whatever the backend says
        with pytest.raises(AssertionError, match="Apps_create"):
            client.post("/apps", json={**body, "colour": "red"})
    assert transport.checked == ["Apps_create"]
