"""Typed, range-checked settings: one validator for every config group (pydantic over plain dataclasses).

A settings class is a standard dataclass whose field types say what is allowed: `Literal[...]` for choices,
`Annotated[int, Field(ge=1)]` for ranges, `X | None` where null is allowed. `validate(cls, values, "trainer")`
builds it from a config mapping, rejecting unknown keys, and raises one `SettingsError` that names every bad
full key, its value and what is allowed, e.g.

    trainer.lr='abc': input should be a valid number (a float > 0)

`__post_init__` of the dataclass still checks combinations of fields (raising ValueError, reported the same
way). Direct construction (`TrainerSettings(lr=...)`) runs `__post_init__` only, as for any dataclass.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import ConfigDict, TypeAdapter, ValidationError

T = TypeVar("T")


class SettingsError(ValueError):
    """A config value that cannot run; the message names the full key, the value and what is allowed."""


@functools.cache
def _adapter(cls: type) -> TypeAdapter:
    if "__pydantic_config__" not in vars(cls):  # settings reject unknown keys unless a class says otherwise
        cls.__pydantic_config__ = ConfigDict(extra="forbid")
    return TypeAdapter(cls)


def allowed_text(cls: type, name: str) -> str:
    """What a field allows, from its type: `'prefix' or 'infix'`, `an integer >= 1 or null`, ..."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return _describe(hints[name]) if name in hints else "a known field"


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        base, *metadata = args
        bounds = []
        for meta in metadata:
            for attr in getattr(meta, "metadata", [meta]):
                for key, symbol in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
                    if getattr(attr, key, None) is not None:
                        bounds.append(f"{symbol} {getattr(attr, key)}")
        text = _describe(base)
        return f"{text} {' and '.join(bounds)}" if bounds else text
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        parts = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin in (list, tuple):
        return f"a list of {_describe(args[0])}" if args else "a list"
    if origin is dict:
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def validate(cls: type[T], values: Mapping[str, Any], key: str) -> T:
    """Build the settings dataclass `cls` from `values` (the config group at `key`), or raise SettingsError."""
    try:
        return _adapter(cls).validate_python(dict(values))
    except ValidationError as error:
        lines = []
        for item in error.errors():
            loc = [str(part) for part in item["loc"]]
            if item["type"] == "unexpected_keyword_argument":
                known = ", ".join(f.name for f in dataclasses.fields(cls))
                lines.append(f"{'.'.join([key, *loc])} is not a known key; known keys of {key}: {known}")
                continue
            if not loc:  # __post_init__ (a combination of fields)
                lines.append(f"{key}: {str(item['msg']).removeprefix('Value error, ')}")
                continue
            field = loc[0]
            value = values.get(field, item.get("input"))
            message = str(item["msg"])
            message = message[:1].lower() + message[1:]
            lines.append(
                f"{'.'.join([key, *loc])}={value!r}: {message} (allowed: {allowed_text(cls, field)})"
            )
        raise SettingsError("; ".join(lines)) from None
