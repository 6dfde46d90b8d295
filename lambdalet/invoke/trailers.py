"""The trailers of a runtime's streamed `/response`, which aiohttp's parser reads and drops.

A runtime that fails mid-stream says so in chunked-encoding trailers
(`Lambda-Runtime-Function-Error-Type`, `Lambda-Runtime-Function-Error-Body`, base64). aiohttp
hands the handler the body but not the trailers, so each HTTP connection of the Runtime API is
also fed, byte for byte and before aiohttp sees it, to a `TrailerTap`: it follows the requests'
framing (head, Content-Length or chunked body) and keeps the trailers of the last streamed one.
It copies nothing but heads and trailers, so it costs little beside aiohttp's own parse.
"""

from __future__ import annotations

import asyncio

MAX_HEAD = 64 * 1024  # past this the tap gives up on the connection (aiohttp refuses such heads too)
STREAMING_HEADER = b"lambda-runtime-function-response-mode"

_HEAD, _LENGTH, _SIZE, _DATA, _TRAILERS, _LOST = range(6)


class TrailerTap:
    """Follows one connection's HTTP/1.1 requests; `trailers` is what the last streamed one ended with."""

    def __init__(self) -> None:
        self.trailers: dict[str, str] = {}
        self._state = _HEAD
        self._buf = b""
        self._left = 0
        self._streaming = False

    def feed(self, data: bytes) -> None:
        while data and self._state != _LOST:
            if self._state == _LENGTH or self._state == _DATA:
                taken = min(self._left, len(data))
                self._left -= taken
                data = data[taken:]
                if not self._left:
                    self._state = _SIZE if self._state == _DATA else _HEAD
                continue
            self._buf += data
            data = b""
            end_marker = b"\r\n" if self._state == _SIZE else b"\r\n\r\n"
            if self._state == _TRAILERS and self._buf.startswith(b"\r\n"):
                end, end_marker = 0, b"\r\n"
            else:
                end = self._buf.find(end_marker)
            if end < 0:
                if len(self._buf) > MAX_HEAD:
                    self._state = _LOST
                continue
            block, data, self._buf = self._buf[:end], self._buf[end + len(end_marker):], b""
            if self._state == _HEAD:
                self._head(block)
            elif self._state == _SIZE:
                try:
                    size = int(block.split(b";", 1)[0].strip() or b"0", 16)
                except ValueError:
                    self._state = _LOST
                    continue
                self._state, self._left = (_DATA, size + 2) if size else (_TRAILERS, 0)
            else:
                if self._streaming:
                    self.trailers = _fields(block)
                self._state = _HEAD

    def _head(self, block: bytes) -> None:
        lower = block.lower()
        self._streaming = STREAMING_HEADER in lower
        if self._streaming:
            self.trailers = {}
        fields = _fields(lower)
        if "chunked" in fields.get("transfer-encoding", ""):
            self._state = _SIZE
        elif fields.get("content-length", "0").strip().isdigit() and int(fields.get("content-length", "0")):
            self._state, self._left = _LENGTH, int(fields["content-length"])
        else:
            self._state = _HEAD


def _fields(block: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in block.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if sep:
            out[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
    return out


#: Each HTTP connection's tap, by its aiohttp protocol (what `request.protocol` is).
_taps: dict[asyncio.BaseProtocol, TrailerTap] = {}


def register(protocol: asyncio.BaseProtocol) -> TrailerTap:
    tap = _taps[protocol] = TrailerTap()
    return tap


def forget(protocol: asyncio.BaseProtocol) -> None:
    _taps.pop(protocol, None)


def trailers_of(protocol: asyncio.BaseProtocol) -> dict[str, str]:
    tap = _taps.get(protocol)
    return tap.trailers if tap is not None else {}
