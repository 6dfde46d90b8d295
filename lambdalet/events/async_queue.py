"""Asynchronous invocations (InvocationType=Event) that are never lost.

`enqueue` returns only once the event is committed to the database, so a 202 means "stored". Events
arriving together are committed together (group commit), so acceptance is not bound by one commit
per event. A dispatcher claims due events and runs them through the same invoker, concurrency
limits and warm pools as synchronous calls: `workers` long-lived worker tasks, each running one event
after another. Events this server has just committed are inserted already claimed and handed to the
workers in memory (up to a bound), so the hot path never reads them back; the database stays the
durable record, and a poller claims from it only what memory does not hold: overflow, retries that
come due, and after a restart.

- success: the event is deleted;
- a function error: retried up to MaximumRetryAttempts (default 2), the first retry after 1 minute
  and the second after 2, as Lambda does, both times `backoff_scale`;
- a throttle or a platform error: retried with backoff (1 s doubling to 5 min, times
  `backoff_scale`) for as long as the event is younger than MaximumEventAgeInSeconds (default 6 h);
  an event throttled by a concurrency limit waits in memory (up to PARKED_MAX) and is retried as
  soon as a slot of that limit is released, or at its backoff if none is before;
- too many attempts (RetriesExhausted), or too old (EventAgeExceeded): sent to the function
  version's dead-letter queue and the on-failure destination, if any, then deleted.

A success goes to the on-success destination, if any (`destinations.py` sends both kinds). An event
is deleted only after its outcome is delivered, so delivery is at-least-once end to end: a claim
holds while its node is live (store/events.py), so whatever a dead node had claimed is released by
the nodes still live within RECLAIM_S of its heartbeat going stale (or by itself when it restarts),
and run, and its outcome sent, again. A node that is stopped finishes what it runs (within its
drain timeout) and hands back the rest at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from lambdalet.errors import (
    LambdaError, RecursiveInvocationException, ResourceNotFoundException, TooManyRequestsException,
)
from lambdalet.events.bursts import BurstGate
from lambdalet.events.destinations import Deliveries, Failure, Role, Target, invocation_record
from lambdalet.invoke.leases import HostMemoryExhausted
from lambdalet.invoke.recursion import CONDITION as RECURSION_CONDITION
from lambdalet.invoke.types import Invocation, InvocationResult, new_request_id
from lambdalet.model import LATEST, alias_of, parse_function_name
from lambdalet.nodes import LIVE_S
from lambdalet.store.events import EventStore, QueuedEvent

if TYPE_CHECKING:
    from lambdalet.functions import FunctionRegistry
    from lambdalet.invoke.invoker import Invoker

log = logging.getLogger(__name__)
DEFAULT_RETRIES = 2
DEFAULT_MAX_AGE_S = 21600
RETRY_DELAYS_S = (60.0, 120.0)  # after the first and the second failed attempt
GROUP_COMMIT_MAX = 1000
IDLE_POLL_S = 0.5
# Finished events are deleted with the next batch of new ones, or after this long without one: a
# transaction (and a wake-up of the database thread) of its own for every finished event would
# cost the event loop as much as accepting one.
DONE_FLUSH_DELAY_S = 0.1
# Committed events waiting in memory for a worker; beyond this they wait in the database only
# (inserted unclaimed, for any server's dispatcher to claim), so a backlog does not fill memory.
READY_MAX_EVENTS = 10_000
READY_MAX_BYTES = 64 * 1024 * 1024
CHECKPOINT_EVERY = 100  # group commits made on the loop between two checkpoints (SQLite)
# A delivery that finds the host's memory budget full is not a Lambda throttle (no backoff, no
# trip through the database): the event goes back to the front of memory and its worker waits for
# another delivery to end, or this long.
MEMORY_WAIT_S = 0.1
# Events throttled by a concurrency limit, waiting in memory (still claimed) for a slot of it to be
# released; beyond this many they wait in the database for their backoff only.
PARKED_MAX = 10_000
UNRESERVED = ""  # the key of events waiting for the account's unreserved pool
# How often each node looks for the claims of nodes that are no longer live (one indexed read).
RECLAIM_S = 2.0


@dataclass(frozen=True)
class EventInvokeSettings:
    """A qualifier's event invoke config as the queue uses it (defaults when there is none)."""

    retries: int = DEFAULT_RETRIES
    max_age_s: int = DEFAULT_MAX_AGE_S
    on_success: str = ""  # destination ARNs, "" for none
    on_failure: str = ""

    @classmethod
    def from_config(cls, config: dict) -> "EventInvokeSettings":
        destinations = config.get("DestinationConfig", {})
        return cls(config.get("MaximumRetryAttempts", DEFAULT_RETRIES),
                   config.get("MaximumEventAgeInSeconds", DEFAULT_MAX_AGE_S),
                   destinations.get("OnSuccess", {}).get("Destination", ""),
                   destinations.get("OnFailure", {}).get("Destination", ""))


