"""Request validation derived from botocore's service models, not copied from the docs by hand.

`check(model, shape, value, path)` walks a decoded JSON request against an input shape: required
members, types, lengths, patterns (matched whole), enums and ranges, with the Coral wording AWS
services answer ("1 validation error detected: Value 'x' at 'name' failed to satisfy constraint:
Member must ..."). Members the model does not know are ignored, as AWS does. The models are
botocore's own (a dependency already), loaded once on first use.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime
from typing import Any

from botocore.model import ServiceModel, Shape


class ShapeError(ValueError):
    """A request member that breaks its shape; the message is AWS's."""


@functools.cache
def service_model(name: str) -> ServiceModel:
    import botocore.session

    return botocore.session.get_session().get_service_model(name)


@functools.cache
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _error(value: Any, path: str, constraint: str) -> ShapeError:
    shown = "null" if value is None else f"'{value}'"
    return ShapeError(f"1 validation error detected: Value {shown} at '{path}' failed to satisfy constraint: "
                      f"Member must {constraint}")


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def timestamp(value: Any, path: str) -> float:
    """A timestamp member: epoch seconds (what botocore sends in rest-json bodies) or ISO 8601."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise _error(value, path, "be a timestamp")


def check(shape: Shape, value: Any, path: str) -> None:
    """Raise ShapeError for the first constraint `value` breaks."""
    metadata = shape.metadata
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise _error(value, path, "be an object")
        for required in metadata.get("required", []):
            member = shape.members[required]
            if member.serialization.get("location") is None and value.get(required) is None:
                raise _error(None, _join(path, required), "not be null")
        for name, member in shape.members.items():  # type: ignore[attr-defined]
            if value.get(name) is not None and member.serialization.get("location") is None:
                check(member, value[name], _join(path, name))
    elif kind == "list":
        if not isinstance(value, list):
            raise _error(value, path, "be a list")
        _length(value, metadata, path)
        for item in value:
            check(shape.member, item, path)  # type: ignore[attr-defined]
    elif kind == "string":
        if not isinstance(value, str):
            raise _error(value, path, "be a string")
        string(shape, value, path)
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _error(value, path, "be an integer")
        if "min" in metadata and value < metadata["min"]:
            raise _error(value, path, f"have value greater than or equal to {metadata['min']}")
        if "max" in metadata and value > metadata["max"]:
            raise _error(value, path, f"have value less than or equal to {metadata['max']}")
    elif kind == "timestamp":
        timestamp(value, path)
    elif kind == "boolean" and not isinstance(value, bool):
        raise _error(value, path, "be a boolean")


def string(shape: Shape, value: str, path: str) -> None:
    """A string member's length, pattern and enum (also for path and query parameters)."""
    metadata = shape.metadata
    _length(value, metadata, path)
    if "pattern" in metadata and not _pattern(metadata["pattern"]).fullmatch(value):
        raise _error(value, path, f"satisfy regular expression pattern: {metadata['pattern']}")
    enum: list[str] = getattr(shape, "enum", None) or []
    if enum and value not in enum:
        raise _error(value, path, f"satisfy enum value set: [{', '.join(enum)}]")


def _length(value: str | list, metadata: dict, path: str) -> None:
    if "min" in metadata and len(value) < metadata["min"]:
        raise _error(value, path, f"have length greater than or equal to {metadata['min']}")
    if "max" in metadata and len(value) > metadata["max"]:
        raise _error(value, path, f"have length less than or equal to {metadata['max']}")


def _join(path: str, name: str) -> str:
    return f"{path}.{_lower_first(name)}" if path else _lower_first(name)


def input_shape(service: str, operation: str) -> Shape:
    shape = service_model(service).operation_model(operation).input_shape
    assert shape is not None
    return shape


def member(service: str, operation: str, name: str) -> Shape:
    """One member shape of an operation's input (for path and query parameters)."""
    return input_shape(service, operation).members[name]  # type: ignore[attr-defined]
