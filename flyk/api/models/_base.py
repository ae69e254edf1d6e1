"""The generic wire mapping every model shares: `Model.from_api` / `to_api` and field helpers."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Self

# -- the generic wire mapping ---------------------------------------------------------------

_ONE, _LIST, _MAP = "one", "list", "map"


def go_duration(seconds: float) -> str:
    """A Go duration string: 10 → "10s", 0.5 → "500ms", 1.25 → "1.25s"."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    millis = seconds * 1000
    if millis == int(millis):
        return f"{int(millis)}ms"
    return f"{seconds}s"


def _duration_in(value: Any) -> Any:
    """Durations arrive as strings, or (docs, fly-go) as integer nanoseconds (§12.5)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return go_duration(value / 1e9)
    return value


def _wire(model: type[Model], shape: str = _ONE) -> dict[str, Any]:
    """Field metadata: the field holds a model, a list of models or a name → model map."""
    return {"model": model, "shape": shape}


def _duration() -> Any:
    return field(default=None, metadata={"decode": _duration_in})


def _strings() -> Any:
    return field(default=())


def _mapping() -> Any:
    return field(default_factory=dict)


def _extra() -> Any:
    return field(default_factory=dict, repr=False)


class Model:
    """Base of every model: the generic, lenient `from_api` and the merging `to_api`."""

    # Wire keys that differ from the field name (none yet need it but the hook is cheap).
    _wire_names: ClassVar[Mapping[str, str]] = {}
    extra: Mapping[str, Any]

    if TYPE_CHECKING:  # every subclass is a dataclass with its own keyword __init__

        def __init__(self, **fields: Any) -> None: ...

    @classmethod
    def from_api(cls, data: Mapping[str, Any] | None) -> Self:
        data = data if isinstance(data, Mapping) else {}
        known: dict[str, Any] = {}
        used: set[str] = set()
        for spec in fields(cls):  # type: ignore[arg-type]
            if spec.name == "extra":
                continue
            key = cls._wire_names.get(spec.name, spec.name)
            value = data.get(key)
            # An empty list or map the API sent stays in `extra`, so that it goes back as
            # sent (`handlers: []` is not the same as no handlers key to every server).
            if value is None or _is_unset(value):
                continue
            decoded = _decode(spec.metadata, value)
            if not _fits(spec, decoded):
                continue  # a value of the wrong type stays in `extra`, as sent (see _fits)
            used.add(key)
            known[spec.name] = decoded
        extra = {key: copy.deepcopy(value) for key, value in data.items() if key not in used}
        return cls(**known, extra=extra)

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = copy.deepcopy(dict(self.extra))
        for spec in fields(self):  # type: ignore[arg-type]
            if spec.name == "extra":
                continue
            value = getattr(self, spec.name)
            if _is_unset(value):
                continue
            out[self._wire_names.get(spec.name, spec.name)] = _encode(value)
        return out


def _fits(spec: Field[Any], value: Any) -> bool:
    """Whether `value` has the type the field declares, judged from its annotation.

    A server may hold a value of another type (an old or lenient backend, a hand-edited
    store): reading it must not crash later code that trusts the type (`" ".join(cmd)` on
    an int), so the value is kept in `extra` instead, where it survives a write-back.
    Required fields (no default) are not checked: the model cannot be built without them.
    """
    if spec.default is MISSING and spec.default_factory is MISSING:
        return True
    kind = str(spec.type).removesuffix(" | None")
    if spec.metadata.get("model") is not None:
        return value is not None  # see _decode
    check = _CHECKS.get(kind)
    if check is not None:
        return check(value)
    if kind.startswith("Mapping["):
        return isinstance(value, Mapping)
    if kind.startswith("Sequence["):
        return isinstance(value, list | tuple)
    return True


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_CHECKS: dict[str, Callable[[Any], bool]] = {
    "str": lambda value: isinstance(value, str),
    "bool": lambda value: isinstance(value, bool),
    "int": _is_int,
    "float": lambda value: _is_int(value) or isinstance(value, float),
    "Sequence[str]": lambda value: (
        isinstance(value, list | tuple) and all(isinstance(item, str) for item in value)
    ),
    "Mapping[str, str]": lambda value: (
        isinstance(value, Mapping) and all(isinstance(item, str) for item in value.values())
    ),
}


def _is_unset(value: Any) -> bool:
    """None and empty collections are left out of request bodies; "" and False are sent."""
    return value is None or (isinstance(value, list | tuple | Mapping) and not value)


def _decode(metadata: Mapping[str, Any], value: Any) -> Any:
    decoder: Callable[[Any], Any] | None = metadata.get("decode")
    if decoder is not None:
        return decoder(value)
    model: type[Model] | None = metadata.get("model")
    if model is None:
        if isinstance(value, list):
            return tuple(value)
        return value
    shape = metadata["shape"]
    # A collection holding anything but objects is not decoded (None): it stays in `extra`.
    if shape == _LIST:
        if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
            return None
        return tuple(model.from_api(item) for item in value)
    if shape == _MAP:
        if not isinstance(value, Mapping) or not all(
            isinstance(item, Mapping) for item in value.values()
        ):
            return None
        return {name: model.from_api(item) for name, item in value.items()}
    return model.from_api(value) if isinstance(value, Mapping) else None


def _encode(value: Any) -> Any:
    if isinstance(value, Model):
        return value.to_api()
    if isinstance(value, Mapping):
        return {key: _encode(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(item) for item in value]
    return value
