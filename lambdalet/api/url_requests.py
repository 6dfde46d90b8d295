"""Requests to function URLs: an HTTP request in, Lambda's payload format 2.0 event to the
function, its result mapped back to an HTTP response (`BUFFERED` invoke mode), or relayed as the
function writes it (`RESPONSE_STREAM`, `url_streaming.py`).

A URL is reached three ways:
- on its own port, as `FunctionUrl` says (`url_listeners.py`), every path the app's own;
- on the API port by Host, `<url-id>.lambda-url.<region>.localhost:<port>` (browsers resolve
  `*.localhost` to the loopback address; `FunctionUrl` with `--function-url-ports none`);
- on the API port by path, `/lambda-url/<url-id>/<path>`.
The first two are the `route_by_host` middleware.

Errors are the URL front end's, not the Lambda API's: 403 for an unknown URL, 502 when the function
fails or answers something that is not a response, 429 when throttled, 413 past 6 MB.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import random
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Awaitable, Callable
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from aiohttp import web

from lambdalet.api import invoke_stream, url_streaming
from lambdalet.api.authentication import Caller, authenticate_url
from lambdalet.api.authorization import url_allowed
from lambdalet.api.common import read_body, services
from lambdalet.api.consistency import catch_up
from lambdalet.api.invoke import caller_trace, placed
from lambdalet.errors import LambdaError, check_active
from lambdalet.invoke.types import Invocation, new_request_id
from lambdalet.placement import FORWARDED_BY, FORWARDING_HEADERS, client_ip

if TYPE_CHECKING:
    from lambdalet.server import Services

HOST_MARKER = ".lambda-url."
PATH_PREFIX = "/lambda-url/"
PAYLOAD_LIMIT = 6 * 1024 * 1024
COMPACT = (",", ":")  # how Lambda serialises the JSON it writes itself
#: Content types whose bodies reach the function as text; any other body is base64-encoded.
TEXT_TYPES = ("text/", "application/json", "application/javascript", "application/xml",
              "application/x-www-form-urlencoded", "application/xhtml+xml", "application/graphql")


def routes() -> list[web.RouteDef]:
    return [web.route("*", PATH_PREFIX + "{url_id}", by_path), web.route("*", PATH_PREFIX + "{url_id}/{path:.*}", by_path)]


@web.middleware
async def route_by_host(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                        ) -> web.StreamResponse:
    """Send everything that arrives on a URL's own port (`url_listeners.py`), and requests for
    `<url-id>.lambda-url.…` hosts on the API port, to their URL, whatever their path."""
    by_port = services(request).url_listeners.by_port
    if by_port and request.transport is not None:
        url_id = by_port.get(request.transport.get_extra_info("sockname")[1])
        if url_id is not None:
            return await serve(request, url_id, request.raw_path.split("?", 1)[0])
    host = request.host
    if HOST_MARKER in host:
        return await serve(request, host.split(".", 1)[0], request.raw_path.split("?", 1)[0])
    return await handler(request)


async def by_path(request: web.Request) -> web.StreamResponse:
    url_id = request.match_info["url_id"]
    raw_path = request.raw_path.split("?", 1)[0]
    return await serve(request, url_id, raw_path[len(PATH_PREFIX) + len(url_id):] or "/")


def _forbidden() -> web.Response:
    """AWS's answer to an AWS_IAM URL request without a signature that authenticates it."""
    return _error(403, "AccessDeniedException", "Forbidden. For troubleshooting Function URL authorization "
                                                "issues, see: https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html")


def _error(status: int, error_type: str, message: str | None) -> web.Response:
    return web.Response(status=status, text=json.dumps({"Message": message}, separators=COMPACT), content_type="application/json",
                        headers={"x-amzn-ErrorType": error_type})


async def serve(request: web.Request, url_id: str, raw_path: str) -> web.StreamResponse:
    svc = services(request)
    target = svc.functions.url_target(url_id)
    if target is None and await catch_up(svc):  # made through another node a moment ago?
        target = svc.functions.url_target(url_id)
    if target is None:
        return _error(403, "AccessDeniedException", None)
    name, qual = target
    forwarded = await _served_by_home(request, svc, name, qual)
    if forwarded is not None:  # counted by the node that ran it
        return forwarded
    response = await _serve(request, svc, url_id, raw_path, name, qual)
    svc.metrics.url_request(name, qual, response.status)
    return response


