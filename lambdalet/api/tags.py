"""Tags on functions and event source mappings: TagResource, UntagResource, ListTags (by ARN)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from lambdalet import network, validation
from lambdalet.api.common import json_body, json_response, services
from lambdalet.errors import InvalidParameterValueException, ResourceNotFoundException, ValidationException
from lambdalet.events.mappings import EventSourceMapping
from lambdalet.functions import Function
from lambdalet.model import parse_function_name


def routes() -> list[web.RouteDef]:
    base = "/2017-03-31/tags/{arn}"
    return [web.post(base, tag_resource), web.delete(base, untag_resource), web.get(base, list_tags)]


#: The resource pattern Lambda quotes when a tag operation names something that is not taggable.
RESOURCE_PATTERN = (r"arn:(aws[a-zA-Z-]*):lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:"
                    r"(function:[a-zA-Z0-9-_]+(:(\$LATEST|[a-zA-Z0-9-_]+))?|layer:([a-zA-Z0-9-_]+)|"
                    r"code-signing-config:csc-[a-z0-9]{17}|event-source-mapping:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-"
                    r"[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|capacity-provider:[a-zA-Z0-9-_]+)")
_RESOURCE = re.compile(RESOURCE_PATTERN)


async def _mapping(request: web.Request) -> EventSourceMapping | None:
    """The event source mapping a tag request's ARN names; None when it names a function."""
    raw = request.match_info["arn"]
    if ":event-source-mapping:" not in raw:
        return None
    if not _RESOURCE.fullmatch(raw):
        raise ValidationException(f"1 validation error detected: Value '{raw}' at 'resource' failed to satisfy "
                                  f"constraint: Member must satisfy regular expression pattern: {RESOURCE_PATTERN}")
    svc = services(request)
    mapping = await svc.mappings.get(raw.rsplit(":", 1)[1])
    if mapping is None or raw.split(":")[3:5] != [svc.arns.region, svc.arns.account]:
        raise ResourceNotFoundException(f"Event source mapping not found: {raw}")
    return mapping


def _function_name(request: web.Request) -> str:
    """Tags live on the unqualified function, named by its ARN."""
    svc = services(request)
    raw = request.match_info["arn"]
    if not raw.startswith("arn:"):
        raise InvalidParameterValueException(f"Tag operations take a function ARN, not {raw!r}.")
    ref = parse_function_name(raw)
    if ref.qualifier is not None:
        raise InvalidParameterValueException(
            "Tags on function aliases and versions are not supported. Please specify a function ARN.")
    if (ref.account, ref.region) != (svc.arns.account, svc.arns.region):
        raise ResourceNotFoundException(f"Function not found: {raw}")
    svc.functions.get(ref.name)
    return ref.name


async def tag_resource(request: web.Request) -> web.Response:
    mapping = await _mapping(request)
    tags = validation.tags(await json_body(request))
    if tags == {}:  # AWS's words for an empty Tags map
        raise InvalidParameterValueException("An error occurred and the request cannot be processed.")
    tags = tags or {}
    if mapping is not None:
        await services(request).mappings.set_tags(mapping.uuid, {**mapping.tags, **tags})
    else:
        await _change(request, _function_name(request), add=tags)
    return web.Response(status=204)


async def untag_resource(request: web.Request) -> web.Response:
    mapping = await _mapping(request)
    keys = request.query.getall("tagKeys", [])
    if mapping is not None:
        await services(request).mappings.set_tags(mapping.uuid, {k: v for k, v in mapping.tags.items() if k not in keys})
    else:
        await _change(request, _function_name(request), remove=keys)
    return web.Response(status=204)


async def _change(request: web.Request, name: str, **change: Any) -> None:
    svc = services(request)

    def check(function: Function, tags: dict[str, str]) -> None:
        network.check(tags, svc.sandbox, snap_start=function.uses_snapstart())

    await svc.functions.change_tags(name, check=check, **change)


async def list_tags(request: web.Request) -> web.Response:
    mapping = await _mapping(request)
    if mapping is not None:
        return json_response({"Tags": dict(mapping.tags)})
    name = _function_name(request)
    return json_response({"Tags": dict(services(request).functions.get(name).tags)})
