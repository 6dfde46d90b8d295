"""Code signing configs (CreateCodeSigningConfig ... ListFunctionsByCodeSigningConfig) and which
function uses one (Put/Get/DeleteFunctionCodeSigningConfig).

A config says which signing profiles may sign a function's code and what an untrusted upload
does (`Warn` or `Enforce`); code_signing.py checks each upload against it. Stored in the
database only (store/code_signing.py), so every node answers the same.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from aiohttp import web

from lambdalet import validation
from lambdalet.code_signing import verify as verify_code
from lambdalet.api.common import json_body, json_response, paginate, services, unqualified_name
from lambdalet.errors import (
    InvalidParameterValueException,
    LambdaError,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lambdalet.model import now_iso
from lambdalet.validation import Body

log = logging.getLogger(__name__)


def routes() -> list[web.RouteDef]:
    base = "/2020-04-22/code-signing-configs"
    one = base + "/{arn}"
    function = "/2020-06-30/functions/{function_name}/code-signing-config"
    return [
        web.post(base, create), web.get(base, list_configs),
        web.get(one, get), web.put(one, update_config), web.delete(one, delete),
        web.get(one + "/functions", list_functions),
        web.put(function, put_function), web.get(function, get_function), web.delete(function, delete_function),
    ]


class CodeSigningConfigNotFoundException(LambdaError):
    status, error_type, message_member = 404, "CodeSigningConfigNotFoundException", "Message"


class ConfigNotFound(ResourceNotFoundException):
    """Lambda's answer for a config named by the path: no `Type` in its body."""

    def body(self) -> dict[str, str]:
        return {self.message_member: self.message}


def config_arn(request: web.Request, config_id: str) -> str:
    arns = services(request).arns
    return f"arn:aws:lambda:{arns.region}:{arns.account}:code-signing-config:{config_id}"


def config_id(request: web.Request, arn: str) -> str | None:
    """The id an ARN names, when it is one of this server's account and region."""
    arns = services(request).arns
    prefix = f"arn:aws:lambda:{arns.region}:{arns.account}:code-signing-config:"
    return arn[len(prefix):] if arn.startswith(prefix) else None


async def _stored(request: web.Request) -> tuple[str, dict]:
    """(id, config) of the config the path names, or Lambda's 404."""
    arn = request.match_info["arn"]
    found_id = config_id(request, arn)
    stored = None if found_id is None else await asyncio.to_thread(services(request).code_signing.get, found_id)
    if stored is None:
        raise ConfigNotFound(f"The Lambda code signing configuration {arn} can not be found.")
    return stored.id, stored.config


def _publishers(body: Body) -> dict:
    allowed = body.struct("AllowedPublishers")
    arns = allowed.string_list("SigningProfileVersionArns") if allowed is not None else None
    if not arns:
        raise InvalidParameterValueException("AllowedPublishers.SigningProfileVersionArns must name at least "
                                             "one signing profile version.")
    return {"SigningProfileVersionArns": list(arns)}


def _policies(body: Body, current: dict | None = None) -> dict:
    policies = body.struct("CodeSigningPolicies")
    default = (current or {}).get("UntrustedArtifactOnDeployment", "Warn")
    value = policies.string("UntrustedArtifactOnDeployment", default) if policies is not None else default
    if value not in ("Warn", "Enforce"):
        raise validation.constraint_error(value, "codeSigningPolicies.untrustedArtifactOnDeployment",
                                          "satisfy enum value set: [Warn, Enforce]")
    return {"UntrustedArtifactOnDeployment": value}


async def create(request: web.Request) -> web.Response:
    svc = services(request)
    body = await json_body(request)
    publishers = _publishers(body)
    policies = _policies(body)
    description = body.string("Description", "", max_len=256) or ""
    tags = validation.tags(body) or {}
    new_id = "csc-" + secrets.token_hex(9)[:17]
    config = {"CodeSigningConfigId": new_id, "CodeSigningConfigArn": config_arn(request, new_id),
              "Description": description, "AllowedPublishers": publishers, "CodeSigningPolicies": policies,
              "LastModified": now_iso()}
    await asyncio.to_thread(svc.code_signing.create, new_id, config, tags)
    return json_response({"CodeSigningConfig": config}, status=201)


async def get(request: web.Request) -> web.Response:
    _id, config = await _stored(request)
    return json_response({"CodeSigningConfig": config})


async def update_config(request: web.Request) -> web.Response:
    found_id, config = await _stored(request)
    body = await json_body(request)
    changed = dict(config)
    if body.has("Description"):
        changed["Description"] = body.string("Description", max_len=256) or ""
    if body.has("AllowedPublishers"):
        changed["AllowedPublishers"] = _publishers(body)
    if body.has("CodeSigningPolicies"):
        changed["CodeSigningPolicies"] = _policies(body, config["CodeSigningPolicies"])
    if changed != config:
        changed["LastModified"] = now_iso()
        await asyncio.to_thread(services(request).code_signing.update, found_id, changed)
    return json_response({"CodeSigningConfig": changed})