async def _served_by_home(request: web.Request, svc: "Services", name: str, qual: str
                          ) -> web.StreamResponse | None:
    """In a cluster, a URL's request runs on the function's home, where its warm environments are
    (placement.py): forwarded as it came, to the same port of the home when it came on the URL's
    own port (every node listens on it), else to the home's API port; a RESPONSE_STREAM answer is
    relayed as the home writes it. None: serve it here (this is the home, or no other node took it)."""
    placement = svc.placement
    if placement is None or FORWARDED_BY in request.headers:
        return None
    function = svc.functions.get(name)
    streamed = function.urls[qual].get("InvokeMode") == "RESPONSE_STREAM"
    own_port = request.transport.get_extra_info("sockname")[1] if request.transport is not None else None

    def address(url: str) -> str:  # the same URL port there, when it came on one here
        if own_port not in svc.url_listeners.by_port:
            return url
        return urlunsplit(urlsplit(url)._replace(netloc=f"{urlsplit(url).hostname}:{own_port}", path=""))

    ranked = placed(request, svc.functions.config(name, qual or None), qual or None)
    return await placement.ahead_of_here(request, ranked, function.latest.timeout, streamed=streamed,
                                         address=address)


async def _serve(request: web.Request, svc: "Services", url_id: str, raw_path: str, name: str, qual: str
                 ) -> web.StreamResponse:
    url_config = svc.functions.get(name).urls[qual]
    signed = url_config["AuthType"] == "AWS_IAM"
    if signed and not request.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256"):
        return _forbidden()
    cors = url_config.get("Cors")
    origin = request.headers.get("Origin")
    if cors and request.method == "OPTIONS" and origin and "Access-Control-Request-Method" in request.headers:
        return web.Response(status=200, headers=_preflight_headers(cors, origin))
    if (request.content_length or 0) > PAYLOAD_LIMIT:
        return _too_large()
    try:
        body = await read_body(request)
    except asyncio.TimeoutError:
        response = _error(408, "RequestTimeout", "The request body was not received in time.")
        response.force_close()
        return response
    if len(body) > PAYLOAD_LIMIT:
        return _too_large()
    caller = None
    if svc.authenticator is not None:  # --auth iam: the signature is verified, then authorised
        if signed:
            caller = await authenticate_url(request, body)
            if caller is None:
                return _forbidden()
        if not await url_allowed(request, name, qual, caller, url_config["AuthType"]):
            return _forbidden()

    request_id = new_request_id()
    event = build_event(request, url_id=url_id, raw_path=raw_path, body=body, request_id=request_id,
                        account=svc.arns.account if signed else None, caller=caller)
    config = svc.functions.config(name, qual or None, draw=random.random())
    invocation = Invocation(request_id, json.dumps(event).encode(), svc.arns.function(name, qual or None),
                            alias=qual)
    invocation.trace_id = caller_trace(request) or invocation.trace_id  # the request's trace goes on
    extra = _cors_headers(cors, origin) if cors and origin else {}
    try:
        check_active(config.state)  # being created: refused as Invoke refuses it
        if url_config.get("InvokeMode") == "RESPONSE_STREAM":
            task, streaming = await invoke_stream.start(svc, config, invocation)
            result = None if streaming else await task
        else:
            result = await svc.invoker.invoke(config, invocation)
    except LambdaError as exc:  # being created, throttled, or no room in the memory budget
        return _error(exc.status, exc.error_type, exc.message)
    if result is None:  # the runtime streams: relayed as it writes
        return await url_streaming.relay(request, task, invocation, {"x-amzn-RequestId": request_id, **extra})
    response = (_internal_error() if result.function_error else to_response(result.payload))
    response.headers["x-amzn-RequestId"] = request_id
    if cors and origin:
        response.headers.update(_cors_headers(cors, origin))
    return response


def _too_large() -> web.Response:
    return _error(413, "RequestEntityTooLargeException",
                  f"Request must be smaller than {PAYLOAD_LIMIT} bytes for the InvokeFunction operation")


def _internal_error() -> web.Response:
    return web.Response(status=502, text="Internal Server Error", content_type="text/plain")


def _is_text(content_type: str) -> bool:
    content_type = content_type.lower()
    return content_type.startswith(TEXT_TYPES) or content_type.split(";")[0].endswith(("+json", "+xml"))


