"""Lambda's Extensions API (2020-01-01) for one execution environment: who registered, and the
lifecycle events each is owed.

External extensions are the executables in `/opt/extensions` (from the function's layers),
started beside the runtime (`runtimes/extensions/launch.sh`); internal ones run inside the runtime
process and register under any other name. The lifecycle is AWS's:

- **Init** ends only when every external extension has registered, every registered extension
  waits on `/event/next` and the runtime waits on `/next`; registration then closes.
- **Invoke**: each extension registered for `INVOKE` gets the event as the runtime gets the
  invocation; the environment takes its next invocation only once the runtime has answered and
  every such extension asks for its next event again.
- **Shutdown**: an environment that is reaped or retired first sends `SHUTDOWN` (reason
  `spindown`) to the extensions registered for it and waits for them until its deadline.

Refusals are the Runtime Interface Emulator's: HTTP 403 with `Extension.*` error types and its
messages (400 `InvalidRequestFormat` for a body that is not a registration). Nothing here touches the hot path of an environment without extensions:
it has no `Extensions` at all.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

EXTENSION_LIMIT = 10
EVENT_TYPES = ("INVOKE", "SHUTDOWN")
SHUTDOWN_DEADLINE_S = 2.0  # with external extensions registered, as on Lambda
#: The variable that gives launch.sh the environment's token for the line it writes when an
#: external extension exits (`Environment._extension_exited`).
EXIT_TOKEN_VARIABLE = "_LAMBDALET_EXTENSION_EXIT"
REGISTRATION_CLOSED = "Extension registration closed already"


class ExtensionRefusal(Exception):
    """The Extensions API refuses a request: HTTP status plus the errorType the emulator gives."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message


@dataclass
class Extension:
    name: str
    id: str
    events: tuple[str, ...]
    external: bool
    #: Its /event/next waiting for an event (None while it works on one, or before it first asks).
    waiter: "asyncio.Future[dict[str, Any]] | None" = None
    #: An event that came while it was not waiting: handed over at its next /event/next.
    queued: dict[str, Any] | None = None
    #: Registered but not yet waiting for its first event, or working on the last one it got.
    busy: bool = True

    @property
    def state(self) -> str:
        return "Ready" if not self.busy else "Registered"


