"""Lambda's Telemetry API (2022-07-01) for one execution environment: extensions subscribe, and
the environment's platform events and log lines are delivered to them in batches.

A subscription (`PUT /2022-07-01/telemetry`) names the event types it wants (`platform`,
`function`, `extension`), a destination inside the environment (HTTP at
`http://sandbox.localdomain:PORT`, or TCP at a port, as AWS documents them) and how to buffer
(maxItems, maxBytes, timeoutMs, within AWS's bounds). Each event is `{"time", "type", "record"}`
as AWS sends it. A batch goes out when it reaches maxItems or maxBytes, or timeoutMs after its
first event; how it travels, and when one is dropped, is `telemetry_delivery.py`. Events from the
environment's init are kept until its init ends, so an extension that subscribes during init
still gets them.

The older Logs API (`logs_api.py`) is the same subscriptions with another schema: the events are
made once, in this API's schema, and an `Api` renders them for each subscription.

`sandbox.localdomain` is this environment's loopback: on the host network, the host's own.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from lambdalet.invoke.extensions import ExtensionRefusal
from lambdalet.invoke.telemetry_delivery import (
    Delivery,
    Destination,
    HttpDestination,
    TcpDestination,
)
from lambdalet.logs import json_time

log = logging.getLogger(__name__)

SCHEMA_VERSIONS = ("2022-07-01", "2022-12-13", "2025-01-29")
TYPES = ("platform", "function", "extension")
MAX_ITEMS = (1000, 10000)  # bounds
MAX_BYTES = (262144, 1048576)
TIMEOUT_MS = (25, 30000)
DEFAULT_TIMEOUT_MS = 1000
SANDBOX_HOST = "sandbox.localdomain"
#: Init's events kept for subscriptions made before init ends (an extension subscribes during init).
INIT_BACKLOG = 1000
#: The events this server makes that the Telemetry API sends (the Logs API has two more).
TELEMETRY_EVENTS = frozenset({
    "platform.initStart", "platform.initRuntimeDone", "platform.initReport", "platform.start",
    "platform.runtimeDone", "platform.report", "platform.extension", "platform.telemetrySubscription",
    "function", "extension"})

Event = dict[str, Any]


@dataclass(frozen=True)
class Api:
    """What a subscription API has of its own: one subscription mechanism, two schemas."""

    name: str  # "Telemetry" or "Logs", in its refusals
    validation_error: str  # the errorType of a body it refuses
    schema_versions: tuple[str, ...]
    default_schema: str | None  # None: schemaVersion is required
    default_max_items: int
    subscription_event: str  # the platform event a subscription makes
    http_methods: tuple[str, ...]  # the first is the default
    #: An event as made here (this API's schema) in a subscription's schema version: none, one or more.
    render: Callable[[Event, str], list[Event]]


def _telemetry_event(event: Event, _schema_version: str) -> list[Event]:
    return [event] if event["type"] in TELEMETRY_EVENTS else []


TELEMETRY = Api("Telemetry", "ValidationError", SCHEMA_VERSIONS, None, MAX_ITEMS[0],
                "platform.telemetrySubscription", ("POST",), _telemetry_event)


def _bounded(api: Api, buffering: dict[str, Any], member: str, bounds: tuple[int, int], default: int) -> int:
    value = buffering.get(member, default)
    if isinstance(value, bool) or not isinstance(value, int) or not bounds[0] <= value <= bounds[1]:
        raise ExtensionRefusal(400, api.validation_error,
                               f"buffering.{member} must be an integer between {bounds[0]} and {bounds[1]}")
    return value


@dataclass
class Subscription:
    extension: str
    api: Api
    schema_version: str
    protocol: str  # HTTP or TCP
    url: str  # HTTP: where batches are sent, sandbox.localdomain resolved
    port: int  # TCP: the port on the environment's loopback
    method: str  # HTTP: POST (or PUT, which the Logs API offers)
    types: frozenset[str]
    max_items: int
    max_bytes: int
    timeout_s: float
    batch: list[Event] = field(default_factory=list)
    batch_bytes: int = 0
    timer: asyncio.TimerHandle | None = None
    delivery: Delivery | None = None


def _destination(api: Api, destination: Any, loopback: str) -> tuple[str, str, int, str]:
    """(protocol, url, port, method) of a subscription's destination, checked."""
    def invalid(message: str) -> ExtensionRefusal:
        return ExtensionRefusal(400, api.validation_error, message)

    if not isinstance(destination, dict) or destination.get("protocol") not in ("HTTP", "TCP"):
        raise invalid("destination.protocol must be HTTP or TCP")
    if destination["protocol"] == "TCP":
        port = destination.get("port")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise invalid("destination.port must be an integer between 1 and 65535 for a TCP destination")
        return "TCP", "", port, ""
    uri = destination.get("URI")
    parts = urlsplit(uri) if isinstance(uri, str) else None
    try:
        port = parts.port if parts is not None else None
    except ValueError:
        port = None
    if parts is None or parts.scheme != "http" or not parts.hostname or not port:
        raise invalid("destination.URI must be an http:// URI with a host and a port")
    if parts.hostname not in (SANDBOX_HOST, "localhost", "127.0.0.1", "0.0.0.0"):
        raise invalid(f"destination.URI must be in the execution environment ({SANDBOX_HOST})")
    method = destination.get("method", api.http_methods[0]) if len(api.http_methods) > 1 else api.http_methods[0]
    if method not in api.http_methods:
        raise invalid(f"destination.method must be one of {', '.join(api.http_methods)}")
    url = urlunsplit(("http", f"{loopback}:{port}", parts.path or "/", parts.query, ""))
    return "HTTP", url, 0, method


