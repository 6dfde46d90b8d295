"""Where a Telemetry API or Logs API subscription's batches go, and how: an HTTP POST (or PUT) of
the JSON array, or newline-delimited JSON (one event a line) written on a TCP connection, as AWS
documents the two destinations.

Each subscription sends its batches one at a time, in order, from a task of its own, so the
invoke path only ever appends to a queue. The queue is bounded: a batch that finds
`MAX_QUEUED` batches still waiting is dropped (and logged), as is a batch the extension does not
take (nobody listening, a non-2xx answer, a connection that does not drain within
`SEND_TIMEOUT_S`), as Lambda drops what a slow or absent consumer cannot take. A TCP connection is
opened at the first batch and again at the next one after the extension closed it. What was
dropped is told to a subscriber of platform events in a `platform.logsDropped` event at the head
of the next batch that goes out, as Lambda tells it (records and bytes dropped since the last one).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from typing import Any, Protocol

import aiohttp

from lambdalet.logs import json_time

log = logging.getLogger(__name__)

MAX_QUEUED = 4  # batches waiting behind the one being sent
SEND_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 2.0
#: platform.logsDropped's reason, in the words of AWS's documented example.
DROPPED_REASON = "Consumer seems to have fallen behind as it has not acknowledged receipt of logs."

Batch = list[dict[str, Any]]


class Destination(Protocol):
    async def send(self, batch: Batch) -> None:
        """Deliver one batch, or raise why it could not be."""

    def close(self) -> None:
        """Let go of what it holds (a connection)."""


class HttpDestination:
    """A listener in the environment that takes each batch as one request with a JSON array."""

    def __init__(self, session: Any, url: str, method: str = "POST") -> None:
        self.session, self.url, self.method = session, url, method  # session: aiohttp.ClientSession

    async def send(self, batch: Batch) -> None:
        async with self.session.request(self.method, self.url, json=batch) as answer:
            if answer.status >= 300:
                raise ConnectionError(f"HTTP {answer.status}")

    def close(self) -> None:
        """The session is the environment's, closed with it."""


class _LineStream(asyncio.Protocol):
    """The platform's end of a TCP destination: it only writes, so whatever the extension sends
    is discarded (never buffered), and it knows when the extension closed the connection."""

    def __init__(self) -> None:
        self.transport: Any = None  # asyncio's or uvloop's TCP transport
        self.lost = False
        self._drained: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        return False  # the extension is done: the transport closes, and the next batch reconnects

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._wake()

    def pause_writing(self) -> None:
        if self._drained is None or self._drained.done():
            self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake()

    def _wake(self) -> None:
        waiter, self._drained = self._drained, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def drained(self) -> None:
        if self._drained is not None:
            await asyncio.shield(self._drained)


class TcpDestination:
    """A port in the environment that takes the events as NDJSON over one kept connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._stream: _LineStream | None = None

    async def send(self, batch: Batch) -> None:
        stream = self._stream
        if stream is None or stream.lost:
            _transport, stream = await asyncio.wait_for(
                asyncio.get_running_loop().create_connection(_LineStream, self.host, self.port), CONNECT_TIMEOUT_S)
            self._stream = stream
        assert stream.transport is not None
        stream.transport.write(b"".join(json.dumps(event, separators=(",", ":")).encode() + b"\n" for event in batch))
        try:
            await asyncio.wait_for(stream.drained(), SEND_TIMEOUT_S)
        except asyncio.TimeoutError:
            stream.transport.abort()  # the extension stopped reading: what is unwritten goes
            raise ConnectionError(f"not read within {SEND_TIMEOUT_S:g} s") from None
        if stream.lost:  # closed while the batch waited to be written
            raise ConnectionResetError("the extension closed the connection")

    def close(self) -> None:
        if self._stream is not None and self._stream.transport is not None:
            self._stream.transport.close()


class Delivery:
    """One subscription's batches on their way to its destination, one at a time. `report_drops`:
    the subscriber takes platform events, so it is told what was dropped (platform.logsDropped)."""

    def __init__(self, extension: str, destination: Destination, report_drops: bool = False) -> None:
        self.extension, self.destination = extension, destination
        self._queue: deque[Batch] = deque()
        self.task: asyncio.Task[None] | None = None
        self._report_drops = report_drops
        self._dropped_records = self._dropped_bytes = 0

    def _dropped(self, batch: Batch) -> None:
        self._dropped_records += len(batch)
        self._dropped_bytes += sum(len(json.dumps(event, separators=(",", ":"))) for event in batch)

    def put(self, batch: Batch) -> None:
        if len(self._queue) >= MAX_QUEUED:
            log.info("telemetry for %s dropped a batch of %d events: %d batches wait for a slow destination",
                     self.extension, len(batch), len(self._queue))
            self._dropped(batch)
            return
        if self._dropped_records and self._report_drops:
            batch = [{"time": json_time(), "type": "platform.logsDropped",
                      "record": {"reason": DROPPED_REASON, "droppedRecords": self._dropped_records,
                                 "droppedBytes": self._dropped_bytes}}, *batch]
            self._dropped_records = self._dropped_bytes = 0
        self._queue.append(batch)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._queue:
            batch = self._queue.popleft()
            try:
                await self.destination.send(batch)
            except (OSError, asyncio.TimeoutError, aiohttp.ClientError) as exc:  # gone or broken: dropped
                log.info("telemetry for %s could not be delivered (%d events): %s", self.extension, len(batch),
                         exc or type(exc).__name__)
                self._dropped([event for event in batch if event["type"] != "platform.logsDropped"])

    def close(self) -> None:
        self._queue.clear()
        if self.task is not None:
            self.task.cancel()
        self.destination.close()
