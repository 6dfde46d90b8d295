"""Constraint checks derived from botocore's Lambda service model, not copied by hand.

botocore ships the model AWS's own SDKs are generated from: every member's type, range, length,
pattern and enum. `check_input` walks a request body against an operation's input shape and
raises Lambda's (Coral's) `ValidationException` for every broken constraint, in AWS's words:
`1 validation error detected: Value '0' at 'batchSize' failed to satisfy constraint: Member must
have value greater than or equal to 1`. Semantic rules (which members go with which source, ...)
stay with the API modules as `InvalidParameterValueException`.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from lambdalet.errors import ValidationException

#: Enums whose values AWS lists in another order than the model's (as recorded against AWS).
ENUM_ORDER = {"EventSourcePosition": ("LATEST", "AT_TIMESTAMP", "TRIM_HORIZON")}


@functools.lru_cache(maxsize=1)
def _model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("lambda")


@functools.lru_cache(maxsize=256)
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_render(v)}" for k, v in value.items()) + "}"
    return str(value)


def _member_path(prefix: str, name: str) -> str:
    member = name[0].lower() + name[1:]
    return f"{prefix}.{member}" if prefix else member


def _check(shape: Any, value: Any, path: str, errors: list[str]) -> None:
    kind = shape.type_name
    meta = shape.metadata

    def broken(constraint: str) -> None:
        errors.append(f"Value '{_render(value)}' at '{path}' failed to satisfy constraint: Member must {constraint}")

    if kind == "structure":
        if not isinstance(value, dict):
            return broken("be a structure")
        for name, member in shape.members.items():
            if value.get(name) is not None:
                _check(member, value[name], _member_path(path, name), errors)
    elif kind == "list":
        if not isinstance(value, list):
            return broken("be a list")
        _check_size(len(value), meta, broken)
        for index, item in enumerate(value, 1):
            _check(shape.member, item, f"{path}.{index}.member", errors)
    elif kind == "map":
        if not isinstance(value, dict):
            return broken("be a map")
        _check_size(len(value), meta, broken)
    elif kind == "string":
        if not isinstance(value, str):
            return broken("be a string")
        _check_size(len(value), meta, broken)
        enum = ENUM_ORDER.get(shape.name) or shape.enum
        if enum and value not in enum:
            return broken(f"satisfy enum value set: [{', '.join(enum)}]")
        if "pattern" in meta and not _pattern(meta["pattern"]).fullmatch(value):
            broken(f"satisfy regular expression pattern: {meta['pattern']}")
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            return broken("be an integer")
        if "min" in meta and value < meta["min"]:
            broken(f"have value greater than or equal to {meta['min']}")
        elif "max" in meta and value > meta["max"]:
            broken(f"have value less than or equal to {meta['max']}")
    elif kind == "boolean" and not isinstance(value, bool):
        broken("be a boolean")


def _check_size(size: int, meta: dict, broken: Any) -> None:
    if "min" in meta and size < meta["min"]:
        broken(f"have length greater than or equal to {meta['min']}")
    elif "max" in meta and size > meta["max"]:
        broken(f"have length less than or equal to {meta['max']}")


def check_input(operation: str, body: dict[str, Any]) -> None:
    """Raise ValidationException listing every member of `body` that breaks the model's constraints
    for `operation`'s input (members bound to the URI or query are checked where they are parsed)."""
    shape = _model().operation_model(operation).input_shape
    errors: list[str] = []
    for name, member in shape.members.items():
        if member.serialization.get("location") is None and body.get(name) is not None:
            _check(member, body[name], _member_path("", name), errors)
    if errors:
        count = f"{len(errors)} validation error{'s' if len(errors) > 1 else ''} detected: "
        raise ValidationException(count + "; ".join(errors))
