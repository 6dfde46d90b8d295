"""Event filtering for event source mappings (Lambda's `FilterCriteria`): validate, compile once, match.

A mapping holds up to five EventBridge-syntax patterns; a record goes to the function when any one
matches, else the poller drops it (deletes the SQS message, steps past the stream record). Patterns
are checked and compiled when the mapping is created or updated, so matching a record parses no
pattern and parses the record's body or data once, however many patterns there are.

What Lambda does, and where that was read:

* Invalid pattern (not JSON, not an object, a value that is not a list, an empty list, an unknown or
  mis-typed operator): `InvalidParameterValueException` "Invalid filter pattern definition." (LocalStack's
  snapshots recorded against AWS: test_sqs_invalid_event_filter, test_dynamodb_invalid_event_filter).
* `{"Filters": []}` is accepted and CreateEventSourceMapping then echoes no `FilterCriteria` at all
  (test_lambda_api snapshot, test_create_event_filter_criteria_validation); `--filter-criteria "{}"`
  removes the filters on update (invocation-eventfiltering). Both parse to None here.
* Operators follow EventBridge (eb-event-patterns, eb-create-pattern-operators, content filtering);
  edge cases follow LocalStack's event_pattern_templates recorded against EventBridge: `anything-but`
  matches a null value but not a missing field; `exists: true` fails on an object or an empty array
  (only leaves exist); numbers compare numerically (300.0 matches [300]), `numeric` applies only to
  JSON numbers (DynamoDB's "N" values are strings: test_dynamodb_event_filter[numeric_filter]); event
  arrays match when any element does; keys join with dots, so {"a.b": [..]} and {"a": {"b": [..]}} agree.
* What a pattern sees, per source (invocation-eventfiltering, with-sqs-filtering, eb-pipes-event-filtering):
  - sqs: the record without the fields the poller adds (eventSource, eventSourceARN, awsRegion); `body`
    is the parsed JSON when the body is a JSON object, else the string. A pattern with `body` sub-keys
    drops a plain-string message; a pattern with `body` as a value list drops a JSON message.
  - kinesis: the `kinesis` member (partitionKey, sequenceNumber, data, ...), since the fields outside it
    are the poller's; `data` base64-decoded and parsed when it is a JSON object, else the UTF-8 text,
    with the same drop rules on `data` (test_kinesis_event_filtering_json_pattern uses {"data": {..}}).
  - dynamodb: the record itself (eventName, eventSource, dynamodb.NewImage.x.S, ...); a value list on
    `dynamodb` itself is refused when the source is known at parse time (invocation-eventfiltering).
"""

from __future__ import annotations

import base64
import binascii
import json
import operator
import re
from dataclasses import dataclass
from typing import Any, Callable

from lambdalet.errors import InvalidParameterValueException
from lambdalet.validation import constraint_error

#: Lambda's default quota of filters per event source mapping (raisable to 10 on request).
MAX_FILTERS = 5
#: The botocore model's `Pattern` shape: a string of at most 4096 characters.
MAX_PATTERN_LENGTH = 4096
INVALID_PATTERN = "Invalid filter pattern definition."
SOURCES = ("sqs", "kinesis", "dynamodb")
#: The member holding a record's payload, the one whose JSON or plain form a pattern must agree with.
DATA_KEYS = {"sqs": "body", "kinesis": "data", "dynamodb": "dynamodb"}
_SQS_POLLER_FIELDS = frozenset({"eventSource", "eventSourceARN", "awsRegion"})

Leaf = Any  # str | int | float | bool | None: what a flattened record holds at a path
Flat = dict[str, list[Leaf]]


def _invalid() -> InvalidParameterValueException:
    return InvalidParameterValueException(INVALID_PATTERN)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _value_key(value: Leaf) -> tuple[str, Leaf] | None:
    """A hashable key under which equal JSON values meet: 300 and 300.0 do, True and 1 do not."""
    if value is None:
        return ("null", None)
    if isinstance(value, bool):
        return ("bool", value)
    if _is_number(value):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    return None


