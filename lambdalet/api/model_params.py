"""Path, query-string, header and body parameters checked against botocore's Lambda model before routing.

Each Lambda operation's `http.requestUri` in the model names its path parameters (`{FunctionName}`)
and, with the input members' `location`, its query-string and header ones. A request's method and
path find its operation; each parameter it carries is checked against its member's shape (length,
pattern, enum; range for numbers), and a broken constraint is Lambda's `ValidationException`
("1 validation error detected: Value 'x' at 'qualifier' failed to satisfy constraint: ...") before
any lookup: `Qualifier=invalid!` is not a 404. The table is built once, at import; each route's
operation is found once and remembered, and each value's verdict is cached. Invoke, the hot path,
is checked only when it fails. JSON bodies are checked by `model_body`, after the parameters.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

from lambdalet import service_model
from lambdalet.api import model_body
from lambdalet.api.common import JSON_BODY, lambda_body
from lambdalet.api.errors import Handler
from lambdalet.errors import (
    InvalidRequestContentException, LambdaError, RequestEntityTooLargeException, ValidationException,
)


@dataclass(frozen=True, eq=False)  # hashed by identity: one object per parameter of the model
class _Parameter:
    member: str
    location: str  # uri, querystring, header
    name: str  # its name in that location
    shape: object


@dataclass(frozen=True)
class _Operation:
    name: str
    path: re.Pattern[str]
    uri: tuple[_Parameter, ...]
    query: tuple[_Parameter, ...]
    headers: tuple[_Parameter, ...]
    required: frozenset[str]  # members that must be given (a missing query parameter is `Value null`)
    literal: tuple[tuple[str, str], ...]  # query the URI template fixes (`?find=LayerVersion`, `?List=ALL`)


def _operations() -> dict[str, list[_Operation]]:
    model = service_model.service_model("lambda")
    by_method: dict[str, list[_Operation]] = {}
    for name in model.operation_names:
        operation = model.operation_model(name)
        template, _, fixed = operation.http["requestUri"].partition("?")
        literal = tuple(tuple(item.split("=", 1)) for item in fixed.split("&") if "=" in item)
        pattern = re.sub(r"\\\{(\w+)\\\+\\\}", r"(?P<\1>.+)", re.escape(template))
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", pattern)
        members = operation.input_shape.members if operation.input_shape is not None else {}
        parameters = tuple(_Parameter(member, shape.serialization["location"], shape.serialization.get("name", member),
                                      shape)
                           for member, shape in members.items() if shape.serialization.get("location"))
        required = frozenset(operation.input_shape.metadata.get("required", ())) if operation.input_shape else frozenset()
        by_method.setdefault(operation.http["method"], []).append(_Operation(
            name, re.compile(pattern.rstrip("/") + "/?$"), *(tuple(p for p in parameters if p.location == location)
                                                             for location in ("uri", "querystring", "header")),
            required, literal))  # type: ignore[arg-type]
    for operations in by_method.values():  # GetLayerVersionByArn (?find=) before ListLayers, same path
        operations.sort(key=lambda op: not op.literal)
    return by_method


OPERATIONS = _operations()


@functools.lru_cache(maxsize=4096)
def _value_problems(parameter: _Parameter, raw: str) -> tuple[str, ...]:
    """Cached: the invoke path checks the same few values (a qualifier, invocation and log types) again and again."""
    return tuple(_check_value(parameter, raw))


def _check_value(parameter: _Parameter, raw: str) -> list[str]:
    path = parameter.member[0].lower() + parameter.member[1:]
    shape = parameter.shape
    if shape.type_name == "string":  # type: ignore[attr-defined]
        return service_model.string_problems(shape, raw, path)  # type: ignore[arg-type]
    if shape.type_name in ("integer", "long"):  # type: ignore[attr-defined]
        try:
            number = int(raw)
        except ValueError:
            return []  # the operation's own parsing answers a non-number, as it does today
        return service_model.problems(shape, number, path)  # type: ignore[arg-type]
    return []


_BY_ROUTE: dict[tuple[str, str], tuple[_Operation, ...]] = {}


def _operation_of(request: web.Request, path: str) -> _Operation | None:
    """The operation a route serves, found once per route (aiohttp's canonical path) by trying the
    model's templates, then remembered: a request pays one dict lookup, not a scan. Two operations
    on one path (ListLayers, GetLayerVersionByArn) differ by the query their template fixes."""
    key = (request.method, request.match_info.route.resource.canonical if request.match_info.route.resource else "")
    candidates = _BY_ROUTE.get(key)
    if candidates is None:
        candidates = _BY_ROUTE[key] = tuple(op for op in OPERATIONS.get(request.method, ()) if op.path.match(path))
    for operation in candidates:
        if not operation.literal or all(request.query.get(name) == value for name, value in operation.literal):
            return operation
    return None


def operation_and_params(request: web.Request) -> tuple[str, dict[str, str]] | None:
    """The Lambda operation a request calls and its path parameters by member name, decoded
    (authorisation's question: which action on which resource). Remembered per method, path and
    query: the invoke path asks about the same few again and again."""
    path = request.raw_path.split("?", 1)[0]
    key = (request.method, request.raw_path)  # with the query: two operations may share a path (?find=, ?List=)
    found = _BY_PATH.get(key)
    if found is None and key not in _BY_PATH:
        operation = _operation_of(request, path)
        match = operation.path.match(path) if operation is not None else None
        found = None if operation is None or match is None else (
            operation.name, {name: unquote(value) for name, value in match.groupdict().items()})
        if len(_BY_PATH) >= 4096:
            _BY_PATH.clear()
        _BY_PATH[key] = found
    return (found[0], dict(found[1])) if found is not None else None


_BY_PATH: dict[tuple[str, str], tuple[str, dict[str, str]] | None] = {}


def problems(request: web.Request) -> list[str]:
    """Every broken constraint of the request's path, query-string and header parameters."""
    path = request.raw_path.split("?", 1)[0]
    operation = _operation_of(request, path)
    match = operation.path.match(path) if operation is not None else None
    if operation is None or match is None:
        return []
    found: list[str] = []
    for parameter in operation.uri:
        found += _value_problems(parameter, unquote(match.group(parameter.name)))
    if operation.query:
        query = request.query
        for parameter in operation.query:
            raw = query.get(parameter.name)
            if raw is not None:
                found += _value_problems(parameter, raw)
            elif parameter.member in operation.required:  # UntagResource without TagKeys (or with [])
                found.append(service_model.problem(None, _member_path(parameter.member), "not be null"))
    headers = request.headers
    for parameter in operation.headers:
        raw = headers.get(parameter.name)
        if raw is not None:
            found += _value_problems(parameter, raw)
    return found


def _member_path(member: str) -> str:
    return member[0].lower() + member[1:]


async def body_problems(request: web.Request, operation: _Operation) -> list[str]:
    """The JSON body's broken constraints (model_body). The body is read here, within the body
    timeout, refused with AWS's 413 past the request limit, and its decoded JSON kept on the
    request for the handler (`common.json_body`), so that it is parsed once."""
    if model_body.body_checker(operation.name) is None:
        return []
    try:
        raw = await lambda_body(request)
    except web.HTTPRequestEntityTooLarge:
        raise RequestEntityTooLargeException(
            f"Request must be smaller than {request.client_max_size} bytes for the {operation.name} operation") from None
    if not raw.strip():
        data: object = {}
    else:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the parser goes
            raise InvalidRequestContentException(f"Could not parse request body into json: {exc}") from None
    request[JSON_BODY] = data
    if not isinstance(data, dict):
        return []  # the handler answers a body that is not an object
    return model_body.body_problems(operation.name, data)


@web.middleware
async def check_parameters(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/20"):  # not a Lambda route (/2015-03-31/..., /2018-10-31/layers, ...)
        return await handler(request)
    if request.method == "POST" and request.path.endswith("/invocations"):
        # Invoke, the hot path: its parameters are checked only when it fails anyway (a qualifier
        # or name the lookup refuses is then the ValidationException Lambda gives), so that a
        # successful invoke pays nothing for them (~6-12 µs).
        try:
            return await handler(request)
        except LambdaError:
            found = problems(request)
            if found:
                raise ValidationException(service_model.message(found)) from None
            raise
    found = problems(request)
    if request.method in ("POST", "PUT", "PATCH"):
        operation = _operation_of(request, request.raw_path.split("?", 1)[0])
        if operation is not None:
            found += await body_problems(request, operation)
    if found:
        raise ValidationException(service_model.message(found))
    return await handler(request)
