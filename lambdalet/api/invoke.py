"""Invoke: the data plane's front door (RequestResponse, Event, DryRun).

This is the hot path: a name lookup in memory, a payload check, then the invoker. No database
access, no file reads; the log tail is only built when the caller asks for it. With several
nodes, a synchronous invoke runs on its function's home node, forwarded there (`placement.py`).
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
import time
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

from lambdalet import logs
from lambdalet.api.common import function_ref, json_response, lambda_body, qualifier, services
from lambdalet.api.consistency import catch_up
from lambdalet.errors import (
    InvalidParameterValueException, InvalidRequestContentException, RequestTooLargeException,
    ResourceNotFoundException, ValidationException, check_active,
)
from lambdalet.invoke.leases import HostMemoryExhausted
from lambdalet.invoke.types import Invocation, new_request_id
from lambdalet.model import FunctionConfig, alias_of
from lambdalet.placement import FORWARDED_BY, SPILL
from lambdalet.store.events import QueuedEvent
from lambdalet.tenancy import TENANT_MISSING, TENANT_UNEXPECTED

SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024
ASYNC_PAYLOAD_LIMIT = 1024 * 1024
CLIENT_CONTEXT_LIMIT = 3583
INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")
#: How long a node waits for a function's home to accept an event for it (a commit, not a run).
EVENT_FORWARD_TIMEOUT_S = 10.0
TENANT_ID = re.compile(r"[a-zA-Z0-9._:/=+\-@ ]{1,256}")  # botocore's TenantId: pattern and length
TRACE_HEADER_LIMIT = 1024  # X-Amzn-Trace-Id: Root, Parent, Sampled, Lineage, ... a few hundred bytes at most


def routes() -> list[web.RouteDef]:
    return [web.post("/2015-03-31/functions/{function_name}/invocations", invoke),
            web.post("/2014-11-13/functions/{function_name}/invoke-async", invoke_async),
            web.post("/2014-11-13/functions/{function_name}/invoke-async/", invoke_async)]


def _too_large(limit: int, operation: str) -> RequestTooLargeException:
    return RequestTooLargeException(f"Request must be smaller than {limit} bytes for the {operation} operation")


def _client_context(raw: str | None) -> str | None:
    if not raw:
        return None
    if len(raw) > CLIENT_CONTEXT_LIMIT:
        raise InvalidParameterValueException(f"Client context must be at most {CLIENT_CONTEXT_LIMIT} bytes.")
    try:
        text = base64.b64decode(raw, validate=True).decode()
        json.loads(text)
    except (binascii.Error, ValueError, RecursionError):
        raise InvalidRequestContentException("Client context must be a valid Base64-encoded JSON object.") from None
    return text


@dataclass
class InvokeRequest:
    """What Invoke and InvokeWithResponseStream read and check alike."""
    config: FunctionConfig
    ref_name: str
    qualifier: str | None
    invocation_type: str
    payload: bytes
    client_context: str | None
    tenant_id: str = ""


def tenant_id(request: web.Request, config: FunctionConfig) -> str:
    """The invocation's X-Amz-Tenant-Id, which a PER_TENANT function requires and any other refuses,
    both with Lambda's InvalidParameterValueException ("": none, for a function without tenancy)."""
    tenant = request.headers.get("X-Amz-Tenant-Id")
    if not config.tenant_isolation:
        if tenant is not None:
            raise InvalidParameterValueException(TENANT_UNEXPECTED)
        return ""
    if not tenant:
        raise InvalidParameterValueException(TENANT_MISSING)
    if not TENANT_ID.fullmatch(tenant):
        raise ValidationException(
            f"1 validation error detected: Value '{tenant}' at 'tenantId' failed to satisfy constraint: Member must "
            "satisfy regular expression pattern: [a-zA-Z0-9\\._:\\/=+\\-@ ]+")
    return tenant


