"""Fixtures of the client tests; the helpers themselves live in `helpers.py`."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from flyk.api import FlyClient

from .helpers import FakeClock, Script, make_client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def client(script: Script, clock: FakeClock) -> Iterable[FlyClient]:
    with make_client(script, clock) as fly:
        yield fly
