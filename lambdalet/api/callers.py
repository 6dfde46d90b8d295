"""Calls from inside a sandbox: a function may invoke, not manage.

Under the host network a function reaches this server's API on the host's loopback, and the API
does not authenticate (docs/deviations.md). On AWS the function's execution role decides what it
may call, and a role that may read other functions' configuration (their environment variables)
or code is the exception. Here the caller's socket tells: the kernel (sock_diag, `sandbox/peers.py`)
names the uid that owns it, and environments of the linux backend run as the sandbox uid. With
`--sandbox-api-access invoke` (the default) such a caller may call Invoke and function URLs, which
are not wrapped, and every other operation answers 403 AccessDeniedException; `full` allows all.

The check runs per request of the guarded operations only (a netlink round trip, ~20 µs): never on
Invoke, the hot path. Under the process backend functions run as the server's own user and
cannot be told apart, so nothing is refused there (it isolates nothing either).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from dataclasses import dataclass
from typing import Callable

from aiohttp import web

from lambdalet.api.common import services
from lambdalet.errors import AccessDeniedException
from lambdalet.sandbox import peers

log = logging.getLogger(__name__)


def from_sandbox(request: web.Request, sandbox_uid: int) -> bool:
    """Whether the request's connection was made by a process running as the sandbox uid."""
    transport = request.transport
    if transport is None:
        return False
    local, peer = transport.get_extra_info("sockname"), transport.get_extra_info("peername")
    if not isinstance(peer, tuple) or not isinstance(local, tuple):
        return False  # not TCP
    owner = peers.tcp_socket_owner(local=peer, remote=local)
    return owner is not None and owner[0] == sandbox_uid


def refuse_functions(route: web.RouteDef, denied: Callable[[str], web.StreamResponse] | None = None
                     ) -> web.RouteDef:
    """The route, refusing callers inside a sandbox: with Lambda's AccessDeniedException, or with
    `denied(message)` for an API whose errors have another shape (CloudWatch Logs)."""
    inner = route.handler

    @functools.wraps(inner)
    async def guarded(request: web.Request) -> web.StreamResponse:
        uid = services(request).sandbox_caller_uid
        if uid is not None and from_sandbox(request, uid):
            message = (f"A function may only invoke functions through this server's API: {request.method} "
                       f"{request.path} was refused. The server does not authenticate calls, so it does not "
                       "let function code read or change functions (--sandbox-api-access full allows it).")
            if denied is not None:
                return denied(message)
            raise AccessDeniedException(message)
        return await inner(request)  # type: ignore[misc]

    return web.RouteDef(route.method, route.path, guarded, route.kwargs)


#: Connections function code may hold open to the API at once, all functions together: each costs
#: the server a file descriptor, and a function may have 1,024 processes of 1,024 descriptors each.
MAX_FUNCTION_CONNECTIONS = 512


@dataclass
class FunctionConnections:
    """The API connections made from inside a sandbox (owned by `uid`; None: not told apart)."""

    uid: int | None
    open: int = 0
    refused: int = 0


class ConnectionGate(asyncio.Protocol):
    """Admits a connection to the API, then hands everything to aiohttp's protocol.

    A connection whose socket the sandbox uid owns counts against MAX_FUNCTION_CONNECTIONS; past
    it, the connection is closed unanswered (logged at the 1st, 10th, 100th refusal, ...). The
    lookup (sock_diag, ~20 µs) is once per connection: keep-alive requests pay nothing."""

    def __init__(self, inner: Callable[[], asyncio.Protocol], connections: FunctionConnections) -> None:
        self._make_inner = inner
        self._connections = connections
        self._inner: asyncio.Protocol | None = None
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._connections.uid is not None and self._from_sandbox(transport):
            if self._connections.open >= MAX_FUNCTION_CONNECTIONS:
                self._connections.refused += 1
                if math.log10(self._connections.refused).is_integer():
                    log.warning("refused an API connection from function code (%d so far): it holds %d open "
                                "already", self._connections.refused, MAX_FUNCTION_CONNECTIONS)
                transport.abort()  # type: ignore[attr-defined]
                return
            self._connections.open += 1
            self._counted = True
        self._inner = self._make_inner()
        self._inner.connection_made(transport)

    def _from_sandbox(self, transport: asyncio.BaseTransport) -> bool:
        local, peer = transport.get_extra_info("sockname"), transport.get_extra_info("peername")
        if not isinstance(peer, tuple) or not isinstance(local, tuple):
            return False
        owner = peers.tcp_socket_owner(local=peer, remote=local)
        return owner is not None and owner[0] == self._connections.uid

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._counted:
            self._connections.open -= 1
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()
