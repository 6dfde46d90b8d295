"""Asynchronous invocation settings: Put/Update/Get/Delete/ListFunctionEventInvokeConfigs."""

from __future__ import annotations

import time

from aiohttp import web

from lambdalet.api.common import function_ref, json_body, json_response, list_response, qualifier, services
from lambdalet.errors import InvalidParameterValueException, ResourceNotFoundException
from lambdalet.events.destinations import DESTINATION_SERVICES, ON_FAILURE_ONLY, check_destination, parse_arn
from lambdalet.functions import event_config_key
from lambdalet.model import LATEST, parse_function_name
from lambdalet.validation import Body

PATH = "/2019-09-25/functions/{function_name}/event-invoke-config"


def routes() -> list[web.RouteDef]:
    return [web.put(PATH, put_config), web.post(PATH, update_config), web.get(PATH, get_config),
            web.delete(PATH, delete_config), web.get(PATH + "/list", list_configs)]


NO_FUNCTION = "The function doesn't exist."
SETTINGS = ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig")


def _target(request: web.Request, reading: bool = False) -> tuple[str, str]:
    """The function and qualifier ("" for the unqualified function or $LATEST) a request names.
    One that does not exist is AWS's 404: Get and Delete (`reading`) say that it has no config."""
    svc = services(request)
    ref = function_ref(request)
    qual = qualifier(request, ref)
    try:
        svc.functions.config(ref.name, qual)  # 404 unless the version or alias exists
    except ResourceNotFoundException:
        if reading:
            raise _no_config(svc, ref.name, event_config_key(qual)) from None
        raise ResourceNotFoundException(NO_FUNCTION) from None
    return ref.name, event_config_key(qual)


def _no_config(svc, name: str, qual: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(
        f"The function {svc.arns.function(name, qual or LATEST)} doesn't have an EventInvokeConfig")


def _settings(svc, name: str, body: Body, base: dict) -> dict:
    """Put (`base` empty) or Update (`base` the current config): the validated settings."""
    config = dict(base)
    if body.has("MaximumRetryAttempts"):
        config["MaximumRetryAttempts"] = body.integer("MaximumRetryAttempts", low=0, high=2)
    if body.has("MaximumEventAgeInSeconds"):
        config["MaximumEventAgeInSeconds"] = body.integer("MaximumEventAgeInSeconds", low=60, high=21600)
    destinations = body.struct("DestinationConfig")
    if destinations is not None:
        _check_services(destinations)
        chosen = dict(config.get("DestinationConfig", {}))
        for outcome in ("OnSuccess", "OnFailure"):
            member = destinations.struct(outcome)
            if member is not None:
                arn = member.string("Destination", "")
                _check_destination(svc, name, arn, member.path("Destination"))
                if arn:
                    chosen[outcome] = {"Destination": arn}
                else:
                    chosen.pop(outcome, None)
        config["DestinationConfig"] = chosen
    config["LastModified"] = time.time()
    return config


def _check_services(destinations: Body) -> None:
    """A destination of a service Lambda cannot deliver to (an S3 bucket on success included):
    AWS's refusal quotes the whole config."""
    given: dict[str, str] = {}
    for outcome in ("OnSuccess", "OnFailure"):
        member = destinations.struct(outcome)
        arn = member.data.get("Destination") if member is not None else None
        if isinstance(arn, str) and arn:
            given[outcome] = arn
    for outcome, arn in given.items():
        target = parse_arn(arn)
        if target is not None and (target.service not in DESTINATION_SERVICES or (
                outcome == "OnSuccess" and target.service in ON_FAILURE_ONLY)):
            quoted = ", ".join(
                f"{outcome[0].lower()}{outcome[1:]}=" + (f"{outcome}(destination={given[outcome]})"
                                                         if outcome in given else "null")
                for outcome in ("OnSuccess", "OnFailure"))
            raise InvalidParameterValueException(
                f"The provided destination config DestinationConfig({quoted}) is invalid.")


def _check_destination(svc, name: str, arn: str, member: str) -> None:
    """Lambda's ARN checks; a function destination must be another function of this server."""
    target = check_destination(arn, member)
    if target is None or target.service != "lambda":
        return
    if (target.region, target.account) != (svc.arns.region, svc.arns.account):
        raise InvalidParameterValueException(
            f"The destination ARN {arn} is invalid: this server is account {svc.arns.account} in {svc.arns.region}.")
    ref = parse_function_name(arn)
    if ref.name == name:
        raise InvalidParameterValueException("You can't specify the function as a destination for itself.")
    try:
        svc.functions.config(ref.name, ref.qualifier)
    except ResourceNotFoundException:
        raise InvalidParameterValueException(f"The destination ARN {arn} is invalid.") from None


def _describe(svc, name: str, qual: str, config: dict) -> dict:
    chosen = config.get("DestinationConfig", {})
    # the unqualified function's config is $LATEST's, and AWS names it so
    return {"LastModified": config["LastModified"], "FunctionArn": svc.arns.function(name, qual or LATEST),
            **{k: v for k, v in config.items() if k not in ("LastModified", "DestinationConfig")},
            "DestinationConfig": {"OnSuccess": chosen.get("OnSuccess", {}), "OnFailure": chosen.get("OnFailure", {})}}


def _existing(svc, name: str, qual: str) -> dict:
    config = svc.functions.get(name).event_configs.get(qual)
    if config is None:
        raise _no_config(svc, name, qual)
    return config


async def put_config(request: web.Request) -> web.Response:
    svc = services(request)
    name, qual = _target(request)
    body = await json_body(request)
    if not any(body.has(member) for member in SETTINGS):
        raise InvalidParameterValueException(
            "You must specify at least one of error handling or destination setting.")
    config = _settings(svc, name, body, {})
    await svc.functions.set_event_config(name, qual, config)
    return json_response(_describe(svc, name, qual, config))


async def update_config(request: web.Request) -> web.Response:
    svc = services(request)
    name, qual = _target(request)
    config = _settings(svc, name, await json_body(request), _existing(svc, name, qual))
    await svc.functions.set_event_config(name, qual, config)
    return json_response(_describe(svc, name, qual, config))


async def get_config(request: web.Request) -> web.Response:
    svc = services(request)
    name, qual = _target(request, reading=True)
    return json_response(_describe(svc, name, qual, _existing(svc, name, qual)))


async def delete_config(request: web.Request) -> web.Response:
    svc = services(request)
    name, qual = _target(request, reading=True)
    _existing(svc, name, qual)
    await svc.functions.set_event_config(name, qual, None)
    return web.Response(status=204)


async def list_configs(request: web.Request) -> web.Response:
    svc = services(request)
    ref = function_ref(request)
    if not svc.functions.exists(ref.name):
        raise ResourceNotFoundException(NO_FUNCTION)
    configs = svc.functions.get(ref.name).event_configs
    return list_response(request, sorted(configs), "FunctionEventInvokeConfigs",
                         lambda qual: _describe(svc, ref.name, qual, configs[qual]))
