"""A streamed response on its way from a runtime to the caller, with bounded buffering.

The runtime's side (`runtime_api.py`, a chunked `/response` with
`Lambda-Runtime-Function-Response-Mode: streaming`) writes; the caller's side (InvokeWithResponseStream,
a RESPONSE_STREAM function URL) reads. At most `BUFFER_BYTES` wait between them: past that the
writer waits, stops reading the runtime's connection, and the runtime's own write blocks, so a slow
client never makes the server hold more than that. AWS's limits apply as the bytes pass:
`MAX_STREAM_BYTES` in all (20 MB by default, `--stream-response-limit-mb`), and past the first
`BURST_BYTES` (6 MB) at most `BANDWIDTH_BYTES_PER_S` (2 MiB/s, `--stream-bandwidth-mib-per-s`), as
AWS caps a stream's bandwidth after its first 6 MB.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lambdalet.config import Settings

MAX_STREAM_BYTES = 20 * 1024 * 1024
BURST_BYTES = 6 * 1024 * 1024
BANDWIDTH_BYTES_PER_S = 2 * 1024 * 1024
BUFFER_BYTES = 256 * 1024


class ResponseStream:
    """One invocation's streamed bytes. `started` resolves with the content type once the runtime
    begins streaming; `read()` returns chunks, then None at the end."""

    def __init__(self, limit: int = MAX_STREAM_BYTES, buffer_bytes: int = BUFFER_BYTES,
                 bandwidth: float = BANDWIDTH_BYTES_PER_S) -> None:
        loop = asyncio.get_running_loop()
        self.started: asyncio.Future[str] = loop.create_future()
        self.limit = limit
        self.total = 0
        self.closed = False
        self.too_large = False
        self.buffered_caller = False  # the environment made it: the caller gets the bytes whole
        self._buffer_bytes = buffer_bytes
        self._bandwidth = bandwidth  # bytes per second past BURST_BYTES; 0 for no cap
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._burst_ended_at = 0.0  # when the unthrottled first BURST_BYTES had all been written

    def start(self, content_type: str) -> None:
        if not self.started.done():
            self.started.set_result(content_type)

    async def write(self, data: bytes) -> bool:
        """Pass `data` on (waiting while the caller is behind); False once the stream is closed or
        past its limit, when the writer should stop."""
        if self.closed:
            return False
        if self.total + len(data) > self.limit:
            self.too_large = True
            self.close()
            return False
        self.total += len(data)
        if self.total > BURST_BYTES and self._bandwidth:
            await self._throttle()
        while self._buffered >= self._buffer_bytes and not self.closed:
            self._writable.clear()
            await self._writable.wait()
        if self.closed:
            return False
        self._chunks.append(data)
        self._buffered += len(data)
        self._readable.set()
        return True

    async def _throttle(self) -> None:
        """Past the burst, bytes go out no faster than the bandwidth allows."""
        delay = self.throttle_delay(time.monotonic())
        if delay > 0:
            await asyncio.sleep(delay)

    def throttle_delay(self, now: float) -> float:
        """Seconds to wait, at `now`, before the bytes written so far are within the bandwidth
        (counted from when the burst ran out)."""
        if not self._burst_ended_at:
            self._burst_ended_at = now
        return self._burst_ended_at + (self.total - BURST_BYTES) / self._bandwidth - now

    def close(self) -> None:
        """No more bytes (the response ended, failed or timed out); readers see the end."""
        self.closed = True
        self._readable.set()
        self._writable.set()

    async def read(self) -> bytes | None:
        while not self._chunks:
            if self.closed:
                return None
            self._readable.clear()
            await self._readable.wait()
        data = self._chunks.popleft()
        self._buffered -= len(data)
        if self._buffered < self._buffer_bytes:
            self._writable.set()
        return data

    def collected(self) -> bytes:
        """Everything still buffered, at once: the payload of a streamed response that a buffered
        caller (Invoke, a BUFFERED URL) gets whole."""
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return data


def buffering_stream(limit: int) -> ResponseStream:
    """A stream nobody reads while it lasts: it holds up to `limit` bytes, then refuses more."""
    return ResponseStream(limit=limit, buffer_bytes=limit + 1, bandwidth=0)


def caller_stream(settings: "Settings") -> ResponseStream:
    """The stream of a caller that reads as the function writes, under the server's limits."""
    return ResponseStream(limit=settings.stream_response_limit_mb * 1024 * 1024,
                          bandwidth=settings.stream_bandwidth_mib_per_s * 1024 * 1024)
