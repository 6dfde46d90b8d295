"""Provisioned concurrency: Put/Get/Delete/ListProvisionedConcurrencyConfigs.

The config lives in the store; the environments it keeps warm live in the target version's warm
pool (`WarmPool.provision`), which reports how many are allocated and whether they are READY.
"""

from __future__ import annotations

from aiohttp import web

from lambdalet.api.common import function_ref, json_body, json_response, list_response, qualifier, services
from lambdalet.errors import InvalidParameterValueException, ProvisionedConcurrencyConfigNotFoundException
from lambdalet.model import LATEST
from lambdalet.tenancy import refuse_with_tenancy

PATH = "/2019-09-30/functions/{function_name}/provisioned-concurrency"


def routes() -> list[web.RouteDef]:
    return [web.put(PATH, put_config), web.get(PATH, get_or_list), web.delete(PATH, delete_config)]


def _target(request: web.Request, putting: bool = False) -> tuple[str, str]:
    """The function and the alias or published version named, or AWS's refusal of each."""
    svc = services(request)
    ref = function_ref(request)
    qual = qualifier(request, ref)
    if not qual:
        raise InvalidParameterValueException("Qualifier is required: a published version or an alias.")
    if qual == LATEST and not putting:
        raise InvalidParameterValueException("The function resource provided must be an alias or a published version.")
    svc.functions.require_qualifier(ref.name, qual)
    return ref.name, qual


def describe(svc, name: str, qual: str) -> dict:
    function = svc.functions.get(name)
    if qual not in function.provisioned:
        raise ProvisionedConcurrencyConfigNotFoundException("No Provisioned Concurrency Config found for this function")
    requested, last_modified = function.provisioned[qual]
    pool = svc.pools.for_config(svc.functions.provisioned_target(name, qual))
    state = pool.provisioning
    allocated = state.allocated if state else 0
    result = {
        "RequestedProvisionedConcurrentExecutions": requested,
        "AvailableProvisionedConcurrentExecutions": allocated,
        "AllocatedProvisionedConcurrentExecutions": allocated,
        "Status": state.status if state else "IN_PROGRESS",
        "LastModified": last_modified,
    }
    if state and state.reason:
        result["StatusReason"] = state.reason
    return result


async def put_config(request: web.Request) -> web.Response:
    svc = services(request)
    name, qual = _target(request, putting=True)
    refuse_with_tenancy(svc.functions.get(name).latest, "Provisioned concurrency")
    body = await json_body(request)
    if not body.has("ProvisionedConcurrentExecutions"):
        raise InvalidParameterValueException("ProvisionedConcurrentExecutions is required.")
    # the account's limits are the registry's (set_provisioned), in AWS's words
    requested = body.integer("ProvisionedConcurrentExecutions", low=1, high=2**31 - 1)
    await svc.functions.set_provisioned(name, qual, requested)
    svc.pools.for_config(svc.functions.provisioned_target(name, qual)).provision(requested)
    return json_response(describe(svc, name, qual), status=202)


async def get_or_list(request: web.Request) -> web.Response:
    svc = services(request)
    if request.query.get("List") == "ALL":
        ref = function_ref(request)
        function = svc.functions.get(ref.name)
        return list_response(request, sorted(function.provisioned), "ProvisionedConcurrencyConfigs",
                             lambda qual: {"FunctionArn": svc.arns.function(ref.name, qual),
                                           **describe(svc, ref.name, qual)})
    name, qual = _target(request)
    return json_response(describe(svc, name, qual))


async def delete_config(request: web.Request) -> web.Response:
    svc = services(request)
    name, qual = _target(request)
    describe(svc, name, qual)  # 404 when there is none
    await remove(svc, name, qual)
    return web.Response(status=204)


async def remove(svc, name: str, qual: str) -> None:
    """Delete a provisioned-concurrency config and release the environments it kept initialised."""
    target = svc.functions.provisioned_target(name, qual)
    await svc.functions.set_provisioned(name, qual, None)
    svc.pools.for_config(target).unprovision()
