"""Helpers every API module shares: services lookup, JSON bodies, FunctionName and Qualifier."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, Callable

from aiohttp import web

from lambdalet.errors import (
    InvalidParameterValueException, InvalidRequestContentException, RequestTimeoutException, ResourceNotFoundException,
)
from lambdalet.model import FunctionRef, parse_function_name
from lambdalet.validation import Body

if TYPE_CHECKING:
    from lambdalet.server import Services

SERVICES = web.AppKey("services", object)
#: The request's decoded JSON body, when the model check (api/model_params.py) has read it already.
JSON_BODY = "lambdalet.json_body"


def services(request: web.Request) -> "Services":
    return request.app[SERVICES]  # type: ignore[return-value]


async def read_body(request: web.Request) -> bytes:
    """The request's body, which the client must finish sending within --http-body-timeout: a
    client trickling its body would otherwise hold its connection (and a descriptor) for ever.
    Raises asyncio.TimeoutError past it (the API in question answers in its own shape)."""
    if request.content.is_eof():  # all of it has arrived (the usual small request): no timer needed
        return await request.read()
    return await asyncio.wait_for(request.read(), services(request).settings.http_body_timeout)


async def lambda_body(request: web.Request) -> bytes:
    """`read_body` for the Lambda API: past the deadline, Lambda's error shape with 408."""
    try:
        return await read_body(request)
    except asyncio.TimeoutError:
        raise RequestTimeoutException("The request body was not received within "
                                      f"{services(request).settings.http_body_timeout:g} seconds.") from None


async def json_body(request: web.Request) -> Body:
    if JSON_BODY in request:
        return Body(request[JSON_BODY])
    raw = await lambda_body(request)
    if not raw.strip():
        return Body({})
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the parser goes
        raise InvalidRequestContentException(f"Could not parse request body into json: {exc}") from None
    return Body(data)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data), content_type="application/json")


def function_ref(request: web.Request) -> FunctionRef:
    """The FunctionName path parameter, checked against this server's account and region."""
    ref = parse_function_name(request.match_info["function_name"])
    svc = services(request)
    if ref.region and ref.region != svc.arns.region:  # AWS's words
        raise ResourceNotFoundException(
            f"Functions from '{ref.region}' are not reachable in this region ('{svc.arns.region}')")
    if ref.account and ref.account != svc.arns.account:
        raise ResourceNotFoundException(
            f"Function not found: {request.match_info['function_name']} "
            f"(this server is account {svc.arns.account} in {svc.arns.region})"
        )
    return ref


def qualifier(request: web.Request, ref: FunctionRef) -> str | None:
    """The qualifier from the name or ?Qualifier=; both given and different is Lambda's 400."""
    query = request.query.get("Qualifier")
    if query is not None and ref.qualifier is not None and query != ref.qualifier:
        raise InvalidParameterValueException(
            "The derived qualifier from the function name does not match the specified qualifier."
        )
    return ref.qualifier if ref.qualifier is not None else query


def unqualified_name(request: web.Request, what: str) -> str:
    """The FunctionName of an operation on the whole function (`what` says which, for the error)."""
    ref = function_ref(request)
    if ref.qualifier is not None:
        raise InvalidParameterValueException(f"{what} belongs to the unqualified function name.")
    return ref.name


MAX_LIST_ITEMS = 50


def paginate(request: web.Request, keys: list[str]) -> tuple[list[str], str | None]:
    """Lambda's Marker/MaxItems paging over sorted keys: the page and the next page's marker."""
    max_items = _max_items(request)
    marker = request.query.get("Marker")
    start = 0
    if marker:  # a marker is a key this server handed out; one that has gone since resumes after it
        start = keys.index(marker) if marker in keys else next(
            (i for i, key in enumerate(keys) if key > marker), len(keys))
    page = keys[start:start + max_items]
    return page, keys[start + max_items] if start + max_items < len(keys) else None


def list_response(request: web.Request, keys: list[str], field: str, describe: Callable[[str], dict]) -> web.Response:
    """A List* answer: one page of the sorted `keys`, each described, under `field`, with a
    NextMarker when more remain."""
    page, next_marker = paginate(request, keys)
    result: dict = {field: [describe(key) for key in page]}
    if next_marker is not None:
        result["NextMarker"] = next_marker
    return json_response(result)


def _max_items(request: web.Request) -> int:
    raw = request.query.get("MaxItems")
    if raw is None:
        return MAX_LIST_ITEMS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= 10000:
        raise InvalidParameterValueException(
            f"1 validation error detected: Value '{raw}' at 'maxItems' failed to satisfy constraint: "
            "Member must have value between 1 and 10000"
        )
    return min(value, MAX_LIST_ITEMS)