@dataclass(frozen=True)
class _Rule:
    """One entry of a pattern's value list: a test on a leaf, and whether a missing field passes."""

    test: Callable[[Leaf], bool]
    when_absent: bool = False


def _strings(operand: object, *, allow_list: bool, allow_empty: bool = True) -> tuple[str, ...]:
    values = operand if allow_list and isinstance(operand, list) and operand else [operand]
    if not all(isinstance(v, str) and (allow_empty or v) for v in values):
        raise _invalid()
    return tuple(values)  # type: ignore[arg-type]


def _wildcard(operand: object) -> re.Pattern[str]:
    """EventBridge wildcards: `*` is any run of characters, `\\*` and `\\\\` are literal; `**` is refused."""
    if not isinstance(operand, str) or "**" in operand.replace("\\*", ""):
        raise _invalid()
    parts, literal, chars = [], [], iter(operand)
    for char in chars:
        if char == "\\":
            escaped = next(chars, "")
            if escaped not in ("*", "\\"):
                raise _invalid()
            literal.append(escaped)
        elif char == "*":
            parts.append(re.escape("".join(literal)))
            literal = []
        else:
            literal.append(char)
    parts.append(re.escape("".join(literal)))
    return re.compile(".*".join(parts), re.DOTALL)


def _text_test(name: str, operand: object) -> Callable[[str], bool]:
    """prefix / suffix / equals-ignore-case / wildcard (and their equals-ignore-case forms) on a string."""
    if name == "wildcard":
        regex = _wildcard(operand)
        return lambda s: regex.fullmatch(s) is not None
    if name == "equals-ignore-case":
        folded = _strings(operand, allow_list=False)[0].casefold()
        return lambda s: s.casefold() == folded
    if isinstance(operand, dict) and len(operand) == 1 and "equals-ignore-case" in operand:
        affix = _strings(operand["equals-ignore-case"], allow_list=False)[0].casefold()
        check = str.startswith if name == "prefix" else str.endswith
        return lambda s: check(s.casefold(), affix)
    affix = _strings(operand, allow_list=False)[0]
    return (lambda s: s.startswith(affix)) if name == "prefix" else (lambda s: s.endswith(affix))


