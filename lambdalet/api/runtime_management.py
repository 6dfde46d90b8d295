"""Runtime management: PutRuntimeManagementConfig, GetRuntimeManagementConfig.

A runtime version is one build of the runtime's interpreter on this server (`runtimes/registry.py`:
its ARN is what INIT_START reports). `Auto` and `FunctionUpdate` run whatever build the server has
at each cold start (this server never swaps a build under a function on its own: an upgrade of
the host's interpreter is the only update there is). `Manual` pins one build: the function keeps
running that interpreter binary, however the server's default for the runtime changes, and is
refused (502 InvalidRuntimeException) once that binary is gone or changed.
"""

from __future__ import annotations

from aiohttp import web

from lambdalet.api.common import function_ref, json_body, json_response, qualifier, services
from lambdalet.errors import InvalidParameterValueException
from lambdalet.model import LATEST, runtime_version_arn
from lambdalet.store.functions import RuntimePin

DEFAULT = RuntimePin("Auto")


def routes() -> list[web.RouteDef]:
    path = "/2021-07-20/functions/{function_name}/runtime-management-config"
    return [web.put(path, put_runtime_management_config), web.get(path, get_runtime_management_config)]


def _target(request: web.Request) -> tuple[str, str, str]:
    """(function, qualifier key "" or a version number, the FunctionArn answers name)."""
    svc = services(request)
    ref = function_ref(request)
    qual = qualifier(request, ref)
    function = svc.functions.get(ref.name)
    if qual is not None and qual in function.aliases:
        raise InvalidParameterValueException(
            "Runtime management configs apply to $LATEST or a published version, not to an alias: "
            f"use the version the alias points to ({function.aliases[qual].function_version}).")
    svc.functions.config(ref.name, qual)  # 404 for a version that does not exist
    key = "" if qual in (None, LATEST) else qual
    return ref.name, key, svc.arns.function(ref.name, qual)


async def put_runtime_management_config(request: web.Request) -> web.Response:
    svc = services(request)
    name, key, function_arn = _target(request)
    body = await json_body(request)
    mode = body.string("UpdateRuntimeOn", required=True)  # one of the enum's: the model check ran first
    arn = body.string("RuntimeVersionArn", max_len=2048)
    config = svc.functions.config(name, key or None)
    if config.image is not None:
        raise InvalidParameterValueException("Runtime management configuration is not supported for container "
                                             "image functions.")
    if mode != "Manual":
        if arn is not None:
            raise InvalidParameterValueException(
                f"RuntimeVersionArn can be given only with UpdateRuntimeOn Manual, not {mode}.")
        pin = RuntimePin(mode)
    else:
        if arn is None:
            raise InvalidParameterValueException("RuntimeVersionArn is required when UpdateRuntimeOn is Manual.")
        pin = _pin(request, name, key, config.runtime, arn)
    await svc.functions.set_runtime_config(name, key, pin)
    return json_response(_answer(pin, function_arn))


def _pin(request: web.Request, name: str, key: str, runtime_name: str, arn: str) -> RuntimePin:
    """The build a Manual config names: the server's current build of the function's runtime (by
    its ARN, or by the runtime's own ARN GetFunction reports), or the build it is pinned to now."""
    svc = services(request)
    region = svc.arns.region
    current = svc.runtimes.get(runtime_name)
    current_arn = svc.runtimes.version_arn(current, region)
    if arn in (current_arn, runtime_version_arn(region, runtime_name)):
        return RuntimePin("Manual", current_arn, current.interpreter)
    existing = svc.functions.get(name).runtime_configs.get(key)
    if existing is not None and existing.runtime_version_arn == arn:
        svc.runtimes.pinned(runtime_name, existing.interpreter or "", arn, region)  # 502 when it is gone since
        return existing
    raise InvalidParameterValueException(
        f"The runtime version {arn} is not one this server has for {runtime_name}: its current version is "
        f"{current_arn}.")


def _answer(pin: RuntimePin, function_arn: str) -> dict:
    answer = {"UpdateRuntimeOn": pin.update_runtime_on, "FunctionArn": function_arn}
    if pin.runtime_version_arn is not None:
        answer["RuntimeVersionArn"] = pin.runtime_version_arn
    return answer


async def get_runtime_management_config(request: web.Request) -> web.Response:
    svc = services(request)
    name, key, function_arn = _target(request)
    return json_response(_answer(svc.functions.get(name).runtime_configs.get(key, DEFAULT), function_arn))
