"""docs/local-backend.md lists every operation of the spec and says truly which are served."""

from __future__ import annotations

import re
from pathlib import Path

from flyk.local.routes import HANDLERS, SPEC_OPERATIONS
from tests.spec_check import load_spec

DOC = Path(__file__).resolve().parents[2] / "docs" / "local-backend.md"
METHODS = ("get", "post", "put", "patch", "delete")


def spec_operations() -> list[tuple[str, str, str]]:
    spec = load_spec()
    return [
        (method.upper(), path, entry["operationId"])
        for path, entries in spec["paths"].items()
        for method, entry in entries.items()
        if method in METHODS
    ]


def expected_table() -> str:
    rows = ["| method | path | operation | served |", "|---|---|---|---|"]
    for method, path, op in spec_operations():
        served = "yes" if op in HANDLERS else "no (501)"
        rows.append(f"| {method} | `{path}` | `{op}` | {served} |")
    return "\n".join(rows)


def test_the_route_table_is_the_spec() -> None:
    assert list(SPEC_OPERATIONS) == spec_operations()
    assert len(SPEC_OPERATIONS) == 76
    assert set(HANDLERS) <= {op for _, _, op in SPEC_OPERATIONS}


def test_the_docs_list_every_operation() -> None:
    text = DOC.read_text()
    found = re.search(r"<!-- operations:start -->\n(.*?)\n+<!-- operations:end -->", text, re.S)
    assert found, "docs/local-backend.md lost its operations markers"
    assert found.group(1).strip() == expected_table(), (
        "docs/local-backend.md's operations table is stale; replace it with:\n" + expected_table()
    )


def test_the_docs_name_every_simulation_knob() -> None:
    text = DOC.read_text()
    source = (Path(__file__).resolve().parents[2] / "flyk" / "local" / "lifecycle.py").read_text()
    for name in sorted(set(re.findall(r"FLYK_SIM_[A-Z_]+", source))):
        assert name in text, f"{name} is not documented"
    for word in ("FLYK_LOCAL_DB", "Timing.instant()", "Timing.realistic()", "/_flyk/", "0600"):
        assert word in text


def test_the_docs_list_every_admin_route(tmp_path: Path) -> None:
    from flyk.local import LocalBackend
    from flyk.local.admin import AdminApi

    text = DOC.read_text()
    for method, path in AdminApi(LocalBackend(tmp_path / "db")).routes():
        documented = [line for line in text.splitlines() if f"`{method}" in line or method in line]
        assert any(path in line for line in documented), f"{method} {path} is not documented"
