"""Gates: protocols in front of others that admit or refuse each connection before it is served.

The server holds a file descriptor for every connection it accepts, and function code can open
many (1,024 processes of 1,024 descriptors each). A gate counts the connections it admitted
against a limit and closes any other at once, unanswered; refusals are logged at the 1st, 10th,
100th, ... so that a flood of them does not flood the server's log either. Once a connection is
admitted, everything goes to the inner protocol. Two gates exist: one per environment's Runtime
API listener (`invoke/frames.ProtocolSniffer`) and one for the Lambda API's connections from
function code (`api/callers.ConnectionGate`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class Admissions:
    """What one gate has open and has refused; `what` names a connection in the log."""

    what: str
    limit: int
    open: int = 0
    refused: int = 0


class Gate(asyncio.Protocol):
    """Delegates to `_inner` what arrives on a connection that `connection_made` (a subclass's)
    admitted with `_admit`, or refused with `_refuse`."""

    def __init__(self, admissions: Admissions) -> None:
        self._admissions = admissions
        self._inner: asyncio.Protocol | None = None
        self._admitted = False
        self._refused = False

    def _full(self) -> bool:
        return self._admissions.open >= self._admissions.limit

    def _admit(self) -> None:
        self._admissions.open += 1
        self._admitted = True

    def _refuse(self, transport: asyncio.BaseTransport, why: str) -> None:
        self._refused = True
        transport.abort()  # type: ignore[attr-defined]
        self._admissions.refused += 1
        if math.log10(self._admissions.refused).is_integer():
            log.warning("refused %s (%d so far): %s", self._admissions.what, self._admissions.refused, why)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._admitted:
            self._admissions.open -= 1
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()
