"""Recursive loop detection config: PutFunctionRecursionConfig, GetFunctionRecursionConfig.

The setting is the function's (never a version's); its effect is `invoke/recursion.py`'s check on
every invocation, fed from the registry's memory, never from the database.
"""

from __future__ import annotations

from aiohttp import web

from lambdalet.api.common import json_body, json_response, services, unqualified_name

#: In the order Lambda's own message lists them.


def routes() -> list[web.RouteDef]:
    path = "/2024-08-31/functions/{function_name}/recursion-config"
    return [web.put(path, put_recursion_config), web.get(path, get_recursion_config)]


async def put_recursion_config(request: web.Request) -> web.Response:
    svc = services(request)
    name = unqualified_name(request, "The recursion config")
    body = await json_body(request)
    value = body.string("RecursiveLoop", required=True)  # one of the enum's: the model check ran first
    svc.functions.get(name)
    await svc.functions.set_recursive_loop(name, value)
    return json_response({"RecursiveLoop": value})


async def get_recursion_config(request: web.Request) -> web.Response:
    svc = services(request)
    name = unqualified_name(request, "The recursion config")
    svc.functions.get(name)
    return json_response({"RecursiveLoop": svc.functions.recursion.recursive_loop(name)})