async def read_invoke_request(request: web.Request, types: tuple[str, ...], operation: str) -> InvokeRequest:
    svc = services(request)
    ref = function_ref(request)
    qual = qualifier(request, ref)
    try:
        config = svc.functions.config(ref.name, qual, draw=random.random())  # an alias's weights pick the version
    except ResourceNotFoundException:
        if not await catch_up(svc):  # made through another node a moment ago?
            raise
        config = svc.functions.config(ref.name, qual, draw=random.random())
    if config.state != "Active" and await catch_up(svc):  # settled through another node a moment ago?
        config = svc.functions.config(ref.name, qual, draw=random.random())
    check_active(config.state)  # being created (or a version published with an update still in progress)

    invocation_type = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
    if invocation_type not in types:
        raise InvalidParameterValueException(
            f"1 validation error detected: Value '{invocation_type}' at 'invocationType' failed to satisfy "
            f"constraint: Member must satisfy enum value set: [{', '.join(types)}]"
        )
    limit = ASYNC_PAYLOAD_LIMIT if invocation_type == "Event" else SYNC_PAYLOAD_LIMIT
    payload = await _read_payload(request, limit, operation)
    client_context = _client_context(request.headers.get("X-Amz-Client-Context"))
    tenant = tenant_id(request, config)
    return InvokeRequest(config, ref.name, qual, invocation_type, payload, client_context, tenant)


async def _read_payload(request: web.Request, limit: int, operation: str) -> bytes:
    """The invocation's payload: at most `limit` bytes of JSON (an empty body is `{}`)."""
    if (request.content_length or 0) > limit:
        raise _too_large(limit, operation)
    payload = await lambda_body(request)
    if len(payload) > limit:
        raise _too_large(limit, operation)
    if not payload.strip():
        return b"{}"
    try:
        json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequestContentException(
            f"Could not parse request body into json: Could not parse payload into json: {exc}") from None
    return payload


def invocation_for(request: web.Request, req: InvokeRequest, request_id: str) -> Invocation:
    invoked_arn = services(request).arns.function(req.ref_name, req.qualifier)
    invocation = Invocation(request_id, req.payload, invoked_arn, client_context=req.client_context,
                            alias=alias_of(req.qualifier), tenant_id=req.tenant_id)
    trace = caller_trace(request)
    if trace is not None:
        invocation.trace_id = trace  # the caller's trace goes on, as Lambda passes it to the runtime
    return invocation


async def invoke(request: web.Request) -> web.Response:
    svc = services(request)
    try:
        req = await read_invoke_request(request, INVOCATION_TYPES, "InvokeFunction")
    except ResourceNotFoundException as missing:
        if FORWARDED_BY in request.headers:  # made through another node a moment ago: not known here yet
            missing.headers[SPILL] = "unknown function"
        raise
    if req.invocation_type == "DryRun":
        return web.Response(status=204)
    config, qual, payload = req.config, req.qualifier, req.payload

    request_id = new_request_id()
    request["request_id"] = request_id
    if req.invocation_type == "Event":  # 202 only once the event is committed: it is never lost after that
        accepted = await _accepted_by_home(request, config, qual)
        if accepted is not None:
            return accepted
        invoked_arn = svc.arns.function(req.ref_name, qual)
        await svc.queue.enqueue(QueuedEvent(request_id, req.ref_name, qual, invoked_arn, payload, time.time(),
                                            trace=caller_trace(request), tenant_id=req.tenant_id or None))
        return web.Response(status=202, headers={"x-amzn-RequestId": request_id})

    placement = svc.placement
    if placement is None or FORWARDED_BY in request.headers:
        return await _run_here(request, req, request_id)
    tried_here: HostMemoryExhausted | None = None
    for node, url in placed(request, config, qual):  # its home first (placement.py)
        if node == placement.node:
            try:
                return await _run_here(request, req, request_id)
            except HostMemoryExhausted as full:
                tried_here = full
        else:
            answer = await placement.forward(request, url, config.timeout)
            if answer is not None:
                return answer
    if tried_here is not None:  # every node is full
        raise tried_here
    return await _run_here(request, req, request_id)


