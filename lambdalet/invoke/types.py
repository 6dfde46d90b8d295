"""What flows through the invoke path: an invocation going in, its result coming out."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Iterator

from lambdalet.logs import TAIL_BYTES  # X-Amz-Log-Result: the last 4 KB of an invocation's log

if TYPE_CHECKING:
    from lambdalet.invoke.streaming import ResponseStream

class LogTail:
    """The last lines of an invocation's log: just enough for its last 4 KB, whatever it printed.

    Lines are kept from the end while they add up to fewer than TAIL_BYTES characters (a
    character is at least one byte), each cut to its last TAIL_BYTES characters: an invocation
    printing megabytes keeps a few kilobytes here."""

    __slots__ = ("_lines", "_size")

    def __init__(self) -> None:
        self._lines: deque[str] = deque()
        self._size = 0  # characters kept, with a newline per line

    def append(self, line: str) -> None:
        if len(line) > TAIL_BYTES:
            line = line[-TAIL_BYTES:]
        self._lines.append(line)
        self._size += len(line) + 1
        while self._size - len(self._lines[0]) - 1 >= TAIL_BYTES:
            self._size -= len(self._lines.popleft()) + 1

    def extend(self, lines: "Iterable[str]") -> None:
        for line in lines:
            self.append(line)

    def __iter__(self) -> "Iterator[str]":
        return iter(self._lines)

    def __len__(self) -> int:
        return len(self._lines)


#: Ids need to be unique, not secret: a generator seeded once from the OS, because each
#: os.urandom is a getrandom system call, several microseconds on a VM, three per invoke.
_ids = random.Random(os.urandom(32))


def new_request_id() -> str:
    """A random (version 4) UUID, as Lambda's request ids are."""
    h = f"{_ids.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


def new_trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{_ids.getrandbits(96):024x};Parent={_ids.getrandbits(64):016x};Sampled=0"


@dataclass
class Invocation:
    request_id: str
    payload: bytes
    invoked_arn: str
    trace_id: str = field(default_factory=new_trace_id)
    client_context: str | None = None  # decoded JSON text, synchronous invokes only
    content_type: str = "application/json"
    deadline_ms: int = 0
    log_lines: LogTail = field(default_factory=LogTail)
    result: "asyncio.Future[InvocationResult] | None" = None
    delivered: bool = False
    #: The alias the caller invoked through ("" for none): a label of the invocation's metrics.
    alias: str = ""
    #: X-Amz-Tenant-Id of a PER_TENANT function's invocation ("" for none): its pool, and /next's header.
    tenant_id: str = ""
    #: REPORT's Duration, set when the invocation ends.
    duration_ms: float = 0.0
    #: Where a streamed response goes as the runtime writes it: set by a streaming caller
    #: (InvokeWithResponseStream, a RESPONSE_STREAM URL), else by the environment, which buffers it.
    stream: "ResponseStream | None" = None

    def next_headers(self) -> dict[str, str]:
        """What the Runtime API's /next tells the runtime about this invocation (as HTTP headers)."""
        headers = {
            "Lambda-Runtime-Aws-Request-Id": self.request_id,
            "Lambda-Runtime-Deadline-Ms": str(self.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": self.invoked_arn,
            "Lambda-Runtime-Trace-Id": self.trace_id,
            "Content-Type": self.content_type,
        }
        if self.client_context:
            headers["Lambda-Runtime-Client-Context"] = self.client_context
        if self.tenant_id:
            headers["Lambda-Runtime-Aws-Tenant-Id"] = self.tenant_id
        return headers


@dataclass(frozen=True)
class InvocationResult:
    payload: bytes
    content_type: str = "application/json"
    #: True when the caller must see X-Amz-Function-Error: Unhandled.
    function_error: bool = False
    #: REPORT's Status (timeout, error) and Error Type for platform-detected failures.
    status: str | None = None
    error_type: str | None = None
    executed_version: str = "$LATEST"


def platform_error(request_id: str, error_type: str, message: str) -> bytes:
    """An error Lambda itself reports for an invocation (timeout, crash, bad entrypoint)."""
    return json.dumps({"errorMessage": f"RequestId: {request_id} Error: {message}", "errorType": error_type}).encode()
