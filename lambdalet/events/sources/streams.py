"""The poller of a Kinesis or DynamoDB stream mapping: one reader per shard, batches in order.

How it behaves, and why (AWS's developer guide: with-kinesis, with-ddb, kinesis-on-failure-destination;
LocalStack's tests recorded against AWS for the shapes):

* **Shards and lineage.** Shards are listed when the poller starts, every `DISCOVERY_SECONDS`, and
  whenever a shard ends. A shard starts only once its parents are read to their end (or gone from the
  listing), so records of one partition key keep their order across a reshard; an ended shard's
  checkpoint says `closed` and it is never read again.
* **Where a shard starts.** After its checkpoint (AFTER_SEQUENCE_NUMBER) when it has one; else at
  the mapping's StartingPosition for the shards of the first listing of a mapping that has no
  checkpoints at all (a closed shard at LATEST has nothing to give, so it is only marked closed);
  else (a shard born since) at TRIM_HORIZON, so nothing written to it is skipped. That first
  listing is written down at once, a row per shard, and LATEST with the time it began: a shard
  not yet checkpointed when the server stops resumes at that time (Kinesis AT_TIMESTAMP; DynamoDB,
  which has none, from its start, skipping what came before), so no record is skipped.
* **Checkpoints** move only when a batch is done with (delivered, sent to the on-failure
  destination, or dropped), and only to the highest sequence number below which every record is
  done: a cancel or a SIGKILL mid-batch loses nothing, and the batch in flight is read again.
* **Batching.** Each shard reads once a second when idle, at once again after a read that returned
  records; records that match no filter are done at once (counted `filtered`). A batch is sent
  when it is full (BatchSize or 6 MB), when MaximumBatchingWindowInSeconds has passed since its
  first record, or when the shard ended.
* **ParallelizationFactor** N: the shard's records go to N lanes by a hash of their partition key
  (DynamoDB: the item's key); each lane has one batch in flight, so order holds per key.
* **Errors.** A function error, or a partial answer (ReportBatchItemFailures), retries the failed
  part with backoff until MaximumRetryAttempts retries are used; BisectBatchOnFunctionError splits a
  wholly failed batch in two first (splitting uses no retry); records older than
  MaximumRecordAgeInSeconds are discarded before any attempt. Discarded records' metadata goes to
  DestinationConfig.OnFailure (retried until it gets there). A throttle, or a function that cannot be
  reached, retries with backoff without counting, until the records expire.
* **The source gone** (ResourceNotFoundException, AccessDenied on listing): `SourceGone`, and the
  manager stops the mapping. Anything else (connection refused, throttled reads, expired
  iterators) backs off and carries on.

* **Tumbling windows** (TumblingWindowInSeconds; stream_windows.py for what AWS documents). A
  window is per shard: its state is kept with the shard's checkpoint (`window_state`), written
  with the checkpoint (once per batch), so a restart resumes the window and its state. A shard
  with a window has one batch in flight (ParallelizationFactor does not apply): the state of one
  invocation is the input of the next. A batch holds records of one window only. A window ends
  when a record of a later window is read, when the shard ends, or when its end has passed and
  a read begun `WINDOW_GRACE_SECONDS` after it found nothing more (AWS waits up to 2 minutes);
  then a final invocation (`isFinalInvokeForWindow`, no records) hands the function the state,
  retried like a batch (MaximumRetryAttempts; past them the state is dropped). A state over 1 MB
  ends the window early: a final invocation with `isWindowTerminatedEarly` too, and the window
  goes on with `{}`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from typing import Any

from lambdalet.errors import ResourceConflictException, ResourceNotFoundException, TooManyRequestsException
from lambdalet.events.mappings import KINESIS, EventSourceMapping
from lambdalet.events.sources.base import Backoff, Delivery, PollerContext, SourceGone, client_error_code
from lambdalet.events.sources.stream_clients import DynamoDBClient, KinesisClient, Shard, StreamClient
from lambdalet.events.sources.stream_events import (
    MAX_PAYLOAD, StreamRecord, failed_from, failure_record, halves, iso_time, lane_of, payload, take_batch)
from lambdalet.events.sources.stream_windows import Window, window_answer, window_of
from lambdalet.invoke.types import InvocationResult, new_request_id
from lambdalet.store.mappings import Checkpoint

log = logging.getLogger(__name__)

#: How often shards are listed when none ended (Lambda notices a reshard within seconds).
DISCOVERY_SECONDS = 15.0
#: An idle shard is read about once a second, as Lambda reads it.
IDLE_POLL_SECONDS = 1.0
OK, FAILED = "OK", "PROBLEM: Function call failed"
RETRIES_EXHAUSTED, RECORD_AGE_EXCEEDED = "RetryAttemptsExhausted", "RecordAgeExceeded"
#: Error codes after which a shard gets a fresh iterator from where its reading got to.
EXPIRED_CODES = ("ExpiredIteratorException", "TrimmedDataAccessException")
#: A quiet tumbling window ends once a read begun this long after its end found nothing more of
#: it: the stream's clock (arrival times) and ours may differ by a little.
WINDOW_GRACE_SECONDS = 1.0


class _Progress:
    """The sequence numbers read from a shard, oldest first, and which of them are done with: the
    checkpoint is the newest one below which everything is done (lanes finish out of order)."""

    def __init__(self) -> None:
        self._read: deque[str] = deque()
        self._done: set[str] = set()

    def add(self, sequence_number: str) -> None:
        self._read.append(sequence_number)

    def done(self, sequence_number: str) -> None:
        self._done.add(sequence_number)

    def advance(self) -> str | None:
        """Forget the done prefix; its newest sequence number (None: the prefix did not move)."""
        newest = None
        while self._read and self._read[0] in self._done:
            newest = self._read.popleft()
            self._done.discard(newest)
        return newest


class StreamPoller:
    """Polls one Kinesis or DynamoDB stream mapping until cancelled (or the stream is gone)."""

    def __init__(self, mapping: EventSourceMapping, ctx: PollerContext) -> None:
        self.mapping, self.ctx = mapping, ctx
        self.settings = mapping.settings
        self.stream: StreamClient = (KinesisClient if mapping.kind == KINESIS else DynamoDBClient)(mapping, ctx)
        self.filters = _filters(self.settings.get("FilterCriteria"))
        self._finished: set[str] = set()
        self._initial: set[str] = set()
        #: Shards whose start this run wrote down: they begin at the StartingPosition itself.
        self._fresh: set[str] = set()

    async def settle(self) -> None:
        """Nothing to give back: a cancelled read leaves the shard's checkpoint where it was."""

    async def run(self) -> None:
        checkpoints = await self.ctx.checkpoints(self.mapping)
        self._finished = {shard for shard, point in checkpoints.items() if point.closed}
        first = not checkpoints
        readers: dict[str, asyncio.Task[None]] = {}
        backoff = Backoff()
        try:
            while True:
                try:
                    shards = await self.stream.listing()
                except SourceGone:
                    raise
                except Exception as exc:
                    log.warning("mapping %s: cannot list the shards of %s: %s", self.mapping.uuid, self.stream.arn, exc)
                    await backoff.wait()
                    continue
                backoff.reset()
                if first:
                    await self._write_start(shards, checkpoints)
                    first = False
                self._initial = set(checkpoints)
                await self._start_ready(shards, checkpoints, readers)
                if not readers:
                    await asyncio.sleep(DISCOVERY_SECONDS)
                    continue
                done, _ = await asyncio.wait(readers.values(), timeout=DISCOVERY_SECONDS,
                                             return_when=asyncio.FIRST_COMPLETED)
                for shard_id, task in list(readers.items()):
                    if task in done:
                        del readers[shard_id]
                        task.result()  # a reader's SourceGone (or a bug) stops the mapping
                        self._finished.add(shard_id)
        finally:
            for task in readers.values():
                task.cancel()
            await asyncio.gather(*readers.values(), return_exceptions=True)

    async def _write_start(self, shards: list[Shard], checkpoints: "dict[str, Checkpoint]") -> None:
        """Write down the first listing of a mapping (a row per shard; LATEST with its time), so that
        a restart before a shard's first checkpoint starts it where this run did."""
        started_at = time.time() if self.settings["StartingPosition"] == "LATEST" else None
        for shard in shards:
            await self.ctx.save_checkpoint(self.mapping, shard.shard_id, None, started_at=started_at)
            checkpoints[shard.shard_id] = Checkpoint(None, False, None, started_at)
            self._fresh.add(shard.shard_id)

    async def _start_ready(self, shards: list[Shard], checkpoints: "dict[str, Checkpoint]",
                           readers: dict[str, asyncio.Task[None]]) -> None:
        """Start a reader for every shard not done with whose parents are (a parent no longer
        listed has been trimmed: nothing of it is left to read first)."""
        listed = {shard.shard_id for shard in shards}
        for shard in shards:
            if shard.shard_id in self._finished or shard.shard_id in readers:
                continue
            if any(p in listed and p not in self._finished for p in shard.parents):
                continue
            point = checkpoints.get(shard.shard_id)
            after = point.sequence_number if point is not None else None
            position = self.settings["StartingPosition"] if shard.shard_id in self._initial else "TRIM_HORIZON"
            if after is None and position == "LATEST" and shard.closed:
                await self.ctx.save_checkpoint(self.mapping, shard.shard_id, None, closed=True)
                self._finished.add(shard.shard_id)
                continue
            window = Window.from_json(point.window_state) if point is not None else None
            reader = _ShardReader(self, shard.shard_id, after, position, window)
            if (after is None and position == "LATEST" and point is not None and point.started_at is not None
                    and shard.shard_id not in self._fresh):  # a restart before the shard's first checkpoint
                reader.resume_latest(point.started_at)
            readers[shard.shard_id] = asyncio.create_task(reader.run(), name=f"stream-{shard.shard_id}")


