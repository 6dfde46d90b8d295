"""InvokeWithResponseStream: a synchronous invoke whose answer is an event stream.

The function's bytes go to the caller as PayloadChunk events as the runtime writes them, then one
InvokeComplete (with ErrorCode/ErrorDetails when the function failed, timed out or crashed
mid-stream, and LogResult when the caller asked for the log tail). A buffered function (any that
answers with one plain /response, e.g. every Python one) is sent as one PayloadChunk. The response
is written only as fast as the client reads it: `response.write` waits for the socket, the
function's stream waits for that (`invoke/streaming.py`), and the runtime's own writes wait last.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from aiohttp import web

from lambdalet import eventstream, logs
from lambdalet.api.common import services
from lambdalet.api.invoke import invocation_for, placed, read_invoke_request
from lambdalet.invoke.leases import HostMemoryExhausted
from lambdalet.invoke.streaming import ResponseStream, caller_stream
from lambdalet.invoke.types import Invocation, InvocationResult, new_request_id
from lambdalet.placement import FORWARDED_BY, SPILL

if TYPE_CHECKING:
    from lambdalet.model import FunctionConfig
    from lambdalet.server import Services

STREAM_INVOCATION_TYPES = ("RequestResponse", "DryRun")
CONTENT_TYPE = "application/vnd.amazon.eventstream"
#: Invocations whose caller went away mid-stream: they run to their end, referenced here till then.
_orphans: set[asyncio.Future] = set()


def routes() -> list[web.RouteDef]:
    return [web.post("/2021-11-15/functions/{function_name}/response-streaming-invocations",
                     invoke_with_response_stream)]


def error_fields(result: InvocationResult) -> tuple[str, str]:
    """ErrorCode and ErrorDetails of a failed invocation: its errorType and errorMessage."""
    try:
        error = json.loads(result.payload)
    except (ValueError, RecursionError):
        error = None
    if not isinstance(error, dict):
        return result.error_type or "Unhandled", result.payload.decode("utf-8", errors="replace")
    return (str(error.get("errorType") or result.error_type or "Unhandled"),
            str(error.get("errorMessage") or ""))


async def start(svc: "Services", config: "FunctionConfig", invocation: Invocation
                ) -> tuple["asyncio.Future[InvocationResult]", bool]:
    """Start an invocation whose response may stream; returns it once the runtime began streaming
    (True) or answered whole (False). Raises what the invoker raises before that (throttles)."""
    invocation.stream = caller_stream(svc.settings)
    task = asyncio.ensure_future(svc.invoker.invoke(config, invocation))
    await asyncio.wait([task, invocation.stream.started], return_when=asyncio.FIRST_COMPLETED)
    if invocation.stream.started.done():
        return task, True
    task.result()  # raises, when the invoker refused
    return task, False


def orphan(task: "asyncio.Future[InvocationResult]", stream: ResponseStream) -> None:
    """The caller is gone: the stream drops what comes, the invocation runs on to its end."""
    stream.close()
    if not task.done():
        _orphans.add(task)
        task.add_done_callback(_orphans.discard)


async def invoke_with_response_stream(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    req = await read_invoke_request(request, STREAM_INVOCATION_TYPES, "InvokeWithResponseStream")
    if req.invocation_type == "DryRun":
        return web.Response(status=204)
    if svc.placement is not None and FORWARDED_BY not in request.headers:  # its home first (placement.py)
        relayed = await svc.placement.ahead_of_here(request, placed(request, req.config, req.qualifier),
                                                    req.config.timeout, streamed=True)
        if relayed is not None:
            return relayed
    request_id = new_request_id()
    request["request_id"] = request_id
    invocation = invocation_for(request, req, request_id)
    try:
        task, streaming = await start(svc, req.config, invocation)
    except HostMemoryExhausted as full:
        if FORWARDED_BY in request.headers:  # the node it came from tries the next one
            full.headers[SPILL] = "host memory"
        raise
    stream = invocation.stream
    assert stream is not None
    response = web.StreamResponse(status=200, headers={
        "x-amzn-RequestId": request_id, "X-Amz-Executed-Version": req.config.version, "Content-Type": CONTENT_TYPE})
    try:
        await response.prepare(request)
        if streaming:
            while (data := await stream.read()) is not None:
                await response.write(eventstream.payload_chunk(data))
        result = await task
        if not streaming and not result.function_error:
            await response.write(eventstream.payload_chunk(result.payload))
        code = details = None
        if result.function_error:
            code, details = error_fields(result)
        tail = logs.tail(list(invocation.log_lines)) if request.headers.get("X-Amz-Log-Type") == "Tail" else None
        await response.write(eventstream.invoke_complete(code, details, tail))
        await response.write_eof()
    except ConnectionError:  # the client went away: nothing more to say to it
        orphan(task, stream)
    except asyncio.CancelledError:
        orphan(task, stream)
        raise
    return response
