"""Constraint checks derived from botocore's service models, not copied from the docs by hand.

botocore ships the models AWS's own SDKs are generated from: every member's type, whether it is
required, its range, length, pattern (matched whole) and enum. `problems` walks a decoded JSON
request against a shape and lists every broken constraint in the words AWS's (Coral) services
answer with — `Value '0' at 'batchSize' failed to satisfy constraint: Member must have value
greater than or equal to 1` — and `message` joins them as AWS does (`2 validation errors detected:
...; ...`). Members the model does not know are ignored, as AWS ignores them. Each API turns the
message into its service's own ValidationException; semantic rules (which members go together,
what a source allows) stay with the API modules.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from datetime import datetime
from typing import Any

from botocore.model import ServiceModel, Shape

from lambdalet.errors import ValidationException

#: Enums whose values AWS lists in another order than the model's (as recorded against AWS).
ENUM_ORDER = {"EventSourcePosition": ("LATEST", "AT_TIMESTAMP", "TRIM_HORIZON"),
              "RecursiveLoop": ("Terminate", "Allow")}  # as recorded (test_recursion_config*)


@functools.cache
def service_model(name: str) -> ServiceModel:
    import botocore.session

    return botocore.session.get_session().get_service_model(name)


#: Java's Unicode classes, which Python's `re` lacks (tag keys and values: `[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*`):
#: each stands for one private-use character that a value's letters, separators and numbers are
#: mapped to before matching (only for patterns that use them).
_UNICODE_CLASSES = {"L": "\ue000", "Z": "\ue001", "N": "\ue002"}


class _UnicodePattern:
    """A pattern with `\\p{L}`, `\\p{Z}` or `\\p{N}`, matched as Java matches it."""

    def __init__(self, pattern: str) -> None:
        for name, stand_in in _UNICODE_CLASSES.items():
            pattern = pattern.replace(f"\\p{{{name}}}", stand_in)
        self._compiled = re.compile(pattern)

    def fullmatch(self, value: str) -> re.Match[str] | None:
        return self._compiled.fullmatch("".join(_UNICODE_CLASSES.get(unicodedata.category(c)[0], c) for c in value))


@functools.cache
def _pattern(pattern: str) -> re.Pattern[str] | _UnicodePattern:
    if "\\p{" in pattern:
        return _UnicodePattern(pattern)
    return re.compile(pattern)


def _render(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_render(v)}" for k, v in value.items()) + "}"
    return str(value)


def problem(value: Any, path: str, constraint: str) -> str:
    return said(value, path, f"Member must {constraint}")


def said(value: Any, path: str, constraint: str, *, sensitive: bool = False) -> str:
    """One broken constraint in Coral's words; a sensitive member's value is not shown (`Value at 'x'`)."""
    shown = "" if sensitive else " null" if value is None else f" '{_render(value)}'"
    return f"Value{shown} at '{path}' failed to satisfy constraint: {constraint}"


def message(found: list[str]) -> str:
    return f"{len(found)} validation error{'s' if len(found) > 1 else ''} detected: " + "; ".join(found)


def _join(path: str, name: str) -> str:
    member = name[:1].lower() + name[1:]
    return f"{path}.{member}" if path else member


def timestamp(value: Any, path: str) -> float:
    """A timestamp member: epoch seconds (what botocore sends in JSON bodies) or ISO 8601.
    Raises ValueError with AWS's message (each API raises it as its ValidationException)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise ValueError(message([problem(value, path, "be a timestamp")]))


def problems(shape: Shape, value: Any, path: str) -> list[str]:
    """Every constraint of `shape` that `value` breaks (members bound to the URI, query or headers
    are checked where they are parsed)."""
    found: list[str] = []
    _check(shape, value, path, found)
    return found


def _check(shape: Shape, value: Any, path: str, found: list[str]) -> None:
    kind, meta = shape.type_name, shape.metadata

    def broken(constraint: str) -> None:
        found.append(problem(value, path, constraint))

    if kind == "structure":
        if not isinstance(value, dict):
            return broken("be a structure")
        for name, member in shape.members.items():  # type: ignore[attr-defined]
            if member.serialization.get("location") is not None:
                continue
            if value.get(name) is not None:
                _check(member, value[name], _join(path, name), found)
            elif name in meta.get("required", ()):
                found.append(problem(None, _join(path, name), "not be null"))
    elif kind == "list":
        if not isinstance(value, list):
            return broken("be a list")
        _size(len(value), meta, broken)
        for index, item in enumerate(value, 1):
            _check(shape.member, item, f"{path}.{index}.member", found)  # type: ignore[attr-defined]
    elif kind == "map":
        if not isinstance(value, dict):
            return broken("be a map")
        _size(len(value), meta, broken)
    elif kind == "string":
        if not isinstance(value, str):
            return broken("be a string")
        found.extend(string_problems(shape, value, path))
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            return broken("be an integer")
        if "min" in meta and value < meta["min"]:
            broken(f"have value greater than or equal to {meta['min']}")
        elif "max" in meta and value > meta["max"]:
            broken(f"have value less than or equal to {meta['max']}")
    elif kind == "timestamp":
        if not isinstance(value, (int, float, str)) or isinstance(value, bool):
            broken("be a timestamp")
    elif kind == "boolean" and not isinstance(value, bool):
        broken("be a boolean")


def string_problems(shape: Shape, value: str, path: str) -> list[str]:
    """A string's length, enum and pattern (also for path and query parameters)."""
    meta = shape.metadata
    found: list[str] = []
    _size(len(value), meta, lambda constraint: found.append(problem(value, path, constraint)))
    if found:
        return found
    enum = ENUM_ORDER.get(shape.name) or getattr(shape, "enum", None)
    if enum and value not in enum:
        return [problem(value, path, f"satisfy enum value set: [{', '.join(enum)}]")]
    if "pattern" in meta and not _pattern(meta["pattern"]).fullmatch(value):
        return [problem(value, path, f"satisfy regular expression pattern: {meta['pattern']}")]
    return []


def _size(size: int, meta: dict, broken: Any) -> None:
    if "min" in meta and size < meta["min"]:
        broken(f"have length greater than or equal to {meta['min']}")
    elif "max" in meta and size > meta["max"]:
        broken(f"have length less than or equal to {meta['max']}")


def input_shape(service: str, operation: str) -> Shape:
    shape = service_model(service).operation_model(operation).input_shape
    assert shape is not None
    return shape


def member(service: str, operation: str, name: str) -> Shape:
    """One member shape of an operation's input (for path and query parameters)."""
    return input_shape(service, operation).members[name]  # type: ignore[attr-defined]


def check_input(operation: str, body: dict[str, Any]) -> None:
    """A Lambda request body against its operation's input shape: Lambda's ValidationException
    listing every broken constraint."""
    found = problems(input_shape("lambda", operation), body, "")
    if found:
        raise ValidationException(message(found))
