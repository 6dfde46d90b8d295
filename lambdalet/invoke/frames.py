"""Lambdalet's frame protocol: the Runtime API for its own built-in runtimes, without HTTP.

AWS's runtime clients and custom `bootstrap`s speak the Runtime API over HTTP, and always will
here. Lambdalet's own Python bootstrap, told so by `_LAMBDALET_RUNTIME_FRAMES=1`, instead opens the
same listener with `MAGIC` and exchanges length-prefixed frames carrying exactly what the HTTP
endpoints carry. It saves the server two HTTP request cycles per invocation: on the warm path that
is most of what one invocation costs the server's one event loop.

    frame = u32 length of the rest | u8 kind | u32 meta length | meta (JSON) | body

    runtime → server   N  next                      (meta {})
                       R  response                  (meta {"id", "content_type"}, body = result)
                       E  error                     (meta {"id"}, body = error JSON)
                       I  init error                (meta {"error_type"}, body = error JSON)
    server → runtime   V  an event                  (meta = the /next headers, lower-case; body = event)
                       X  a refusal                 (meta {"status", "errorType", "errorMessage"})

The bootstrap's side lives in `runtimes/python/bootstrap.py` (it cannot import this module).
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import TYPE_CHECKING, Callable

from lambdalet.gates import Admissions, Gate
from lambdalet.invoke import trailers
from lambdalet.invoke.environment import MAX_RESPONSE_BYTES, RuntimeApiRefusal

if TYPE_CHECKING:
    from lambdalet.invoke.environment import Environment
    from lambdalet.invoke.types import Invocation

MAGIC = b"LLF1"
HEADER = struct.Struct(">IBI")  # length of the rest, kind, meta length
MAX_FRAME = MAX_RESPONSE_BYTES + (1 << 16)
MAX_META = 1 << 16  # a frame's meta is a few headers: anything longer is not a runtime of ours


def encode(kind: bytes, meta: dict, body: bytes = b"") -> bytes:
    meta_bytes = json.dumps(meta).encode()
    return HEADER.pack(1 + 4 + len(meta_bytes) + len(body), kind[0], len(meta_bytes)) + meta_bytes + body


class FrameProtocol(asyncio.Protocol):
    """One runtime's connection, speaking frames, for one environment."""

    def __init__(self, env: "Environment") -> None:
        self.env = env
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[Invocation] | None = None  # a /next waiting for an invocation
        self._discard = 0  # bytes still to skip of an oversized frame already answered

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._discard:
            skipped = min(self._discard, len(data))
            self._discard -= skipped
            data = data[skipped:]
        self._buffer += data
        while len(self._buffer) >= 4:
            length = int.from_bytes(self._buffer[:4], "big")
            if length > MAX_FRAME:
                if not self._oversized(length):
                    return
                continue
            if len(self._buffer) < 4 + length:
                return
            frame = bytes(self._buffer[: 4 + length])
            del self._buffer[: 4 + length]
            _length, kind, meta_length = HEADER.unpack_from(frame)
            raw_meta = frame[9: 9 + meta_length]
            meta = {} if raw_meta == b"{}" else json.loads(raw_meta)  # every /next's is empty
            self._handle(bytes([kind]), meta, frame[9 + meta_length:])

    def _oversized(self, length: int) -> bool:
        """A frame longer than any answer may be (a response over 6 MB): answered as soon as its
        meta has arrived, and its body skipped as it streams in, never held. The runtime goes on,
        as on Lambda, where such a response is the caller's Function.ResponseSizeTooLarge. False
        while the meta is still incomplete (or the connection was closed)."""
        if len(self._buffer) < HEADER.size:
            return False
        _length, kind, meta_length = HEADER.unpack_from(self._buffer)
        if meta_length > MAX_META:
            self._refuse(413, "RequestEntityTooLarge", "frame too large")
            if self.transport is not None:
                self.transport.close()
            self._buffer.clear()
            return False
        if len(self._buffer) < HEADER.size + meta_length:
            return False
        meta = json.loads(bytes(self._buffer[HEADER.size: HEADER.size + meta_length]))
        remaining = 4 + length - len(self._buffer)
        if remaining > 0:
            self._buffer.clear()
            self._discard = remaining
        else:
            del self._buffer[: 4 + length]
        try:
            if kind in (ord("R"), ord("E")):
                self.env.on_oversized_response(meta["id"])
            else:
                self._refuse(413, "RequestEntityTooLarge", "frame too large")
        except RuntimeApiRefusal as refusal:
            self._refuse(refusal.status, refusal.error_type, refusal.message)
        return True

    def _handle(self, kind: bytes, meta: dict, body: bytes) -> None:
        try:
            if kind == b"N":
                nxt = self.env.next_or_waiter()
                if isinstance(nxt, asyncio.Future):  # no task: the hand-over's callback writes the event
                    self._waiter = nxt
                    nxt.add_done_callback(self._deliver_next)
                else:
                    self._deliver(nxt)
            elif kind == b"R":
                if len(body) > MAX_RESPONSE_BYTES:
                    self.env.on_oversized_response(meta["id"])
                else:
                    self.env.on_response(meta["id"], body, meta.get("content_type", "application/json"))
            elif kind == b"E":
                self.env.on_error(meta["id"], body)
            elif kind == b"I":
                self.env.on_init_error(body, meta.get("error_type"))
            else:
                self._refuse(400, "UnknownFrame", f"unknown frame kind {kind!r}")
        except RuntimeApiRefusal as refusal:
            self._refuse(refusal.status, refusal.error_type, refusal.message)

    def _deliver_next(self, waiter: "asyncio.Future[Invocation]") -> None:
        self._waiter = None
        if not waiter.cancelled():
            self._deliver(waiter.result())

    def _deliver(self, invocation: Invocation) -> None:
        meta = {name.lower(): value for name, value in invocation.next_headers().items()}
        if self.transport is not None:
            self.transport.write(encode(b"V", meta, invocation.payload))

    def _refuse(self, status: int, error_type: str, message: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode(b"X", {"status": status, "errorType": error_type, "errorMessage": message}))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None:  # an invocation must not be handed to a runtime that is gone
            self._waiter.cancel()


