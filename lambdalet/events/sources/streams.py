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
  else (a shard born since) at TRIM_HORIZON, so nothing written to it is skipped.
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

TumblingWindowInSeconds is not implemented (the API refuses a window).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lambdalet.errors import ResourceNotFoundException, TooManyRequestsException
from lambdalet.events.mappings import KINESIS, EventSourceMapping
from lambdalet.events.sources.base import Backoff, Delivery, PollerContext, SourceGone, client_error_code
from lambdalet.events.sources.stream_events import (
    StreamRecord, dynamodb_record, failed_from, failure_record, halves, kinesis_record, lane_of, payload,
    take_batch)
from lambdalet.invoke.types import new_request_id

if TYPE_CHECKING:
    from lambdalet.store.mappings import Checkpoint

log = logging.getLogger(__name__)

#: How often shards are listed when none ended (Lambda notices a reshard within seconds).
DISCOVERY_SECONDS = 15.0
#: An idle shard is read about once a second, as Lambda reads it.
IDLE_POLL_SECONDS = 1.0
OK, FAILED = "OK", "PROBLEM: Function call failed"
RETRIES_EXHAUSTED, RECORD_AGE_EXCEEDED = "RetryAttemptsExhausted", "RecordAgeExceeded"
#: Error codes that say the stream is not there for us: the mapping stops.
GONE_CODES = ("ResourceNotFoundException", "AccessDeniedException", "AccessDenied", "UnauthorizedOperation")
#: Error codes after which a shard gets a fresh iterator from where its reading got to.
EXPIRED_CODES = ("ExpiredIteratorException", "TrimmedDataAccessException")


@dataclass(frozen=True)
class Shard:
    shard_id: str
    parents: tuple[str, ...]
    #: Closed by a reshard (Kinesis) or a rotation (DynamoDB): it has an end.
    closed: bool


def _shard(description: dict[str, Any]) -> Shard:
    parents = tuple(p for p in (description.get("ParentShardId"), description.get("AdjacentParentShardId")) if p)
    closed = bool(description.get("SequenceNumberRange", {}).get("EndingSequenceNumber"))
    return Shard(description["ShardId"], parents, closed)


class _Stream:
    """The calls one kind of stream answers, through `PollerContext.aws` (never on the event loop)."""

    service = ""
    #: GetRecords' own cap on Limit.
    read_limit = 10_000

    def __init__(self, mapping: EventSourceMapping, ctx: PollerContext) -> None:
        self.mapping, self.ctx = mapping, ctx
        self.arn = mapping.source_arn
        self.region = self.arn.split(":")[3]

    async def call(self, operation: str, **params: Any) -> dict[str, Any]:
        return await self.ctx.aws(self.service, self.region, operation, **params)

    async def shards(self) -> list[Shard]:
        raise NotImplementedError

    async def listing(self) -> list[Shard]:
        """The stream's shards; SourceGone when the stream is not there for us (other errors pass)."""
        try:
            return await self.shards()
        except Exception as exc:
            code = client_error_code(exc)
            if code == "ResourceNotFoundException":
                raise SourceGone(f"The stream {self.arn} does not exist.") from exc
            if code in GONE_CODES:
                raise SourceGone(f"Lambdalet is not allowed to read the stream {self.arn} ({code}).") from exc
            raise

    async def iterator(self, shard_id: str, kind: str, *, after: str | None = None,
                       timestamp: float | None = None) -> str | None:
        raise NotImplementedError

    async def read(self, iterator: str, limit: int) -> dict[str, Any]:
        return await self.call("get_records", ShardIterator=iterator, Limit=min(limit, self.read_limit))

    def record(self, raw: dict[str, Any], shard_id: str) -> StreamRecord:
        raise NotImplementedError


class _Kinesis(_Stream):
    service = "kinesis"

    def __init__(self, mapping: EventSourceMapping, ctx: PollerContext) -> None:
        super().__init__(mapping, ctx)
        self.role = ctx.role(mapping)

    async def shards(self) -> list[Shard]:
        found: list[Shard] = []
        answer = await self.call("list_shards", StreamARN=self.arn)
        while True:
            found.extend(_shard(s) for s in answer.get("Shards", []))
            token = answer.get("NextToken")
            if not token:
                return found
            answer = await self.call("list_shards", NextToken=token)

    async def iterator(self, shard_id: str, kind: str, *, after: str | None = None,
                       timestamp: float | None = None) -> str | None:
        params: dict[str, Any] = {"StreamARN": self.arn, "ShardId": shard_id, "ShardIteratorType": kind}
        if after is not None:
            params["StartingSequenceNumber"] = after
        if timestamp is not None:
            params["Timestamp"] = timestamp
        return (await self.call("get_shard_iterator", **params)).get("ShardIterator")

    async def read(self, iterator: str, limit: int) -> dict[str, Any]:
        # StreamARN is optional on AWS (the iterator names the stream) but moto needs it.
        return await self.call("get_records", ShardIterator=iterator, Limit=min(limit, self.read_limit),
                               StreamARN=self.arn)

    def record(self, raw: dict[str, Any], shard_id: str) -> StreamRecord:
        return kinesis_record(raw, shard_id=shard_id, stream_arn=self.arn, region=self.region, role=self.role)