def placed(request: web.Request, config: FunctionConfig, qualifier: str | None) -> tuple[tuple[str, str], ...]:
    """The nodes to try for an invoke of `config` through `qualifier`, in order (placement.py): its
    home first, or in turn the nodes keeping the provisioned environments of that version or alias,
    or for hot-reload code the node whose host has its directory."""
    svc = services(request)
    assert svc.placement is not None
    if config.hot_reload_dir and config.hot_reload_node:
        return svc.placement.pinned(config.name, config.hot_reload_node)
    provisioned = svc.functions.get(config.name).provisioned.get(qualifier or "")
    return svc.placement.spread(config.name, provisioned[0] if provisioned else 0)


async def _accepted_by_home(request: web.Request, config: FunctionConfig, qualifier: str | None
                            ) -> web.StreamResponse | None:
    """In a cluster, an event is accepted by its function's home, which runs it from memory where
    its warm environments are (placement.py); the next node of the ranking when the home does not
    take it. None: accept it here."""
    placement = services(request).placement
    if placement is None or FORWARDED_BY in request.headers:
        return None
    return await placement.ahead_of_here(request, placed(request, config, qualifier), EVENT_FORWARD_TIMEOUT_S)


async def _run_here(request: web.Request, req: InvokeRequest, request_id: str) -> web.Response:
    """Run a synchronous invoke on this node. One forwarded here that cannot run for want of host
    memory answers with SPILL: the node it came from tries the next one."""
    invocation = invocation_for(request, req, request_id)
    try:
        result = await services(request).invoker.invoke(req.config, invocation)
    except HostMemoryExhausted as full:
        if FORWARDED_BY in request.headers:
            full.headers[SPILL] = "host memory"
        raise
    headers = {"x-amzn-RequestId": request_id, "X-Amz-Executed-Version": result.executed_version}
    if result.function_error:
        headers["X-Amz-Function-Error"] = "Unhandled"
    if request.headers.get("X-Amz-Log-Type") == "Tail":
        headers["X-Amz-Log-Result"] = logs.tail(list(invocation.log_lines))
    return _response(result.payload, result.content_type, headers)


def caller_trace(request: web.Request) -> str | None:
    """The caller's X-Amzn-Trace-Id, which Lambda passes on to the runtime (`_X_AMZN_TRACE_ID`),
    when it is an X-Ray trace header (its Lineage counts recursive loops); None: the invocation
    starts a trace of its own."""
    trace = request.headers.get("X-Amzn-Trace-Id")
    if trace is None or "Root=1-" not in trace or len(trace) > TRACE_HEADER_LIMIT:
        return None
    return unquote(trace) if "%" in trace else trace  # botocore percent-encodes a Lineage's "|"


async def invoke_async(request: web.Request) -> web.Response:
    """InvokeAsync (deprecated, still served by AWS): an `Event` invoke of the unqualified name or
    the qualifier in it, answered `202 {"Status": 202}` once the event is committed to the queue."""
    svc = services(request)
    ref = function_ref(request)
    config = svc.functions.config(ref.name, ref.qualifier)  # 404 for an unknown function or qualifier
    check_active(config.state)
    payload = await _read_payload(request, ASYNC_PAYLOAD_LIMIT, "InvokeAsync")
    tenant = tenant_id(request, config)
    request_id = new_request_id()
    request["request_id"] = request_id
    await svc.queue.enqueue(QueuedEvent(request_id, ref.name, ref.qualifier,
                                        svc.arns.function(ref.name, ref.qualifier), payload, time.time(),
                                        trace=caller_trace(request), tenant_id=tenant or None))
    response = json_response({"Status": 202}, status=202)
    response.headers["x-amzn-RequestId"] = request_id
    return response


def _response(payload: bytes, content_type: str, headers: dict[str, str]) -> web.Response:
    response = web.Response(body=payload, headers=headers)
    response.headers["Content-Type"] = content_type
    return response
