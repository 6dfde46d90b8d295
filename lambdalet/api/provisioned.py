"""Provisioned concurrency: Put/Get/Delete/ListProvisionedConcurrencyConfigs.

The config lives in the store; the environments it keeps warm live in the target version's warm
pool (`WarmPool.provision`) on the function's home node (`provisioned_homes.py`), which reports
how many are allocated and whether they are READY.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from lambdalet.api.common import function_ref, json_body, json_response, list_response, qualifier, services
from lambdalet.errors import InvalidParameterValueException, ProvisionedConcurrencyConfigNotFoundException
from lambdalet.model import LATEST
from lambdalet.provisioned_homes import key
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


async def describe(svc, name: str, qual: str) -> dict:
    """The config with its live state, added up over the nodes that keep its environments
    (provisioned_homes.py): this node's pool as it is, the others' as their last heartbeats said
    (at most a heartbeat old)."""
    function = svc.functions.get(name)
    if qual not in function.provisioned:
        raise ProvisionedConcurrencyConfigNotFoundException("No Provisioned Concurrency Config found for this function")
    requested, last_modified = function.provisioned[qual]
    homes = svc.provisioned_homes
    keepers = [node for node, _share in homes.shares(name, requested)] if homes is not None else [None]
    loads: dict[str, dict] | None = None
    states = []
    for node in keepers:
        if node is None or node == homes.node:
            local = svc.pools.for_config(svc.functions.provisioned_target(name, qual)).provisioning
            states.append({"status": local.status, "allocated": local.allocated, "reason": local.reason}
                          if local is not None else {})
            continue
        if loads is None:
            loads = {live["name"]: live["load"] for live in await asyncio.to_thread(svc.nodes.live)}
        states.append(loads.get(node, {}).get("provisioned", {}).get(key(name, qual), {}))
    allocated = sum(state.get("allocated", 0) for state in states)
    statuses = [state.get("status", "IN_PROGRESS") for state in states]
    result = {
        "RequestedProvisionedConcurrentExecutions": requested,
        "AvailableProvisionedConcurrentExecutions": allocated,
        "AllocatedProvisionedConcurrentExecutions": allocated,
        "Status": "FAILED" if "FAILED" in statuses else "READY" if set(statuses) == {"READY"} else "IN_PROGRESS",
        "LastModified": last_modified,
    }
    reason = next((state["reason"] for state in states if state.get("reason")), None)
    if reason:
        result["StatusReason"] = reason
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
    svc.provisioned_homes.reconcile()  # its environments start on the function's home node
    return json_response(await describe(svc, name, qual), status=202)


async def get_or_list(request: web.Request) -> web.Response:
    svc = services(request)
    if request.query.get("List") == "ALL":
        ref = function_ref(request)
        function = svc.functions.get(ref.name)
        described = {qual: await describe(svc, ref.name, qual) for qual in function.provisioned}
        return list_response(request, sorted(function.provisioned), "ProvisionedConcurrencyConfigs",
                             lambda qual: {"FunctionArn": svc.arns.function(ref.name, qual), **described[qual]})
    name, qual = _target(request)
    return json_response(await describe(svc, name, qual))


async def delete_config(request: web.Request) -> web.Response:
    svc = services(request)
    name, qual = _target(request)
    if qual not in svc.functions.get(name).provisioned:
        raise ProvisionedConcurrencyConfigNotFoundException("No Provisioned Concurrency Config found for this function")
    await remove(svc, name, qual)
    return web.Response(status=204)


async def remove(svc, name: str, qual: str) -> None:
    """Delete a provisioned-concurrency config and release the environments it kept initialised."""
    await svc.functions.set_provisioned(name, qual, None)
    svc.provisioned_homes.reconcile()  # the home releases the environments it kept