class _DynamoDB(_Stream):
    service = "dynamodbstreams"
    read_limit = 1_000

    async def shards(self) -> list[Shard]:
        found: list[Shard] = []
        params: dict[str, Any] = {"StreamArn": self.arn}
        while True:
            description = (await self.call("describe_stream", **params))["StreamDescription"]
            found.extend(_shard(s) for s in description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return found
            params["ExclusiveStartShardId"] = last

    async def iterator(self, shard_id: str, kind: str, *, after: str | None = None,
                       timestamp: float | None = None) -> str | None:
        params: dict[str, Any] = {"StreamArn": self.arn, "ShardId": shard_id, "ShardIteratorType": kind}
        if after is not None:
            params["SequenceNumber"] = after
        return (await self.call("get_shard_iterator", **params)).get("ShardIterator")

    def record(self, raw: dict[str, Any], shard_id: str) -> StreamRecord:
        return dynamodb_record(raw, stream_arn=self.arn)


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
        self.stream: _Stream = (_Kinesis if mapping.kind == KINESIS else _DynamoDB)(mapping, ctx)
        self.filters = _filters(self.settings.get("FilterCriteria"))
        self._finished: set[str] = set()
        self._initial: set[str] = set()

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
                    self._initial = {shard.shard_id for shard in shards}
                    first = False
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
            reader = _ShardReader(self, shard.shard_id, after, position)
            readers[shard.shard_id] = asyncio.create_task(reader.run(), name=f"stream-{shard.shard_id}")


def _filters(value: Any) -> Any:
    """The mapping's compiled FilterCriteria (None: every record goes to the function)."""
    if not value:
        return None
    from lambdalet.events.filtering import parse_filter_criteria  # only mappings with filters pay for it
    return parse_filter_criteria(value)


class _ShardReader:
    """Reads one shard to its end (or forever, while it is open) and delivers its batches."""

    def __init__(self, poller: StreamPoller, shard_id: str, after: str | None, position: str) -> None:
        self.poller, self.ctx, self.mapping = poller, poller.ctx, poller.mapping
        self.stream = poller.stream
        self.shard_id = shard_id
        settings = poller.settings
        self.batch_size: int = settings["BatchSize"]
        self.window: float = float(settings.get("MaximumBatchingWindowInSeconds") or 0)
        self.report_failures = "ReportBatchItemFailures" in (settings.get("FunctionResponseTypes") or [])
        lanes = max(1, settings.get("ParallelizationFactor") or 1)
        self.lanes: list[deque[StreamRecord]] = [deque() for _ in range(lanes)]
        self.arrivals = [asyncio.Event() for _ in self.lanes]
        self.room = asyncio.Event()
        #: The newest sequence number read: where a fresh iterator resumes (records after it are unread).
        self.position = after
        self.start = position
        self.ended = False
        self.progress = _Progress()
        self.saved = after
        self.saving = asyncio.Lock()

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._read())]
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
        timestamp = self.poller.settings.get("StartingPositionTimestamp") if self.start == "AT_TIMESTAMP" else None
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
                started = time.monotonic()
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
            await self._accept(records)
            iterator = answer.get("NextShardIterator")
            if iterator is None:
                break
            if not records and not answer.get("MillisBehindLatest"):
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
                if count == self.batch_size or count < len(head) or self.ended or waited >= self.window:
                    batch = [queue.popleft() for _ in range(count)]
                    self.room.set()
                    return batch
                timeout: float | None = self.window - waited
            elif self.ended:
                return None
            else:
                timeout = None
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    async def _deliver(self, batch: list[StreamRecord]) -> None:
        """Invoke with a batch until each of its records is delivered or discarded."""
        parts: deque[tuple[list[StreamRecord], int]] = deque([(batch, 0)])  # (records, invocations so far)
        while parts:
            records, attempts = parts.popleft()
            parts.extendleft(reversed(await self._attempt(records, attempts)))

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
                delivery = await self.ctx.invoke(self.mapping, payload(records))
            except (TooManyRequestsException, ResourceNotFoundException) as exc:
                log.info("mapping %s: cannot invoke the function yet: %s", self.mapping.uuid, exc)
                await backoff.wait()
                continue
            attempts += 1
            result = delivery.result
            failed = 0 if result.function_error else failed_from(result.payload, records, self.report_failures)
            if failed is None:
                self.ctx.count(self.mapping, "delivered", len(records))
                await self.ctx.report(self.mapping, OK)
                await self._finish(records)
                return []
            await self.ctx.report(self.mapping, FAILED)
            if failed:
                self.ctx.count(self.mapping, "delivered", failed)
                await self._finish(records[:failed])
                records = records[failed:]
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
                    await self.ctx.send_failure_record(destination, record)
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

    async def _checkpoint(self, closed: bool = False) -> None:
        """Save the shard's checkpoint if it moved (or the shard ended); one write per batch at most."""
        async with self.saving:
            newest = self.progress.advance()
            if newest is None and not closed:
                return
            self.saved = newest or self.saved
            await self.ctx.save_checkpoint(self.mapping, self.shard_id, self.saved, closed=closed)
