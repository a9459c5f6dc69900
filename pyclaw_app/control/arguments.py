"""Check a control-API call's JSON arguments against the plane method's own signature.

The caller is a remote program, so every argument is checked before the method runs: a
wrong name, a missing one, a wrong type, a number SQLite cannot hold, text that is not
valid Unicode (a lone surrogate cannot be stored or written) or nesting deeper than any
form needs is refused with a reason, instead of failing somewhere inside the gateway. The
rules come from the method's type hints, so a new method is checked without a table.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_DEPTH", "ArgumentError", "Signature"]

MAX_DEPTH = 32
_INT64 = 2**63


class ArgumentError(ValueError):
    """Arguments a caller sent that the method cannot take; the message says which and why."""


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if origin is list:
        return "a list"
    if origin is dict or hint is dict:
        return "an object"
    return {type(None): "null", bool: "a boolean", int: "an integer", float: "a number",
            str: "a string"}.get(hint, "anything")


def _supported(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType, list, dict):
        return all(_supported(a) for a in typing.get_args(hint))
    return hint is Any or hint in (type(None), bool, int, float, str, dict)


def _check_shape(value: Any, hint: Any, where: str) -> None:
    """Raise ArgumentError unless ``value`` (decoded JSON) has the shape ``hint`` says."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                _check_shape(value, option, where)
            except ArgumentError:
                continue
            return
        raise ArgumentError(f"{where}: expected {_describe(hint)}, got {_kind(value)}")
    if origin is list:
        if not isinstance(value, list):
            raise ArgumentError(f"{where}: expected a list, got {_kind(value)}")
        (item,) = typing.get_args(hint) or (Any,)
        for index, element in enumerate(value):
            _check_shape(element, item, f"{where}[{index}]")
        return
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ArgumentError(f"{where}: expected an object, got {_kind(value)}")
        return
    expected = {type(None): value is None, bool: isinstance(value, bool),
                int: isinstance(value, int) and not isinstance(value, bool),
                float: isinstance(value, int | float) and not isinstance(value, bool),
                str: isinstance(value, str)}[hint]  # Signature admits only these
    if not expected:
        raise ArgumentError(f"{where}: expected {_describe(hint)}, got {_kind(value)}")


def _check_plain(value: Any, where: str, depth: int) -> None:
    """What any JSON value must be to reach the gateway: storable numbers and text, bounded
    nesting."""
    if depth > MAX_DEPTH:
        raise ArgumentError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ArgumentError(f"{where}: text is not valid Unicode "
                                "(it holds a lone surrogate)") from None
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise ArgumentError(f"{where}: the number is out of range")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ArgumentError(f"{where}: the number must be finite")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_plain(item, f"{where}[{index}]", depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_plain(key, where, depth + 1)
            _check_plain(item, f"{where}.{key}", depth + 1)


class Signature:
    """A method's parameters and hints, read once; ``check`` validates one call's kwargs."""

    def __init__(self, method: Callable[..., Any]) -> None:
        self.name = method.__name__
        params = inspect.signature(method).parameters
        hints = typing.get_type_hints(method)
        self.params = {n: p for n, p in params.items()
                       if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        self.hints = {n: hints.get(n, Any) for n in self.params}
        for name, hint in self.hints.items():  # an unsupported hint fails at start, not later
            if not _supported(hint):
                raise TypeError(f"{self.name}({name}): cannot check {hint!r}")

    def check(self, kwargs: dict[str, Any]) -> None:
        unknown = sorted(set(kwargs) - set(self.params))
        if unknown:
            takes = ", ".join(self.params) or "no arguments"
            raise ArgumentError(f"{self.name} has no argument {unknown[0]!r} (it takes {takes})")
        missing = [n for n, p in self.params.items()
                   if p.default is inspect.Parameter.empty and n not in kwargs]
        if missing:
            raise ArgumentError(f"{self.name} needs the argument {missing[0]!r}")
        for name, value in kwargs.items():
            _check_plain(value, name, 0)
            _check_shape(value, self.hints[name], name)

