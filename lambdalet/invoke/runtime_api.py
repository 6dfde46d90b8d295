"""Lambda's Runtime API (2018-06-01), served to every execution environment.

Runtime clients find the API through AWS_LAMBDA_RUNTIME_API=host:port and send no other identity,
so each environment gets a listening socket of its own on one shared aiohttp application: the local
port a request arrived on names its environment (a dict lookup). One handler per endpoint, as in
AWS's Runtime Interface Emulator; the environment's state machine refuses what is out of turn.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from aiohttp import web

from lambdalet.invoke.environment import MAX_RESPONSE_BYTES, RuntimeApiRefusal

if TYPE_CHECKING:
    from lambdalet.invoke.environment import Environment

PREFIX = "/2018-06-01/runtime"
ACCEPTED = json.dumps({"status": "OK"})


def _refusal(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response({"errorMessage": message, "errorType": error_type}, status=status)


class RuntimeApiServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._by_port: dict[int, "Environment"] = {}
        self._servers: dict[int, asyncio.AbstractServer] = {}
        app = web.Application(client_max_size=MAX_RESPONSE_BYTES + 1)
        app.router.add_get(PREFIX + "/invocation/next", self.next)
        app.router.add_post(PREFIX + "/invocation/{request_id}/response", self.response)
        app.router.add_post(PREFIX + "/invocation/{request_id}/error", self.error)
        app.router.add_post(PREFIX + "/init/error", self.init_error)
        app.router.add_get("/2018-06-01/ping", self.ping)
        # Long keep-alive: a runtime answers on the connection its /next came from, maybe minutes later.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=3600)

    async def start(self) -> None:
        await self._runner.setup()

    async def shutdown(self) -> None:
        for port in list(self._servers):
            self.close(port)
        await self._runner.cleanup()

    async def listen(self, env: "Environment") -> int:
        """Open a listener for one environment; returns its port."""
        loop = asyncio.get_running_loop()
        server = await loop.create_server(self._runner.server, self.host, 0)  # type: ignore[arg-type]
        port = server.sockets[0].getsockname()[1]
        self._servers[port] = server
        self._by_port[port] = env
        return port

    def close(self, port: int) -> None:
        server = self._servers.pop(port, None)
        self._by_port.pop(port, None)
        if server is not None:
            server.close()

    def _env(self, request: web.Request) -> "Environment":
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        env = self._by_port.get(sockname[1]) if sockname else None
        if env is None:
            raise RuntimeApiRefusal(410, "Runtime.Gone", "this execution environment no longer exists")
        return env

    async def next(self, request: web.Request) -> web.StreamResponse:
        try:
            invocation = await self._env(request).next_invocation()
        except RuntimeApiRefusal as refusal:
            return _refusal(refusal.status, refusal.error_type, refusal.message)
        except asyncio.CancelledError:
            return _refusal(500, "Runtime.Stopped", "the environment is shutting down")
        headers = {
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": invocation.invoked_arn,
            "Lambda-Runtime-Trace-Id": invocation.trace_id,
            "Content-Type": invocation.content_type,
        }
        if invocation.client_context:
            headers["Lambda-Runtime-Client-Context"] = invocation.client_context
        return web.Response(body=invocation.payload, headers=headers)

    async def response(self, request: web.Request) -> web.Response:
        request_id = request.match_info["request_id"]
        try:
            env = self._env(request)
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                env.on_oversized_response(request_id)
                raise RuntimeApiRefusal(413, "RequestEntityTooLarge",
                                        f"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).")
            env.on_response(request_id, body, request.headers.get("Content-Type", "application/json"))
        except RuntimeApiRefusal as refusal:
            return _refusal(refusal.status, refusal.error_type, refusal.message)
        return web.Response(status=202, text=ACCEPTED, content_type="application/json")

    async def error(self, request: web.Request) -> web.Response:
        try:
            env = self._env(request)
            env.on_error(request.match_info["request_id"], await request.read())
        except RuntimeApiRefusal as refusal:
            return _refusal(refusal.status, refusal.error_type, refusal.message)
        return web.Response(status=202, text=ACCEPTED, content_type="application/json")

    async def init_error(self, request: web.Request) -> web.Response:
        try:
            env = self._env(request)
            env.on_init_error(await request.read(), request.headers.get("Lambda-Runtime-Function-Error-Type"))
        except RuntimeApiRefusal as refusal:
            return _refusal(refusal.status, refusal.error_type, refusal.message)
        return web.Response(status=202, text=ACCEPTED, content_type="application/json")

    async def ping(self, request: web.Request) -> web.Response:
        return web.Response(text="pong")
