"""Layers: PublishLayerVersion, Get/List/DeleteLayerVersion(s), ListLayers, GetLayerVersionByArn,
and layer version permissions (Add/RemoveLayerVersionPermission, GetLayerVersionPolicy).

Permissions are stored and returned as Lambda shapes them; like function policies they are not
enforced (there is one account per server).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
import re
from typing import Awaitable, Callable

from aiohttp import web

from lambdalet import s3_code, validation
from lambdalet.api.common import json_body, json_response, list_response, services
from lambdalet.errors import InvalidParameterValueException, ResourceNotFoundException
from lambdalet.layers import NOT_FOUND, check_version_number
from lambdalet.model import LayerVersion, parse_layer_name, parse_layer_version_arn
from lambdalet.policies import adding, policy_document, removing
from lambdalet.runtimes.registry import lambda_runtimes

ARCHITECTURES = ("x86_64", "arm64")
STATEMENT_ID = re.compile(r"^([a-zA-Z0-9-_]+)$")
ACTION = re.compile(r"^lambda:GetLayerVersion$")
PRINCIPAL = re.compile(r"^(\d{12}|\*|arn:(aws[a-zA-Z-]*):iam::\d{12}:root)$")
ORGANIZATION_ID = re.compile(r"^o-[a-z0-9]{10,32}$")


def routes() -> list[web.RouteDef]:
    base = "/2018-10-31/layers"
    version = base + "/{layer_name}/versions/{version}"
    return [
        web.get(base, fresh(list_layers_or_find)),
        web.post(base + "/{layer_name}/versions", fresh(publish_layer_version)),
        web.get(base + "/{layer_name}/versions", fresh(list_layer_versions)),
        web.get(version, fresh(get_layer_version)),
        web.delete(version, fresh(delete_layer_version)),
        web.post(version + "/policy", fresh(add_layer_version_permission)),
        web.get(version + "/policy", fresh(get_layer_version_policy)),
        web.delete(version + "/policy/{statement_id}", fresh(remove_layer_version_permission)),
    ]


def fresh(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Callable[[web.Request],
                                                                                       Awaitable[web.StreamResponse]]:
    """`handler` on the layers as the database has them now (another node may have changed them)."""
    @functools.wraps(handler)
    async def on_fresh_layers(request: web.Request) -> web.StreamResponse:
        await services(request).layers.refresh(request)
        return await handler(request)
    return on_fresh_layers


def _layer_name(request: web.Request) -> str:
    """The LayerName path parameter (a name or a layer ARN of this server's account and region)."""
    ref = parse_layer_name(request.match_info["layer_name"])
    svc = services(request)
    if (ref.account and ref.account != svc.arns.account) or (ref.region and ref.region != svc.arns.region):
        raise ResourceNotFoundException(NOT_FOUND)
    return ref.name


def _version_number(request: web.Request) -> int:
    raw = request.match_info["version"]
    try:
        version = int(raw)
    except ValueError:
        raise validation.constraint_error(raw, "versionNumber", "be a number") from None
    check_version_number(version)
    return version


def _location(request: web.Request, layer: LayerVersion) -> str:
    return f"{request.scheme}://{request.host}/_lambdalet/code/{layer.code_sha256}.zip"


def _enum_list(body: validation.Body, name: str, allowed: tuple[str, ...], max_items: int) -> tuple[str, ...]:
    values = body.string_list(name) or []
    if len(values) > max_items:
        raise validation.constraint_error(values, body.path(name),
                                          f"have length less than or equal to {max_items}")
    for value in values:
        if value not in allowed:
            raise validation.constraint_error(
                values, body.path(name),
                f"satisfy constraint: [Member must satisfy enum value set: [{', '.join(allowed)}]]")
    return tuple(values)


def _filters(request: web.Request) -> tuple[str | None, str | None]:
    """CompatibleRuntime and CompatibleArchitecture of ListLayers/ListLayerVersions, checked."""
    runtime = request.query.get("CompatibleRuntime")
    architecture = request.query.get("CompatibleArchitecture")
    if runtime is not None and runtime not in lambda_runtimes():
        raise validation.constraint_error(runtime, "compatibleRuntime",
                                          f"satisfy enum value set: [{', '.join(lambda_runtimes())}]")
    if architecture is not None and architecture not in ARCHITECTURES:
        raise validation.constraint_error(architecture, "compatibleArchitecture",
                                          f"satisfy enum value set: [{', '.join(ARCHITECTURES)}]")
    return runtime, architecture


async def publish_layer_version(request: web.Request) -> web.Response:
    svc = services(request)
    name = _layer_name(request)
    body = await json_body(request)
    content = body.struct("Content")
    if content is None:
        raise InvalidParameterValueException("Content is required.")
    s3_object = s3_code.requested(content, "LayerContent")
    zip_b64 = content.string("ZipFile")
    if s3_object is None and not zip_b64:
        raise InvalidParameterValueException(
            "Please provide a source for layer content (Content.ZipFile, or Content.S3Bucket and S3Key).")
    draft = dict(
        description=body.string("Description", "", max_len=256),
        license_info=body.string("LicenseInfo", max_len=512),
        compatible_runtimes=_enum_list(body, "CompatibleRuntimes", lambda_runtimes(), 15),
        compatible_architectures=_enum_list(body, "CompatibleArchitectures", ARCHITECTURES, 2),
        compatible_given=tuple(m for m in ("CompatibleRuntimes", "CompatibleArchitectures") if body.has(m)),
    )
    if s3_object is not None:
        blob = await svc.s3_code.fetch(s3_object)
    else:
        try:
            data = base64.b64decode(zip_b64, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidParameterValueException("Content.ZipFile is not valid base64.") from None
        blob = await asyncio.to_thread(svc.blobs.put_zip, data)
    layer = await svc.layers.publish(LayerVersion(name=name, version=0, code_sha256=blob.sha256, code_size=blob.size,
                                                  unzipped_size=blob.unzipped_size, **draft))
    return json_response(layer.to_api(svc.arns, _location(request, layer)), status=201)


async def get_layer_version(request: web.Request) -> web.Response:
    svc = services(request)
    layer = svc.layers.version(_layer_name(request), _version_number(request))
    return json_response(layer.to_api(svc.arns, _location(request, layer)))


async def list_layers_or_find(request: web.Request) -> web.Response:
    """GET /2018-10-31/layers is ListLayers, and GetLayerVersionByArn with ?find=LayerVersion."""
    svc = services(request)
    if request.query.get("find") == "LayerVersion":
        return await _get_layer_version_by_arn(request)
    runtime, architecture = _filters(request)
    newest = {}
    for name in svc.layers.names():
        layer = svc.layers.layer(name)
        match = layer.newest(runtime, architecture) if layer is not None else None
        if match is not None:
            newest[name] = match
    return list_response(request, sorted(newest), "Layers", lambda name: {
        "LayerName": name, "LayerArn": svc.arns.layer(name),
        "LatestMatchingVersion": newest[name].to_list_item(svc.arns)})


async def _get_layer_version_by_arn(request: web.Request) -> web.Response:
    svc = services(request)
    raw = request.query.get("Arn", "")
    ref = parse_layer_version_arn(raw)
    if ref is None:
        raise validation.constraint_error(
            raw, "arn", "satisfy regular expression pattern: "
            "arn:(aws[a-zA-Z-]*)?:lambda:[a-z]{2}((-gov)|(-iso(b?)))?-[a-z]+-\\d{1}:\\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+")
    if ref.account != svc.arns.account or ref.region != svc.arns.region:
        raise ResourceNotFoundException(NOT_FOUND)
    layer = svc.layers.version(ref.name, ref.version or 0)
    return json_response(layer.to_api(svc.arns, _location(request, layer)))


async def list_layer_versions(request: web.Request) -> web.Response:
    svc = services(request)
    name = _layer_name(request)
    runtime, architecture = _filters(request)
    layer = svc.layers.layer(name)
    versions = {} if layer is None else {
        # Newest first, as Lambda lists them; keys that sort that way keep Marker paging simple.
        f"{10**10 - number:010d}": version for number, version in layer.versions.items()
        if version.matches(runtime, architecture)}
    return list_response(request, sorted(versions), "LayerVersions",
                         lambda key: versions[key].to_list_item(svc.arns))


async def delete_layer_version(request: web.Request) -> web.Response:
    svc = services(request)
    await svc.layers.delete(_layer_name(request), _version_number(request))
    return web.Response(status=204)


def _principal(principal: str) -> object:
    if principal == "*":
        return "*"
    if principal.isdigit():
        return {"AWS": f"arn:aws:iam::{principal}:root"}
    return {"AWS": principal}


async def add_layer_version_permission(request: web.Request) -> web.Response:
    svc = services(request)
    name, version = _layer_name(request), _version_number(request)
    body = await json_body(request)
    sid = body.string("StatementId", required=True, max_len=100, pattern=STATEMENT_ID)
    action = body.string("Action", required=True, max_len=22, pattern=ACTION)
    principal = body.string("Principal", required=True, pattern=PRINCIPAL)
    organization = body.string("OrganizationId", max_len=34, pattern=ORGANIZATION_ID)
    statement: dict = {"Sid": sid, "Effect": "Allow", "Principal": _principal(principal), "Action": action,
                       "Resource": svc.arns.layer(name, version)}
    if organization is not None:
        statement["Condition"] = {"StringEquals": {"aws:PrincipalOrgID": organization}}
    change = adding(statement, request.query.get("RevisionId"), "GetLayerPolicy")
    _statements, revision_id = await svc.layers.change_policy(name, version, change)
    return json_response({"Statement": json.dumps(statement), "RevisionId": revision_id}, status=201)


async def remove_layer_version_permission(request: web.Request) -> web.Response:
    svc = services(request)
    name, version = _layer_name(request), _version_number(request)
    change = removing(request.match_info["statement_id"], request.query.get("RevisionId"), "GetLayerPolicy")
    await svc.layers.change_policy(name, version, change)
    return web.Response(status=204)


async def get_layer_version_policy(request: web.Request) -> web.Response:
    svc = services(request)
    name, version = _layer_name(request), _version_number(request)
    svc.layers.version(name, version, missing=f"Layer version {svc.arns.layer(name, version)} does not exist.")
    layer = svc.layers.layer(name)
    policy = layer.policies.get(version) if layer is not None else None
    if policy is None:
        raise ResourceNotFoundException("No policy is associated with the given resource.")
    statements, revision_id = policy
    return json_response({"Policy": json.dumps(policy_document(statements)), "RevisionId": revision_id})
