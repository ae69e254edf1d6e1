"""What every resource (apps, machines, …) shares: the core and a few decoding helpers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flyk.api._http import HttpCore
from flyk.api._retry import backoff
from flyk.errors import FlykError


class Resource:
    def __init__(self, core: HttpCore) -> None:
        self._core = core


def as_list(data: Any, *keys: str) -> list[Mapping[str, Any]]:
    """The items of a list response: a bare array, or the array under one of `keys`."""
    if isinstance(data, Mapping):
        lowered = {str(k).lower(): v for k, v in data.items()}
        data = next((lowered[k] for k in keys if k in lowered), None)
    if data is None:
        return []
    if not isinstance(data, list):
        raise FlykError(f"the API answered with {type(data).__name__} where a list was expected")
    return [item for item in data if isinstance(item, Mapping)]


def as_mapping(data: Any) -> Mapping[str, Any]:
    return data if isinstance(data, Mapping) else {}


def secrets_version(data: Any) -> int:
    """The secrets version of a secrets write: `version`, or `Version` (the spec has both)."""
    body = as_mapping(data)
    for key in ("version", "Version"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    raise FlykError("the API did not say which secrets version it stored")


def pause(core: HttpCore, attempt: int, deadline: float, *, maximum: float = 2.0) -> bool:
    """Sleep the backoff for retry `attempt` if that stays before `deadline`; else False.

    Used by loops that retry on a condition the send loop cannot see (a 404 that means "not
    visible yet", an ambiguous create); never a fixed sleep.
    """
    policy = core.retry
    delay = backoff(attempt, policy.rng, initial=policy.initial_delay, maximum=maximum)
    if policy.clock() + delay >= deadline:
        return False
    policy.sleep(delay)
    return True