@dataclass
class Extensions:
    """The extensions of one environment. `expected`: the names of its external extensions (the
    executables in /opt/extensions), which init waits for; `changed` is called whenever an
    extension starts waiting, so the environment can see whether init or an invocation is done."""

    expected: frozenset[str]
    function_name: str
    function_version: str
    handler: str
    account_id: str
    changed: Callable[[], None]
    registered: dict[str, Extension] = field(default_factory=dict)  # by id
    registration_open: bool = True
    _idle_waiters: list["asyncio.Future[None]"] = field(default_factory=list)

    # -- registration ---------------------------------------------------------------------------

    def register(self, name: str | None, body: Any, features: str = "") -> tuple[str, dict[str, Any]]:
        """POST /extension/register: the new extension's identifier and the body Lambda answers."""
        if not self.registration_open:
            raise ExtensionRefusal(403, "Extension.RegistrationClosed", REGISTRATION_CLOSED)
        if not name:
            raise ExtensionRefusal(403, "Extension.InvalidExtensionName", "Empty extension name")
        if not isinstance(body, dict) or not isinstance(body.get("events", []), list):
            raise ExtensionRefusal(400, "InvalidRequestFormat", "The request body must be {\"events\": [...]}")
        events = tuple(body.get("events") or ())
        external = name in self.expected
        for event in events:
            if event not in EVENT_TYPES:
                raise ExtensionRefusal(403, "Extension.InvalidEventType", f"{event}: ErrorInvalidEventType")
            if event == "SHUTDOWN" and not external:
                raise ExtensionRefusal(403, "Extension.InvalidEventType",
                                       f"{event}: ShutdownEventNotSupportedForInternalExtension")
        if any(extension.name == name for extension in self.registered.values()):
            raise ExtensionRefusal(403, "Extension.InvalidExtensionState", "Extension with this name already registered")
        if len(self.registered) >= EXTENSION_LIMIT:
            raise ExtensionRefusal(403, "Extension.TooManyExtensions",
                                   f"Extension limit ({EXTENSION_LIMIT}) reached")
        extension = Extension(name, str(uuid.uuid4()), events, external)
        self.registered[extension.id] = extension
        answer: dict[str, Any] = {"functionName": self.function_name, "functionVersion": self.function_version,
                                  "handler": self.handler}
        if "accountId" in {feature.strip() for feature in features.split(",")}:
            answer["accountId"] = self.account_id
        return extension.id, answer

    def find(self, identifier: str | None) -> Extension:
        """The extension a Lambda-Extension-Identifier header names."""
        if not identifier:
            raise ExtensionRefusal(403, "Extension.MissingExtensionIdentifier", "Missing Lambda-Extension-Identifier header")
        try:
            uuid.UUID(identifier)
        except ValueError:
            raise ExtensionRefusal(403, "Extension.InvalidExtensionIdentifier",
                                   "Invalid Lambda-Extension-Identifier") from None
        extension = self.registered.get(identifier)
        if extension is None:
            raise ExtensionRefusal(403, "Extension.UnknownExtensionIdentifier", f"Unknown extension {identifier}")
        return extension

    @property
    def init_done(self) -> bool:
        """Every external extension registered, and every registered one waiting for its first event."""
        names = {extension.name for extension in self.registered.values()}
        return self.expected <= names and not any(extension.busy for extension in self.registered.values())

    def close_registration(self) -> None:
        self.registration_open = False

    # -- events ---------------------------------------------------------------------------------

    def next_event(self, extension: Extension) -> "dict[str, Any] | asyncio.Future[dict[str, Any]]":
        """GET /extension/event/next: the extension is done with its last event; its next one now
        (if one came meanwhile) or a future the next one resolves."""
        if extension.waiter is not None and not extension.waiter.done():
            raise ExtensionRefusal(403, "Extension.InvalidExtensionState",
                                   f"Extension {extension.name} is already waiting for an event")
        extension.busy = False
        if extension.queued is not None:
            event, extension.queued = extension.queued, None
            extension.busy = True
            return event
        extension.waiter = asyncio.get_running_loop().create_future()
        self.changed()
        self._wake_if_idle()
        return extension.waiter

    def _deliver(self, extension: Extension, event: dict[str, Any]) -> None:
        extension.busy = True
        waiter, extension.waiter = extension.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(event)
        else:
            extension.queued = event

    def invoke(self, event: dict[str, Any]) -> None:
        """An invocation starts: the INVOKE event to every extension registered for it."""
        for extension in self.registered.values():
            if "INVOKE" in extension.events:
                self._deliver(extension, event)

    @property
    def idle(self) -> bool:
        return not any(extension.busy for extension in self.registered.values())

    def when_idle(self) -> "asyncio.Future[None]":
        """Resolved once no extension is working on an event (at once when none is)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.idle:
            future.set_result(None)
        else:
            self._idle_waiters.append(future)
        return future

    def _wake_if_idle(self) -> None:
        if self._idle_waiters and self.idle:
            waiters, self._idle_waiters = self._idle_waiters, []
            for future in waiters:
                if not future.done():
                    future.set_result(None)

    @property
    def wants_shutdown(self) -> bool:
        return any("SHUTDOWN" in extension.events for extension in self.registered.values())

    def shutdown(self, reason: str, deadline_ms: int) -> "asyncio.Future[None]":
        """SHUTDOWN to every extension registered for it; resolved once they all ask for their
        next event again (done with it), or exited."""
        event = {"eventType": "SHUTDOWN", "shutdownReason": reason, "deadlineMs": deadline_ms}
        for extension in self.registered.values():
            if "SHUTDOWN" in extension.events:
                self._deliver(extension, event)
            else:
                extension.busy = False  # it gets no event: nothing to wait for
        return self.when_idle()

    def close(self) -> None:
        """The environment is gone: nobody's /event/next will be answered, nobody waits on them."""
        for extension in self.registered.values():
            if extension.waiter is not None and not extension.waiter.done():
                extension.waiter.cancel()
            extension.busy = False
        self._wake_if_idle()


def external_extensions(opt_dir: Path | None, follow_symlinks: bool = True) -> frozenset[str]:
    """The names of a function's external extensions: the executable files in `extensions/` of
    its /opt (its layers', or an image's, read at an environment's start)."""
    if opt_dir is None:
        return frozenset()
    try:
        entries = list(os.scandir(opt_dir / "extensions"))
    except OSError:
        return frozenset()
    return frozenset(entry.name for entry in entries if entry.is_file(follow_symlinks=follow_symlinks)
                     and os.access(entry.path, os.X_OK))