async def delete(request: web.Request) -> web.Response:
    found_id, _config = await _stored(request)
    if not await asyncio.to_thread(services(request).code_signing.delete, found_id):
        raise ResourceConflictException(
            f"The code signing configuration {config_arn(request, found_id)} cannot be deleted because it is "
            "used by one or more functions. Remove it from the functions first.")
    return web.Response(status=204)


async def list_configs(request: web.Request) -> web.Response:
    store = services(request).code_signing
    page, next_marker = paginate(request, await asyncio.to_thread(store.ids))
    configs = await asyncio.to_thread(store.configs, page)
    result: dict = {"CodeSigningConfigs": [configs[key] for key in page if key in configs]}
    if next_marker is not None:
        result["NextMarker"] = next_marker
    return json_response(result)


async def list_functions(request: web.Request) -> web.Response:
    svc = services(request)
    found_id, _config = await _stored(request)
    page, next_marker = paginate(request, await asyncio.to_thread(svc.code_signing.functions_of, found_id))
    result: dict = {"FunctionArns": [svc.arns.function(name) for name in page]}
    if next_marker is not None:
        result["NextMarker"] = next_marker
    return json_response(result)


async def resolve(request: web.Request, arn: str) -> str:
    """The id of the config a function is to use (PutFunctionCodeSigningConfig, CreateFunction's
    CodeSigningConfigArn), or Lambda's CodeSigningConfigNotFoundException."""
    found_id = config_id(request, arn)
    if found_id is None or await asyncio.to_thread(services(request).code_signing.get, found_id) is None:
        raise CodeSigningConfigNotFoundException(
            "The code signing configuration cannot be found. Check that the provided configuration is not "
            f"deleted: {arn}.")
    return found_id


async def put_function(request: web.Request) -> web.Response:
    svc = services(request)
    body = await json_body(request)
    arn = body.string("CodeSigningConfigArn", required=True) or ""
    name = unqualified_name(request, "A code signing configuration")
    found_id = await resolve(request, arn)  # Lambda checks the config before the function
    function = svc.functions.get(name)
    if function.latest.image is not None:
        raise InvalidParameterValueException(IMAGE_REFUSAL)
    if function.latest.layers:
        raise InvalidParameterValueException(LAYERS_REFUSAL)
    if not await asyncio.to_thread(svc.code_signing.attach, name, found_id):
        await resolve(request, arn)  # deleted in between
    return json_response({"CodeSigningConfigArn": config_arn(request, found_id), "FunctionName": name})


#: AWS's words: code signing covers .zip packages only.
IMAGE_REFUSAL = "Code signing is not supported for functions of package type Image."


async def get_function(request: web.Request) -> web.Response:
    svc = services(request)
    name = unqualified_name(request, "A code signing configuration")
    svc.functions.get(name)
    found_id = await asyncio.to_thread(svc.code_signing.of_function, name)
    return json_response({"CodeSigningConfigArn": config_arn(request, found_id) if found_id else "",
                          "FunctionName": name})


async def delete_function(request: web.Request) -> web.Response:
    svc = services(request)
    name = unqualified_name(request, "A code signing configuration")
    svc.functions.get(name)
    await asyncio.to_thread(svc.code_signing.detach, name)
    return web.Response(status=204)


class CodeVerificationFailedException(LambdaError):
    status, error_type, message_member = 400, "CodeVerificationFailedException", "Message"


class InvalidCodeSignatureException(LambdaError):
    status, error_type, message_member = 400, "InvalidCodeSignatureException", "Message"


async def check_upload(request: web.Request, found_id: str | None, function_name: str, changes: dict) -> None:
    """Verify a function's new code (`changes` from api/functions.py `_code`) against its code
    signing config, as Lambda does on every deployment: a broken signature is refused even under
    Warn; any other untrusted package is refused under Enforce and logged under Warn."""
    if found_id is None:
        return
    svc = services(request)
    stored = await asyncio.to_thread(svc.code_signing.get, found_id)
    if stored is None:
        return
    function_arn = svc.arns.function(function_name)
    if changes.get("hot_reload_dir"):
        verdict = verify_code(b"", [], {})  # a live directory carries no signature
    else:
        data = await asyncio.to_thread(svc.blobs.zip_path(changes["code_sha256"]).read_bytes)
        verdict = verify_code(data, stored.config["AllowedPublishers"]["SigningProfileVersionArns"],
                              svc.signing_profiles)
    if verdict.problem is None:
        return
    if verdict.broken:
        raise InvalidCodeSignatureException(
            f"Lambda cannot deploy the function. The function or layer might not be signed correctly: "
            f"{verdict.problem}. Check the provided signature for {function_arn}.")
    if stored.config["CodeSigningPolicies"]["UntrustedArtifactOnDeployment"] == "Enforce":
        raise CodeVerificationFailedException(
            "Lambda cannot deploy the function. The function or layer might be signed using a signature that "
            f"the client is not configured to accept ({verdict.problem}). Check the provided signature for "
            f"{function_arn}.")
    log.warning("code signing (Warn) for %s: deployed untrusted code: %s", function_arn, verdict.problem)


#: Lambda refuses layers on a function with a code signing config unless they are signed; layer
#: signatures are not checked here yet, so a config and layers are not combined at all.
LAYERS_REFUSAL = ("Layers on a function with a code signing configuration are not supported by this server yet "
                  "(their signatures are not verified).")
