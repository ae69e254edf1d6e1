"""The generic wire mapping every model shares: `Model.from_api` / `to_api` and field helpers."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import field, fields
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
            used.add(key)
            known[spec.name] = _decode(spec.metadata, value)
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
    if shape == _LIST:
        return tuple(model.from_api(item) for item in value if isinstance(item, Mapping))
    if shape == _MAP:
        if not isinstance(value, Mapping):
            return {}
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
