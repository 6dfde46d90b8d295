"""Lambda request bodies checked against botocore's model before the handler runs.

Each operation's input shape is compiled once, on its first request, into a tree of small checker
functions (required members, string length/pattern/enum, number ranges, list and map sizes, list
items, map keys and values, nested structures), so a request pays one walk of its own members and
no lookups in the model. The checks and their words are Coral's, as recorded against AWS (LocalStack's
`test_lambda_api.snapshot.json`):

- a scalar member: `Value 'r1' at 'role' failed to satisfy constraint: Member must satisfy regular
  expression pattern: ...` (`service_model.problem`, the renderer path and query parameters use too);
- a list whose item breaks a constraint: one error at the list, naming every constraint of its item
  shape — `Value '[X86_64]' at 'architectures' failed to satisfy constraint: Member must satisfy
  constraint: [Member must satisfy enum value set: [x86_64, arm64], Member must not be null]`;
- a map: `Map keys must satisfy constraint: [...]` / `Map value must satisfy constraint: [...]`, the
  map shown as `{2=-1.0}` (doubles as Java prints them), or not shown at all when the model marks it
  sensitive (`Value at 'environment.variables' ...`);
- members in the model's order, joined `N validation errors detected: ...; ...`.

Members whose refusal AWS words as a semantic InvalidParameterValueException (a runtime, the
layers' runtime lists, which AWS lists in its own order) are left to the handlers: `HANDLER_OWNED`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from botocore.model import Shape

from lambdalet import service_model

Found = list[str]
Checker = Callable[[Any, Found], None]

#: Shapes whose refusal AWS gives in the handler's words, not the model's (CreateFunction's
#: runtime is `InvalidParameterValueException` "Value x at 'runtime' ... or be a valid ARN";
#: PublishLayerVersion's compatibleRuntimes lists AWS's supported runtimes in its own order).
HANDLER_OWNED = frozenset({"Runtime"})

#: Item shapes whose aggregated constraint list AWS gives without "Member must not be null"
#: (recorded: vpcConfig.subnetIds, vpcConfig.securityGroupIds; architectures and layers carry it).
NULLABLE_ITEMS = frozenset({"SubnetId", "SecurityGroupId"})


def _path(parent: str, name: str) -> str:
    member = name[:1].lower() + name[1:]
    return f"{parent}.{member}" if parent else member


def _number(shape: Shape, value: Any) -> Any:
    """A number as Coral (Java) prints it: a double member's 2 is `2.0`."""
    if shape.type_name in ("double", "float") and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def _shown(shape: Shape, value: Any) -> Any:
    """The value as AWS renders it in a message: lists and maps with their items' numbers in Java's form."""
    if shape.type_name == "list" and isinstance(value, list):
        return [_shown(shape.member, item) for item in value]  # type: ignore[attr-defined]
    if shape.type_name == "map" and isinstance(value, dict):
        return {key: _shown(shape.value, item) for key, item in value.items()}  # type: ignore[attr-defined]
    return _number(shape, value)


def _problem(shape: Shape, value: Any, path: str, constraint: str) -> str:
    return service_model.said(_shown(shape, value), path, constraint, sensitive=bool(shape.metadata.get("sensitive")))


def _constraints(shape: Shape, *, nullable: bool) -> str:
    """Every constraint of an item shape, in Coral's order, for `Member must satisfy constraint: [...]`."""
    meta, kind, said = shape.metadata, shape.type_name, []
    word = "length" if kind in ("string", "list", "map", "blob") else "value"
    if "max" in meta:
        said.append(f"Member must have {word} less than or equal to {_number(shape, meta['max'])}")
    if "min" in meta:
        said.append(f"Member must have {word} greater than or equal to {_number(shape, meta['min'])}")
    if "pattern" in meta:
        said.append(f"Member must satisfy regular expression pattern: {meta['pattern']}")
    enum = service_model.ENUM_ORDER.get(shape.name) or getattr(shape, "enum", None)
    if enum:
        said.append(f"Member must satisfy enum value set: [{', '.join(enum)}]")
    if not nullable:
        said.append("Member must not be null")
    return "[" + ", ".join(said) + "]"


def _nothing(value: Any, found: Found) -> None:
    return None


def compile_shape(shape: Shape, path: str) -> Checker:
    """A checker for `shape` at `path`: appends to `found` what a value breaks."""
    if shape.name in HANDLER_OWNED:
        return _nothing
    kind = shape.type_name
    if kind == "structure":
        return _structure(shape, path)
    if kind == "list":
        return _list(shape, path)
    if kind == "map":
        return _map(shape, path)
    if kind == "string":
        return _string(shape, path)
    if kind in ("integer", "long", "double", "float"):
        return _range(shape, path)
    if kind == "boolean":
        return _typed(shape, path, lambda v: isinstance(v, bool), "be a boolean")
    if kind == "timestamp":
        return _typed(shape, path, lambda v: isinstance(v, (int, float, str)) and not isinstance(v, bool),
                      "be a timestamp")
    return _nothing  # blobs: their handlers decode them


def _typed(shape: Shape, path: str, ok: Callable[[Any], bool], constraint: str) -> Checker:
    def check(value: Any, found: Found) -> None:
        if not ok(value):
            found.append(_problem(shape, value, path, f"Member must {constraint}"))
    return check


def body_members(shape: Shape) -> list[tuple[str, Shape]]:
    """The members a JSON body carries (not those bound to the URI, query string or headers)."""
    return [(name, member) for name, member in shape.members.items()  # type: ignore[attr-defined]
            if member.serialization.get("location") is None]


