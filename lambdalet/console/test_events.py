"""The console's saved test events: named events per function, kept in the database so that
they outlive the browser and are the same from every node (`store/test_events.py`).

    GET    /_lambdalet/console/functions/{function}/test-events          {"TestEvents": [{"Name", "Event"}]}
    PUT    /_lambdalet/console/functions/{function}/test-events/{name}   body: the event (JSON)
    DELETE /_lambdalet/console/functions/{function}/test-events/{name}

The AWS console's rules: at most 10 per function, names of 1–25 letters, digits, `.`, `-`, `_`;
an event is JSON of at most 256 KB. Errors are Lambda's shapes (400 InvalidParameterValueException,
404 ResourceNotFoundException).
"""

from __future__ import annotations

import asyncio
import json
import re
import time

from aiohttp import web

from lambdalet.api.common import json_response, read_body, services
from lambdalet.errors import InvalidParameterValueException, ResourceNotFoundException

PATH = "/_lambdalet/console/functions/{function}/test-events"  # under console.DATA_PREFIX
NAME = re.compile(r"[A-Za-z0-9._-]{1,25}")
MAX_EVENTS = 10
MAX_EVENT_BYTES = 256 * 1024


def routes() -> list[web.RouteDef]:
    return [web.get(PATH, list_events), web.put(PATH + "/{name}", save_event),
            web.delete(PATH + "/{name}", delete_event)]


def _function(request: web.Request) -> str:
    svc = services(request)
    name = request.match_info["function"]
    if name not in svc.functions.names():
        raise ResourceNotFoundException(f"Function not found: {svc.arns.function(name)}")
    return name


def _event_name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not NAME.fullmatch(name):
        raise InvalidParameterValueException(
            "A test event's name has 1 to 25 characters: letters, digits, '.', '-' and '_'.")
    return name


async def list_events(request: web.Request) -> web.Response:
    function = _function(request)
    store = services(request).test_events
    saved = await asyncio.to_thread(store.list, function)
    return json_response({"TestEvents": [{"Name": name, "Event": event} for name, event in saved]})


async def save_event(request: web.Request) -> web.Response:
    function, name = _function(request), _event_name(request)
    body = await read_body(request)
    if len(body) > MAX_EVENT_BYTES:
        raise InvalidParameterValueException(f"A test event is at most {MAX_EVENT_BYTES} bytes.")
    try:
        event = body.decode("utf-8")
        json.loads(event)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise InvalidParameterValueException("A test event must be valid JSON.") from None
    store = services(request).test_events
    saved = await asyncio.to_thread(store.names, function)
    if name not in saved and len(saved) >= MAX_EVENTS:
        raise InvalidParameterValueException(f"A function has at most {MAX_EVENTS} saved test events: delete one first.")
    await asyncio.to_thread(store.save, function, name, event, time.time())
    return json_response({"Name": name, "Event": event})


async def delete_event(request: web.Request) -> web.Response:
    function, name = _function(request), _event_name(request)
    if not await asyncio.to_thread(services(request).test_events.delete, function, name):
        raise ResourceNotFoundException(f"The function {function} has no test event {name}.")
    return web.Response(status=204)
