"""Placement: which node runs a function's synchronous invocations.

Every function has a home: of the live nodes (`NodeRegistry.peers`), the one whose hash of its
name and the function's name is highest (rendezvous hashing). Every node computes the same home
without asking anyone; a node that joins or leaves moves only the functions it wins or held; and
a function's warm environments gather on one node instead of one per node behind a round-robin
balancer. An invoke that reaches another node is forwarded to the home over HTTP as it came, its
headers and signature unchanged (the home authenticates and authorises it again), marked with
FORWARDED_BY so that it is never forwarded twice.

A node that cannot run a forwarded invoke (no room in its host-memory budget for one more
environment, or it does not know the function yet: a change reaches the others within a second)
answers with SPILL, and the next node of the function's ranking is tried, this one included; a
node that refuses the connection is skipped the same way until its heartbeat goes stale. One that
took the request and then went away is a 500 `ServiceException` (the invocation may have run),
which SDKs retry. Asynchronous events are accepted by the home the same way (api/invoke.py), which
runs them from memory; mappings and schedules run where they are claimed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Iterable

import aiohttp
from aiohttp import web

from lambdalet.errors import ServiceException
from lambdalet.nodes import NodeRegistry

log = logging.getLogger(__name__)

FORWARDED_BY = "X-Lambdalet-Forwarded-By"
SPILL = "X-Lambdalet-Spill"
CONNECT_TIMEOUT_S = 2.0
#: Beyond the function's timeout: its init, and the answer's way back.
FORWARD_MARGIN_S = 60.0
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade", "content-length"})
MAX_RANKINGS = 10_000


def _score(node: str, function: str) -> bytes:
    return hashlib.blake2b(f"{node}\0{function}".encode(), digest_size=8).digest()


def rank(peers: Iterable[tuple[str, str]], function: str) -> tuple[tuple[str, str], ...]:
    """The nodes (name, url) in the order they are tried for `function`: its home first."""
    return tuple(sorted(peers, key=lambda peer: _score(peer[0], function), reverse=True))


class Placement:
    def __init__(self, nodes: NodeRegistry) -> None:
        self._nodes = nodes
        self.node = nodes.name
        self._peers: tuple[tuple[str, str], ...] = ()
        self._rankings: dict[str, tuple[tuple[str, str], ...]] = {}
        self._session: aiohttp.ClientSession | None = None

    def ranking(self, function: str) -> tuple[tuple[str, str], ...]:
        """The live nodes (name, url) in the order they are tried for `function`: its home first."""
        peers = self._nodes.peers
        if peers is not self._peers:  # a heartbeat read the live nodes again
            self._peers, self._rankings = peers, {}
        ranked = self._rankings.get(function)
        if ranked is None:
            if len(self._rankings) >= MAX_RANKINGS:
                self._rankings.clear()
            ranked = self._rankings[function] = rank(peers, function)
        return ranked

    async def forward(self, request: web.Request, url: str, timeout_s: float) -> web.Response | None:
        """The answer of the node at `url` to this request; None when it spilled or refused the connection."""
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False, connector=aiohttp.TCPConnector(limit=0))
        headers = {name: value for name, value in request.headers.items() if name.lower() not in HOP_BY_HOP}
        headers[FORWARDED_BY] = self.node
        timeout = aiohttp.ClientTimeout(total=timeout_s + FORWARD_MARGIN_S, sock_connect=CONNECT_TIMEOUT_S)
        try:
            async with self._session.post(url.rstrip("/") + request.path_qs, data=await request.read(),
                                          headers=headers, timeout=timeout) as answer:
                if SPILL in answer.headers:
                    return None
                body = await answer.read()
                return web.Response(status=answer.status, body=body, headers={
                    name: value for name, value in answer.headers.items() if name.lower() not in HOP_BY_HOP})
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:  # it never got the request
            log.info("node at %s did not take a forwarded invoke (%s): the next node is tried", url, exc)
            return None
        except asyncio.TimeoutError:
            raise ServiceException("The node running the invocation did not answer in time.") from None
        except aiohttp.ClientError as exc:
            log.warning("node at %s went away during a forwarded invoke: %s", url, exc)
            raise ServiceException("The node running the invocation went away before it answered.") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

