"""Frozen dataclasses <-> JSON-safe dicts, by their type hints: one codec for every domain's events, snapshots and
read models, so a domain declares its messages once and never writes (de)serialisation by hand.

Supported field types: str, int, bool, Decimal (stored as a string, never a float), `X | None`, `Literal[...]`,
`tuple[X, ...]`, `frozenset[X]` (stored sorted), `dict[str, X]` and nested frozen dataclasses. Reading checks every
value against its declared type and raises UnreadableEvent (the account's poison-event error) on anything else.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from lab.engine.upcasting import UnreadableEvent


def to_dict(obj: Any) -> dict[str, Any]:
    """A frozen dataclass as a JSON-safe dict (field name -> value)."""
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        raise TypeError(f"{obj!r} is not a dataclass instance")
    hints = _hints(type(obj))
    return {f.name: _dump(getattr(obj, f.name), hints[f.name]) for f in dataclasses.fields(obj)}


def from_dict(cls: type[Any], data: object) -> Any:
    """The `cls` instance a dict written by to_dict means; UnreadableEvent if it does not fit the fields."""
    if not isinstance(data, Mapping):
        raise UnreadableEvent(f"{cls.__name__} must be an object, not {type(data).__name__}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = set(data) - set(names)
    if unknown:
        raise UnreadableEvent(f"{cls.__name__} has no field {sorted(unknown)[0]!r}")
    values = {}
    for name in names:
        if name not in data:
            raise UnreadableEvent(f"{cls.__name__} is missing {name!r}")
        values[name] = _load(data[name], hints[name], f"{cls.__name__}.{name}")
    return cls(**values)


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    """The resolved field types of a dataclass (its annotations are strings, under `from __future__`), once."""
    found = _HINTS.get(cls)
    if found is None:
        found = _HINTS[cls] = typing.get_type_hints(cls)
    return found


def _dump(value: Any, hint: Any) -> Any:
    args = typing.get_args(hint)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if dataclasses.is_dataclass(value):
        return {"type": type(value).__name__, **to_dict(value)} if len(_choices(hint)) > 1 else to_dict(value)
    if isinstance(value, tuple):
        return [_dump(item, args[0]) for item in value]
    if isinstance(value, frozenset):
        return sorted(_dump(item, args[0]) for item in value)
    if isinstance(value, dict):
        return {str(key): _dump(item, args[1]) for key, item in value.items()}
    raise TypeError(f"cannot store {value!r} as {hint!r}")


def _load(value: object, hint: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        choices = _choices(hint)
        if len(choices) > 1:  # a union of dataclasses: the dict names its type
            fields = dict(value) if isinstance(value, dict) else {}
            chosen = {cls.__name__: cls for cls in choices}.get(str(fields.pop("type", None)))
            if chosen is None:
                raise UnreadableEvent(f"{where} must name one of {sorted(c.__name__ for c in choices)}")
            return from_dict(chosen, fields)
        return _load(value, next(a for a in args if a is not type(None)), where)
    if origin is typing.Literal:
        if value not in args:
            raise UnreadableEvent(f"{where} must be one of {list(args)}, not {value!r}")
        return value
    if origin is tuple:
        return tuple(_load(item, args[0], where) for item in _list(value, where))
    if origin is frozenset:
        return frozenset(_load(item, args[0], where) for item in _list(value, where))
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
            raise UnreadableEvent(f"{where} must be an object with text keys")
        return {key: _load(item, args[1], where) for key, item in value.items()}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_dict(hint, value)
    return _scalar(value, hint, where)


def _choices(hint: Any) -> list[type[Any]]:
    """The dataclasses a `A | B | None` hint allows (none for other hints)."""
    if typing.get_origin(hint) not in (typing.Union, types.UnionType):
        return []
    return [arg for arg in typing.get_args(hint) if isinstance(arg, type) and dataclasses.is_dataclass(arg)]


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise UnreadableEvent(f"{where} must be a list, not {value!r}")
    return value


def _scalar(value: object, hint: Any, where: str) -> Any:
    if hint is Decimal:
        # Strings only: a JSON float has already lost the cents it was meant to carry.
        try:
            amount = Decimal(value) if isinstance(value, str) else None
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite():
            raise UnreadableEvent(f"{where} must be a decimal string, not {value!r}")
        return amount
    if hint in (str, int, bool) and type(value) is hint:
        return value
    raise UnreadableEvent(f"{where} must be {getattr(hint, '__name__', hint)}, not {value!r}")
