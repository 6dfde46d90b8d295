"""Calls from inside a sandbox: a function may invoke, not manage.

Under the host network a function reaches this server's API on the host's loopback, and the API
does not authenticate (docs/deviations.md). On AWS the function's execution role decides what it
may call, and a role that may read other functions' configuration (their environment variables)
or code is the exception. Here the caller's socket tells: the kernel (sock_diag, `sandbox/peers.py`)
names the uid that owns it, and environments of the linux backend run as the sandbox uid. With
`--sandbox-api-access invoke` (the default) such a caller may call Invoke and function URLs, which
are not wrapped, and every other operation answers 403 AccessDeniedException; `full` allows all.

Under `--auth iam` none of this applies: function code signs its calls with its execution role's
credentials (auth/execution_roles.py), and the role's policies decide.

The check runs per request of the guarded operations only (a netlink round trip, ~20 µs): never on
Invoke, the hot path. Under the process backend functions run as the server's own user and
cannot be told apart, so nothing is refused there (it isolates nothing either).

Calls from a web page of another origin are refused too (`refuse_cross_origin`): a browser sends
`Origin` with them, and without the check any page a user visits could drive an `--auth open`
server on their loopback (cross-site request forgery). SDKs and the CLI send no `Origin`; the
console is same-origin; function URLs answer every origin (their CORS is the function's).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Callable

from aiohttp import web

from lambdalet.api.common import services
from lambdalet.api.url_requests import PATH_PREFIX
from lambdalet.errors import AccessDeniedException
from lambdalet.gates import Admissions, Gate
from lambdalet.sandbox import peers


def from_sandbox(transport: asyncio.BaseTransport | None, sandbox_uid: int) -> bool:
    """Whether the connection was made by a process running as the sandbox uid."""
    if transport is None:
        return False
    local, peer = transport.get_extra_info("sockname"), transport.get_extra_info("peername")
    if not isinstance(peer, tuple) or not isinstance(local, tuple):
        return False  # not TCP
    owner = peers.tcp_socket_owner(local=peer, remote=local)
    return owner is not None and owner[0] == sandbox_uid


def refuse_functions(route: web.RouteDef,
                     denied: Callable[[web.Request, str], web.StreamResponse] | None = None) -> web.RouteDef:
    """The route, refusing callers inside a sandbox: with Lambda's AccessDeniedException, or with
    `denied(request, message)` for an API whose errors have another shape (CloudWatch Logs, STS)."""
    inner = route.handler

    @functools.wraps(inner)
    async def guarded(request: web.Request) -> web.StreamResponse:
        svc = services(request)
        # under --auth iam a function's calls are signed with its role's credentials, and authorised by them
        uid = svc.function_uid if svc.settings.sandbox_api_access == "invoke" and svc.authenticator is None else None
        if uid is not None and from_sandbox(request.transport, uid):
            message = (f"A function may only invoke functions through this server's API: {request.method} "
                       f"{request.path} was refused. The server does not authenticate calls, so it does not "
                       "let function code read or change functions (--sandbox-api-access full allows it).")
            if denied is not None:
                return denied(request, message)
            raise AccessDeniedException(message)
        return await inner(request)  # type: ignore[misc]

    return web.RouteDef(route.method, route.path, guarded, route.kwargs)


#: Connections function code may hold open to the API at once, all functions together: each costs
#: the server a file descriptor, and a function may have 1,024 processes of 1,024 descriptors each.
MAX_FUNCTION_CONNECTIONS = 512


def function_admissions() -> Admissions:
    return Admissions("an API connection from function code", MAX_FUNCTION_CONNECTIONS)


class ConnectionGate(Gate):
    """Admits a connection to the API (`lambdalet/gates.py`), then hands everything to aiohttp's
    protocol. A connection whose socket the sandbox uid owns (`sandbox_uid`; None: not told apart)
    counts against MAX_FUNCTION_CONNECTIONS, others do not. The lookup (sock_diag, ~20 µs) is once
    per connection: keep-alive requests pay nothing."""

    def __init__(self, inner: Callable[[], asyncio.Protocol], admissions: Admissions, sandbox_uid: int | None
                 ) -> None:
        super().__init__(admissions)
        self._make_inner = inner
        self._sandbox_uid = sandbox_uid

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._sandbox_uid is not None and from_sandbox(transport, self._sandbox_uid):
            if self._full():
                self._refuse(transport, f"function code holds {MAX_FUNCTION_CONNECTIONS} open already")
                return
            self._admit()
        self._inner = self._make_inner()
        self._inner.connection_made(transport)


@web.middleware
async def refuse_cross_origin(request: web.Request, handler: Callable) -> web.StreamResponse:
    """403 for a browser's request from a page of another origin (see the module's docstring)."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}" and not request.path.startswith(PATH_PREFIX):
        raise AccessDeniedException(
            f"Requests from web pages of another origin ({origin}) are refused: this server's API is driven by "
            "SDKs, the CLI and its own console, not by other sites.")
    return await handler(request)
