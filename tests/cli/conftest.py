"""Fixtures for CLI tests (the helpers themselves live in tests/cli/helpers.py)."""

from __future__ import annotations

import pytest

from tests.cli.helpers import Flyk, invoke


@pytest.fixture
def flyk() -> Flyk:
    return invoke