def parse_subscription(extension: str, body: Any, loopback: str, api: Api = TELEMETRY) -> Subscription:
    """A subscription's body, checked as Lambda checks it (400 with the API's validation error)."""
    def invalid(message: str) -> ExtensionRefusal:
        return ExtensionRefusal(400, api.validation_error, message)

    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object")
    schema_version = body.get("schemaVersion", api.default_schema)
    if schema_version not in api.schema_versions:
        raise invalid(f"schemaVersion must be one of {', '.join(api.schema_versions)}")
    types = body.get("types")
    if not isinstance(types, list) or not types or any(kind not in TYPES for kind in types):
        raise invalid(f"types must be a non-empty list of {', '.join(TYPES)}")
    protocol, url, port, method = _destination(api, body.get("destination"), loopback)
    buffering = body.get("buffering") or {}
    if not isinstance(buffering, dict):
        raise invalid("buffering must be an object")
    return Subscription(extension, api, schema_version, protocol, url, port, method, frozenset(types),
                        _bounded(api, buffering, "maxItems", MAX_ITEMS, api.default_max_items),
                        _bounded(api, buffering, "maxBytes", MAX_BYTES, MAX_BYTES[0]),
                        _bounded(api, buffering, "timeoutMs", TIMEOUT_MS, DEFAULT_TIMEOUT_MS) / 1000)


def _settings(subscription: Subscription) -> tuple[Any, ...]:
    """What a subscription asked for (not what it holds now)."""
    return (subscription.api, subscription.schema_version, subscription.protocol, subscription.url,
            subscription.port, subscription.method, subscription.types, subscription.max_items,
            subscription.max_bytes, subscription.timeout_s)


def _kind(event_type: str) -> str:
    return "platform" if event_type.startswith("platform.") else event_type


class Telemetry:
    """The subscriptions of one environment and the events on their way to them."""

    def __init__(self, loopback: str = "127.0.0.1") -> None:
        self.loopback = loopback
        self.subscriptions: dict[str, Subscription] = {}  # by extension name
        self._backlog: list[Event] | None = []  # init's events, until init ends
        self._session: Any = None  # aiohttp.ClientSession, made at the first HTTP subscription

    def subscribe(self, extension: str, body: Any, api: Api = TELEMETRY) -> Subscription:
        """A new subscription. Subscribing is idempotent: the same subscription again changes
        nothing; a different one replaces the extension's last (and starts again with init's events)."""
        subscription = parse_subscription(extension, body, self.loopback, api)
        old = self.subscriptions.get(extension)
        if old is not None and old.api is not api:
            raise ExtensionRefusal(400, api.validation_error,
                                   f"Extension {extension} subscribed with the {old.api.name} API already: an "
                                   "extension uses either the Telemetry API or the Logs API")
        if old is not None and _settings(old) == _settings(subscription):
            return old
        if old is not None:
            self._retire(old)
        subscription.delivery = Delivery(extension, self._destination_of(subscription),
                                         report_drops="platform" in subscription.types)
        self.subscriptions[extension] = subscription
        for event in self._backlog or ():
            self._add(subscription, event)
        self.emit(api.subscription_event, {"name": extension, "state": "Subscribed", "types": sorted(subscription.types)})
        return subscription

    def _destination_of(self, subscription: Subscription) -> Destination:
        if subscription.protocol == "TCP":
            return TcpDestination(self.loopback, subscription.port)
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return HttpDestination(self._session, subscription.url, subscription.method)

    @staticmethod
    def _retire(subscription: Subscription) -> None:
        if subscription.timer is not None:
            subscription.timer.cancel()
        if subscription.delivery is not None:
            subscription.delivery.close()

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

    def _add(self, subscription: Subscription, made: Event) -> None:
        for event in subscription.api.render(made, subscription.schema_version):
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

    @staticmethod
    def _send(subscription: Subscription) -> None:
        if subscription.timer is not None:
            subscription.timer.cancel()
            subscription.timer = None
        batch, subscription.batch, subscription.batch_bytes = subscription.batch, [], 0
        if batch and subscription.delivery is not None:
            subscription.delivery.put(batch)

    async def close(self) -> None:
        """The environment is gone: what is on its way is given a moment, then connections close."""
        for subscription in self.subscriptions.values():
            if subscription.timer is not None:
                subscription.timer.cancel()
        sending = [subscription.delivery.task for subscription in self.subscriptions.values()
                   if subscription.delivery is not None and subscription.delivery.task is not None
                   and not subscription.delivery.task.done()]
        if sending:
            await asyncio.wait(sending, timeout=1)
        for subscription in self.subscriptions.values():
            self._retire(subscription)
        if self._session is not None:
            await self._session.close()
