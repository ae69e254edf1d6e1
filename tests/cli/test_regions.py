"""`flyk regions list` against the embedded local backend."""

from __future__ import annotations

import json

from tests.cli.helpers import Flyk


def test_list_table_and_json(flyk: Flyk) -> None:
    table = flyk("--local", "regions", "list")
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["CODE", "NAME", "GATEWAY", "PAID", "ONLY", "CAPACITY"]
    codes = [line.split()[0] for line in lines[1:]]
    assert codes == sorted(codes) and "iad" in codes
    assert table.stderr.startswith("Nearest region: ")

    regions = json.loads(flyk("--local", "regions", "list", "--json").stdout)
    assert [r["code"] for r in regions] == codes
    assert set(regions[0]) == {
        "code", "name", "gateway_available", "requires_paid_plan", "capacity", "deprecated"
    }  # fmt: skip


def test_capacity_states_its_unit(flyk: Flyk) -> None:
    from flyk.cli.views import REGION

    assert "shared-cpu-1x machines" in flyk("regions", "list", "--help").stdout
    capacity = next(f for f in REGION.fields if f.key == "capacity")
    assert "shared-cpu-1x machines" in capacity.doc