@dataclass
class Progress:
    """What this process remembers of an event between attempts: the throttle backoff, and the last
    failed attempt for the dead-letter queue and the on-failure record (lost on a restart, when the
    record simply has no response and the dead letter a generic error)."""

    throttle_delay: float = 0.5
    failure: Failure | None = None
    result: InvocationResult | None = None
    #: The trace the last attempt ran with (its Lineage counted): a function destination goes on with it.
    trace: str | None = None


def _release(waiters: "deque[asyncio.Future[None]]", count: int) -> None:
    """Resolve the first `count` waiters still waiting (a timed-out or cancelled one is skipped)."""
    while count > 0 and waiters:
        waiter = waiters.popleft()
        if not waiter.done():
            waiter.set_result(None)
            count -= 1


class AsyncQueue:
    def __init__(self, store: EventStore, functions: "FunctionRegistry", invoker: "Invoker", *, workers: int,
                 backoff_scale: float, clock: Callable[[], float] = time.time,
                 aws_session: "Callable[[Role], Any] | None" = None) -> None:
        """`aws_session`: destinations and dead-letter queues act with each function's role
        through it (--role-credentials upstream); without, with the server's credentials."""
        self._store = store
        self._functions = functions
        self._invoker = invoker
        self._workers = workers
        self._scale = backoff_scale
        self._clock = clock
        self._pending: list[tuple[QueuedEvent, asyncio.Future[None]]] = []
        self._done: list[str] = []  # deleted with the next batch: a crash before that only means a repeat
        self._done_timer: asyncio.TimerHandle | None = None
        self._ready: deque[QueuedEvent] = deque()  # committed, claimed by us, not yet started
        self._ready_bytes = 0
        self._next_poll = 0.0  # when the poller next asks the database for due events (clock time)
        # One thread for all of the queue's database work: SQLite has one writer at a time anyway,
        # and contending threads only wait on its lock.
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lambdalet-queue-db")
        self._flushing: asyncio.Task[None] | None = None
        self._inline_commits = 0  # since the last checkpoint
        self._idle: deque[asyncio.Future[None]] = deque()  # parked workers, woken when events arrive
        self._gate = BurstGate(float(workers))  # acceptance first during a burst (bursts.py)
        self._burst_end: asyncio.TimerHandle | None = None  # wakes workers the gate parked
        self._memory_waiters: deque[asyncio.Future[None]] = deque()  # workers the host's memory stopped
        self._poll_wakeup = asyncio.Event()
        self._workers_tasks: list[asyncio.Task[None]] = []
        self._tasks: list[asyncio.Task[None]] = []  # the poller and the reclaimer
        self._stopping = False
        self._progress: dict[str, Progress] = {}
        self._deliveries = Deliveries(self._invoke_destination, aws_session=aws_session)
        # Throttled events by the limit they wait for (a function's reservation, or UNRESERVED),
        # oldest first, each with the timer of its backoff.
        self._parked: dict[str, deque[tuple[QueuedEvent, asyncio.TimerHandle]]] = {}
        self._parked_count = 0
        invoker.limiter.on_release = self._slot_released

    # -- accepting ------------------------------------------------------------------------------

    async def enqueue(self, event: QueuedEvent) -> None:
        """Return once the event is durably stored."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((event, future))
        self._schedule_flush()
        self._gate.accepted(loop.time())
        await future

    def _schedule_flush(self) -> None:
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    def _mark_done(self, request_id: str) -> None:
        self._done.append(request_id)
        if self._done_timer is None:
            self._done_timer = asyncio.get_running_loop().call_later(DONE_FLUSH_DELAY_S, self._flush_done)

    def _flush_done(self) -> None:
        self._done_timer = None
        self._schedule_flush()

    def _after_inline_commit(self) -> None:
        """Every CHECKPOINT_EVERY commits made on the loop, checkpoint on the database thread."""
        self._inline_commits += 1
        if self._inline_commits >= CHECKPOINT_EVERY:
            self._inline_commits = 0
            self._db.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            self._store.checkpoint()
        except Exception:  # the next one will try again; meanwhile the log only grows
            log.exception("could not checkpoint the asynchronous queue's database")

    async def _db_call(self, function: Callable, *args):  # type: ignore[no-untyped-def]
        return await asyncio.get_running_loop().run_in_executor(self._db, function, *args)

    async def _flush(self) -> None:
        while self._pending or (self._done and self._done_timer is None):
            batch, self._pending = self._pending[:GROUP_COMMIT_MAX], self._pending[GROUP_COMMIT_MAX:]
            done, self._done = self._done, []
            events = [event for event, _ in batch]
            size = sum(len(event.payload) for event in events)
            # Claimed at insert, then handed over in memory: the dispatcher need not read them back.
            keep = (len(self._ready) + len(events) <= READY_MAX_EVENTS
                    and self._ready_bytes + size <= READY_MAX_BYTES)
            try:
                if self._store.inline_commits:
                    self._store.apply(events, done, keep)
                    self._after_inline_commit()
                else:
                    await self._db_call(self._store.apply, events, done, keep)
            except Exception as exc:
                log.exception("the asynchronous queue could not write to the database")
                self._done.extend(done)
                for _event, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                await asyncio.sleep(0.1)
                continue
            for _event, future in batch:
                if not future.done():
                    future.set_result(None)
            if keep:
                self._hand_over(events, size)
            elif events:
                self._poll_soon(0.0)  # they wait in the database, unclaimed

    # -- draining -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Release this node's claims of a previous run; the poller's first poll finds them due."""
        released = await self._db_call(self._store.release_own)
        if released:
            log.warning("%d asynchronous events were in flight when the server stopped: running them again", released)
        loop = asyncio.get_running_loop()
        self._workers_tasks = [loop.create_task(self._work()) for _ in range(self._workers)]
        self._tasks = [loop.create_task(self._poll()), loop.create_task(self._reclaim())]

    async def _reclaim(self) -> None:
        """Every RECLAIM_S: release the claims of nodes whose heartbeat is older than LIVE_S, so
        that the events a dead node held are run by the live ones."""
        while True:
            await asyncio.sleep(RECLAIM_S)
            try:
                released = await self._db_call(self._store.release_orphans, time.time() - LIVE_S)
            except Exception as exc:  # the database is away a moment: the next round tries again
                log.warning("could not look for the asynchronous events of dead nodes: %s", exc)
                continue
            if released:
                log.warning("%d asynchronous events were claimed by nodes no longer live: running them again",
                            released)
                self._poll_soon(0.0)

    async def _work(self) -> None:
        """One worker: the next event in memory, else park until events are handed over. A busy
        worker goes straight from one event to the next, with no task or wake-up per event."""
        loop = asyncio.get_running_loop()
        while not self._stopping:
            if self._ready and self._may_deliver(loop):
                event = self._ready.popleft()
                self._ready_bytes -= len(event.payload)
                try:
                    await self._attempt(event)
                except Exception:  # the database failed even the retry: the event stays claimed until a restart
                    log.exception("asynchronous invocation %s of %s could not be rescheduled", event.request_id,
                                  event.function_name)
                continue
            waiter = loop.create_future()
            self._idle.append(waiter)
            if self._clock() >= self._next_poll:
                self._poll_wakeup.set()  # a poll is due and a worker is free
            await waiter

    def _memory_maybe_freed(self) -> None:
        """An invocation ended, so its environment is free: one worker waiting for memory tries again."""
        _release(self._memory_waiters, 1)

    async def _delivery_ended(self) -> None:
        """Wait until another delivery ends (its environment may then be free), or MEMORY_WAIT_S:
        the memory may be held by synchronous invocations, which do not say when they end."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._memory_waiters.append(waiter)
        timer = loop.call_later(MEMORY_WAIT_S, lambda: waiter.done() or waiter.set_result(None))
        try:
            await waiter
        finally:
            timer.cancel()

    def _may_deliver(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether a worker may start a delivery now (bursts.py); a worker told no parks, and is
        woken when the burst is over if not before."""
        if self._gate.may_start(loop.time()):
            return True
        self._wake_after_burst(loop)
        return False

    def _wake_after_burst(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wake the workers the burst kept parked once it is over (one timer at a time)."""
        if self._burst_end is None:
            self._burst_end = loop.call_at(self._gate.ends_by(), self._after_burst, loop)

    def _after_burst(self, loop: asyncio.AbstractEventLoop) -> None:
        self._burst_end = None
        if self._gate.bursting(loop.time()):  # still arriving: look again later
            self._wake_after_burst(loop)
        else:
            self._wake(len(self._ready))

    def _wake(self, count: int) -> None:
        """Wake up to `count` parked workers."""
        _release(self._idle, count)

    def _hand_over(self, events: list[QueuedEvent], size: int) -> None:
        """Queue claimed events in memory and wake as many parked workers as there are events (during
        a burst, as many as it allows now, and the rest when it is over)."""
        self._ready.extend(events)
        self._ready_bytes += size
        loop = asyncio.get_running_loop()
        startable = self._gate.startable(loop.time(), len(events))
        self._wake(startable)
        if startable < len(events):
            self._wake_after_burst(loop)

    def _poll_soon(self, at: float) -> None:
        """Ask the database for due events at `at` at the latest (a retry, or an overflow)."""
        self._next_poll = min(self._next_poll, at)
        self._poll_wakeup.set()

    async def _poll(self) -> None:
        """Claim due events from the database for parked workers, only when memory has none for them
        and a poll is due (every IDLE_POLL_S, or sooner after an overflow or a retry was
        scheduled), so these queries do not compete with the inserts behind the 202s."""
        while True:
            self._poll_wakeup.clear()
            free = len(self._idle) if not self._ready else 0
            now = self._clock()
            if free > 0 and now >= self._next_poll:
                self._next_poll = now + IDLE_POLL_S  # unless a retry or an overflow brings it forward meanwhile
                due = await self._db_call(self._store.claim_due, now, free)
                if len(due) == free:  # there may be more: ask again as soon as a worker is free
                    self._next_poll = now
                self._hand_over(due, sum(len(event.payload) for event in due))
                continue
            # Woken by a parked worker, a retry or an overflow; the timeout is the next poll when a worker is free.
            timeout = IDLE_POLL_S if free <= 0 else min(IDLE_POLL_S, self._next_poll - now)
            try:
                await asyncio.wait_for(self._poll_wakeup.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    async def _attempt(self, event: QueuedEvent) -> None:
        try:
            await self._run(event)
        except Exception:  # never lose the worker, never drop the event on our own bug: try later
            log.exception("asynchronous invocation %s of %s crashed; it will be tried again",
                          event.request_id, event.function_name)
            await self._retry_later(event.request_id, event.attempts, self._clock() + 60 * self._scale)

    async def _run(self, event: QueuedEvent) -> None:
        now = self._clock()
        try:
            config = self._functions.config(event.function_name, event.qualifier, draw=random.random())
        except ResourceNotFoundException:
            log.warning("asynchronous invocation %s dropped: %s:%s no longer exists", event.request_id,
                        event.function_name, event.qualifier or LATEST)
            self._forget(event)
            return
        settings = self._functions.event_invoke_settings(event.function_name, event.qualifier)
        if now - event.enqueued_at > settings.max_age_s:
            await self._give_up(event, "EventAgeExceeded", settings, config.dead_letter_target)
            return
        progress = self._progress.setdefault(event.request_id, Progress())
        invocation = Invocation(event.request_id, event.payload, event.invoked_arn, alias=alias_of(event.qualifier),
                                tenant_id=event.tenant_id or "")
        if event.trace is not None:
            invocation.trace_id = event.trace
        try:
            result = await self._invoker.invoke(config, invocation)
            progress.trace = invocation.trace_id
        except RecursiveInvocationException as exc:  # a loop stopped: not retried, on to the DLQ and destination
            progress.failure = Failure(exc.status, exc.message)
            await self._give_up(event, RECURSION_CONDITION, settings, config.dead_letter_target)
            return
        except HostMemoryExhausted:  # more workers than environments fit: wait for one to be free
            self._ready.appendleft(event)
            self._ready_bytes += len(event.payload)
            await self._delivery_ended()
            return
        except LambdaError as exc:  # throttled (TooManyRequestsException), or the platform could not run it
            self._memory_maybe_freed()
            progress.throttle_delay = delay = min(300.0, progress.throttle_delay * 2)
            progress.failure = Failure(exc.status, exc.message)
            log.info("asynchronous invocation %s of %s: %s; trying again in %.1f s", event.request_id,
                     config.name, exc.error_type, delay * self._scale)
            if isinstance(exc, TooManyRequestsException) and self._parked_count < PARKED_MAX:
                reserved = exc.extra.get("Reason") == "ReservedFunctionConcurrentInvocationLimitExceeded"
                self._park(event, config.name if reserved else UNRESERVED, delay * self._scale)
                return
            await self._retry_later(event.request_id, event.attempts, now + delay * self._scale)
            return
        self._memory_maybe_freed()
        attempts = event.attempts + 1
        progress.result = result
        if not result.function_error:
            if settings.on_success and not await self._deliveries.send_record(
                    settings.on_success, self._record(event, "Success", attempts), self._function_arn(event),
                    trace=progress.trace, role=self._role(event)):
                self._invoker.metrics.destination_failures.labels(event.function_name).inc()
            self._forget(event)
        elif attempts > settings.retries:
            progress.failure = Failure.of_result(result)
            await self._give_up(event, "RetriesExhausted", settings, config.dead_letter_target, attempts)
        else:
            progress.failure = Failure.of_result(result)
            delay = RETRY_DELAYS_S[min(attempts, len(RETRY_DELAYS_S)) - 1] * self._scale
            log.info("asynchronous invocation %s of %s failed (attempt %d); retrying in %.1f s", event.request_id,
                     config.name, attempts, delay)
            await self._retry_later(event.request_id, attempts, self._clock() + delay)

    def _park(self, event: QueuedEvent, key: str, delay: float) -> None:
        """Keep a throttled event (claimed) until a slot of its limit is released, or its backoff."""
        parked = self._parked.setdefault(key, deque())
        timer = asyncio.get_running_loop().call_later(delay, self._backoff_over, key, event)
        parked.append((event, timer))
        self._parked_count += 1

    def _backoff_over(self, key: str, event: QueuedEvent) -> None:
        parked = self._parked.get(key)
        if parked is None:
            return
        for index, (waiting, _timer) in enumerate(parked):
            if waiting is event:
                del parked[index]
                self._unpark(key, event)
                return

    def _slot_released(self, function: str, reserved: bool) -> None:
        """A concurrency slot was released (any invocation's, synchronous ones too): the oldest
        event waiting for that limit goes first in memory, for the next free worker."""
        if not self._parked_count:
            return
        key = function if reserved else UNRESERVED
        parked = self._parked.get(key)
        if parked:
            event, timer = parked.popleft()
            timer.cancel()
            self._unpark(key, event)

    def _unpark(self, key: str, event: QueuedEvent) -> None:
        self._parked_count -= 1
        if not self._parked.get(key):
            self._parked.pop(key, None)
        self._ready.appendleft(event)
        self._ready_bytes += len(event.payload)
        self._wake(1)

    async def _retry_later(self, request_id: str, attempts: int, at: float) -> None:
        """Release the event to the database, due at `at`; the dispatcher polls then at the latest."""
        await self._db_call(self._store.retry_later, request_id, attempts, at)
        self._poll_soon(at)

    async def _give_up(self, event: QueuedEvent, condition: str, settings: EventInvokeSettings, dead_letter: str,
                       attempts: int | None = None) -> None:
        """The failure path: the dead-letter queue and the on-failure destination, then delete."""
        attempts = event.attempts if attempts is None else attempts
        where = [what for what, arn in (("dead-letter queue", dead_letter), ("on-failure destination",
                                                                            settings.on_failure)) if arn]
        log.warning("asynchronous invocation %s of %s failed for good (%s after %d attempts): %s", event.request_id,
                    event.function_name, condition, attempts, " and ".join(where) if where else "dropped")
        metrics = self._invoker.metrics
        metrics.async_dropped.labels(event.function_name, condition).inc()
        sends: dict[Any, Awaitable[bool]] = {}
        if dead_letter:
            progress = self._progress.get(event.request_id)
            failure = (progress.failure if progress and progress.failure
                       else Failure(500 if condition == "RetriesExhausted" else 429, condition))
            sends[metrics.dead_letter_errors] = self._deliveries.send_dead_letter(
                dead_letter, event.payload, event.request_id, failure, role=self._role(event))
        if settings.on_failure:
            progress = self._progress.get(event.request_id)
            sends[metrics.destination_failures] = self._deliveries.send_record(
                settings.on_failure, self._record(event, condition, attempts), self._function_arn(event),
                trace=progress.trace if progress and progress.trace else event.trace, role=self._role(event))
        for counter, sent in zip(sends, await asyncio.gather(*sends.values())):
            if not sent:
                counter.labels(event.function_name).inc()
        self._forget(event)

    def _role(self, event: QueuedEvent) -> Role | None:
        """The function and its role, whose credentials its destinations are sent with."""
        if not self._functions.exists(event.function_name):
            return None
        return event.function_name, self._functions.get(event.function_name).latest.role

    def _function_arn(self, event: QueuedEvent) -> str:
        """The qualified ARN records name: the invoked version or alias, else $LATEST."""
        return event.invoked_arn if event.qualifier else f"{event.invoked_arn}:{LATEST}"

    def _record(self, event: QueuedEvent, condition: str, attempts: int) -> dict:
        progress = self._progress.get(event.request_id)
        return invocation_record(request_id=event.request_id, function_arn=self._function_arn(event),
                                 condition=condition, attempts=attempts, payload=event.payload,
                                 result=progress.result if progress else None, at=self._clock())

    def _forget(self, event: QueuedEvent) -> None:
        self._progress.pop(event.request_id, None)
        self._mark_done(event.request_id)

    async def _invoke_destination(self, target: Target, payload: bytes, trace: str | None = None) -> None:
        """A function destination: an asynchronous invoke of it, through this same queue, in the
        same chain of events (`trace`: its Lineage counts a loop through destinations)."""
        ref = parse_function_name(target.arn)
        self._functions.config(ref.name, ref.qualifier)  # it may have been deleted since
        await self.enqueue(QueuedEvent(new_request_id(), ref.name, ref.qualifier, target.arn, payload, self._clock(),
                                       trace=trace))

    async def shutdown(self, drain_s: float = 0.0) -> None:
        """Stop taking work; let the deliveries in flight end, for up to `drain_s` (then stop them);
        then hand every event this node still holds (not started, parked, stopped) back to the
        database, due at once for any node."""
        self._stopping = True
        for parked in self._parked.values():
            for _event, timer in parked:
                timer.cancel()
        self._parked.clear()
        self._parked_count = 0
        for task in self._tasks:
            task.cancel()
        _release(self._idle, len(self._idle))  # idle workers see _stopping and end
        _release(self._memory_waiters, len(self._memory_waiters))
        if drain_s > 0 and self._workers_tasks:
            _done, running = await asyncio.wait(self._workers_tasks, timeout=drain_s)
            if running:
                log.warning("stopping %d asynchronous invocations still running after %.0f s; they will run again",
                            len(running), drain_s)
        for task in self._workers_tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._workers_tasks, return_exceptions=True)
        if self._done_timer is not None:
            self._done_timer.cancel()
            self._done_timer = None
        self._schedule_flush()  # the last deletions, and events enqueued meanwhile (destinations)
        await asyncio.gather(self._flushing, return_exceptions=True)  # type: ignore[arg-type]
        try:
            handed_back = await self._db_call(self._store.release_own)
            if handed_back:
                log.info("%d asynchronous events handed back to the queue for other nodes", handed_back)
        except Exception as exc:  # the nodes still live release them once this one's heartbeat is stale
            log.warning("could not hand the asynchronous events back: %s", exc)
        await self._db_call(self._store.close)
        self._db.shutdown(wait=True)
        self._deliveries.close()

    def depth(self) -> dict[str, tuple[int, float | None]]:
        return self._store.depth()
