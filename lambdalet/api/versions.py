"""Versions: PublishVersion and ListVersionsByFunction."""

from __future__ import annotations

from aiohttp import web

from lambdalet.api.common import json_body, json_response, list_response, services, unqualified_name
from lambdalet import validation
from lambdalet.model import LATEST


def routes() -> list[web.RouteDef]:
    base = "/2015-03-31/functions/{function_name}/versions"
    return [web.post(base, publish_version), web.get(base, list_versions_by_function)]


async def publish_version(request: web.Request) -> web.Response:
    svc = services(request)
    name = unqualified_name(request, "A version")
    body = await json_body(request)
    validation.refuse_unsupported_publishing(body)
    version = await svc.functions.publish(
        name, code_sha256_b64=body.string("CodeSha256"), revision_id=body.string("RevisionId"),
        description=body.string("Description", max_len=256),
    )
    return json_response(version.to_api(svc.arns), status=201)


async def list_versions_by_function(request: web.Request) -> web.Response:
    svc = services(request)
    function = svc.functions.get(unqualified_name(request, "A version"))
    keys = [LATEST] + sorted(function.versions, key=int)
    return list_response(request, keys, "Versions",
                         lambda key: (function.latest if key == LATEST else function.versions[key]).to_api(
                             svc.arns, key, listed=True))
