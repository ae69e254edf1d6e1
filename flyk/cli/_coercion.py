"""Pydantic-free value conversion for Typer parameters of plain types (see lazy.fast_coercion).

This reaches into Typer's runtime-param layer (``typer._coercion``), which exists from Typer
0.26; the import fails on other versions and the caller then leaves Typer alone.
"""

from __future__ import annotations

import enum
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

from typer import BadParameter
from typer._click import Context, Parameter
from typer._coercion import RuntimeParam
from typer.core import TyperArgument

_PLAIN: dict[type, str] = {str: "text", int: "integer", float: "number", bool: "boolean"}
_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off", ""}


def _plain_type(annotation: Any) -> type | None:
    """``str``, ``int``, ``float``, ``bool`` or a string enum (also optional, or in a list),
    else None."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _plain_type(members[0]) if len(members) == 1 else None
    if origin is list:
        (item,) = typing.get_args(annotation) or (None,)
        return _plain_type(item)
    if isinstance(annotation, type) and issubclass(annotation, enum.StrEnum):
        return annotation
    return annotation if annotation in _PLAIN else None


@dataclass(frozen=True)
class PlainRuntimeParam(RuntimeParam):
    """Converts as Typer's Pydantic adapter would, with one-line messages of flyk's own
    ("'maybe' is not one of no, always, on-failure.", not "Value error, 'maybe' is not…")."""

    plain: type = str
    minimum: float | None = None
    maximum: float | None = None

    def _coerce_value(self, value: Any, param: Any, ctx: Context) -> Any:
        if isinstance(value, list | tuple):
            return [self._one(item, param, ctx) for item in value]
        return self._one(value, param, ctx)

    def _one(self, value: Any, param: Any, ctx: Context) -> Any:
        if self.plain is bool:
            return self._bool(value, param, ctx)
        if issubclass(self.plain, enum.StrEnum):
            return self._choice(value, param, ctx)
        if isinstance(value, self.plain) and not isinstance(value, bool):
            return self._in_range(value, param, ctx)
        try:
            converted = typing.cast(Any, self.plain)(value)  # int, float or str
        except (TypeError, ValueError):
            raise BadParameter(
                f"{value!r} is not a valid {_PLAIN[self.plain]}.", ctx=ctx, param=param
            ) from None
        return self._in_range(converted, param, ctx)

    def _choice(self, value: Any, param: Any, ctx: Context) -> Any:
        try:
            return self.plain(value)
        except ValueError:
            choices = ", ".join(str(member.value) for member in self.plain)  # type: ignore[attr-defined]
            raise BadParameter(
                f"{value!r} is not one of {choices}.", ctx=ctx, param=param
            ) from None

    def _in_range(self, value: Any, param: Any, ctx: Context) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            # float() reads "inf" and "nan": neither is a number of seconds (inf overflowed
            # in the wait, nan compares false to every bound)
            raise BadParameter(f"{value!r} is not a finite number.", ctx=ctx, param=param)
        low, high = self.minimum, self.maximum
        if (low is None or value >= low) and (high is None or value <= high):
            return value
        if low is not None and high is not None:
            problem = f"is not between {low:g} and {high:g}"
        elif low is not None:
            problem = f"is below the minimum, {low:g}"
        else:
            problem = f"is above the maximum, {high:g}"
        raise BadParameter(f"{value:g} {problem}.", ctx=ctx, param=param)

    def _bool(self, value: Any, param: Any, ctx: Context) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise BadParameter(f"{value!r} is not a valid boolean.", ctx=ctx, param=param)


def install(param: Parameter) -> None:
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or getattr(param, "_runtime_param", "absent") is not None:
        return  # not a Typer parameter, or its converter is already built
    info = descriptor.parameter_info
    plain = _plain_type(descriptor.annotation)
    if plain is None or getattr(info, "clamp", False):
        return
    param._runtime_param = PlainRuntimeParam(  # type: ignore[attr-defined]
        parameter_info=info,
        annotation=descriptor.annotation,
        plain=plain,
        minimum=getattr(info, "min", None),
        maximum=getattr(info, "max", None),
    )


HELP_OPTION_NAMES = ("-h", "--help")


def install_help_option(command: Any) -> None:
    """Build the command's help option now, with a converter from here.

    Click builds it on first use and caches it in ``_help_option``; built that way it would
    get Typer's Pydantic converter, and every command line has a help option.
    """
    from typer._click.decorators import help_option

    if getattr(command, "_help_option", "absent") is not None or not command.add_help_option:
        return
    taken = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
    names = [name for name in HELP_OPTION_NAMES if name not in taken]
    if not names:
        return
    help_option(names)(command)
    option = command.params.pop()
    install(option)
    command._help_option = option


class PlainArgument(TyperArgument):
    """An argument shown as Click shows one: ``NAME``, ``[NAME]``, ``NAME...``.

    Typer 0.29 writes a required argument ``{NAME}`` in the usage line and adds its Python
    type to the help (``NAME <str>``, ``COMMAND <list[str]>``), metavar or not.
    """

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return f"{name}..." if self.nargs != 1 else name

    def _rich_display_name(self) -> str:
        return f"{self.display_name_raw}..." if self.nargs != 1 else self.display_name_raw

    def display_type_rich(self, ctx: Context) -> str | None:
        return None if self.metavar is not None else super().display_type_rich(ctx)


def plain_argument(param: Parameter) -> None:
    """Show a Typer argument that has a metavar the way Click would (see PlainArgument)."""
    if type(param) is TyperArgument and param.metavar is not None:
        param.__class__ = PlainArgument