_COMPARE = {"=": operator.eq, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_LOWER, _UPPER = (">", ">="), ("<", "<=")


def _numeric(operand: object) -> Callable[[Leaf], bool]:
    """`["=", x]`, or one lower bound and/or one upper bound: `[">", 0, "<=", 5]`."""
    if not isinstance(operand, list) or not operand or len(operand) % 2 or len(operand) > 4:
        raise _invalid()
    pairs = [(operand[i], operand[i + 1]) for i in range(0, len(operand), 2)]
    if any(op not in _COMPARE or not _is_number(x) for op, x in pairs):
        raise _invalid()
    ops = [op for op, _ in pairs]
    if len(ops) == 2 and not (ops[0] in _LOWER and ops[1] in _UPPER or ops[0] in _UPPER and ops[1] in _LOWER):
        raise _invalid()
    checks = tuple((_COMPARE[op], x) for op, x in pairs)
    return lambda v: _is_number(v) and all(compare(v, x) for compare, x in checks)


def _anything_but(operand: object) -> Callable[[Leaf], bool]:
    """Anything but some values (strings or numbers, one or a list) or one text operator's matches."""
    if isinstance(operand, dict):
        if len(operand) != 1:
            raise _invalid()
        (name, inner), = operand.items()
        if name in ("prefix", "suffix"):
            tests = [_text_test(name, s) for s in _strings(inner, allow_list=True, allow_empty=False)]
        elif name in ("equals-ignore-case", "wildcard"):
            tests = [_text_test(name, s) for s in _strings(inner, allow_list=True)]
        else:
            raise _invalid()
        return lambda v: not (isinstance(v, str) and any(test(v) for test in tests))
    values = operand if isinstance(operand, list) else [operand]
    kinds = {"string" if isinstance(v, str) else "number" if _is_number(v) else "other" for v in values}
    if not values or len(kinds) != 1 or "other" in kinds:
        raise _invalid()
    excluded = frozenset(_value_key(v) for v in values)
    return lambda v: _value_key(v) not in excluded


def _operator_rule(entry: dict[str, Any]) -> _Rule:
    if len(entry) != 1:
        raise _invalid()
    (name, operand), = entry.items()
    if name == "exists":
        if not isinstance(operand, bool):
            raise _invalid()
        return _Rule(lambda v: True) if operand else _Rule(lambda v: False, when_absent=True)
    if name == "numeric":
        return _Rule(_numeric(operand))
    if name == "anything-but":
        return _Rule(_anything_but(operand))
    if name in ("prefix", "suffix", "equals-ignore-case", "wildcard"):
        test = _text_test(name, operand)
        return _Rule(lambda v: isinstance(v, str) and test(v))
    raise _invalid()


def _rules(values: object) -> tuple[_Rule, ...]:
    """A pattern's value list: exact values (merged into one set lookup) and operator objects."""
    if not isinstance(values, list) or not values:
        raise _invalid()
    exact: set[tuple[str, Leaf]] = set()
    rules: list[_Rule] = []
    for entry in values:
        if isinstance(entry, dict):
            rules.append(_operator_rule(entry))
        elif (key := _value_key(entry)) is not None:
            exact.add(key)
        else:
            raise _invalid()
    if exact:
        frozen = frozenset(exact)
        rules.insert(0, _Rule(lambda v: _value_key(v) in frozen))
    return tuple(rules)


@dataclass(frozen=True)
class _Conjunction:
    """Every field's rules hold, and in each `$or` group at least one branch holds."""

    fields: tuple[tuple[str, tuple[_Rule, ...]], ...]
    alternatives: tuple[tuple[_Conjunction, ...], ...]

    def holds(self, flat: Flat) -> bool:
        for path, rules in self.fields:
            leaves = flat.get(path)
            if not leaves:
                if not any(rule.when_absent for rule in rules):
                    return False
            elif not any(rule.test(leaf) for leaf in leaves for rule in rules):
                return False
        return all(any(branch.holds(flat) for branch in group) for group in self.alternatives)


def _compile(pattern: dict[str, Any], prefix: str = "") -> _Conjunction:
    fields: list[tuple[str, tuple[_Rule, ...]]] = []
    alternatives: list[tuple[_Conjunction, ...]] = []

    def walk(node: dict[str, Any], at: str) -> None:
        for key, value in node.items():
            if key == "$or":
                if not isinstance(value, list) or not value or not all(isinstance(b, dict) and b
                                                                       for b in value):
                    raise _invalid()
                alternatives.append(tuple(_compile(branch, at) for branch in value))
            elif isinstance(value, dict):
                if not value:
                    raise _invalid()
                walk(value, f"{at}{key}.")
            else:
                fields.append((f"{at}{key}", _rules(value)))

    walk(pattern, prefix)
    return _Conjunction(tuple(fields), tuple(alternatives))


@dataclass(frozen=True)
class _Pattern:
    text: str
    match: _Conjunction
    #: For each payload key the pattern names at its top level: "object" (sub-keys) or "value" (a list).
    shapes: dict[str, str]


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # Python's json would accept NaN and Infinity


def compile_pattern(text: str, source: str | None = None) -> _Pattern:
    """Check one Pattern string as Lambda does at CreateEventSourceMapping, and compile it."""
    try:
        pattern = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise _invalid() from None
    if not isinstance(pattern, dict):
        raise _invalid()
    shapes = {key: "object" if isinstance(pattern[key], dict) else "value"
              for key in DATA_KEYS.values() if key in pattern}
    if source in ("kinesis", "dynamodb") and shapes.get(DATA_KEYS[source]) == "value":
        raise _invalid()  # stream payloads are filtered as JSON only
    return _Pattern(text, _compile(pattern), shapes)


def _flatten(value: Any, path: str, out: Flat) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{path}.{key}" if path else key, out)
    elif isinstance(value, list):
        for item in value:
            _flatten(item, path, out)
    else:
        out.setdefault(path, []).append(value)


def _json_object(text: str) -> dict[str, Any] | None:
    if not text.lstrip().startswith("{"):
        return None
    try:
        parsed = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _view(record: dict[str, Any], source: str) -> tuple[dict[str, Any], bool]:
    """What the patterns see for one record, and whether its payload is a JSON object."""
    if source == "sqs":
        view = {k: v for k, v in record.items() if k not in _SQS_POLLER_FIELDS}
        body = view.get("body")
        parsed = _json_object(body) if isinstance(body, str) else None
        if parsed is not None:
            view["body"] = parsed
        return view, parsed is not None
    if source == "kinesis":
        view = dict(record.get("kinesis") or {})
        data = view.get("data")
        parsed = None
        if isinstance(data, str):
            try:
                view["data"] = text = base64.b64decode(data, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                text = ""
            if (parsed := _json_object(text)) is not None:
                view["data"] = parsed
        return view, parsed is not None
    if source == "dynamodb":
        return record, isinstance(record.get("dynamodb"), dict)
    raise ValueError(f"unknown event source {source!r}; expected one of {SOURCES}")


@dataclass(frozen=True)
class FilterCriteria:
    """A mapping's validated, compiled filters; `matches` is what a poller calls for each record."""

    patterns: tuple[_Pattern, ...]

    def to_api(self) -> dict[str, list[dict[str, str]]]:
        """The `FilterCriteria` member as Get/Create/UpdateEventSourceMapping echo it: patterns as given."""
        return {"Filters": [{"Pattern": p.text} for p in self.patterns]}

    def matches(self, record: dict[str, Any], source: str) -> bool:
        """True when any pattern matches the record Lambda would deliver (source: sqs/kinesis/dynamodb)."""
        view, payload_is_json = _view(record, source)
        flat: Flat = {}
        _flatten(view, "", flat)
        payload_shape = "object" if payload_is_json else "value"
        data_key = DATA_KEYS[source]
        return any(p.shapes.get(data_key, payload_shape) == payload_shape and p.match.holds(flat)
                   for p in self.patterns)


def parse_filter_criteria(value: object, member: str = "filterCriteria",
                          source: str | None = None) -> FilterCriteria | None:
    """The request member `FilterCriteria`, checked as Lambda checks it; None when there is nothing to filter.

    None stands for absent, `{}` and `{"Filters": []}` alike, as AWS then echoes no FilterCriteria; an
    UpdateEventSourceMapping caller tells "clear the filters" from "leave them" by the member's presence.
    `source`, when known, adds the stream sources' rule that their payload key takes sub-keys only.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise constraint_error(value, member, "be a structure")
    filters = value.get("Filters")
    if filters is None:
        return None
    if not isinstance(filters, list):
        raise constraint_error(filters, f"{member}.filters", "be a list")
    if len(filters) > MAX_FILTERS:
        raise InvalidParameterValueException(
            f"The number of filters ({len(filters)}) exceeds the quota of {MAX_FILTERS} filters "
            "for an event source mapping.")
    patterns = []
    for index, item in enumerate(filters, start=1):
        if not isinstance(item, dict):
            raise constraint_error(item, f"{member}.filters.{index}.member", "be a structure")
        text = item.get("Pattern")
        if text is not None and not isinstance(text, str):
            raise constraint_error(text, f"{member}.filters.{index}.member.pattern", "be a string")
        if text is not None and len(text) > MAX_PATTERN_LENGTH:
            raise constraint_error(text, f"{member}.filters.{index}.member.pattern",
                                   f"have length less than or equal to {MAX_PATTERN_LENGTH}")
        patterns.append(compile_pattern(text or "", source))
    return FilterCriteria(tuple(patterns)) if patterns else None
