"""Aliases: Create/Get/Update/Delete/ListAliases, with weighted routing between two versions."""

from __future__ import annotations

import re

from aiohttp import web

from lambdalet import validation
from lambdalet.api import provisioned
from lambdalet.api.common import json_body, json_response, list_response, services, unqualified_name
from lambdalet.errors import InvalidParameterValueException, ResourceNotFoundException
from lambdalet.model import Alias, new_revision_id
from lambdalet.validation import Body

ALIAS_NAME = re.compile(r"^(?!^[0-9]+$)([a-zA-Z0-9-_]+)$")
VERSION = re.compile(r"^(\$LATEST|[0-9]+)$")


def routes() -> list[web.RouteDef]:
    base = "/2015-03-31/functions/{function_name}/aliases"
    return [
        web.post(base, create_alias),
        web.get(base, list_aliases),
        web.get(base + "/{alias}", get_alias),
        web.put(base + "/{alias}", update_alias),
        web.delete(base + "/{alias}", delete_alias),
    ]


def _weights(body: Body) -> dict[str, float] | None:
    routing = body.struct("RoutingConfig")
    if routing is None:
        return None
    weights = routing.data.get("AdditionalVersionWeights") or {}
    if not isinstance(weights, dict):
        raise validation.constraint_error(weights, "routingConfig.additionalVersionWeights", "be a map")
    if len(weights) > 1:
        raise InvalidParameterValueException("Number of items in AdditionalVersionWeights cannot be greater than 1")
    for version, weight in weights.items():
        if not VERSION.match(str(version)):
            raise validation.constraint_error(version, "routingConfig.additionalVersionWeights",
                                              "satisfy regular expression pattern: [0-9]+")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= weight <= 1.0:
            raise validation.constraint_error(weight, "routingConfig.additionalVersionWeights",
                                              "have a value between 0.0 and 1.0")
    return {str(version): float(weight) for version, weight in weights.items()}


async def create_alias(request: web.Request) -> web.Response:
    svc = services(request)
    function_name = unqualified_name(request, "An alias")
    body = await json_body(request)
    alias = Alias(
        function_name=function_name,
        name=body.string("Name", required=True, max_len=128, pattern=ALIAS_NAME),
        function_version=body.string("FunctionVersion", required=True, max_len=1024, pattern=VERSION),
        description=body.string("Description", "", max_len=256),
        weights=_weights(body) or {},
    )
    alias = await svc.functions.put_alias(alias, create=True)
    return json_response(alias.to_api(svc.arns), status=201)


async def get_alias(request: web.Request) -> web.Response:
    svc = services(request)
    name, alias_name = unqualified_name(request, "An alias"), request.match_info["alias"]
    if alias_name not in svc.functions.get(name).aliases:  # GetAlias's words (UpdateAlias says "Alias not found")
        raise ResourceNotFoundException(f"Cannot find alias arn: {svc.arns.function(name, alias_name)}")
    return json_response(svc.functions.alias(name, alias_name).to_api(svc.arns))


async def update_alias(request: web.Request) -> web.Response:
    svc = services(request)
    function_name = unqualified_name(request, "An alias")
    current = svc.functions.alias(function_name, request.match_info["alias"])
    body = await json_body(request)
    weights = _weights(body)
    alias = Alias(
        function_name=function_name,
        name=current.name,
        function_version=body.string("FunctionVersion", current.function_version, max_len=1024, pattern=VERSION),
        description=body.string("Description", current.description, max_len=256),
        weights=current.weights if weights is None else weights,
        revision_id=new_revision_id(),
    )
    alias = await svc.functions.put_alias(alias, create=False, revision_id=body.string("RevisionId"))
    return json_response(alias.to_api(svc.arns))


async def delete_alias(request: web.Request) -> web.Response:
    svc = services(request)
    name, alias_name = unqualified_name(request, "An alias"), request.match_info["alias"]
    if alias_name not in svc.functions.get(name).aliases:
        return web.Response(status=204)  # idempotent, as AWS answers (the function must exist)
    if alias_name in svc.functions.get(name).provisioned:  # its provisioned concurrency goes with it
        await provisioned.remove(svc, name, alias_name)
    await svc.functions.delete_alias(name, alias_name)
    return web.Response(status=204)


async def list_aliases(request: web.Request) -> web.Response:
    svc = services(request)
    function = svc.functions.get(unqualified_name(request, "An alias"))
    version = request.query.get("FunctionVersion")
    names = sorted(name for name, alias in function.aliases.items()
                   if version is None or alias.function_version == version or version in alias.weights)
    return list_response(request, names, "Aliases", lambda name: function.aliases[name].to_api(svc.arns))
