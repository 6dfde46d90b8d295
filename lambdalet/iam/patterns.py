"""Wildcards (`*`, `?`) and policy variables (`${aws:username}`) in policy values.

A value is parsed once into tokens. Values without variables become one compiled regex per list
at compile time; values with variables are rendered against the request context at evaluation,
and the regex of each rendering is cached, so evaluation never parses a document again.
"""

from __future__ import annotations

import functools
import re
from typing import Iterable, Protocol, Sequence, Union

ContextValue = Union[str, Sequence[str]]

_WILDCARD = re.compile(r"(\*|\?)")
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_VARIABLE_BODY = re.compile(r"\s*([^\s,]+)\s*(?:,\s*'([^']*)'\s*)?\Z")
_ESCAPES = {"*": "*", "?": "?", "$": "$"}

# Token kinds: a literal run of text, a wildcard ("*" or "?"), a variable (lower-cased key, default).
LITERAL, WILD, VARIABLE = 0, 1, 2
Token = tuple  # (kind, text) or (VARIABLE, key, default)


class Context(Protocol):
    """What evaluation offers a condition or a variable: a value by lower-cased key, or None."""

    def get(self, key: str, /) -> ContextValue | None: ...


def tokenize(text: str, variables: bool) -> tuple[Token, ...]:
    """Split a policy value into literals, wildcards and (in 2012-10-17 documents) variables.

    `${*}`, `${?}` and `${$}` are the escapes for a literal `*`, `?` and `$`; a `${...}` that is not
    a well-formed variable stays literal text, as IAM leaves it.
    """
    tokens: list[Token] = []

    def text_tokens(chunk: str) -> None:
        for part in _WILDCARD.split(chunk):
            if part in ("*", "?"):
                tokens.append((WILD, part))
            elif part:
                tokens.append((LITERAL, part))

    if not variables or "${" not in text:
        text_tokens(text)
        return tuple(tokens)
    position = 0
    for match in _VARIABLE.finditer(text):
        text_tokens(text[position : match.start()])
        body = match.group(1)
        if body in _ESCAPES:
            tokens.append((LITERAL, _ESCAPES[body]))
        elif parsed := _VARIABLE_BODY.match(body):
            tokens.append((VARIABLE, parsed.group(1).lower(), parsed.group(2)))
        else:
            tokens.append((LITERAL, match.group(0)))
        position = match.end()
    text_tokens(text[position:])
    return tuple(tokens)


def has_variables(tokens: Sequence[Token]) -> bool:
    return any(token[0] == VARIABLE for token in tokens)


def resolve(tokens: Sequence[Token], context: Context) -> list[Token] | None:
    """Substitute variables with literal values; None when one has no single value (no match)."""
    resolved: list[Token] = []
    for token in tokens:
        if token[0] != VARIABLE:
            resolved.append(token)
            continue
        value = context.get(token[1])
        if value is None or not isinstance(value, str):
            if token[2] is None:
                return None
            value = token[2]
        resolved.append((LITERAL, value))
    return resolved


def literal(tokens: Sequence[Token]) -> str:
    """The text of tokens read without wildcards (for operators such as StringEquals)."""
    return "".join(token[1] for token in tokens)


def regex_source(tokens: Sequence[Token], arn: bool = False) -> str:
    """Regex for tokens. In ARN mode a wildcard stays within one of the first five colon-separated
    parts (ArnLike compares part by part); in the sixth, and in plain mode, `*` spans anything."""
    out: list[str] = []
    colons = 0
    for kind, text, *_ in tokens:
        if kind == WILD:
            within_part = arn and colons < 5
            if text == "*":
                out.append("[^:]*" if within_part else ".*")
            else:
                out.append("[^:]" if within_part else ".")
        else:
            out.append(re.escape(text))
            colons += text.count(":")
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def _compiled(source: str, flags: int) -> re.Pattern[str]:
    return re.compile(source, flags | re.DOTALL)


class PatternSet:
    """A list of wildcard values: matches when any value matches the whole text."""

    __slots__ = ("anything", "_static", "_dynamic", "_flags", "_arn")

    def __init__(self, values: Iterable[str], *, ignore_case: bool, variables: bool, arn: bool = False) -> None:
        self._flags = re.IGNORECASE if ignore_case else 0
        self._arn = arn
        static: list[str] = []
        dynamic: list[tuple[Token, ...]] = []
        self.anything = False
        for value in values:
            tokens = tokenize(value, variables)
            if tokens == ((WILD, "*"),):
                self.anything = True
            if has_variables(tokens):
                dynamic.append(tokens)
            else:
                static.append(regex_source(tokens, arn))
        self._static = _compiled("|".join(f"(?:{s})" for s in static), self._flags) if static else None
        self._dynamic = tuple(dynamic)

    def matches(self, text: str, context: Context) -> bool:
        if self.anything or (self._static is not None and self._static.fullmatch(text)):
            return True
        for tokens in self._dynamic:
            resolved = resolve(tokens, context)
            if resolved is not None and _compiled(regex_source(resolved, self._arn), self._flags).fullmatch(text):
                return True
        return False
