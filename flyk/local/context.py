"""What a handler receives (`Ctx`) and returns (`Reply`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flyk.local.errors import bad_request
from flyk.local.knobs import Capacity, Timing
from flyk.local.store import Store
from flyk.local.validate import MAX_INT, parse_json_object

if TYPE_CHECKING:
    from flyk.local.runtime import Runtime

__all__ = ["Ctx", "Reply", "Settings"]


@dataclass
class Settings:
    """The parts of a backend a handler may read: its knobs, clock and known defaults."""

    store: Store
    timing: Callable[[], Timing]
    capacity: Capacity
    clock: Callable[[], float]  # unix seconds
    strict: Callable[[], bool] = lambda: False  # refuse unknown request fields
    # Machines run for real (runtime.py), when the backend was given a launcher.
    runtime: Runtime | None = None


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-serialisable; None: an empty body
    headers: dict[str, str] = field(default_factory=dict)
    text: str | None = None  # a text/plain body instead of JSON


def ok() -> Reply:
    return Reply(200, {"ok": True})


_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}


@dataclass
class Ctx:
    method: str
    path: str  # after /v1
    params: dict[str, str]
    query: list[tuple[str, str]]
    headers: Mapping[str, str]  # lower-case names
    raw_body: bytes
    settings: Settings
    now_ms: int
    conn: sqlite3.Connection | None = None  # the request's transaction, unless the route owns it
    _json: dict[str, Any] | None = None

    @property
    def db(self) -> sqlite3.Connection:
        assert self.conn is not None, "this route manages its own transactions"
        return self.conn

    @property
    def timing(self) -> Timing:
        return self.settings.timing()

    def json(self) -> dict[str, Any]:
        if self._json is None:
            self._json = parse_json_object(self.raw_body)
        return self._json

    def q(self, name: str) -> str | None:
        for key, value in self.query:
            if key == name:
                return value
        return None

    def q_all(self, name: str) -> list[str]:
        """Every value of a repeated or comma-separated parameter."""
        values: list[str] = []
        for key, value in self.query:
            if key == name:
                values.extend(v.strip() for v in value.split(",") if v.strip())
        return values

    def q_bool(self, name: str, default: bool = False) -> bool:
        value = self.q(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise bad_request(f"invalid query parameter {name}={value!r}: expected true or false")

    def q_int(self, name: str) -> int | None:
        value = self.q(name)
        if value is None or value == "":
            return None
        try:
            number = int(value)
        except ValueError:
            raise bad_request(
                f"invalid query parameter {name}={value!r}: expected an integer"
            ) from None
        if abs(number) > MAX_INT:
            raise bad_request(f"invalid query parameter {name}={value!r}: out of range")
        return number

    def nonce(self) -> str | None:
        return self.headers.get("fly-machine-lease-nonce") or None
