"""Lambda's Telemetry API (2022-07-01) for one execution environment: extensions subscribe, and
the environment's platform events and log lines are delivered to them in batches over HTTP.

A subscription (`PUT /2022-07-01/telemetry`) names the event types it wants (`platform`,
`function`, `extension`), an HTTP destination inside the environment (`http://sandbox.localdomain:PORT`,
as AWS documents it) and how to buffer (maxItems, maxBytes, timeoutMs, within AWS's bounds). Each
event is `{"time", "type", "record"}` as AWS sends it. A batch goes out when it reaches maxItems or
maxBytes, or timeoutMs after its first event; delivery is a POST of the JSON array, and a batch
the extension does not take (connection refused, a non-2xx answer) is dropped and logged, as on
Lambda. Events from the environment's init are kept until its init ends, so an extension that
subscribes during init still gets them.

`sandbox.localdomain` is this environment's loopback: on the host network, the host's own.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from lambdalet.invoke.extensions import ExtensionRefusal
from lambdalet.logs import json_time

log = logging.getLogger(__name__)

SCHEMA_VERSIONS = ("2022-07-01", "2022-12-13", "2025-01-29")
TYPES = ("platform", "function", "extension")
MAX_ITEMS = (1000, 10000)  # bounds, and the first is the default
MAX_BYTES = (262144, 1048576)
TIMEOUT_MS = (25, 30000)
DEFAULT_TIMEOUT_MS = 1000
SANDBOX_HOST = "sandbox.localdomain"
#: Init's events kept for subscriptions made before init ends (an extension subscribes during init).
INIT_BACKLOG = 1000


def _invalid(message: str) -> ExtensionRefusal:
    return ExtensionRefusal(400, "ValidationError", message)


def _bounded(buffering: dict[str, Any], member: str, bounds: tuple[int, int], default: int) -> int:
    value = buffering.get(member, default)
    if isinstance(value, bool) or not isinstance(value, int) or not bounds[0] <= value <= bounds[1]:
        raise _invalid(f"buffering.{member} must be an integer between {bounds[0]} and {bounds[1]}")
    return value


@dataclass
class Subscription:
    extension: str
    url: str  # where batches are POSTed, sandbox.localdomain resolved
    types: frozenset[str]
    max_items: int
    max_bytes: int
    timeout_s: float
    batch: list[dict[str, Any]] = field(default_factory=list)
    batch_bytes: int = 0
    timer: asyncio.TimerHandle | None = None


def parse_subscription(extension: str, body: Any, loopback: str) -> Subscription:
    """A PUT /telemetry body, checked as Lambda checks it (400 ValidationError)."""
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object")
    if body.get("schemaVersion") not in SCHEMA_VERSIONS:
        raise _invalid(f"schemaVersion must be one of {', '.join(SCHEMA_VERSIONS)}")
    types = body.get("types")
    if not isinstance(types, list) or not types or any(kind not in TYPES for kind in types):
        raise _invalid(f"types must be a non-empty list of {', '.join(TYPES)}")
    destination = body.get("destination")
    if not isinstance(destination, dict) or destination.get("protocol") not in ("HTTP", "TCP"):
        raise _invalid("destination.protocol must be HTTP or TCP")
    if destination["protocol"] == "TCP":
        raise _invalid("TCP destinations are not supported by this Lambdalet server: use an HTTP destination")
    uri = destination.get("URI")
    parts = urlsplit(uri) if isinstance(uri, str) else None
    if parts is None or parts.scheme != "http" or not parts.hostname or not parts.port:
        raise _invalid("destination.URI must be an http:// URI with a host and a port")
    if parts.hostname not in (SANDBOX_HOST, "localhost", "127.0.0.1", "0.0.0.0"):
        raise _invalid(f"destination.URI must be in the execution environment ({SANDBOX_HOST})")
    url = urlunsplit(("http", f"{loopback}:{parts.port}", parts.path or "/", parts.query, ""))
    buffering = body.get("buffering") or {}
    if not isinstance(buffering, dict):
        raise _invalid("buffering must be an object")
    return Subscription(extension, url, frozenset(types), _bounded(buffering, "maxItems", MAX_ITEMS, MAX_ITEMS[0]),
                        _bounded(buffering, "maxBytes", MAX_BYTES, MAX_BYTES[0]),
                        _bounded(buffering, "timeoutMs", TIMEOUT_MS, DEFAULT_TIMEOUT_MS) / 1000)


def _kind(event_type: str) -> str:
    return "platform" if event_type.startswith("platform.") else event_type


class Telemetry:
    """The subscriptions of one environment and the events on their way to them."""

    def __init__(self, loopback: str = "127.0.0.1") -> None:
        self.loopback = loopback
        self.subscriptions: dict[str, Subscription] = {}  # by extension name
        self._backlog: list[dict[str, Any]] | None = []  # init's events, until init ends
        self._session: Any = None  # aiohttp.ClientSession, made at the first subscription
        self._sending: set[asyncio.Task[None]] = set()

    def subscribe(self, extension: str, body: Any) -> Subscription:
        subscription = parse_subscription(extension, body, self.loopback)
        old = self.subscriptions.pop(extension, None)
        if old is not None and old.timer is not None:
            old.timer.cancel()
        self.subscriptions[extension] = subscription
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self.emit("platform.telemetrySubscription",
                  {"name": extension, "state": "Subscribed", "types": sorted(subscription.types)})
        for event in self._backlog or ():
            self._add(subscription, event)
        return subscription

    def init_done(self) -> None:
        self._backlog = None

    def emit(self, event_type: str, record: Any) -> None:
        """One event, to every subscription that wants its kind (and to init's backlog)."""
        event = {"time": json_time(), "type": event_type, "record": record}
        if self._backlog is not None and len(self._backlog) < INIT_BACKLOG:
            self._backlog.append(event)
        kind = _kind(event_type)
        for subscription in self.subscriptions.values():
            if kind in subscription.types:
                self._add(subscription, event)

    def _add(self, subscription: Subscription, event: dict[str, Any]) -> None:
        size = len(json.dumps(event, separators=(",", ":")))
        if subscription.batch and subscription.batch_bytes + size > subscription.max_bytes:
            self._send(subscription)
        subscription.batch.append(event)
        subscription.batch_bytes += size
        if len(subscription.batch) >= subscription.max_items:
            self._send(subscription)
        elif subscription.timer is None:
            subscription.timer = asyncio.get_running_loop().call_later(subscription.timeout_s, self._send,
                                                                       subscription)

    def flush(self) -> None:
        """Send what is buffered now (the environment is shutting down)."""
        for subscription in self.subscriptions.values():
            if subscription.batch:
                self._send(subscription)

    def _send(self, subscription: Subscription) -> None:
        if subscription.timer is not None:
            subscription.timer.cancel()
            subscription.timer = None
        batch, subscription.batch, subscription.batch_bytes = subscription.batch, [], 0
        if not batch or self._session is None:
            return
        task = asyncio.get_running_loop().create_task(self._post(subscription, batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _post(self, subscription: Subscription, batch: list[dict[str, Any]]) -> None:
        try:
            async with self._session.post(subscription.url, json=batch) as answer:
                if answer.status >= 300:
                    log.info("telemetry for %s refused a batch of %d events: HTTP %d", subscription.extension,
                             len(batch), answer.status)
        except Exception as exc:  # the extension's listener is gone or broken: the batch is dropped
            log.info("telemetry for %s could not be delivered (%d events): %s", subscription.extension, len(batch), exc)

    async def close(self) -> None:
        """The environment is gone: what is on its way is given a moment, then the session closes."""
        for subscription in self.subscriptions.values():
            if subscription.timer is not None:
                subscription.timer.cancel()
        if self._sending:
            await asyncio.wait(self._sending, timeout=1)
        if self._session is not None:
            await self._session.close()
