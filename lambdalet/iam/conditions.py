"""IAM's condition operators, compiled once per statement and evaluated against a request context.

Semantics (AWS's "Condition operators" and "Multivalued context keys" pages):
- keys in one operator block, and operator blocks in one Condition, are ANDed; the values of one
  key are ORed; keys are case-insensitive, string values case-sensitive unless IgnoreCase;
- a positive operator on an absent key is false, a negated one (StringNotEquals, NotIpAddress, ...)
  true; `...IfExists` makes an absent key true;
- without a set qualifier a multivalued request key matches a positive operator when any of its
  values matches, and a negated one when none does; `ForAnyValue:` needs one request value to
  satisfy the operator, `ForAllValues:` every one (and is true when the key is absent or empty).
"""

from __future__ import annotations

import datetime
import ipaddress
import operator
import re
from typing import Callable, Mapping

from lambdalet.iam.errors import LEGACY, SYNTAX, MalformedPolicy
from lambdalet.iam.patterns import Context, PatternSet, has_variables, literal, resolve, tokenize

Matcher = Callable[[str, Context], bool]  # one request value against the operator's policy values

_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "NumericNotEquals": "NumericEquals",
    "DateNotEquals": "DateEquals",
    "NotIpAddress": "IpAddress",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}
_COMPARISONS = {
    "Equals": operator.eq,
    "LessThan": operator.lt,
    "LessThanEquals": operator.le,
    "GreaterThan": operator.gt,
    "GreaterThanEquals": operator.ge,
}
_KNOWN_BASES = frozenset(
    ["StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike", "Bool", "BinaryEquals", "IpAddress"]
    + [family + comparison for family in ("Numeric", "Date") for comparison in _COMPARISONS]
)
_ISO_8601 = re.compile(
    r"(-?\d{1,9})(?:-(\d{1,2})(?:-(\d{1,2}))?)?"
    r"(?:t(\d{1,2})(?::(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,9}))?)?)?)?"
    r"(z|[+-]\d{2}(?::?\d{2})?)?\Z"
)


def parse_date(text: str) -> float | None:
    """Seconds since the epoch of an ISO 8601 date-time (UTC unless it says otherwise) or of an
    epoch-seconds number, the two forms IAM accepts; None when it is neither."""
    text = text.strip().lower()
    if text.isdigit():
        return float(text)
    match = _ISO_8601.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        offset = datetime.timedelta()
        if zone and zone != "z":
            digits = zone[1:].replace(":", "")
            offset = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
            offset = offset if zone[0] == "+" else -offset
        moment = datetime.datetime(
            int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0), int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")), tzinfo=datetime.timezone(offset),
        )
    except (ValueError, OverflowError):
        return None
    return moment.timestamp()


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _string_equals(values: list[str], variables: bool, fold: bool) -> Matcher:
    tokens = [tokenize(value, variables) for value in values]
    if not any(has_variables(t) for t in tokens):
        accepted = frozenset(v.casefold() if fold else v for v in (literal(t) for t in tokens))
        if fold:
            return lambda text, context: text.casefold() in accepted
        return lambda text, context: text in accepted

    def matches(text: str, context: Context) -> bool:
        text = text.casefold() if fold else text
        for value_tokens in tokens:
            resolved = resolve(value_tokens, context)
            if resolved is not None:
                value = literal(resolved)
                if (value.casefold() if fold else value) == text:
                    return True
        return False

    return matches


def _like(values: list[str], variables: bool, arn: bool) -> Matcher:
    patterns = PatternSet(values, ignore_case=False, variables=variables, arn=arn)
    return patterns.matches


def _ordered(values: list[str], parse: Callable[[str], float | None], compare: Callable) -> Matcher:
    bounds = []
    for value in values:
        bound = parse(value)
        if bound is None:
            raise MalformedPolicy(LEGACY)
        bounds.append(bound)

    def matches(text: str, context: Context) -> bool:
        number = parse(text)
        return number is not None and any(compare(number, bound) for bound in bounds)

    return matches


def _bool(values: list[str]) -> Matcher:
    accepted = frozenset(value.lower() for value in values)
    return lambda text, context: text.lower() in accepted


def _ip(values: list[str]) -> Matcher:
    try:
        networks = tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)
    except ValueError:
        raise MalformedPolicy(LEGACY) from None

    def matches(text: str, context: Context) -> bool:
        try:
            address = ipaddress.ip_address(text.strip())
        except ValueError:
            return False
        return any(address in network for network in networks)

    return matches


