"""Read-your-writes through any node (issue 20).

Each node answers from its in-memory view of the functions (functions.py), which other nodes'
changes reach by NOTIFY and the change-log poll — within a second, but not before the client that
made a change sends its next request, perhaps through another node behind the load balancer
(`create_function` then `get_waiter(...).wait()`). So a control-plane request on a node with peers
first catches up with the change log (one indexed read), and an invoke of a function this node
does not know does so before it answers 404. One node alone, the view is the database's: nothing
to read.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from lambdalet.api.common import services

if TYPE_CHECKING:
    from lambdalet.server import Services

log = logging.getLogger(__name__)


async def catch_up(svc: "Services") -> bool:
    """Whether this node has peers, having seen what they committed before now; a database that
    does not answer leaves the node's view as it is (the request's own reads will say so)."""
    if svc.nodes is None or len(svc.nodes.peers) < 2:
        return False
    try:
        await svc.functions.catch_up()
    except SQLAlchemyError as exc:
        log.warning("could not read other nodes' changes before answering: %s", exc)
    return True


def caught_up(route: web.RouteDef) -> web.RouteDef:
    """The route, answered on a view that has every change committed before the request."""
    inner = route.handler

    @functools.wraps(inner)
    async def fresh(request: web.Request) -> web.StreamResponse:
        await catch_up(services(request))
        return await inner(request)  # type: ignore[misc]

    return web.RouteDef(route.method, route.path, fresh, route.kwargs)
