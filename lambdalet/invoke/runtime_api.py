"""Lambda's Runtime API (2018-06-01), served to every execution environment.

Runtime clients find the API through AWS_LAMBDA_RUNTIME_API=host:port and send no other identity,
so each environment gets a listening socket of its own, served by a low-level aiohttp server bound
to that environment: whatever arrives on it is that environment's. The socket is either opened on
the host's loopback by the server (the environment shares the host's network) or handed over by
the sandbox, opened inside the environment's own network namespace at 127.0.0.1:9001, as on
Lambda. One handler per endpoint, as in AWS's Runtime Interface Emulator; the environment's state
machine refuses what is out of turn. Lambdalet's own runtimes may speak the same API as frames on
the same listener instead (`frames.py`): the first bytes of a connection tell which.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import select
import socket
import uuid
from functools import partial
from typing import TYPE_CHECKING, Awaitable, Callable, NoReturn

from aiohttp import web

from lambdalet.invoke import trailers
from lambdalet.invoke.environment import MAX_RESPONSE_BYTES, RuntimeApiRefusal
from lambdalet.invoke.extensions import ExtensionRefusal
from lambdalet.gates import Admissions
from lambdalet.invoke.frames import FrameProtocol, ProtocolSniffer, listener_admissions
from lambdalet.invoke.logs_api import LOGS as LOGS_API
from lambdalet.invoke.telemetry import TELEMETRY as TELEMETRY_API

if TYPE_CHECKING:
    from lambdalet.invoke.environment import Environment

PREFIX = "/2018-06-01/runtime"
ACCEPTED = json.dumps({"status": "OK"})
INVOCATION = re.compile(rf"^{PREFIX}/invocation/([^/]+)/(response|error)$")
EXTENSION = "/2020-01-01/extension"
TELEMETRY = "/2022-07-01/telemetry"
LOGS = "/2020-08-15/logs"
SUBSCRIBED = json.dumps("OK")  # the JSON string Lambda answers a subscription with
MAX_EXTENSION_BODY = 64 * 1024  # registrations, subscriptions and error reports are small
KEEPALIVE_S = 3600  # a runtime answers on the connection its /next came from, maybe minutes later

Handler = Callable[["Environment", web.BaseRequest], Awaitable[web.StreamResponse]]


def _refusal(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response({"errorMessage": message, "errorType": error_type}, status=status)


def _json(body: bytes) -> object:
    """A request body as JSON; an empty one is {} (a registration for no events)."""
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise ExtensionRefusal(400, "InvalidRequestFormat", "The request body is not valid JSON") from None


def _accepted() -> web.Response:
    return web.Response(status=202, text=ACCEPTED, content_type="application/json")


async def _read_body(request: web.BaseRequest, limit: int) -> bytes | None:
    """The request body, or None when it is larger than `limit`."""
    if (request.content_length or 0) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class RuntimeApiServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._servers: dict[int, asyncio.AbstractServer] = {}
        self._admissions: dict[int, Admissions] = {}
        self._channels: dict[int, asyncio.BaseTransport] = {}

    async def start(self) -> None:
        """Nothing to start: listeners are opened per environment."""

    async def shutdown(self) -> None:
        for server in self._servers.values():
            server.close()
        self._servers.clear()
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    def bind(self) -> socket.socket:
        """A new listening socket on the host's loopback, for `serve` (its port goes in the
        environment's AWS_LAMBDA_RUNTIME_API). Connections wait in its backlog until served."""
        return socket.create_server((self.host, 0))

    async def serve(self, env: "Environment", sock: socket.socket, guarded: bool = False) -> None:
        """Serve an environment's Runtime API on a listening socket (maybe from its own namespace).

        `guarded`: the socket is on the host's loopback, where other environments can reach it, so
        a connection is served only if the environment's own processes made it (`sandbox/peers.py`);
        any other is closed unanswered. Served only once the environment's process exists, so the
        check always has one to look at (connections wait in the backlog until then)."""
        sock.setblocking(False)
        http = web.Server(partial(self._dispatch, env), keepalive_timeout=KEEPALIVE_S, access_log=None)
        admissions = self._admissions[id(env)] = listener_admissions(env)
        self._servers[id(env)] = await asyncio.get_running_loop().create_server(
            lambda: ProtocolSniffer(env, http, guarded, admissions), sock=sock)

    async def attach_channel(self, env: "Environment", sock: socket.socket) -> None:
        """Speak frames with an environment's runtime over a socket connected before it started
        (the sandbox handed it the other end): no connect and no accept on the cold-start path."""
        sock.setblocking(False)
        transport, _protocol = await asyncio.get_running_loop().connect_accepted_socket(
            lambda: FrameProtocol(env), sock=sock)
        self._channels[id(env)] = transport

    def busy(self, env: "Environment") -> bool:
        """Whether the environment's listener still has connections open, or waiting to be
        accepted: requests its runtime sent before it died may still be unread."""
        admissions = self._admissions.get(id(env))
        if admissions is not None and admissions.open:
            return True
        server = self._servers.get(id(env))
        sockets = [sock.fileno() for sock in server.sockets] if server is not None else []
        return bool(sockets and select.select(sockets, [], [], 0)[0])

    def close(self, env: "Environment") -> None:
        self._admissions.pop(id(env), None)
        server = self._servers.pop(id(env), None)
        if server is not None:
            server.close()
        channel = self._channels.pop(id(env), None)
        if channel is not None:
            channel.close()

    async def _dispatch(self, env: "Environment", request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        try:
            if path == PREFIX + "/invocation/next" and request.method == "GET":
                return await self._next(env)
            match = INVOCATION.match(path)
            if match and request.method == "POST":
                if match[2] == "response":
                    return await self._response(env, request, match[1])
                body = await _read_body(request, MAX_RESPONSE_BYTES)
                if body is None:  # an error is held to the response's limit, as the frames hold it
                    self._too_large(env, match[1])
                env.on_error(match[1], body)
                return _accepted()
            if path == PREFIX + "/init/error" and request.method == "POST":
                body = await _read_body(request, MAX_RESPONSE_BYTES)
                env.on_init_error(body or b"", request.headers.get("Lambda-Runtime-Function-Error-Type"))
                return _accepted()
            if path == "/2018-06-01/ping":
                return web.Response(text="pong")
            if path.startswith(EXTENSION) or path in (TELEMETRY, LOGS):
                return await self._extensions(env, request)
        except (RuntimeApiRefusal, ExtensionRefusal) as refusal:
            return _refusal(refusal.status, refusal.error_type, refusal.message)
        return _refusal(404, "UnknownRequest", f"{request.method} {path} is not part of the Runtime API")

    async def _extensions(self, env: "Environment", request: web.BaseRequest) -> web.StreamResponse:
        """The Extensions API (2020-01-01), the Telemetry API (2022-07-01) and the Logs API
        (2020-08-15), on the runtime's listener."""
        path, method, headers = request.path, request.method, request.headers
        identifier = headers.get("Lambda-Extension-Identifier")
        if path == EXTENSION + "/event/next" and method == "GET":
            event = env.extension_next(identifier)
            if isinstance(event, asyncio.Future):
                try:
                    event = await event
                except asyncio.CancelledError:
                    return _refusal(500, "Extension.Stopped", "the environment is shutting down")
            return web.json_response(event, headers={"Lambda-Extension-Event-Identifier": str(uuid.uuid4())})
        if method not in ("POST", "PUT"):
            return _refusal(404, "UnknownRequest", f"{method} {path} is not part of the Extensions API")
        body = await _read_body(request, MAX_EXTENSION_BODY)
        if body is None:
            raise ExtensionRefusal(413, "RequestEntityTooLarge", f"The request body is over {MAX_EXTENSION_BODY} bytes")
        if path == EXTENSION + "/register" and method == "POST":
            new_id, answer = env.register_extension(headers.get("Lambda-Extension-Name"), _json(body),
                                                    headers.get("Lambda-Extension-Accept-Feature", ""))
            return web.json_response(answer, headers={"Lambda-Extension-Identifier": new_id})
        if path in (EXTENSION + "/init/error", EXTENSION + "/exit/error") and method == "POST":
            env.extension_error(identifier, path.rsplit("/", 2)[1], headers.get("Lambda-Extension-Function-Error-Type"),
                                body)
            return _accepted()
        if path in (TELEMETRY, LOGS) and method == "PUT":
            env.subscribe_telemetry(identifier, _json(body), TELEMETRY_API if path == TELEMETRY else LOGS_API)
            return web.Response(text=SUBSCRIBED, content_type="application/json")
        return _refusal(404, "UnknownRequest", f"{method} {path} is not part of the Extensions API")

    async def _next(self, env: "Environment") -> web.StreamResponse:
        try:
            invocation = await env.next_invocation()
        except asyncio.CancelledError:
            return _refusal(500, "Runtime.Stopped", "the environment is shutting down")
        return web.Response(body=invocation.payload, headers=invocation.next_headers())

    async def _response(self, env: "Environment", request: web.BaseRequest, request_id: str) -> web.Response:
        mode = request.headers.get("Lambda-Runtime-Function-Response-Mode")
        if mode is not None:
            return await self._streamed_response(env, request, request_id, mode)
        body = await _read_body(request, MAX_RESPONSE_BYTES)
        if body is None:
            self._too_large(env, request_id)
        env.on_response(request_id, body, request.headers.get("Content-Type", "application/json"))
        return _accepted()

    async def _streamed_response(self, env: "Environment", request: web.BaseRequest, request_id: str,
                                 mode: str) -> web.Response:
        """A response streamed as the function writes it: each chunk goes on to the caller, and the
        next is read only once the caller's stream has room (the runtime's writes wait meanwhile).
        Whatever arrives after the stream closed (caller gone, limit passed, timed out) is read and
        dropped, so the runtime finishes its request; an error comes in the trailers."""
        if mode.lower() != "streaming":
            raise RuntimeApiRefusal(400, "InvalidFunctionResponseMode",
                                    f"Invalid function response mode: {mode}")
        content_type = request.headers.get("Content-Type", "application/octet-stream")
        stream = env.on_stream_start(request_id, content_type)
        writing = True
        try:
            async for chunk in request.content.iter_any():
                if writing:
                    writing = await stream.write(chunk)
        except ConnectionError:  # the runtime went away mid-stream (killed at a timeout, crashed)
            stream.close()  # its exit resolves the invocation, if the timeout has not
            return _accepted()
        finally:
            env.on_stream_request_done(request_id)
        fields = trailers.trailers_of(request.protocol)
        error_type = fields.get("lambda-runtime-function-error-type") or None
        error_body = None
        if error_type and fields.get("lambda-runtime-function-error-body"):
            try:
                error_body = base64.b64decode(fields["lambda-runtime-function-error-body"], validate=True)
            except (binascii.Error, ValueError):
                error_body = None
        env.on_stream_end(request_id, content_type, error_type, error_body)
        return _accepted()

    @staticmethod
    def _too_large(env: "Environment", request_id: str) -> NoReturn:
        """The caller gets Function.ResponseSizeTooLarge, the runtime a 413 (and goes on)."""
        env.on_oversized_response(request_id)
        raise RuntimeApiRefusal(413, "RequestEntityTooLarge",
                                f"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).")
