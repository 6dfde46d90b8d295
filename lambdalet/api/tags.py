"""Tags on functions and event source mappings: TagResource, UntagResource, ListTags (by ARN).

Functions are the registry's; every other taggable kind is a `Taggable` in `TAGGABLE`, by the
resource type of its ARN, so that a new kind (code signing configs) is one entry there.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Protocol

from aiohttp import web

from lambdalet import network, validation
from lambdalet.api.common import json_body, json_response, services
from lambdalet.errors import InvalidParameterValueException, ResourceNotFoundException, ValidationException
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


class Taggable(Protocol):
    """A kind of taggable resource other than functions, found by the resource type of its ARN."""

    #: How Lambda names it in "<what> not found: <arn>".
    what: str

    async def get_tags(self, request: web.Request, arn: str) -> dict[str, str] | None:
        """Its tags; None when there is no such resource."""

    async def set_tags(self, request: web.Request, arn: str, tags: dict[str, str]) -> None:
        """Replace its tags (it exists: get_tags said so)."""


class MappingTags:
    what = "Event source mapping"

    async def get_tags(self, request: web.Request, arn: str) -> dict[str, str] | None:
        mapping = await services(request).mappings.get(arn.rsplit(":", 1)[1])
        return None if mapping is None else dict(mapping.tags)

    async def set_tags(self, request: web.Request, arn: str, tags: dict[str, str]) -> None:
        await services(request).mappings.set_tags(arn.rsplit(":", 1)[1], tags)


class CodeSigningTags:
    what = "Code signing config"

    async def get_tags(self, request: web.Request, arn: str) -> dict[str, str] | None:
        stored = await asyncio.to_thread(services(request).code_signing.get, arn.rsplit(":", 1)[1])
        return None if stored is None else dict(stored.tags)

    async def set_tags(self, request: web.Request, arn: str, tags: dict[str, str]) -> None:
        await asyncio.to_thread(services(request).code_signing.set_tags, arn.rsplit(":", 1)[1], tags)


class NoneHere:
    """A kind this server has no resources of (yet): every ARN of it is not found."""

    def __init__(self, what: str) -> None:
        self.what = what

    async def get_tags(self, request: web.Request, arn: str) -> dict[str, str] | None:
        return None

    async def set_tags(self, request: web.Request, arn: str, tags: dict[str, str]) -> None:
        raise AssertionError("never found, never tagged")


#: By the resource type in the ARN; a new taggable kind (code signing configs) registers here.
TAGGABLE: dict[str, Taggable] = {
    "event-source-mapping": MappingTags(),
    "code-signing-config": CodeSigningTags(),
    "capacity-provider": NoneHere("Capacity provider"),
}


async def _other(request: web.Request) -> tuple[Taggable, str, dict[str, str]] | None:
    """(its kind, its ARN, its tags) when a tag request names a resource other than a function."""
    raw = request.match_info["arn"]
    parts = raw.split(":")
    kind = TAGGABLE.get(parts[5]) if raw.startswith("arn:") and len(parts) > 5 else None
    if kind is None:
        return None
    if not _RESOURCE.fullmatch(raw):
        raise ValidationException(f"1 validation error detected: Value '{raw}' at 'resource' failed to satisfy "
                                  f"constraint: Member must satisfy regular expression pattern: {RESOURCE_PATTERN}")
    svc = services(request)
    tags = await kind.get_tags(request, raw) if parts[3:5] == [svc.arns.region, svc.arns.account] else None
    if tags is None:
        raise ResourceNotFoundException(f"{kind.what} not found: {raw}")
    return kind, raw, tags


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
    other = await _other(request)
    tags = validation.tags(await json_body(request))
    if tags == {}:  # AWS's words for an empty Tags map
        raise InvalidParameterValueException("An error occurred and the request cannot be processed.")
    tags = tags or {}
    if other is not None:
        kind, arn, current = other
        await kind.set_tags(request, arn, {**current, **tags})
    else:
        await _change(request, _function_name(request), add=tags)
    return web.Response(status=204)


async def untag_resource(request: web.Request) -> web.Response:
    other = await _other(request)
    keys = request.query.getall("tagKeys", [])
    if other is not None:
        kind, arn, current = other
        await kind.set_tags(request, arn, {k: v for k, v in current.items() if k not in keys})
    else:
        await _change(request, _function_name(request), remove=keys)
    return web.Response(status=204)


async def _change(request: web.Request, name: str, **change: Any) -> None:
    svc = services(request)

    def check(function: Function, tags: dict[str, str]) -> None:
        network.check(tags, svc.sandbox, snap_start=function.uses_snapstart())

    await svc.functions.change_tags(name, check=check, **change)


async def list_tags(request: web.Request) -> web.Response:
    other = await _other(request)
    if other is not None:
        return json_response({"Tags": other[2]})
    name = _function_name(request)
    return json_response({"Tags": dict(services(request).functions.get(name).tags)})