#: Open connections one environment's Runtime API listener serves: a runtime needs one; a function
#: opening thousands would spend the server's file descriptors, which every environment needs.
MAX_CONNECTIONS = 16


def listener_admissions(env: "Environment") -> Admissions:
    """The admissions of one environment's Runtime API listener."""
    return Admissions(f"a Runtime API connection of environment {env.env_id[:8]} "
                      f"({env.config.name}:{env.config.version})", MAX_CONNECTIONS)


class ProtocolSniffer(Gate):
    """Picks HTTP or frames from a connection's first bytes, then hands everything to that protocol.

    Also the listener's gate (`lambdalet/gates.py`): beyond MAX_CONNECTIONS, and on a guarded
    listener for a connection that no process of the environment made, it closes the connection
    unanswered."""

    def __init__(self, env: "Environment", http: Callable[[], asyncio.Protocol], guarded: bool = False,
                 admissions: Admissions | None = None) -> None:
        super().__init__(admissions or Admissions("a Runtime API connection", MAX_CONNECTIONS))
        self._env = env
        self._http = http
        self._guarded = guarded
        self._transport: asyncio.BaseTransport | None = None
        self._head = b""
        self._tap: trailers.TrailerTap | None = None  # HTTP only: streamed responses' trailers

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        if self._full():
            self._refuse(transport, f"it has {MAX_CONNECTIONS} open already")
        elif self._guarded and not self._made_by_environment(transport):
            self._refuse(transport, "no process of the environment made it")
        else:
            self._admit()

    def _made_by_environment(self, transport: asyncio.BaseTransport) -> bool:
        listener, peer = transport.get_extra_info("sockname"), transport.get_extra_info("peername")
        return bool(listener and peer and self._env.made_connection(listener, peer))

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._inner is None:
            self._head += data
            if len(self._head) < len(MAGIC) and MAGIC.startswith(self._head):
                return  # not enough to tell yet
            frames = self._head.startswith(MAGIC)
            self._inner = FrameProtocol(self._env) if frames else self._http()
            if not frames:
                self._tap = trailers.register(self._inner)
            self._inner.connection_made(self._transport)  # type: ignore[arg-type]
            data, self._head = (self._head[len(MAGIC):] if frames else self._head), b""
            if not data:
                return
        if self._tap is not None:
            self._tap.feed(data)
        self._inner.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._tap is not None:
            trailers.forget(self._inner)  # type: ignore[arg-type]
        super().connection_lost(exc)
