"""The poller manager: which mappings this node polls, and their states.

The database is the truth (`store/mappings.py`). Every few seconds, and at once after a change made
through this node's API, the manager reconciles: it renews (or takes) the lease of every mapping
whose function is homed on this node (placement.py: its batches then run on the function's warm
environments) in one transaction, so exactly one node polls each mapping, a dead node's mappings
are taken over by the functions' new homes once its leases expire, and a node that is no longer a
function's home (another joined) hands its mappings over; it runs a poller for each enabled mapping it holds, restarting it when the
mapping's configuration changed, and it moves each mapping it holds on from a transitional state
(Creating, Enabling, Updating, Disabling, Deleting) as Lambda does. A node id that stays the same
across restarts (host and port) lets a restarted server take its own leases back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from lambdalet.events.mappings import (
    CREATING, DELETING, DISABLED, DISABLING, DYNAMODB, ENABLED, ENABLING, KINESIS, SQS, TRANSITIONAL, UPDATING,
    EventSourceMapping,
)
from lambdalet.events.sources.base import Poller, PollerContext, SourceGone
from lambdalet.store.mappings import MappingStore, mapping_lease

if TYPE_CHECKING:
    from lambdalet.functions import FunctionRegistry
    from lambdalet.invoke.invoker import Invoker
    from lambdalet.metrics import Metrics

log = logging.getLogger(__name__)
RECONCILE_INTERVAL_S = 5.0
LEASE_TTL_S = 20.0
#: A poller that crashed on our own bug is started again after this long (and says so).
RESTART_DELAY_S = 5.0


def make_poller(mapping: EventSourceMapping, context: PollerContext) -> Poller:
    if mapping.kind == SQS:
        from lambdalet.events.sources.sqs import SqsPoller

        return SqsPoller(mapping, context)
    if mapping.kind in (KINESIS, DYNAMODB):
        from lambdalet.events.sources.streams import StreamPoller

        return StreamPoller(mapping, context)
    raise ValueError(f"no poller for {mapping.kind}")


class Running:
    """A poller task of this node and the configuration it was started with."""

    def __init__(self, fingerprint: str) -> None:
        self.task: "asyncio.Task[None] | None" = None
        self.poller: Poller | None = None  # the current one (a poller that crashed is made anew)
        self.fingerprint = fingerprint
        self.gone: str | None = None  # why the source stopped the poller (SourceGone), once it has


class MappingManager:
    def __init__(self, store: MappingStore, functions: "FunctionRegistry", invoker: "Invoker", metrics: "Metrics",
                 node_id: str, clock: Callable[[], float] = time.time,
                 aws_session: "Callable[[tuple[str, str]], Any] | None" = None,
                 is_home: Callable[[str], bool] | None = None) -> None:
        """`is_home(function)`: whether this node is the function's home (placement.py), whose
        mappings it polls, so that their batches run on its warm environments; None: every mapping
        is this node's to take."""
        self.store = store
        self._is_home = is_home
        self.context = PollerContext(functions, invoker, store, metrics, self.report, aws_session)
        self.node_id = node_id
        self._clock = clock
        self._running: dict[str, Running] = {}
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reported: dict[str, str] = {}  # LastProcessingResult last written, by mapping
        #: Pollers stopped for good whose reads still under way are being settled (Poller.settle):
        #: their mappings stay Disabling or Deleting until then.
        self._settling: dict[str, asyncio.Task[None]] = {}
        self._held: set[str] = set()

    # -- the API's side -----------------------------------------------------------------------------

    async def _db(self, function: Callable, *args):  # type: ignore[no-untyped-def]
        return await self.context.blocking(function, *args)

    async def create(self, mapping: EventSourceMapping) -> None:
        await self._db(self.store.create, mapping.uuid, mapping.function_name, mapping.source_arn,
                       mapping.to_record(), mapping.tags)
        self._wakeup.set()

    async def get(self, uuid: str) -> EventSourceMapping | None:
        stored = await self._db(self.store.get, uuid)
        return EventSourceMapping.from_record(stored.uuid, stored.record, stored.tags, stored.revision) if stored else None

    async def find(self, function_name: str | None = None, source_arn: str | None = None) -> list[EventSourceMapping]:
        stored = await self._db(self.store.find, function_name, source_arn)
        return [EventSourceMapping.from_record(s.uuid, s.record, s.tags, s.revision) for s in stored]

    async def update(self, uuid: str, change: Callable[[EventSourceMapping], Awaitable[EventSourceMapping]]
                     ) -> EventSourceMapping | None:
        """Read, change and write a mapping, again if another writer (a poller's state report, another
        node) changed it meanwhile; None when there is no such mapping."""
        while True:
            mapping = await self.get(uuid)
            if mapping is None:
                return None
            changed = await change(mapping)
            if await self._db(self.store.update, uuid, changed.to_record(), mapping.revision):
                self._wakeup.set()
                return changed

    async def set_tags(self, uuid: str, tags: dict[str, str]) -> None:
        await self._db(self.store.set_tags, uuid, tags)

    # -- reconciling --------------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            self._wakeup.clear()
            try:
                await self.reconcile()
            except Exception:  # the database may be down for a moment: try again at the next tick
                log.exception("could not reconcile event source mappings")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), RECONCILE_INTERVAL_S)

    async def reconcile(self) -> None:
        stored = await self._db(self.store.all)
        mappings = {s.uuid: EventSourceMapping.from_record(s.uuid, s.record, s.tags, s.revision) for s in stored}
        ours = [uuid for uuid, mapping in mappings.items()
                if self._is_home is None or self._is_home(mapping.function_name)]
        held = await self._db(self.store.acquire_all, [mapping_lease(uuid) for uuid in ours], self.node_id,
                              self._clock(), LEASE_TTL_S)
        handed_over = [uuid for uuid in self._held if uuid in mappings and uuid not in ours]
        self._held = {uuid for uuid in ours if mapping_lease(uuid) in held}
        for uuid in list(self._running):
            if uuid not in self._held:  # deleted, its function homed on another node, or polled by another
                await self._stop(uuid)
        if handed_over:  # its function's home takes it at once rather than when the lease expires
            await self._db(self.store.release_all, [mapping_lease(uuid) for uuid in handed_over], self.node_id)
        for uuid in self._held:
            await self._act(mappings[uuid])

    async def _act(self, mapping: EventSourceMapping) -> None:
        settling = self._settling.get(mapping.uuid)
        if settling is not None:
            if not settling.done():
                return  # still Disabling or Deleting: its last reads are under way
            del self._settling[mapping.uuid]
        running = self._running.get(mapping.uuid)
        if mapping.state == DELETING:
            if not await self._stop(mapping.uuid, settle=True):
                await self._db(self.store.delete, mapping.uuid)
                self._reported.pop(mapping.uuid, None)
            return
        if running is not None and running.gone is not None:  # the source went away: stop, saying why
            await self._stop(mapping.uuid)
            if mapping.enabled:
                await self._move(mapping, DISABLED, enabled=False, reason=running.gone,
                                 last_result=f"PROBLEM: {running.gone}")
            return
        if not mapping.enabled:
            if not await self._stop(mapping.uuid, settle=True) and mapping.state in (CREATING, DISABLING, UPDATING,
                                                                                     ENABLING):
                await self._move(mapping, DISABLED)
            return
        if running is None or running.fingerprint != mapping.poller_fingerprint() or (
                running.task is not None and running.task.done()):
            await self._stop(mapping.uuid)
            self._start(mapping)
        if mapping.state in TRANSITIONAL or mapping.state == DISABLED:
            await self._move(mapping, ENABLED)

    async def _move(self, mapping: EventSourceMapping, state: str, *, enabled: bool | None = None,
                    reason: str | None = None, last_result: str | None = None) -> None:
        """Write a new state unless someone changed the mapping since we read it (then the next
        reconciliation acts on what they wrote)."""
        moved = mapping.with_state(state, reason, last_result)
        if enabled is not None:
            moved = dataclasses.replace(moved, enabled=enabled)
        await self._db(self.store.update, mapping.uuid, moved.to_record(), mapping.revision)

    def _start(self, mapping: EventSourceMapping) -> None:
        running = self._running[mapping.uuid] = Running(mapping.poller_fingerprint())
        running.task = asyncio.get_running_loop().create_task(self._run(mapping, running))

    async def _run(self, mapping: EventSourceMapping, running: Running) -> None:
        """Run a mapping's poller; a source that went away stops it, our own bug restarts it."""
        while True:
            try:
                running.poller = make_poller(mapping, self.context)
                await running.poller.run()
                return
            except SourceGone as gone:
                log.warning("event source mapping %s stops: %s", mapping.uuid, gone)
                running.gone = str(gone)
                self._wakeup.set()
                return
            except Exception:
                log.exception("the poller of event source mapping %s failed; starting it again in %.0f s",
                              mapping.uuid, RESTART_DELAY_S)
                await asyncio.sleep(RESTART_DELAY_S)

    async def _stop(self, uuid: str, settle: bool = False) -> bool:
        """Stop a mapping's poller. With `settle` (the mapping is disabled or deleted), also let what
        it still has under way end: True when that goes on in the background (the next
        reconciliation after it finishes moves the mapping on)."""
        running = self._running.pop(uuid, None)
        if running is None or running.task is None:
            return False
        running.task.cancel()
        await asyncio.gather(running.task, return_exceptions=True)
        if not settle or running.poller is None:
            return False
        task = asyncio.get_running_loop().create_task(running.poller.settle())
        task.add_done_callback(lambda _: self._wakeup.set())
        self._settling[uuid] = task
        return True

    async def report(self, mapping: EventSourceMapping, last_result: str) -> None:
        """A poller's LastProcessingResult, written when it changes."""
        if self._reported.get(mapping.uuid) == last_result:
            return
        self._reported[mapping.uuid] = last_result

        async def change(current: EventSourceMapping) -> EventSourceMapping:
            return current.with_state(current.state, last_result=last_result)

        try:
            while True:
                current = await self.get(mapping.uuid)
                if current is None or current.last_result == last_result:
                    return
                if await self._db(self.store.update, mapping.uuid, (await change(current)).to_record(),
                                  current.revision):
                    return
        except Exception:  # a report is not worth a poller: the next one writes it
            self._reported.pop(mapping.uuid, None)
            log.exception("could not record the processing result of event source mapping %s", mapping.uuid)

    async def shutdown(self) -> None:
        """Stop polling and give the leases back, so another node takes over without waiting."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for uuid in list(self._running):
            await self._stop(uuid)
        for task in self._settling.values():
            task.cancel()
        with contextlib.suppress(Exception):
            await self._db(self.store.release_all, [mapping_lease(uuid) for uuid in self._held], self.node_id)
        self.context.close()

