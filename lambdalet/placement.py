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
runs them from memory, and so are function URLs' requests (api/url_requests.py) and streamed
invokes, whose answers are relayed as they come (`relay`); mappings and schedules run where they
are claimed. A forwarded request carries its client's address
(SOURCE_IP), which the home believes only signed with the nodes' key (`client_ip`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from typing import Callable, Iterable, Iterator

import aiohttp
from aiohttp import web

from lambdalet import node_auth
from lambdalet.errors import ServiceException
from lambdalet.nodes import NodeRegistry

log = logging.getLogger(__name__)

FORWARDED_BY = "X-Lambdalet-Forwarded-By"
SPILL = "X-Lambdalet-Spill"
SOURCE_IP = "X-Lambdalet-Source-Ip"
#: What `forward` adds to a request (lower case): not the client's, so not in a URL's event.
FORWARDING_HEADERS = frozenset({FORWARDED_BY.lower(), SOURCE_IP.lower(), node_auth.HEADER.lower()})
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


#: A node that never got the request: the next one is tried.
_NOT_TAKEN = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


def _end_to_end(answer: aiohttp.ClientResponse) -> list[tuple[str, str]]:
    """The answer's headers to pass on: pairs, since Set-Cookie may repeat."""
    return [(name, value) for name, value in answer.headers.items() if name.lower() not in HOP_BY_HOP]


@contextlib.contextmanager
def _lost_answers(url: str) -> Iterator[None]:
    """A node that took a forwarded invoke and did not answer: Lambda's 500 (SDKs retry it)."""
    try:
        yield
    except asyncio.TimeoutError:
        raise ServiceException("The node running the invocation did not answer in time.") from None
    except aiohttp.ClientError as exc:
        log.warning("node at %s went away during a forwarded invoke: %s", url, exc)
        raise ServiceException("The node running the invocation went away before it answered.") from None


def client_ip(request: web.Request, key: bytes) -> str | None:
    """The address of the client a request came from: for one another node forwarded, the one that
    node vouches for (SOURCE_IP, signed with the nodes' key: node_auth.py); else the connection's."""
    claimed = request.headers.get(SOURCE_IP)
    if claimed is not None and key and node_auth.verify(key, request.headers.get(node_auth.HEADER, ""),
                                                        f"{request.raw_path}\n{claimed}", b""):
        return claimed
    return request.remote


class Placement:
    def __init__(self, nodes: NodeRegistry, key: bytes = b"") -> None:
        """`key`: the nodes' shared key, which vouches for a forwarded request's client address."""
        self._nodes = nodes
        self._key = key
        self.node = nodes.name
        self._peers: tuple[tuple[str, str], ...] = ()
        self._rankings: dict[str, tuple[tuple[str, str], ...]] = {}
        self._turns: dict[str, int] = {}  # per function: how many invokes `spread` has placed
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

    def pinned(self, function: str, node: str) -> tuple[tuple[str, str], ...]:
        """The ranking with live node `node` first: the one whose host has a hot-reload function's
        directory (the others are tried after it only when it does not answer)."""
        ranked = self.ranking(function)
        return (*(peer for peer in ranked if peer[0] == node), *(peer for peer in ranked if peer[0] != node))

    def spread(self, function: str, width: int) -> tuple[tuple[str, str], ...]:
        """The ranking with its first `width` nodes taken in turn, one more each call: the nodes
        that keep a version's provisioned environments (provisioned_homes.py), which share its
        invokes. Width 0 or 1: the ranking as it is (its home first)."""
        ranked = self.ranking(function)
        width = min(width, len(ranked))
        if width <= 1:
            return ranked
        if len(self._turns) >= MAX_RANKINGS:
            self._turns.clear()
        turn = self._turns[function] = self._turns.get(function, -1) + 1
        start = turn % width
        return ranked[start:width] + ranked[:start] + ranked[width:]

    async def ahead_of_here(self, request: web.Request, ranked: tuple[tuple[str, str], ...], timeout_s: float, *,
                            streamed: bool = False, address: Callable[[str], str] = lambda url: url
                            ) -> web.StreamResponse | None:
        """The answer of the first node ranked ahead of this one that takes the request (`forward`,
        or `relay` for a streamed answer; `address` maps a node's URL to where the request goes
        there). None: no node ahead took it, so it runs here."""
        send = self.relay if streamed else self.forward
        for node, url in ranked:
            if node == self.node:
                return None
            answer = await send(request, address(url), timeout_s)
            if answer is not None:
                return answer
        return None

    async def forward(self, request: web.Request, url: str, timeout_s: float) -> web.Response | None:
        """The answer of the node at `url` to this request; None when it spilled or refused the connection."""
        with _lost_answers(url):
            answer = await self._send(request, url, timeout_s)
            if answer is None:
                return None
            async with answer:
                if SPILL in answer.headers:
                    return None
                body = await answer.read()
                return web.Response(status=answer.status, body=body, headers=_end_to_end(answer))

    async def relay(self, request: web.Request, url: str, timeout_s: float) -> web.StreamResponse | None:
        """`forward` for a streamed answer (InvokeWithResponseStream, RESPONSE_STREAM URLs): relayed
        to the client as the node writes it, a chunk at a time (each write waits for the client, and
        the client session reads no further ahead than its buffer, so a slow client slows the node
        rather than filling memory here). A node that goes away mid-stream cuts the client's."""
        with _lost_answers(url):
            answer = await self._send(request, url, timeout_s)
        if answer is None:
            return None
        try:
            if SPILL in answer.headers:
                return None
            response = web.StreamResponse(status=answer.status, headers=_end_to_end(answer))
            await response.prepare(request)
            try:
                async for chunk in answer.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                log.warning("node at %s went away during a streamed invoke: %s", url, exc)
                if request.transport is not None:
                    request.transport.close()
            return response
        finally:
            answer.close()  # the client gone: so is the node's stream (it stops writing)

    async def _send(self, request: web.Request, url: str, timeout_s: float) -> aiohttp.ClientResponse | None:
        """The request, as it came, sent on to the node at `url`, marked as forwarded and vouched
        for; None when that node never got it (refused or unreachable: the next one is tried)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False, connector=aiohttp.TCPConnector(limit=0))
        headers = {name: value for name, value in request.headers.items() if name.lower() not in HOP_BY_HOP}
        headers[FORWARDED_BY] = self.node
        source = client_ip(request, self._key) or ""
        headers[SOURCE_IP] = source  # for the home's aws:SourceIp and a URL event's sourceIp
        headers[node_auth.HEADER] = node_auth.sign(self._key, f"{request.raw_path}\n{source}", b"")
        timeout = aiohttp.ClientTimeout(total=timeout_s + FORWARD_MARGIN_S, sock_connect=CONNECT_TIMEOUT_S)
        try:
            return await self._session.request(request.method, url.rstrip("/") + request.raw_path,
                                               data=await request.read(), headers=headers, timeout=timeout)
        except _NOT_TAKEN as exc:  # it never got the request
            log.info("node at %s did not take a forwarded invoke (%s): the next node is tried", url, exc)
            return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

