"""RESPONSE_STREAM function URLs: the function's bytes reach the client as it writes them.

A function that wrote with `awslambda.HttpResponseStream.from` (content type
`application/vnd.awslambda.http-integration-response`) starts with a JSON prelude (statusCode,
headers, cookies) and 8 NUL bytes; the prelude becomes the response's status and headers, the rest
its body. Any other content type is the body of a 200 with that type. The body goes out chunked,
each piece as it comes, as fast as the client reads (`invoke/streaming.py`). A function that fails
or times out mid-stream ends the body where it was, as on AWS.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from lambdalet.api import invoke_stream
from lambdalet.invoke.types import Invocation, InvocationResult

INTEGRATION_TYPE = "application/vnd.awslambda.http-integration-response"
DELIMITER = b"\0" * 8
MAX_PRELUDE = 64 * 1024


def _prelude(raw: bytes) -> tuple[int, dict, list] | None:
    """Status, headers and cookies of a metadata prelude, or None when it is not one."""
    try:
        meta = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError):
        return None
    if not isinstance(meta, dict):
        return None
    status = meta.get("statusCode", 200)
    headers, cookies = meta.get("headers") or {}, meta.get("cookies") or []
    if not (isinstance(status, int) and 100 <= status <= 599) or not isinstance(headers, dict) \
            or not isinstance(cookies, list):
        return None
    return status, headers, cookies


async def relay(request: web.Request, task: "asyncio.Future[InvocationResult]", invocation: Invocation,
                headers: dict[str, str]) -> web.StreamResponse:
    stream = invocation.stream
    assert stream is not None
    content_type = stream.started.result()
    status, extra, cookies, first = 200, {"Content-Type": content_type}, [], b""
    if content_type.split(";")[0].strip().lower() == INTEGRATION_TYPE:
        head = b""
        while DELIMITER not in head and len(head) <= MAX_PRELUDE:
            data = await stream.read()
            if data is None:
                break
            head += data
        raw, found, first = head.partition(DELIMITER)
        meta = _prelude(raw) if found else None
        if meta is None:
            invoke_stream.orphan(task, stream)
            return web.Response(status=502, text="Internal Server Error", content_type="text/plain")
        status, given, cookies = meta
        extra = {"Content-Type": "application/octet-stream", **{str(k): str(v) for k, v in given.items()}}
    response = web.StreamResponse(status=status, headers={**extra, **headers})
    for cookie in cookies:
        response.headers.add("Set-Cookie", str(cookie))
    try:
        await response.prepare(request)
        if first:
            await response.write(first)
        while (data := await stream.read()) is not None:
            await response.write(data)
        await task
        await response.write_eof()
    except ConnectionError:  # the client went away: nothing more to say to it
        invoke_stream.orphan(task, stream)
    except asyncio.CancelledError:
        invoke_stream.orphan(task, stream)
        raise
    return response