def _filters(value: Any) -> Any:
    """The mapping's compiled FilterCriteria (None: every record goes to the function)."""
    if not value:
        return None
    from lambdalet.events.filtering import parse_filter_criteria  # only mappings with filters pay for it
    return parse_filter_criteria(value)


class _ShardReader:
    """Reads one shard to its end (or forever, while it is open) and delivers its batches."""

    def __init__(self, poller: StreamPoller, shard_id: str, after: str | None, position: str,
                 window: Window | None = None) -> None:
        self.poller, self.ctx, self.mapping = poller, poller.ctx, poller.mapping
        self.stream = poller.stream
        self.shard_id = shard_id
        settings = poller.settings
        self.batch_size: int = settings["BatchSize"]
        self.batching: float = float(settings.get("MaximumBatchingWindowInSeconds") or 0)
        self.report_failures = "ReportBatchItemFailures" in (settings.get("FunctionResponseTypes") or [])
        #: TumblingWindowInSeconds (0: none); `window` is the open one, kept with the checkpoint.
        self.tumbling: int = settings.get("TumblingWindowInSeconds") or 0
        self.window = window if self.tumbling else None
        #: When (wall clock) the newest read that found the shard caught up began: every record that
        #: arrived before then has been read, so a quiet window that ended before then is over.
        self.quiet_from = 0.0
        lanes = 1 if self.tumbling else max(1, settings.get("ParallelizationFactor") or 1)
        self.lanes: list[deque[StreamRecord]] = [deque() for _ in range(lanes)]
        self.arrivals = [asyncio.Event() for _ in self.lanes]
        self.room = asyncio.Event()
        #: The newest sequence number read: where a fresh iterator resumes (records after it are unread).
        self.position = after
        self.start = position
        self.start_timestamp: float | None = settings.get("StartingPositionTimestamp")
        self.not_before = 0.0  # records that arrived earlier were there before the mapping (resume_latest)
        self.ended = False
        self.progress = _Progress()
        self.saved = after
        self.saving = asyncio.Lock()

    def resume_latest(self, started_at: float) -> None:
        """Read a LATEST shard from when the mapping began rather than from now: Kinesis at that
        timestamp; DynamoDB from the shard's start, skipping records created before then (to the
        second: its creation times have no finer grain)."""
        if self.mapping.kind == KINESIS:
            self.start, self.start_timestamp = "AT_TIMESTAMP", started_at
        else:
            self.start, self.not_before = "TRIM_HORIZON", started_at - 1

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._read())]
        if self.tumbling:
            tasks.append(asyncio.create_task(self._window_lane()))
        else:
            tasks += [asyncio.create_task(self._lane(i)) for i in range(len(self.lanes))]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
            await self._checkpoint(closed=True)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- reading ----------------------------------------------------------------------------------

    async def _iterator(self) -> str | None:
        if self.position is not None:
            return await self.stream.iterator(self.shard_id, "AFTER_SEQUENCE_NUMBER", after=self.position)
        timestamp = self.start_timestamp if self.start == "AT_TIMESTAMP" else None
        return await self.stream.iterator(self.shard_id, self.start, timestamp=timestamp)

    async def _read(self) -> None:
        """GetRecords until the shard ends, handing records to the lanes; stops reading while the
        lanes hold a full batch each, so a slow function does not pile the shard up in memory."""
        iterator: str | None = None
        backoff = Backoff()
        limit = self.batch_size * len(self.lanes)
        while True:
            while sum(len(lane) for lane in self.lanes) >= limit:
                self.room.clear()
                await self.room.wait()
            try:
                if iterator is None:
                    iterator = await self._iterator()
                    if iterator is None:
                        break
                started, began = time.monotonic(), time.time()
                answer = await self.stream.read(iterator, limit)
                self.ctx.observe_poll(self.mapping, time.monotonic() - started)
            except Exception as exc:
                code = client_error_code(exc)
                if code in EXPIRED_CODES:
                    if code == "TrimmedDataAccessException" and self.position is None:
                        self.start = "TRIM_HORIZON"
                    iterator = None
                    continue
                if code == "ResourceNotFoundException" and not await self._still_listed():
                    break  # the shard itself expired: nothing more to read from it
                log.warning("mapping %s: cannot read %s of %s: %s", self.mapping.uuid, self.shard_id,
                            self.stream.arn, exc)
                await backoff.wait()
                continue
            backoff.reset()
            records = answer.get("Records", [])
            caught_up = not records and not answer.get("MillisBehindLatest")
            if caught_up:
                self.quiet_from = began
            await self._accept(records)
            iterator = answer.get("NextShardIterator")
            if iterator is None:
                break
            if caught_up:
                await asyncio.sleep(IDLE_POLL_SECONDS)
        self.ended = True
        for event in self.arrivals:
            event.set()

    async def _still_listed(self) -> bool:
        """Is the shard still in the stream? (A stream gone raises SourceGone from the listing.)"""
        try:
            shards = await self.stream.listing()
        except SourceGone:
            raise
        except Exception:
            return True
        return any(shard.shard_id == self.shard_id for shard in shards)

    async def _accept(self, raws: list[dict[str, Any]]) -> None:
        filtered = 0
        touched: set[int] = set()
        for raw in raws:
            record = self.stream.record(raw, self.shard_id)
            self.progress.add(record.sequence_number)
            self.position = record.sequence_number
            if record.arrival < self.not_before:  # written before the mapping started at LATEST
                self.progress.done(record.sequence_number)
                continue
            if self.poller.filters is not None and not self.poller.filters.matches(record.event, self.mapping.kind):
                self.progress.done(record.sequence_number)
                filtered += 1
                continue
            lane = lane_of(record.partition_key, len(self.lanes))
            self.lanes[lane].append(record)
            touched.add(lane)
        self.ctx.count(self.mapping, "polled", len(raws))
        self.ctx.count(self.mapping, "filtered", filtered)
        for lane in touched:
            self.arrivals[lane].set()
        if self.tumbling:
            self.arrivals[0].set()  # a read that found nothing may end a quiet window
        if filtered:
            await self._checkpoint()

    # -- batching and delivering ------------------------------------------------------------------

    async def _lane(self, index: int) -> None:
        while True:
            batch = await self._gather(index)
            if batch is None:
                return
            await self._deliver(batch)

    async def _gather(self, index: int) -> list[StreamRecord] | None:
        """The lane's next batch: when it is full, its window passed, or the shard ended (None: ended, empty)."""
        queue, arrived = self.lanes[index], self.arrivals[index]
        first_seen: float | None = None
        while True:
            if queue:
                if first_seen is None:
                    first_seen = time.monotonic()
                head = [queue[i] for i in range(min(len(queue), self.batch_size))]
                count = take_batch(head, self.batch_size)
                waited = time.monotonic() - first_seen
                if count == self.batch_size or count < len(head) or self.ended or waited >= self.batching:
                    batch = [queue.popleft() for _ in range(count)]
                    self.room.set()
                    return batch
                timeout: float | None = self.batching - waited
            elif self.ended:
                return None
            else:
                timeout = None
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    async def _window_lane(self) -> None:
        """The one lane of a shard with a tumbling window: batches of the open window, then its
        final invocation once it ends."""
        while True:
            batch, ends = await self._gather_window()
            if batch:
                await self._deliver(batch)
            if ends and self.window is not None:
                await self._close_window()
            if batch is None:
                return

    async def _gather_window(self) -> tuple[list[StreamRecord] | None, bool]:
        """The open window's next batch (as `_gather` makes one, of this window's records only), and
        whether the window ends after it. None: the shard ended and everything read is delivered."""
        queue, arrived = self.lanes[0], self.arrivals[0]
        first_seen: float | None = None
        while True:
            window = self.window
            if queue:
                if window is not None and queue[0].arrival >= window.end:
                    return [], True  # a record of a later window: all of this one has been read
                if window is None:
                    window = self.window = Window(*window_of(queue[0].arrival, self.tumbling))
                if first_seen is None:
                    first_seen = time.monotonic()
                head: list[StreamRecord] = []
                for record in queue:  # older records than the window's start join it: windows never go back
                    if record.arrival >= window.end or len(head) == self.batch_size:
                        break
                    head.append(record)
                room = MAX_PAYLOAD - len(json.dumps(window.members(self.shard_id, self.stream.arn)).encode())
                count = take_batch(head, self.batch_size, room)
                waited = time.monotonic() - first_seen
                if (count == self.batch_size or count < len(head) or len(head) < len(queue) or self.ended
                        or waited >= self.batching):
                    batch = [queue.popleft() for _ in range(count)]
                    self.room.set()
                    return batch, False
                timeout: float | None = self.batching - waited
            elif self.ended:
                return None, window is not None
            elif window is not None and self.quiet_from >= window.end + WINDOW_GRACE_SECONDS:
                return [], True  # quiet since its end: a read begun after it found nothing more
            else:
                timeout = None  # every read wakes the lane up
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    async def _close_window(self, early: bool = False) -> None:
        """The window's final invocation: no records, its state, `isFinalInvokeForWindow` (and
        `isWindowTerminatedEarly` when the state outgrew 1 MB). Retried like a batch until the
        function answers with a state, or MaximumRetryAttempts are used: AWS suspends the shard
        until a final invocation succeeds, and -1 (the default) does so here. Then the state is
        dropped (early: the window goes on with `{}`) and saved so with the checkpoint."""
        window = self.window
        assert window is not None
        event = self._event([], final=True, early=early)
        max_retries: int = self.poller.settings["MaximumRetryAttempts"]
        retries, backoff = 0, Backoff()
        while True:
            try:
                delivery = await self.ctx.invoke(self.mapping, event)
            except (TooManyRequestsException, ResourceNotFoundException, ResourceConflictException) as exc:
                log.info("mapping %s: cannot invoke the function yet: %s", self.mapping.uuid, exc)
                await backoff.wait()
                continue
            if self._judge(delivery.result, [])[1] is not None:
                await self.ctx.report(self.mapping, OK)
                break
            await self.ctx.report(self.mapping, FAILED)
            if max_retries != -1 and retries >= max_retries:
                log.warning("mapping %s: the final invocation of the window starting %s of %s failed %d times; "
                            "its state is dropped", self.mapping.uuid, iso_time(window.start, False), self.shard_id,
                            retries + 1)
                break
            retries += 1
            await backoff.wait()
        self.window = Window(window.start, window.end) if early else None
        await self._checkpoint(force=True)

    def _event(self, records: list[StreamRecord], *, final: bool = False, early: bool = False) -> bytes:
        if self.window is None:
            return payload(records)
        return payload(records, self.window.members(self.shard_id, self.stream.arn, final=final, early=early))

    def _judge(self, result: InvocationResult, records: list[StreamRecord]) -> tuple[int | None, dict[str, Any] | None]:
        """Where the failed part of a batch starts (None: nothing failed), and the window's new
        state (None: no window, or the answer has no state, which fails the whole batch)."""
        if result.function_error:
            return 0, None
        if self.window is None:
            return failed_from(result.payload, records, self.report_failures), None
        state, failed = window_answer(result.payload, records, self.report_failures)
        return failed, state

    async def _deliver(self, batch: list[StreamRecord]) -> None:
        """Invoke with a batch until each of its records is delivered or discarded (a window
        whose state outgrew 1 MB on the way ends early)."""
        parts: deque[tuple[list[StreamRecord], int]] = deque([(batch, 0)])  # (records, invocations so far)
        while parts:
            records, attempts = parts.popleft()
            parts.extendleft(reversed(await self._attempt(records, attempts)))
            if self.window is not None and self.window.oversized():
                await self._close_window(early=True)

    async def _attempt(self, records: list[StreamRecord], attempts: int) -> list[tuple[list[StreamRecord], int]]:
        """One part of a batch, retried until done; what is left to do as separate parts (bisected)."""
        settings = self.poller.settings
        max_retries: int = settings["MaximumRetryAttempts"]
        max_age: int = settings["MaximumRecordAgeInSeconds"]
        retries = 0
        backoff = Backoff()
        delivery: Delivery | None = None
        while True:
            if max_age != -1:
                now = time.time()
                expired = 0
                while expired < len(records) and now - records[expired].arrival > max_age:
                    expired += 1
                if expired:
                    await self._discard(records[:expired], RECORD_AGE_EXCEEDED, attempts, None)
                    records = records[expired:]
            if not records:
                return []
            try:
                delivery = await self.ctx.invoke(self.mapping, self._event(records))
            except (TooManyRequestsException, ResourceNotFoundException, ResourceConflictException) as exc:
                log.info("mapping %s: cannot invoke the function yet: %s", self.mapping.uuid, exc)
                await backoff.wait()
                continue
            attempts += 1
            failed, state = self._judge(delivery.result, records)
            if state is not None and self.window is not None:
                # Kept with the records it covers (no await in between): a checkpoint never has
                # one without the other. A failed part is retried with it.
                self.window.state = state
            if failed is None:
                self.ctx.count(self.mapping, "delivered", len(records))
                await self._finish(records)
                await self.ctx.report(self.mapping, OK)
                return []
            if failed:
                self.ctx.count(self.mapping, "delivered", failed)
                await self._finish(records[:failed])
                records = records[failed:]
            await self.ctx.report(self.mapping, FAILED)
            if failed:
                if settings["BisectBatchOnFunctionError"]:
                    return [(records, attempts)]  # split at the failed record: no retry used
            elif settings["BisectBatchOnFunctionError"] and len(records) > 1:
                return [(half, attempts) for half in halves(records)]
            if max_retries != -1 and retries >= max_retries:
                await self._discard(records, RETRIES_EXHAUSTED, attempts, delivery)
                return []
            retries += 1
            await backoff.wait()

    async def _discard(self, records: list[StreamRecord], condition: str, attempts: int,
                       delivery: Delivery | None) -> None:
        """Give up on records: their metadata to the on-failure destination (until it takes it), then on."""
        destination = ((self.poller.settings.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        if destination:
            record = failure_record(
                kind=self.mapping.kind, shard_id=self.shard_id, stream_arn=self.stream.arn, records=records,
                request_id=delivery.request_id if delivery else new_request_id(),
                function_arn=self.mapping.function_arn, condition=condition, attempts=attempts,
                executed_version=delivery.executed_version if delivery else None,
                function_error=bool(delivery and delivery.result.function_error), at=time.time())
            backoff = Backoff()
            while True:
                try:
                    await self.ctx.send_failure_record(
                        destination, record, s3_prefix=f"aws/lambda/{self.mapping.uuid}/{self.shard_id}",
                        function_arn=self.mapping.function_arn, payload=self._event(records))
                    break
                except Exception as exc:
                    log.warning("mapping %s: cannot send a failed batch to %s: %s", self.mapping.uuid, destination, exc)
                    await backoff.wait()
        self.ctx.count(self.mapping, "failed", len(records))
        await self._finish(records)

    async def _finish(self, records: list[StreamRecord]) -> None:
        for record in records:
            self.progress.done(record.sequence_number)
        await self._checkpoint()

    async def _checkpoint(self, closed: bool = False, force: bool = False) -> None:
        """Save the shard's checkpoint, with its open window, if it moved, a window ended (`force`)
        or the shard ended; one write per batch at most."""
        async with self.saving:
            newest = self.progress.advance()
            if newest is None and not (closed or force):
                return
            self.saved = newest or self.saved
            window = self.window.to_json() if self.window is not None and not closed else None
            await self.ctx.save_checkpoint(self.mapping, self.shard_id, self.saved, closed=closed,
                                           window_state=window)
