"""Functions and their code: Create/Get/List/Update/Delete, and code downloads (Code.Location)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
from pathlib import Path

from aiohttp import web

from lambdalet import network, s3_code, validation
from lambdalet import tenancy as tenancy_errors
from lambdalet.api import code_signing
from lambdalet.api.authorization import require
from lambdalet.api.permissions import Permission
from lambdalet.api.common import function_ref, json_body, json_response, list_response, qualifier, services
from lambdalet.errors import (
    InvalidParameterValueException,
    ResourceConflictException,
    ResourceNotFoundException,
    check_revision,
)
from lambdalet.events.destinations import check_dead_letter
from lambdalet.functions import UPDATE_SETTLES_AFTER
from lambdalet.images.store import ImageUnusable
from lambdalet.layers import check_unzipped_size
from lambdalet.model import LATEST, FunctionConfig, FunctionImage, FunctionLayer, FunctionRef, parse_function_name
from lambdalet.store.blobs import Blob
from lambdalet.validation import Body

SHA_HEX = re.compile(r"^[0-9a-f]{64}$")
IMAGE_NO_RUNTIME = "Please don't provide Handler or Runtime or Layer when the intended function PackageType is Image."


def routes() -> list[web.RouteDef]:
    base = "/2015-03-31/functions"
    return [
        web.post(base, create_function),
        web.post(base + "/", create_function),
        web.get(base, list_functions),
        web.get(base + "/", list_functions),
        web.get(base + "/{function_name}", get_function),
        web.delete(base + "/{function_name}", delete_function),
        web.get(base + "/{function_name}/configuration", get_function_configuration),
        web.put(base + "/{function_name}/configuration", update_function_configuration),
        web.put(base + "/{function_name}/code", update_function_code),
        web.get("/_lambdalet/code/{sha256}.zip", download_code),
    ]


async def _code(request: web.Request, code: Body) -> dict:
    """The code a request gives (CreateFunction's Code, UpdateFunctionCode's body), as config
    changes: a ZipFile or an S3 object stored as a blob, or a hot-reload directory."""
    svc = services(request)
    if code.string("S3Bucket") == svc.settings.hot_reload_bucket:
        directory = _hot_reload_dir(svc, code.string("S3Key", ""))
        return {"code_sha256": hashlib.sha256(directory.encode()).hexdigest(), "code_size": 0,
                "hot_reload_dir": directory, "hot_reload_node": svc.settings.resolved_node_name}
    blob = await _store_zip(request, code)
    return {"code_sha256": blob.sha256, "code_size": blob.size, "hot_reload_dir": "", "hot_reload_node": ""}


def _hot_reload_dir(svc, key: str) -> str:
    path = Path(key)
    if not path.is_absolute() or not path.is_dir():
        raise InvalidParameterValueException(
            f"With S3Bucket {svc.settings.hot_reload_bucket!r} (hot reload), S3Key must be an absolute path to a "
            f"directory on the server's host; {key!r} is not.")
    if svc.sandbox.name == "linux" and (path.stat().st_mode & 0o005) != 0o005:
        raise InvalidParameterValueException(
            f"{key} is not readable by the sandbox's unprivileged user: make it world-readable "
            f"(chmod -R o+rX {key}) or run the server with --sandbox process.")
    return str(path.resolve())


async def _check_role(request: web.Request, role: str) -> None:
    """Under --auth iam: the caller may pass the role (`iam:PassRole`), and Lambda may assume it."""
    svc = services(request)
    if svc.execution_roles is None or svc.authenticator is None:  # roles are checked under --auth iam only
        return
    await require(request, Permission("iam:PassRole", role, svc.arns.account))
    await svc.execution_roles.check(role, svc.arns.account)


async def _store_zip(request: web.Request, code: Body) -> Blob:
    """Fetch an S3 object (s3_code.py), or decode a ZipFile member, and validate, store and
    extract it (off the event loop: zips can be large)."""
    svc = services(request)
    s3_object = s3_code.requested(code, "FunctionCode")
    if s3_object is not None:
        return await svc.s3_code.fetch(s3_object)
    zip_b64 = code.string("ZipFile")
    if not zip_b64:
        raise InvalidParameterValueException(
            "Please provide a source for function code (Code.ZipFile, or Code.S3Bucket and S3Key).")
    try:
        data = base64.b64decode(zip_b64, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParameterValueException("Code.ZipFile is not valid base64.") from None
    return await asyncio.to_thread(svc.blobs.put_zip, data)


def _common_config(body: Body, svc, current: FunctionConfig | None, *, image: bool = False) -> dict:
    """The members CreateFunction and UpdateFunctionConfiguration share, validated; `image`: the
    function's PackageType is Image (no runtime, handler or layers of Lambda's; ImageConfig)."""
    changes: dict = {}
    if image:
        if any(body.has(member) for member in ("Runtime", "Handler", "Layers")):
            raise InvalidParameterValueException(IMAGE_NO_RUNTIME)
        overrides = validation.image_config(body)
        if overrides is not None:
            changes["image_config"] = overrides
    else:
        if body.has("ImageConfig"):
            raise InvalidParameterValueException("ImageConfig is only supported for functions with PackageType Image.")
        if body.has("Runtime") or current is None:
            runtime = body.string("Runtime", required=True)
            svc.runtimes.check(runtime)
            changes["runtime"] = runtime
        if body.has("Handler") or current is None:
            changes["handler"] = body.string("Handler", required=True, max_len=128, pattern=validation.HANDLER)
    if body.has("Role") or current is None:
        changes["role"] = body.string("Role", required=True, pattern=validation.ROLE)
    if body.has("Description"):
        changes["description"] = body.string("Description", max_len=256)
    if body.has("Timeout"):
        changes["timeout"] = body.integer("Timeout", low=1, high=svc.settings.max_timeout)
    if body.has("MemorySize"):
        changes["memory_size"] = body.integer("MemorySize", low=128, high=10240)
    storage = body.struct("EphemeralStorage")
    if storage is not None:
        if not storage.has("Size"):
            raise InvalidParameterValueException("EphemeralStorage.Size is required.")
        changes["ephemeral_storage"] = storage.integer("Size", low=512, high=10240)
    variables = validation.environment(body)
    if variables is not None:  # echoed from now on, even with no variables, as AWS does
        changes["environment"] = variables
        changes["environment_given"] = True
    snap_start = body.struct("SnapStart")
    if snap_start is not None:
        apply_on = snap_start.string("ApplyOn", "None")
        if apply_on not in ("None", "PublishedVersions"):
            raise validation.constraint_error(apply_on, "snapStart.applyOn",
                                              "satisfy enum value set: [PublishedVersions, None]")
        changes["snap_start"] = apply_on
    layer_arns = body.string_list("Layers")
    if layer_arns is not None:
        changes["layers"] = svc.layers.resolve(layer_arns)
    dead_letter = body.struct("DeadLetterConfig")
    if dead_letter is not None:
        changes["dead_letter_target"] = check_dead_letter(dead_letter.string("TargetArn", ""))
    current_logging = None if current is None else {
        "log_format": current.log_format, "application_log_level": current.application_log_level,
        "system_log_level": current.system_log_level, "log_group": current.log_group}
    logging = validation.logging_config(body, current_logging)
    if logging is not None:
        changes.update(logging)
    if changes.get("snap_start", current.snap_start if current else "None") == "PublishedVersions":
        if image:
            raise InvalidParameterValueException("SnapStart is not supported for functions with PackageType Image.")
        if (current is not None and current.tenant_isolation) or body.has("TenancyConfig"):
            raise tenancy_errors.not_supported("SnapStart")  # what AWS refuses, before what this server cannot do
        _check_snapstart(svc, changes.get("runtime") or (current.runtime if current else ""))
    validation.refuse_unsupported_config(body)
    return changes


def _check_snapstart(svc, runtime: str) -> None:
    """SnapStart is accepted only where this server will really apply it (published versions, and
    $LATEST too with --snapstart-latest)."""
    if not runtime.startswith("python3.") or int(runtime.split(".")[1]) < 12:
        raise InvalidParameterValueException(f"SnapStart is not supported for runtime {runtime}; use python3.12 or later.")
    if not svc.sandbox.supports_snapstart:
        raise InvalidParameterValueException("SnapStart needs the linux sandbox backend, which this server does not use.")


async def create_function(request: web.Request) -> web.Response:
    svc = services(request)
    body = await json_body(request)
    name_raw = body.string("FunctionName", required=True)
    ref = parse_function_name(name_raw)
    if ref.qualifier is not None:
        raise InvalidParameterValueException("FunctionName must not carry a qualifier on CreateFunction.")
    package_type = body.string("PackageType", "Zip")
    if package_type not in ("Zip", "Image"):
        raise validation.constraint_error(package_type, "packageType", "satisfy enum value set: [Zip, Image]")
    publish = body.boolean("Publish")
    image = package_type == "Image"
    if body.has("Layers"):
        await svc.layers.refresh(request)  # as published through any node
    changes = _common_config(body, svc, None, image=image)
    await _check_role(request, changes["role"])
    architectures = validation.architectures(body)
    tags = validation.tags(body) or {}
    tenancy = body.struct("TenancyConfig")  # create-only: UpdateFunctionConfiguration's model has no such member  # the enum and its required member: the model's
    if tenancy is not None:
        changes["tenant_isolation"] = tenancy.string("TenantIsolationMode", "")
        if changes.get("snap_start") == "PublishedVersions":
            raise tenancy_errors.not_supported("SnapStart")
    code = body.struct("Code")
    if code is None:
        raise InvalidParameterValueException("Code is required.")
    if image:
        uri = _image_uri(svc, code, "Please provide ImageUri when the intended function PackageType is Image.")
    elif code.has("ImageUri"):
        raise InvalidParameterValueException("Please don't provide ImageUri when the intended function PackageType is Zip.")
    signing_arn = body.string("CodeSigningConfigArn")
    signing_id = await code_signing.resolve(request, signing_arn) if signing_arn else None
    if signing_id is not None and image:
        raise InvalidParameterValueException(code_signing.IMAGE_REFUSAL)
    if signing_id is not None and changes.get("layers"):
        raise InvalidParameterValueException(code_signing.LAYERS_REFUSAL)
    if svc.functions.exists(ref.name):
        raise ResourceConflictException(f"Function already exist: {ref.name}")
    network.check(tags, svc.sandbox, snap_start=changes.get("snap_start") == "PublishedVersions")
    if image:
        changes.update(await _image_code(svc, uri, changes.get("image_config", {})))
    else:
        changes.update(await _code(request, code))
        await code_signing.check_upload(request, signing_id, ref.name, changes)
        await _prepare_layers(svc, changes["code_sha256"], changes["hot_reload_dir"], changes.get("layers", ()))
    config = FunctionConfig(name=ref.name, architectures=architectures or ("x86_64",), **changes)
    config = (await svc.functions.create(config, tags)).latest
    if signing_id is not None and not await asyncio.to_thread(svc.code_signing.attach, ref.name, signing_id):
        await svc.functions.delete(ref.name)  # the config went in between: as if refused up front
        await code_signing.resolve(request, signing_arn or "")
    if publish:
        config = await svc.functions.publish(ref.name, with_change=True)
    svc.functions.settle_later(ref.name)  # Pending in this answer, Active once it is written
    # with Publish, AWS answers with the new version under the unqualified ARN
    return json_response(config.to_api(svc.arns, qualifier=""), status=201)


async def _prepare_layers(svc, code_sha256: str, hot_reload_dir: str, layers: tuple[FunctionLayer, ...]) -> None:
    """Check the function's code and layers against Lambda's 250 MB unzipped limit (a hot-reload
    directory's code counts as nothing: it changes at will), and build the merged /opt tree of its
    layers (once per distinct list; environments only mount it)."""
    if not layers:
        return
    if svc.peer_code is not None:  # code or layers uploaded through another node: fetched first
        for digest in (*(() if hot_reload_dir else (code_sha256,)), *(layer.code_sha256 for layer in layers)):
            await svc.peer_code.ensure(digest)
    code_size = 0 if hot_reload_dir else await asyncio.to_thread(svc.blobs.unzipped_size, code_sha256)
    check_unzipped_size(code_size, layers)
    await asyncio.to_thread(svc.layer_dirs.ensure, layers)


def _image_uri(svc, code: Body, missing: str) -> str:
    """The ImageUri of a request for an image function (on a backend that can run one)."""
    if not svc.sandbox.supports_images:
        raise InvalidParameterValueException(
            f"PackageType Image needs the linux sandbox backend, where the image becomes the environment's root "
            f"filesystem; this server runs the {svc.sandbox.name} backend (--sandbox), which cannot run images.")
    for member in ("ZipFile", "S3Bucket", "S3Key", "S3ObjectVersion"):
        if code.has(member):
            raise InvalidParameterValueException(missing)
    uri = code.string("ImageUri")
    if not uri:
        raise InvalidParameterValueException(missing)
    return uri


async def _image_code(svc, uri: str, image_config: dict) -> dict:
    """Resolve and pull an image (a tag becomes a digest, once) as config changes; refused, with
    nothing changed, when the image cannot be used."""
    try:
        image = await asyncio.to_thread(svc.images.resolve, uri)
    except ImageUnusable as exc:
        raise InvalidParameterValueException(str(exc)) from None
    _check_image_command(image, image_config)
    return {"package_type": "Image", "runtime": "", "handler": "", "image": image,
            "code_sha256": image.digest_hex, "code_size": 0, "hot_reload_dir": "", "hot_reload_node": ""}


def _check_image_command(image: FunctionImage, image_config: dict) -> None:
    if not (image_config.get("EntryPoint", image.entrypoint) or image_config.get("Command", image.command)):
        raise InvalidParameterValueException(
            f"Source image {image.uri} has no ENTRYPOINT or CMD and ImageConfig gives none: nothing to run.")


def _resolve(request: web.Request) -> tuple[FunctionRef, FunctionConfig]:
    ref = function_ref(request)
    return ref, services(request).functions.config(ref.name, qualifier(request, ref))


async def get_function(request: web.Request) -> web.Response:
    svc = services(request)
    ref, config = _resolve(request)
    function = svc.functions.get(ref.name)
    code = {"RepositoryType": "S3"}
    if config.image is not None:
        code = {"RepositoryType": "ECR", "ImageUri": config.image.uri, "ResolvedImageUri": config.image.resolved_uri}
    elif not config.hot_reload_dir:  # a hot-reload directory has no package to download
        code["Location"] = f"{request.scheme}://{request.host}/_lambdalet/code/{config.code_sha256}.zip"
    result = {"Configuration": config.to_api(svc.arns, qualifier(request, ref)), "Code": code}
    if function.tags:
        result["Tags"] = dict(function.tags)
    reserved = svc.functions.reserved_concurrency(ref.name)
    if reserved is not None:
        result["Concurrency"] = {"ReservedConcurrentExecutions": reserved}
    return json_response(result)


async def get_function_configuration(request: web.Request) -> web.Response:
    ref, config = _resolve(request)
    return json_response(config.to_api(services(request).arns, qualifier(request, ref)))


async def list_functions(request: web.Request) -> web.Response:
    svc = services(request)
    version = request.query.get("FunctionVersion")
    if version is not None and version != "ALL":
        raise InvalidParameterValueException("FunctionVersion must be ALL.")
    configs: dict[str, FunctionConfig] = {}
    for name in svc.functions.names():
        function = svc.functions.get(name)
        configs[name] = function.latest
        if version == "ALL":  # every published version too, keyed so that they sort after $LATEST
            configs.update({f"{name}:{int(v):010d}": c for v, c in function.versions.items()})
    latest_qualifier = LATEST if version == "ALL" else None  # ALL names $LATEST in its ARN, as AWS does
    return list_response(request, sorted(configs), "Functions", lambda key: configs[key].to_api(
        svc.arns, latest_qualifier if configs[key].version == LATEST else None, listed=True))


def _refuse_qualified_update(svc, ref: FunctionRef, request: web.Request) -> None:
    qual = qualifier(request, ref)
    svc.functions.get(ref.name, qual)
    if qual is not None:
        if qual == LATEST:
            return
        raise InvalidParameterValueException("Only $LATEST can be updated; published versions are immutable.")


async def update_function_configuration(request: web.Request) -> web.Response:
    svc = services(request)
    ref = function_ref(request)
    _refuse_qualified_update(svc, ref, request)
    body = await json_body(request)
    function = svc.functions.get(ref.name)
    current = function.latest
    if body.has("Layers"):
        await svc.layers.refresh(request)  # as published through any node
    changes = _common_config(body, svc, current, image=current.image is not None)
    if "role" in changes and changes["role"] != current.role:
        await _check_role(request, changes["role"])
    if current.image is not None and "image_config" in changes:
        _check_image_command(current.image, changes["image_config"])
    if changes.get("snap_start") == "PublishedVersions":
        tenancy_errors.refuse_with_tenancy(current, "SnapStart")
        network.check(function.tags, svc.sandbox, snap_start=True)
    if changes.get("layers") and await asyncio.to_thread(svc.code_signing.of_function, ref.name):
        raise InvalidParameterValueException(code_signing.LAYERS_REFUSAL)
    if "layers" in changes:
        await _prepare_layers(svc, current.code_sha256, current.hot_reload_dir, changes["layers"])
    return await _update(svc, ref.name, body, changes, publish=body.boolean("Publish"))


async def update_function_code(request: web.Request) -> web.Response:
    svc = services(request)
    ref = function_ref(request)
    _refuse_qualified_update(svc, ref, request)
    body = await json_body(request)
    validation.refuse_unsupported_code_storage(body)
    architectures = validation.architectures(body)
    latest = svc.functions.get(ref.name).latest
    if latest.image is not None:
        uri = _image_uri(svc, body, "Please provide ImageUri when updating a function with packageType Image.")
        changes = await _image_code(svc, uri, latest.image_config)
    elif body.has("ImageUri"):
        raise InvalidParameterValueException("Please don't provide ImageUri when updating a function with packageType Zip.")
    else:
        changes = await _code(request, body)
        signing_id = await asyncio.to_thread(svc.code_signing.of_function, ref.name)
        await code_signing.check_upload(request, signing_id, ref.name, changes)
        await _prepare_layers(svc, changes["code_sha256"], changes["hot_reload_dir"], latest.layers)
    if architectures:
        changes["architectures"] = architectures
    if body.boolean("DryRun"):
        current = svc.functions.get(ref.name).latest
        check_revision(body.string("RevisionId"), current.revision_id)
        return json_response(current.replace(**changes).to_api(svc.arns))
    return await _update(svc, ref.name, body, changes, publish=body.boolean("Publish"))


async def _update(svc, name: str, body: Body, changes: dict, publish: bool) -> web.Response:
    """Apply `changes` to $LATEST, refused if the body's RevisionId is not the current one;
    with Publish, then publish a version and answer with it, as Lambda does."""

    def change(current: FunctionConfig) -> FunctionConfig:
        check_revision(body.string("RevisionId"), current.revision_id)
        return current.replace(**changes)

    config = await svc.functions.update(name, change)
    if publish:
        config = await svc.functions.publish(name, with_change=True)
    svc.functions.settle_later(name, UPDATE_SETTLES_AFTER)  # InProgress until then (a published version Pending)
    return json_response(config.to_api(svc.arns))


async def delete_function(request: web.Request) -> web.Response:
    svc = services(request)
    ref = function_ref(request)
    qual = qualifier(request, ref)
    svc.functions.get(ref.name, qual)
    if qual == LATEST:
        raise InvalidParameterValueException("$LATEST version cannot be deleted without deleting the function.")
    if qual is not None:
        if qual.isdigit() and qual not in svc.functions.get(ref.name).versions:
            return web.Response(status=204)  # a version that does not exist is deleted already, as AWS answers
        svc.functions.config(ref.name, qual)  # 404 unless it is a published version
        await svc.functions.delete_version(ref.name, qual)
    else:
        await svc.functions.delete(ref.name)
    return web.Response(status=204)


async def download_code(request: web.Request) -> web.StreamResponse:
    """A package by digest: GetFunction's `Code.Location`, and how nodes fetch from each other. A
    package this node lacks is read from the database first (never asked of the peers: one of them
    may be the one asking)."""
    svc = services(request)
    sha256 = request.match_info["sha256"]
    path = svc.blobs.zip_path(sha256) if SHA_HEX.match(sha256) else None
    if path is not None and not path.exists() and svc.peer_code is not None:
        await svc.peer_code.ensure(sha256, from_peers=False)
    if path is None or not path.exists():
        raise ResourceNotFoundException("No code package with that hash.")
    return web.FileResponse(path, headers={"Content-Type": "application/zip"})
