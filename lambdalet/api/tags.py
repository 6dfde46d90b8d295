"""Tags on functions: TagResource, UntagResource, ListTags (the resource is a function ARN)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lambdalet import network, validation
from lambdalet.api.common import json_body, json_response, services
from lambdalet.errors import InvalidParameterValueException, ResourceNotFoundException
from lambdalet.functions import Function
from lambdalet.model import parse_function_name


def routes() -> list[web.RouteDef]:
    base = "/2017-03-31/tags/{arn}"
    return [web.post(base, tag_resource), web.delete(base, untag_resource), web.get(base, list_tags)]


def _function_name(request: web.Request) -> str:
    """Tags live on the unqualified function, named by its ARN."""
    svc = services(request)
    raw = request.match_info["arn"]
    if not raw.startswith("arn:"):
        raise InvalidParameterValueException(f"Tag operations take a function ARN, not {raw!r}.")
    ref = parse_function_name(raw)
    if ref.qualifier is not None:
        raise InvalidParameterValueException("Tags can only be applied to the unqualified function ARN.")
    if (ref.account, ref.region) != (svc.arns.account, svc.arns.region):
        raise ResourceNotFoundException(f"Function not found: {raw}")
    svc.functions.get(ref.name)
    return ref.name


async def tag_resource(request: web.Request) -> web.Response:
    name = _function_name(request)
    tags = validation.tags(await json_body(request)) or {}
    await _change(request, name, add=tags)
    return web.Response(status=204)


async def untag_resource(request: web.Request) -> web.Response:
    name = _function_name(request)
    keys = request.query.getall("tagKeys", [])
    await _change(request, name, remove=keys)
    return web.Response(status=204)


async def _change(request: web.Request, name: str, **change: Any) -> None:
    svc = services(request)

    def check(function: Function, tags: dict[str, str]) -> None:
        network.check(tags, svc.sandbox, snap_start=function.uses_snapstart())

    await svc.functions.change_tags(name, check=check, **change)


async def list_tags(request: web.Request) -> web.Response:
    name = _function_name(request)
    return json_response({"Tags": dict(services(request).functions.get(name).tags)})
