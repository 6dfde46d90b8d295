"""The web console: a small front end, served by the server itself, that manages, tests and
watches functions through the same Lambda API routes boto3 calls.

It is three static files (`static/`: HTML, one script, one style sheet) and no build step: the
script is plain JavaScript that the browser runs as it is, fetches the API on the same origin
and builds every element with `textContent` (never HTML from data), so a function's name,
description, environment or log line always shows as text. The pages are served with a
Content-Security-Policy that allows scripts, styles and connections to this server only.

Because every action is an API call, the console can do only what the API lets its caller do,
and shows the API's own errors (`ValidationException` wording and all). Under `--auth iam` it asks
for an access key and signs every call with SigV4 itself (WebCrypto), the key kept in the
browser's session storage only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from aiohttp import web

from lambdalet import node_auth
from lambdalet.api.common import json_response, services
from lambdalet.console import test_events
from lambdalet.errors import InvalidParameterValueException, ResourceNotFoundException
from lambdalet.metrics_history import render

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
#: The console's own data (charts, saved test events): authenticated as the Lambda API is, under
#: `--auth iam` (the pages themselves are public files: what they show comes from the API).
DATA_PREFIX = "/_lambdalet/console/"
#: Where a node asks another for its part of a chart (node_auth.py signs it), and how long it waits.
PEER_METRICS_PATH = "/_lambdalet/peer/metrics"
PEER_TIMEOUT_S = 5.0
ASSETS = {"console.js": "text/javascript", "console.css": "text/css"}  # index.html: `index`, told the region
HEADERS = {
    # Scripts, styles, images and API calls from this server only; no framing (clickjacking).
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def routes() -> list[web.RouteDef]:
    """The pages: public files."""
    return [web.get("/console", redirect), web.get("/console/", index), web.get("/console/{asset}", asset)]


def data_routes() -> list[web.RouteDef]:
    """The console's own data, under DATA_PREFIX: the charts' series and the saved test events."""
    return [web.get(DATA_PREFIX + "functions/{function}/metrics", metrics_history), *test_events.routes()]


def wants_console(request: web.Request) -> bool:
    """A browser opening the server's root (`http://127.0.0.1:9001/`): it asks for HTML."""
    return request.method == "GET" and "text/html" in request.headers.get("Accept", "")


async def redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/console/")


async def index(request: web.Request) -> web.Response:
    """The page, told the server's region (what the console signs its calls for)."""
    page = (STATIC / "index.html").read_text().replace("__REGION__", services(request).settings.region)
    return web.Response(text=page, content_type="text/html", charset="utf-8", headers=HEADERS)


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["asset"]
    if name not in ASSETS:
        raise web.HTTPNotFound(text=f"{name} is not part of the console")
    return _file(name)


def _file(name: str) -> web.Response:
    return web.Response(body=(STATIC / name).read_bytes(), content_type=ASSETS[name], charset="utf-8",
                        headers=HEADERS)


PERIODS = {"15m": 900, "1h": 3600, "24h": 86400}


async def metrics_history(request: web.Request) -> web.Response:
    """The charts' data: `GET /_lambdalet/console/functions/{function}/metrics?period=15m|1h|24h&qualifier=`."""
    svc = services(request)
    name = request.match_info["function"]
    period = request.query.get("period", "15m")
    if period not in PERIODS:
        raise InvalidParameterValueException(f"period must be one of {', '.join(PERIODS)}")
    if name not in svc.functions.names():
        raise ResourceNotFoundException(f"Function not found: {svc.arns.function(name)}")
    assert svc.history is not None
    qualifier, now = request.query.get("qualifier", ""), time.time()
    parts = [svc.history.steps(name, PERIODS[period], qualifier, now)]
    if svc.nodes is not None and len(svc.nodes.peers) > 1:  # a cluster: every live node's too
        call = {"function": name, "periodSeconds": PERIODS[period], "qualifier": qualifier, "now": now}
        answers = await asyncio.gather(*(asyncio.to_thread(_peer_steps, svc.node_key, peer, url, call)
                                         for peer, url in svc.nodes.peers if peer != svc.nodes.name))
        parts += [part for part in answers if part is not None]
    return json_response(render(name, qualifier, PERIODS[period], parts))


def _peer_steps(key: bytes, peer: str, url: str, call: dict) -> dict | None:
    """Another node's steps of the chart; None (and a warning) when it does not answer in time."""
    try:
        return node_auth.post(key, url, PEER_METRICS_PATH, call, PEER_TIMEOUT_S)["result"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("metrics of node %s left out of a chart: %s", peer, exc)
        return None


async def peer_metrics(request: web.Request) -> web.Response:
    """A peer's read of this node's history of a function (`_peer_steps`), signed with the nodes' key."""
    svc = services(request)
    call = await node_auth.signed_call(request, svc.node_key)
    if isinstance(call, web.Response):
        return call
    try:
        name, period_s = str(call["function"]), float(call["periodSeconds"])
        qualifier, now = str(call["qualifier"]), float(call["now"])
    except (ValueError, KeyError, TypeError):
        return web.json_response({"message": "The request body is not a metrics call."}, status=400)
    if period_s not in PERIODS.values():
        return web.json_response({"message": f"periodSeconds must be one of {sorted(PERIODS.values())}"}, status=400)
    assert svc.history is not None
    return web.json_response({"result": svc.history.steps(name, period_s, qualifier, now)})
