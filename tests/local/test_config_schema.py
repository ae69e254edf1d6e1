"""The machine-config types embedded in the backend are the spec's own."""

from __future__ import annotations

import json

from flyk.local.config_schema import SCHEMAS, derive
from tests.spec_check import SPEC_PATH


def test_embedded_schemas_match_the_spec() -> None:
    spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    assert derive(spec) == SCHEMAS, "regenerate with `python -m flyk.local.config_schema SPEC`"