def _matcher(base: str, values: list[str], variables: bool) -> Matcher | None:
    """The matcher of a positive operator's base name, or None if IAM has no such operator."""
    if base in ("StringEquals", "StringEqualsIgnoreCase"):
        return _string_equals(values, variables, fold=base.endswith("IgnoreCase"))
    if base == "StringLike":
        return _like(values, variables, arn=False)
    if base in ("ArnEquals", "ArnLike"):  # IAM gives both the same per-part wildcard semantics
        return _like(values, variables, arn=True)
    for family, parse in (("Numeric", _number), ("Date", parse_date)):
        if base.startswith(family) and base[len(family) :] in _COMPARISONS:
            return _ordered(values, parse, _COMPARISONS[base[len(family) :]])
    if base == "Bool":
        return _bool(values)
    if base == "BinaryEquals":
        return _string_equals(values, False, fold=False)
    if base == "IpAddress":
        return _ip(values)
    return None


def _value_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise MalformedPolicy(SYNTAX)


class _Test:
    """One key of one operator block: `ForAnyValue:StringLikeIfExists: {"aws:TagKeys": [...]}`."""

    __slots__ = ("key", "_match", "_negated", "_qualifier", "_if_exists", "_null")

    def __init__(self, key: str, match: Matcher | None, negated: bool, qualifier: str, if_exists: bool,
                 null: frozenset[str] = frozenset()) -> None:
        self.key = key
        self._match = match
        self._negated = negated
        self._qualifier = qualifier
        self._if_exists = if_exists
        self._null = null

    def holds(self, context: Context) -> bool:
        raw = context.get(self.key)
        if type(raw) is str and not self._qualifier and self._match is not None:  # the common case
            return self._match(raw, context) != self._negated
        values = () if raw is None else ((raw,) if isinstance(raw, str) else tuple(raw))
        if self._match is None:  # Null: "true" asks for the key to be absent, "false" present
            return ("false" if values else "true") in self._null
        if self._qualifier == "ForAllValues:":
            return all(self._match(v, context) != self._negated for v in values)
        if self._qualifier == "ForAnyValue:":
            if not values:
                return self._if_exists
            return any(self._match(v, context) != self._negated for v in values)
        if not values:
            return self._if_exists or self._negated
        return any(self._match(v, context) for v in values) != self._negated


class Condition:
    """A statement's whole Condition element: every test must hold."""

    __slots__ = ("_tests", "keys")

    def __init__(self, tests: tuple[_Test, ...]) -> None:
        self._tests = tests
        self.keys = frozenset(test.key for test in tests)

    def holds(self, context: Context) -> bool:
        for test in self._tests:
            if not test.holds(context):
                return False
        return True


def split_operator(name: str) -> tuple[str, str, bool]:
    """`ForAnyValue:StringLikeIfExists` -> ("ForAnyValue:", "StringLike", True)."""
    qualifier = next((q for q in ("ForAnyValue:", "ForAllValues:") if name.startswith(q)), "")
    base = name[len(qualifier) :]
    if_exists = base.endswith("IfExists")
    return qualifier, base[: -len("IfExists")] if if_exists else base, if_exists


def _values(raw: object) -> list[str]:
    values = [_value_text(v) for v in raw] if isinstance(raw, list) else [_value_text(raw)]
    if not values:
        raise MalformedPolicy(SYNTAX)
    return values


def check_condition_syntax(element: object) -> None:
    """Refuse, with IAM's "Syntax errors in policy.", a Condition of the wrong shape or with an
    unknown operator; IAM accepts an unknown operator with an empty block (which can never matter)."""
    if not isinstance(element, Mapping):
        raise MalformedPolicy(SYNTAX)
    for name, block in element.items():
        if not isinstance(block, Mapping) or not isinstance(name, str):
            raise MalformedPolicy(SYNTAX)
        _, base, _ = split_operator(name)
        if block and base != "Null" and _NEGATED.get(base, base) not in _KNOWN_BASES:
            raise MalformedPolicy(SYNTAX)
        for key, raw in block.items():
            if not isinstance(key, str):
                raise MalformedPolicy(SYNTAX)
            _values(raw)


def compile_condition(element: object, variables: bool = True) -> Condition:
    """Compile a Condition element (in 2012-10-17 documents `variables` are substituted).

    MalformedPolicy "Syntax errors in policy." for a wrong shape, "The policy failed legacy
    parsing" for a date, number or CIDR that does not parse.
    """
    check_condition_syntax(element)
    tests: list[_Test] = []
    for name, block in element.items():  # type: ignore[union-attr]
        qualifier, base, if_exists = split_operator(name)
        for key, raw in block.items():
            values = _values(raw)
            if base == "Null":
                null = frozenset(v.lower() for v in values)
                tests.append(_Test(key.lower(), None, False, qualifier, if_exists, null))
                continue
            match = _matcher(_NEGATED.get(base, base), values, variables)
            assert match is not None
            tests.append(_Test(key.lower(), match, base in _NEGATED, qualifier, if_exists))
    return Condition(tuple(tests))