def _structure(shape: Shape, path: str) -> Checker:
    required = set(shape.metadata.get("required", ()))
    members = [(name, name in required, _path(path, name), compile_shape(member, _path(path, name)))
               for name, member in body_members(shape)]

    def check(value: Any, found: Found) -> None:
        if not isinstance(value, dict):
            found.append(_problem(shape, value, path, "Member must be a structure"))
            return
        for name, is_required, member_path, member_check in members:
            item = value.get(name)
            if item is not None:
                member_check(item, found)
            elif is_required:
                found.append(service_model.problem(None, member_path, "not be null"))
    return check


def _size(shape: Shape, path: str) -> Callable[[Any, int, Found], bool]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")

    def check(value: Any, size: int, found: Found) -> bool:
        if low is not None and size < low:
            found.append(_problem(shape, value, path, f"Member must have length greater than or equal to {low}"))
        elif high is not None and size > high:
            found.append(_problem(shape, value, path, f"Member must have length less than or equal to {high}"))
        else:
            return True
        return False
    return check


def _item_breaks(checker: Checker) -> Callable[[Any], bool]:
    def breaks(value: Any) -> bool:
        found: Found = []
        checker(value, found)
        return bool(found)
    return breaks


def _list(shape: Shape, path: str) -> Checker:
    size = _size(shape, path)
    item_shape: Shape = shape.member  # type: ignore[attr-defined]
    if item_shape.type_name == "structure":  # Coral names each item: fileSystemConfigs.1.member.arn
        def item_checker(index: int) -> Checker:
            return _structure_at(item_shape, f"{path}.{index}.member")
        item_check: Checker | None = None
    else:
        item_check = compile_shape(item_shape, path)
        breaks = _item_breaks(item_check)
        constraint = f"Member must satisfy constraint: {_constraints(item_shape, nullable=item_shape.name in NULLABLE_ITEMS)}"

    def check(value: Any, found: Found) -> None:
        if not isinstance(value, list):
            found.append(_problem(shape, value, path, "Member must be a list"))
            return
        size(value, len(value), found)
        if item_check is None:
            for index, item in enumerate(value, 1):
                if item is not None:
                    item_checker(index)(item, found)
        elif item_check is not _nothing and any(item is None or breaks(item) for item in value):
            found.append(_problem(shape, value, path, constraint))
    return check


@functools.lru_cache(maxsize=1024)
def _structure_at(shape: Shape, path: str) -> Checker:
    return _structure(shape, path)


def _map(shape: Shape, path: str) -> Checker:
    size = _size(shape, path)
    key_shape: Shape = shape.key  # type: ignore[attr-defined]
    value_shape: Shape = shape.value  # type: ignore[attr-defined]
    key_breaks = _item_breaks(compile_shape(key_shape, path))
    value_check = compile_shape(value_shape, path)
    value_breaks = _item_breaks(value_check)
    keys_said = f"Map keys must satisfy constraint: {_constraints(key_shape, nullable=True)}"
    values_said = f"Map value must satisfy constraint: {_constraints(value_shape, nullable=False)}"

    def check(value: Any, found: Found) -> None:
        if not isinstance(value, dict):
            found.append(_problem(shape, value, path, "Member must be a map"))
            return
        size(value, len(value), found)
        if any(key_breaks(key) for key in value):
            found.append(_problem(shape, value, path, keys_said))
        if value_check is not _nothing and any(item is None or value_breaks(item) for item in value.values()):
            found.append(_problem(shape, value, path, values_said))
    return check


def _string(shape: Shape, path: str) -> Checker:
    sensitive = bool(shape.metadata.get("sensitive"))

    def check(value: Any, found: Found) -> None:
        if not isinstance(value, str):
            found.append(_problem(shape, value, path, "Member must be a string"))
            return
        problems = _string_problems(shape, value, path)
        if problems and sensitive:
            problems = tuple(_problem(shape, value, path, p.rsplit(" failed to satisfy constraint: ", 1)[1])
                             for p in problems)
        found.extend(problems)
    return check


@functools.lru_cache(maxsize=8192)
def _string_problems(shape: Shape, value: str, path: str) -> tuple[str, ...]:
    """Cached: the same few names, ARNs and enums are sent again and again."""
    return tuple(service_model.string_problems(shape, value, path))


def _range(shape: Shape, path: str) -> Checker:
    meta = shape.metadata
    whole = shape.type_name in ("integer", "long")
    low, high = meta.get("min"), meta.get("max")

    def check(value: Any, found: Found) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and not isinstance(value, int)):
            found.append(_problem(shape, value, path, f"Member must be {'an integer' if whole else 'a number'}"))
        elif low is not None and value < low:
            found.append(_problem(shape, value, path, f"Member must have value greater than or equal to {_number(shape, low)}"))
        elif high is not None and value > high:
            found.append(_problem(shape, value, path, f"Member must have value less than or equal to {_number(shape, high)}"))
    return check


@functools.cache
def body_checker(operation: str) -> Checker | None:
    """The compiled checker of an operation's JSON body; None when its body is not JSON members
    (Invoke's payload) or it has none. Compiled on first use, then kept."""
    model = service_model.service_model("lambda").operation_model(operation)
    shape = model.input_shape
    if shape is None or shape.serialization.get("payload") or not body_members(shape):
        return None
    return _structure(shape, "")


def body_problems(operation: str, body: Any) -> list[str]:
    """Every broken constraint of a decoded JSON body, in the model's member order."""
    checker = body_checker(operation)
    found: Found = []
    if checker is not None:
        checker(body, found)
    return found
