"""A listener of its own for each function URL, so that `FunctionUrl` is an address every HTTP
client reaches: `http://127.0.0.1:<port>/`.

AWS gives each URL a host name (`<url-id>.lambda-url.<region>.on.aws`) resolved by public DNS. A
server on a laptop has no such DNS: browsers resolve `*.localhost` themselves, but Python's
`requests`, Node's `fetch` and most other clients ask the system resolver, which does not. A port
per URL needs no resolver, and keeps the URL's whole path space the app's own (a path prefix would
break an app's absolute links and redirects).

A URL's port is drawn once, at creation, from `--function-url-ports`, and stored with it: one port a
URL across every node sharing the database (the `function_url_ports` table), so the URL does not
change across restarts. Its listener serves the same aiohttp server as the API port, and
`url_requests.route_by_host` sends everything that arrives on it to the URL. The host-name and
path forms (`url_requests.py`) keep working on the API port.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Awaitable, Callable

from lambdalet.errors import InvalidParameterValueException

log = logging.getLogger("lambdalet.urls")

ProtocolFactory = Callable[[], asyncio.Protocol]


class UrlListeners:
    """The function URLs' own listening sockets: which URL each port serves, and their sockets."""

    def __init__(self, host: str, ports: tuple[int, int] | None, advertised_host: str, api_port: int) -> None:
        self._host = host
        self._range = ports
        self.advertised_host = advertised_host
        self._api_port = api_port
        self._factory: ProtocolFactory | None = None
        self.by_port: dict[int, str] = {}  # a listener's port → the URL id it serves
        self._servers: dict[int, asyncio.AbstractServer] = {}

    @property
    def enabled(self) -> bool:
        return self._range is not None

    def url(self, port: int) -> str:
        return f"http://{self.advertised_host}:{port}/"

    async def start(self, factory: ProtocolFactory, configs: list[dict]) -> None:
        """Serve every stored URL's port with `factory` (the API's protocol), before the API port opens."""
        self._factory = factory
        for config in configs:
            await self.serve(config)

    async def serve(self, config: dict) -> None:
        """Listen on a stored URL's port unless this node already does (a URL another node created
        is served on every node, so a load balancer may send its port to any)."""
        port = config.get("Port")
        if port is None or self._factory is None or self.by_port.get(port) == config["UrlId"]:
            return
        if port in self.by_port:  # a URL deleted on another node left it (one URL a port, cluster-wide)
            self.close({"Port": port, "UrlId": self.by_port[port]})
        try:
            await self._serve(self._bind(port), port, config["UrlId"])
        except OSError as exc:
            log.warning("function URL %s: cannot listen on port %s (%s); it is reachable on the API "
                        "port by its host name or path only", config["UrlId"], port, exc.strerror or exc)

    async def open(self, url_id: str, store: Callable[[int], Awaitable[None]], taken: type[Exception]
                   ) -> int | None:
        """Draw a port for a new URL: the first of the range this host can bind that no other URL has;
        `store(port)` persists the URL with it (raising `taken` when another node was first). None
        when listeners are off."""
        if self._range is None:
            return None
        low, high = self._range
        for port in range(low, high + 1):
            if port in self.by_port or port == self._api_port:
                continue
            try:
                sock = self._bind(port)
            except OSError:  # someone else's on this host
                continue
            try:
                await store(port)
            except taken:
                sock.close()
                continue
            except BaseException:
                sock.close()
                raise
            await self._serve(sock, port, url_id)
            return port
        # A limit of this server's (AWS has none): the client can act on it, so it is a 400.
        raise InvalidParameterValueException(f"Every port of --function-url-ports ({low}-{high}) is taken: delete a function URL "
                            "or widen the range.")

    def close(self, config: dict) -> None:
        """Stop serving a URL that is gone."""
        port = config.get("Port")
        if port is not None and self.by_port.get(port) == config["UrlId"]:
            del self.by_port[port]
            server = self._servers.pop(port, None)
            if server is not None:
                server.close()

    def shutdown(self) -> None:
        for server in self._servers.values():
            server.close()
        self._servers.clear()
        self.by_port.clear()

    def _bind(self, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        return sock

    async def _serve(self, sock: socket.socket, port: int, url_id: str) -> None:
        assert self._factory is not None, "start() runs before the API serves, so before any URL is created"
        self.by_port[port] = url_id
        self._servers[port] = await asyncio.get_running_loop().create_server(self._factory, sock=sock)
