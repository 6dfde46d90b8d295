"""The SQS poller: long polls a queue, invokes the function with Lambda's batch, deletes what succeeded.

As on Lambda:
- a batch is sent when it has `BatchSize` messages, when `MaximumBatchingWindowInSeconds` has passed
  since its first message, or when it would pass 6 MB (Lambda's payload limit);
- messages are deleted only after the function succeeded with them; a function error, a throttle or
  a platform error leaves them to the queue, which shows them again after its visibility timeout
  (so its redrive policy and dead-letter queue work); with `ReportBatchItemFailures` only the
  messages the function lists stay; messages that match no filter are deleted unseen;
- FIFO order is the queue's own: it hands out no later message of a group while one is in flight;
- a disabled or deleted mapping receives nothing more once it says Disabled (or is gone): a long poll
  under way when it stopped is waited for (`settle`) and what it received is made visible again;
- concurrency follows the backlog: one long poll while the queue is idle, five concurrent batches
  once messages arrive, one more every 0.2 s (300 a minute) while batches come back full, up to
  `ScalingConfig.MaximumConcurrency` (default 1,000); a poller whose receive comes back empty ends
  while others remain.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from concurrent.futures import Future
from typing import Any

from lambdalet.errors import (
    LambdaError, RecursiveInvocationException, ResourceNotFoundException, TooManyRequestsException,
)
from lambdalet.events.filtering import parse_filter_criteria
from lambdalet.events.mappings import EventSourceMapping
from lambdalet.events.sources.base import Backoff, PollerContext, SourceGone, client_error_code
from lambdalet.events.sources.item_failures import reported_failures
from lambdalet.invoke.leases import HostMemoryExhausted
from lambdalet.invoke.recursion import lineage_count

log = logging.getLogger(__name__)
#: Lambda's pollers wait 20 s; 10 s bounds how long a disabled mapping stays Disabling (its last
#: poll is waited for) at a few more requests to an idle queue.
LONG_POLL_S = 10
MAX_PAYLOAD = 6 * 1024 * 1024
RECORD_OVERHEAD = 1024  # bytes a record adds around its body and attributes, roughly, in the event
DEFAULT_MAX_CONCURRENCY = 1000
BURST_CONCURRENCY = 5
SCALE_UP_EVERY_S = 0.2
#: The system attributes Lambda passes on, in its order (those the message has).
ATTRIBUTES = ("ApproximateReceiveCount", "AWSTraceHeader", "SentTimestamp", "SequenceNumber", "MessageGroupId",
              "SenderId", "MessageDeduplicationId", "ApproximateFirstReceiveTimestamp", "DeadLetterQueueSourceArn")
GONE_CODES = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "AccessDenied",
              "AccessDeniedException")


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One message as Lambda hands it to the function."""
    system = message.get("Attributes", {})
    attributes = {name: str(system[name]) for name in ATTRIBUTES if name in system}
    user: dict[str, Any] = {}
    for name, value in message.get("MessageAttributes", {}).items():
        entry: dict[str, Any] = {}
        if "StringValue" in value:
            entry["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            entry["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
        entry["stringListValues"] = list(value.get("StringListValues", []))
        entry["binaryListValues"] = [base64.b64encode(v).decode() for v in value.get("BinaryListValues", [])]
        entry["dataType"] = value["DataType"]
        user[name] = entry
    return {"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
            "attributes": attributes, "messageAttributes": user,
            "md5OfMessageAttributes": message.get("MD5OfMessageAttributes"), "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region}


def failed_items(payload: bytes, ids: set[str]) -> set[str] | None:
    """The message ids a ReportBatchItemFailures answer names; None: the whole batch failed (an
    answer that cannot be read, or that names a message not in the batch)."""
    reported = reported_failures(payload)
    if reported is None or not set(reported) <= ids:
        return None
    return set(reported)


def chunks_under_limit(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split a batch so that each invocation's event stays under Lambda's 6 MB payload limit."""
    chunks: list[list[dict[str, Any]]] = [[]]
    size = 0
    for record in records:
        record_size = len(record["body"]) + RECORD_OVERHEAD
        if chunks[-1] and size + record_size > MAX_PAYLOAD:
            chunks.append([])
            size = 0
        chunks[-1].append(record)
        size += record_size
    return chunks


class SqsPoller:
    def __init__(self, mapping: EventSourceMapping, ctx: PollerContext) -> None:
        self.mapping = mapping
        self.ctx = ctx
        parts = mapping.source_arn.split(":")
        self.region, self.account, self.queue = parts[3], parts[4], parts[5]
        settings = mapping.settings
        self.batch_size: int = settings["BatchSize"]
        self.window: int = settings["MaximumBatchingWindowInSeconds"]
        self.report_failures = "ReportBatchItemFailures" in settings.get("FunctionResponseTypes", [])
        self.filters = parse_filter_criteria(settings.get("FilterCriteria") or None, source="sqs")
        self.max_concurrency: int = (settings.get("ScalingConfig") or {}).get("MaximumConcurrency",
                                                                               DEFAULT_MAX_CONCURRENCY)
        self.url = ""
        self._workers: set[asyncio.Task[None]] = set()
        self._last_scale = 0.0
        self._done = asyncio.Event()
        self._gone = ""  # why the source stopped answering, once it has
        self._returning: set[Future[None]] = set()  # abandoned long polls, giving back what they get

    async def run(self) -> None:
        self.url = await self._queue_url()
        self._add_worker()
        try:
            await self._done.wait()  # set only when the source is gone
        finally:
            for worker in self._workers:
                worker.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
        raise SourceGone(self._gone)

    async def _queue_url(self) -> str:
        try:
            return (await self.ctx.aws("sqs", self.region, "get_queue_url", function_name=self.mapping.function_name, QueueName=self.queue,
                                       QueueOwnerAWSAccountId=self.account))["QueueUrl"]
        except Exception as exc:
            if client_error_code(exc) in GONE_CODES:
                raise SourceGone(f"the queue {self.mapping.source_arn} does not exist or refuses access "
                                 f"({client_error_code(exc)})") from None
            raise

    # -- scaling --------------------------------------------------------------------------------

    def _add_worker(self) -> None:
        task = asyncio.get_running_loop().create_task(self._work())
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)

    def _scale(self, full: bool) -> None:
        """Messages arrived: at least five pollers, one more each 0.2 s while batches come full."""
        target = len(self._workers)
        if target < min(BURST_CONCURRENCY, self.max_concurrency):
            target = min(BURST_CONCURRENCY, self.max_concurrency)
        elif full and time.monotonic() - self._last_scale >= SCALE_UP_EVERY_S and target < self.max_concurrency:
            target += 1
            self._last_scale = time.monotonic()
        while len(self._workers) < target:
            self._add_worker()

    async def _work(self) -> None:
        backoff = Backoff()
        while True:
            try:
                messages = await self._receive()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                code = client_error_code(exc)
                if code in GONE_CODES:
                    self._gone = f"the queue {self.mapping.source_arn} does not exist or refuses access ({code})"
                    self._done.set()
                    return
                log.warning("event source mapping %s: cannot receive from %s: %s", self.mapping.uuid,
                            self.mapping.source_arn, exc)
                await backoff.wait()
                continue
            if not messages:
                if len(self._workers) > 1:
                    return  # the backlog is gone: fewer pollers
                continue
            self._scale(full=len(messages) >= min(self.batch_size, 10))
            if await self._process(messages):
                backoff.reset()
            else:
                await backoff.wait()

    # -- one batch ------------------------------------------------------------------------------

    async def _receive_once(self, count: int, wait: int) -> list[dict[str, Any]]:
        started = time.monotonic()
        name = self.mapping.function_name  # the client is made (and the role assumed) on the pollers' thread
        future = self.ctx.submit(lambda: self.ctx.client("sqs", self.region, name).receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=count, WaitTimeSeconds=wait, AttributeNames=["All"],
            MessageAttributeNames=["All"]))
        try:
            answer = await asyncio.wrap_future(future)
        except asyncio.CancelledError:  # a long poll still under way takes messages: give them back
            returning = self.ctx.submit(lambda: self._give_back(future))
            self._returning.add(returning)
            returning.add_done_callback(self._returning.discard)
            raise
        self.ctx.observe_poll(self.mapping, time.monotonic() - started)
        return answer.get("Messages", [])

    async def settle(self) -> None:
        """Wait until the long polls abandoned by the cancelled run have ended and given back what
        they received."""
        await asyncio.gather(*(asyncio.wrap_future(f) for f in list(self._returning)), return_exceptions=True)

    def _give_back(self, receive: "Future[dict[str, Any]]") -> None:
        """On a poller thread: once an abandoned long poll ends, its messages become visible again."""
        try:
            messages = receive.result().get("Messages", [])
        except BaseException:  # it failed or was never run: nothing was received
            return
        if messages:
            try:
                self._change_visibility(messages, 0)
            except Exception as exc:  # they come back after the visibility timeout instead
                log.info("event source mapping %s: could not return %d messages early: %s", self.mapping.uuid,
                         len(messages), exc)

    def _change_visibility(self, messages: list[dict[str, Any]], seconds: int) -> None:
        client = self.ctx.client("sqs", self.region, self.mapping.function_name)
        for start in range(0, len(messages), 10):
            client.change_message_visibility_batch(QueueUrl=self.url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": seconds}
                for i, m in enumerate(messages[start:start + 10])])

    async def _receive(self) -> list[dict[str, Any]]:
        """One batch: up to BatchSize messages within the batching window (from the first message)."""
        messages: list[dict[str, Any]] = []
        size = 0
        deadline = 0.0
        while len(messages) < self.batch_size:
            if messages:
                remaining = deadline - time.monotonic()
                if not self.window or remaining <= 0:
                    break
                wait = min(LONG_POLL_S, int(remaining))
            else:
                wait = LONG_POLL_S
            got = await self._receive_once(min(10, self.batch_size - len(messages)), wait)
            if not got:
                break
            if not messages:
                deadline = time.monotonic() + self.window
            messages.extend(got)
            size += sum(len(m["Body"]) + RECORD_OVERHEAD for m in got)
            if size >= MAX_PAYLOAD:
                break
        return messages

    async def _process(self, messages: list[dict[str, Any]]) -> bool:
        """Filter, invoke, delete; False when the function could not be invoked (back off)."""
        ctx, mapping = self.ctx, self.mapping
        ctx.count(mapping, "polled", len(messages))
        records = [sqs_record(m, mapping.source_arn, self.region) for m in messages]
        if self.filters is not None:
            matched = [self.filters.matches(r, "sqs") for r in records]
            dropped = [r for r, match in zip(records, matched) if not match]
            ctx.count(mapping, "filtered", len(dropped))
            await self._delete(dropped)
            records = [r for r, match in zip(records, matched) if match]
        invoked = True
        for chunk in chunks_under_limit(records) if records else []:
            invoked = await self._deliver(chunk) and invoked
        return invoked

    async def _deliver(self, records: list[dict[str, Any]]) -> bool:
        ctx, mapping = self.ctx, self.mapping
        try:
            delivery = await ctx.invoke(mapping, json.dumps({"Records": records}).encode(),
                                        self._trace(records))
        except RecursiveInvocationException:
            # A loop stopped: the messages are not deleted, so the queue's redrive policy moves them
            # to its dead-letter queue once their receive count is reached, as on AWS.
            log.warning("event source mapping %s: recursive loop of %s stopped; %d message(s) left to the "
                        "queue's redrive policy", mapping.uuid, mapping.function_arn, len(records))
            ctx.count(mapping, "failed", len(records))
            return True
        except (TooManyRequestsException, HostMemoryExhausted):
            ctx.count(mapping, "failed", len(records))
            return False  # the messages come back after their visibility timeout
        except ResourceNotFoundException as exc:
            log.warning("event source mapping %s: %s", mapping.uuid, exc.message)
            ctx.count(mapping, "failed", len(records))
            return False
        except LambdaError as exc:
            log.warning("event source mapping %s: could not invoke %s: %s", mapping.uuid, mapping.function_arn,
                        exc.message)
            ctx.count(mapping, "failed", len(records))
            return False
        result = delivery.result
        if result.function_error:
            ctx.count(mapping, "failed", len(records))
            return True
        done = records
        if self.report_failures:
            failed = failed_items(result.payload, {r["messageId"] for r in records})
            if failed is None:
                ctx.count(mapping, "failed", len(records))
                return True
            done = [r for r in records if r["messageId"] not in failed]
            ctx.count(mapping, "failed", len(records) - len(done))
        ctx.count(mapping, "delivered", len(done))
        await self._delete(done)
        return True

    def _trace(self, records: list[dict[str, Any]]) -> str | None:
        """The trace header a batch is invoked with: its records' AWSTraceHeader that has gone
        round the mapping's function most often (a loop is stopped by its deepest message)."""
        traces = [r["attributes"]["AWSTraceHeader"] for r in records if "AWSTraceHeader" in r["attributes"]]
        if not traces:
            return None
        key = self.ctx.invoker.recursion.key(self.mapping.function_name)
        return max(traces, key=lambda trace: -1 if (count := lineage_count(trace, key)) is None else count)

    async def _delete(self, records: list[dict[str, Any]]) -> None:
        for start in range(0, len(records), 10):
            entries = [{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(records[start:start + 10])]
            try:
                answer = await self.ctx.aws("sqs", self.region, "delete_message_batch", function_name=self.mapping.function_name, QueueUrl=self.url,
                                            Entries=entries)
            except Exception as exc:  # they come back after their visibility timeout: at least once
                log.warning("event source mapping %s: could not delete %d messages: %s", self.mapping.uuid,
                            len(entries), exc)
                continue
            if answer.get("Failed"):
                log.warning("event source mapping %s: %d messages could not be deleted: %s", self.mapping.uuid,
                            len(answer["Failed"]), answer["Failed"][0].get("Message", ""))