def build_event(request: web.Request, *, url_id: str, raw_path: str, body: bytes, request_id: str,
                account: str | None, caller: Caller | None = None) -> dict[str, Any]:
    """Lambda's payload format 2.0 for one request (`account` only for AWS_IAM URLs; `caller` when
    their signature was verified, under --auth iam)."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    internal = FORWARDING_HEADERS if FORWARDED_BY in request.headers else frozenset()
    for key, value in request.headers.items():
        key = key.lower()
        if key in internal:  # what a node forwarding the request added (placement.py)
            continue
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
        else:
            headers[key] = f"{headers[key]},{value}" if key in headers else value
    peer = client_ip(request, services(request).node_key) or "127.0.0.1"
    host, _, port = request.host.partition(":")
    headers.setdefault("x-forwarded-for", peer)
    headers.setdefault("x-forwarded-proto", request.scheme)
    headers.setdefault("x-forwarded-port", port or ("443" if request.scheme == "https" else "80"))
    raw_query = request.raw_path.partition("?")[2]
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if raw_query:
        params: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            params[key] = f"{params[key]},{value}" if key in params else value
        event["queryStringParameters"] = params
    event["requestContext"] = {
        "accountId": account or "anonymous",
        "apiId": url_id,
        "authorizer": _iam_authorizer(request, account, caller) if account else None,
        "domainName": host,
        "domainPrefix": url_id,
        "http": {"method": request.method, "path": unquote(raw_path), "protocol": f"HTTP/{request.version.major}."
                 f"{request.version.minor}", "sourceIp": peer, "userAgent": request.headers.get("User-Agent", "")},
        "requestId": request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": datetime.fromtimestamp(now, timezone.utc).strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now * 1000),
    }
    if body:
        if _is_text(request.headers.get("Content-Type", "")):
            try:
                event["body"], event["isBase64Encoded"] = body.decode(), False
            except UnicodeDecodeError:
                event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
        else:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    else:
        event["isBase64Encoded"] = False
    return event


def _iam_authorizer(request: web.Request, account: str, caller: Caller | None) -> dict[str, Any]:
    """The verified caller's identity under --auth iam; under --auth open, what can be read off the
    (unverified) Authorization header."""
    if caller is not None:
        return {"iam": {"accessKey": caller.access_key_id, "accountId": caller.account_id,
                        "callerId": caller.user_id, "cognitoIdentity": None, "principalOrgId": None,
                        "userArn": caller.arn, "userId": caller.user_id}}
    credential = request.headers.get("Authorization", "").partition("Credential=")[2].split("/", 1)[0]
    return {"iam": {"accessKey": credential, "accountId": account, "callerId": None, "cognitoIdentity": None,
                    "principalOrgId": None, "userArn": None, "userId": None}}


def to_response(payload: bytes) -> web.Response:
    """Lambda's response mapping: an object with `statusCode` describes the response; any other
    JSON value is the body of a 200 `application/json` response — a string as it is, anything else
    as compact JSON. A `statusCode` may be a number or a numeric string; a `body` that is not a
    string is serialised as compact JSON."""
    try:
        value = json.loads(payload) if payload else None
    except (ValueError, RecursionError):
        return _internal_error()
    if not isinstance(value, dict) or "statusCode" not in value:
        body = value if isinstance(value, str) else json.dumps(value, separators=COMPACT)
        return web.Response(status=200, text=body, content_type="application/json")
    status = _status_code(value.get("statusCode"))
    headers = value.get("headers") or {}
    cookies = value.get("cookies") or []
    body = value.get("body")
    if body is not None and not isinstance(body, str):
        body = json.dumps(body, separators=COMPACT)
    if status is None or not isinstance(headers, dict) or not isinstance(cookies, list):
        return _internal_error()
    data = (body or "").encode()
    if value.get("isBase64Encoded") and body:
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return _internal_error()
    response = web.Response(status=status, body=data)
    response.headers["Content-Type"] = "application/json"
    for key, header_value in headers.items():
        response.headers[str(key)] = str(header_value)
    for cookie in cookies:
        response.headers.add("Set-Cookie", str(cookie))
    return response


def _status_code(value: object) -> int | None:
    """A response's statusCode: an integer 100-599, given as a number or a numeric string."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return None


def _allowed_origin(cors: dict, origin: str) -> str | None:
    allowed = cors.get("AllowOrigins") or []
    if "*" in allowed:
        return origin if cors.get("AllowCredentials") else "*"
    return origin if origin in allowed else None


def _cors_headers(cors: dict, origin: str) -> dict[str, str]:
    """The CORS headers of an actual request; they override whatever the function set."""
    allowed = _allowed_origin(cors, origin)
    if allowed is None:
        return {}
    headers = {"Access-Control-Allow-Origin": allowed, "Vary": "Origin"}
    if cors.get("ExposeHeaders"):
        headers["Access-Control-Expose-Headers"] = ",".join(cors["ExposeHeaders"])
    if cors.get("AllowCredentials"):
        headers["Access-Control-Allow-Credentials"] = "true"
    return headers


def _preflight_headers(cors: dict, origin: str) -> dict[str, str]:
    headers = _cors_headers(cors, origin)
    if not headers:
        return {}
    if cors.get("AllowMethods"):
        headers["Access-Control-Allow-Methods"] = ",".join(cors["AllowMethods"])
    if cors.get("AllowHeaders"):
        headers["Access-Control-Allow-Headers"] = ",".join(cors["AllowHeaders"])
    if "MaxAge" in cors:
        headers["Access-Control-Max-Age"] = str(cors["MaxAge"])
    return headers
