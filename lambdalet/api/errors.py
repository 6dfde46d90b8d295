"""Rendering errors in Lambda's model, and the middleware that guarantees it for every response.

A client's mistake is always a 4xx with `x-amzn-ErrorType`; an unexpected exception is our bug and
becomes 500 ServiceException (logged with its traceback), never a half-written response.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from lambdalet.errors import (
    InvalidRequestContentException, LambdaError, RequestTooLargeException, ServiceException, UnknownOperationException,
)

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def render(error: LambdaError, request_id: str) -> web.Response:
    headers = {"x-amzn-ErrorType": error.error_type, "x-amzn-RequestId": request_id, **error.headers}
    return web.Response(status=error.status, text=json.dumps(error.body()), content_type="application/json",
                        headers=headers)


def _from_http_exception(exc: web.HTTPException, request: web.Request) -> LambdaError:
    if exc.status == 413:
        return RequestTooLargeException("Request must be smaller than the maximum request size of this operation.")
    if exc.status == 405:
        return UnknownOperationException(f"No operation is served at {request.method} {request.path}", status=405)
    return UnknownOperationException(f"No operation is served at {request.method} {request.path}",
                                     status=exc.status if 400 <= exc.status < 500 else 404)


@web.middleware
async def lambda_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except LambdaError as error:
        response = render(error, request.get("request_id") or str(uuid.uuid4()))
        if error.status == 408:  # the rest of a body that never came: not waited for
            response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return render(_from_http_exception(exc, request), str(uuid.uuid4()))
    except (HttpProcessingError, RequestPayloadError) as exc:  # a body aiohttp could not decode (a broken gzip)
        return render(InvalidRequestContentException(f"Could not read the request body: {' '.join(str(exc).split())}"),
                      str(uuid.uuid4()))
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return render(ServiceException("An internal error occurred; see the server log."), str(uuid.uuid4()))
    if "x-amzn-RequestId" not in response.headers:
        response.headers["x-amzn-RequestId"] = request.get("request_id") or str(uuid.uuid4())
    return response
