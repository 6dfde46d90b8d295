"""Reserved concurrency (Put/Get/DeleteFunctionConcurrency) and GetAccountSettings."""

from __future__ import annotations

from aiohttp import web

from lambdalet.api.common import function_ref, json_body, json_response, services
from lambdalet.errors import InvalidParameterValueException
from lambdalet.store.blobs import MAX_UNZIPPED_BYTES

MAX_ZIPPED_BYTES = 52_428_800  # 50 MB direct upload
TOTAL_CODE_SIZE = 80_530_636_800  # 75 GB, Lambda's default code storage quota


def routes() -> list[web.RouteDef]:
    return [
        web.put("/2017-10-31/functions/{function_name}/concurrency", put_function_concurrency),
        web.get("/2019-09-30/functions/{function_name}/concurrency", get_function_concurrency),
        web.delete("/2017-10-31/functions/{function_name}/concurrency", delete_function_concurrency),
        web.get("/2016-08-19/account-settings", get_account_settings),
        web.get("/2016-08-19/account-settings/", get_account_settings),
    ]


def _function_name(request: web.Request) -> str:
    """Reserved concurrency belongs to a whole function, as AWS says when given a version or alias."""
    ref = function_ref(request)
    if ref.qualifier is not None:
        raise InvalidParameterValueException(
            "This operation is permitted on Lambda functions only. Aliases and versions do not support this "
            "operation. Please specify either a function name or an unqualified function ARN.")
    return ref.name


async def put_function_concurrency(request: web.Request) -> web.Response:
    svc = services(request)
    name = _function_name(request)
    body = await json_body(request)
    if not body.has("ReservedConcurrentExecutions"):
        raise InvalidParameterValueException("ReservedConcurrentExecutions is required.")
    # the account's limits are the registry's (set_reserved_concurrency), in AWS's words
    reserved = body.integer("ReservedConcurrentExecutions", low=0, high=2**31 - 1)
    await svc.functions.set_reserved_concurrency(name, reserved)
    return json_response({"ReservedConcurrentExecutions": reserved})


async def get_function_concurrency(request: web.Request) -> web.Response:
    reserved = services(request).functions.reserved_concurrency(_function_name(request))
    return json_response({} if reserved is None else {"ReservedConcurrentExecutions": reserved})


async def delete_function_concurrency(request: web.Request) -> web.Response:
    await services(request).functions.set_reserved_concurrency(_function_name(request), None)
    return web.Response(status=204)


async def get_account_settings(request: web.Request) -> web.Response:
    svc = services(request)
    limiter = svc.invoker.limiter
    return json_response({
        "AccountLimit": {
            "TotalCodeSize": TOTAL_CODE_SIZE,
            "CodeSizeUnzipped": MAX_UNZIPPED_BYTES,
            "CodeSizeZipped": MAX_ZIPPED_BYTES,
            "ConcurrentExecutions": limiter.account_limit,
            "UnreservedConcurrentExecutions": limiter.unreserved_limit,
        },
        "AccountUsage": {
            "TotalCodeSize": svc.functions.total_code_size() + svc.layers.total_code_size(),
            "FunctionCount": len(svc.functions.names()),
        },
    })
