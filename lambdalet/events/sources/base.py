"""What every poller gets: AWS clients, the invoker, checkpoints, state reports and metrics.

A poller reads one mapping's source and calls `PollerContext.invoke` with each batch. Invocations
go through the same invoker, concurrency leases and warm pools as a synchronous Invoke (a mapping
invokes synchronously, as Lambda's pollers do). AWS services are reached with boto3 configured the
standard way (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SQS`, ... and credentials in the server's
environment), on a thread pool: boto3 blocks, and a long poll blocks for up to 20 s.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import queue
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol

from lambdalet.errors import check_active
from lambdalet.events.destinations import parse_arn, s3_record
from lambdalet.events.mappings import EventSourceMapping
from lambdalet.invoke.types import Invocation, InvocationResult, new_request_id
from lambdalet.model import alias_of

if TYPE_CHECKING:
    from lambdalet.functions import FunctionRegistry
    from lambdalet.invoke.invoker import Invoker
    from lambdalet.metrics import Metrics
    from lambdalet.store.mappings import Checkpoint, MappingStore

log = logging.getLogger(__name__)
#: Threads for blocking AWS calls: enough for every poller's long poll at once on a busy server.
AWS_THREADS = 64


class DaemonThreads:
    """A thread pool whose threads never hold up the server's exit. ThreadPoolExecutor's threads are
    joined when the interpreter exits, and a long poll blocks one for up to 20 s: a stopping server
    would wait for every mapping's poll. Calls still under way at exit are abandoned (their messages
    come back after the queue's visibility timeout: at least once)."""

    def __init__(self, size: int, name: str) -> None:
        self._calls: "queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None]" = queue.SimpleQueue()
        self._size, self._name = size, name
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, function: Callable[[], Any]) -> "Future[Any]":
        future: Future[Any] = Future()
        self._calls.put((future, function))
        with self._lock:
            if len(self._threads) < self._size:  # grown on demand, up to `size`
                thread = threading.Thread(target=self._serve, name=f"{self._name}-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
        return future

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            future, function = call
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(function())
                except BaseException as exc:  # handed to whoever awaits the future
                    future.set_exception(exc)

    def shutdown(self) -> None:
        for _ in self._threads:
            self._calls.put(None)


class Poller(Protocol):
    """Reads one mapping's source until cancelled (a changed, disabled or deleted mapping)."""

    async def run(self) -> None: ...

    async def settle(self) -> None:
        """After a cancelled run: return once nothing it started is still under way (a long poll
        whose messages must be given back), so that a disabled mapping reads nothing more."""


@dataclass(frozen=True)
class Delivery:
    """One batch's invocation: its result, and the request id it ran under."""

    request_id: str
    result: InvocationResult
    executed_version: str


class SourceGone(Exception):
    """The source answers that it does not exist or refuses access: the mapping stops, saying why."""


class PollerContext:
    def __init__(self, functions: "FunctionRegistry", invoker: "Invoker", store: "MappingStore",
                 metrics: "Metrics", report: Callable[[EventSourceMapping, str], Awaitable[None]],
                 aws_session: "Callable[[tuple[str, str]], Any] | None" = None) -> None:
        """`aws_session((function, role))`: a boto3 session acting as a function's role
        (--role-credentials upstream); without, the server's own credentials are used."""
        self.functions = functions
        self.invoker = invoker
        self.store = store
        self.metrics = metrics
        self._report = report
        self._threads = DaemonThreads(AWS_THREADS, "lambdalet-pollers")
        self._aws_session = aws_session
        self._clients: dict[tuple[str, str, tuple[str, str] | None], Any] = {}
        self._lock = threading.Lock()

    # -- AWS --------------------------------------------------------------------------------------

    def acting_role(self, function_name: str) -> tuple[str, str] | None:
        """The function and its execution role, whose credentials a mapping of it acts with
        (None: the server's own, when there is no upstream STS to act as roles)."""
        if self._aws_session is None or not self.functions.exists(function_name):
            return None
        return function_name, self.functions.get(function_name).latest.role

    def client(self, service: str, region: str, function_name: str | None = None) -> Any:
        """A boto3 client (thread-safe), made once per service, region and role (that of
        `function_name`'s, see `acting_role`). Retries are the pollers' own (with backoff), so botocore's
        are few; reads long enough for a 20 s long poll."""
        role = self.acting_role(function_name) if function_name is not None else None
        with self._lock:
            client = self._clients.get((service, region, role))
            if client is None:
                import boto3
                from botocore.config import Config
                session = self._aws_session(role) if self._aws_session is not None and role is not None else None
                client = (session or boto3.session.Session()).client(service, region_name=region, config=Config(
                    retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5, read_timeout=30,
                    max_pool_connections=AWS_THREADS))
                self._clients[(service, region, role)] = client
            return client

    async def aws(self, service: str, region: str, operation: str, *, function_name: str | None = None,
                  **params: Any) -> dict[str, Any]:
        """One AWS API call, off the event loop (the client too: making one may assume a role), as
        `function_name`'s role (see `client`)."""
        return await asyncio.wrap_future(self._threads.submit(
            lambda: getattr(self.client(service, region, function_name), operation)(**params)))

    def submit(self, function: Callable[[], Any]) -> "Future[Any]":
        """Start a blocking call on the pollers' threads; the caller awaits (or abandons) it."""
        return self._threads.submit(function)

    async def blocking(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run a short blocking call (the store) off the loop; not on the AWS threads, which long
        polls may all be holding."""
        return await asyncio.to_thread(function, *args)

    # -- the function -----------------------------------------------------------------------------

    def role(self, mapping: EventSourceMapping) -> str:
        """The execution role of the function a mapping invokes (Kinesis' `invokeIdentityArn`)."""
        return self.functions.config(mapping.function_name, mapping.qualifier).role

    async def invoke(self, mapping: EventSourceMapping, payload: bytes, trace: str | None = None) -> Delivery:
        """Invoke the mapping's function synchronously with one batch (`trace`: the trace header its
        records came with). Raises what the invoker raises: TooManyRequestsException when throttled,
        ResourceNotFoundException when the function (or its version or alias) is gone,
        RecursiveInvocationException when the trace says the batch is a loop stopped."""
        config = self.functions.config(mapping.function_name, mapping.qualifier, draw=random.random())
        check_active(config.state)  # being created: the batch waits, as a throttled one does
        request_id = new_request_id()
        invoked_arn = mapping.function_arn
        invocation = Invocation(request_id, payload, invoked_arn, alias=alias_of(mapping.qualifier))
        if trace is not None:
            invocation.trace_id = trace
        result = await self.invoker.invoke(config, invocation)
        return Delivery(request_id, result, result.executed_version)

    # -- bookkeeping ------------------------------------------------------------------------------

    async def report(self, mapping: EventSourceMapping, last_result: str) -> None:
        """LastProcessingResult (written only when it changes, so a busy mapping writes nothing)."""
        await self._report(mapping, last_result)

    async def checkpoints(self, mapping: EventSourceMapping) -> "dict[str, Checkpoint]":
        return await self.blocking(self.store.checkpoints, mapping.uuid)

    async def save_checkpoint(self, mapping: EventSourceMapping, shard_id: str, sequence_number: str | None, *,
                              closed: bool = False, window_state: str | None = None,
                              started_at: float | None = None) -> None:
        await self.blocking(lambda: self.store.save_checkpoint(mapping.uuid, shard_id, sequence_number,
                                                               closed=closed, window_state=window_state,
                                                               started_at=started_at))

    def count(self, mapping: EventSourceMapping, outcome: str, records: int) -> None:
        """Records polled, filtered, delivered or failed (`/metrics`)."""
        if records:
            self.metrics.mapping_records.labels(mapping.uuid, mapping.function_name, outcome).inc(records)

    def observe_poll(self, mapping: EventSourceMapping, seconds: float) -> None:
        self.metrics.mapping_poll_latency.labels(mapping.uuid).observe(seconds)

    async def send_failure_record(self, destination_arn: str, record: dict[str, Any], *, s3_prefix: str,
                                  function_arn: str, payload: bytes) -> None:
        """An on-failure destination (SQS queue, SNS topic or S3 bucket) gets Lambda's failure
        record; raises when it cannot be delivered (the poller then keeps the batch and tries
        again). An S3 bucket also gets the batch itself (`payload`, the event the function got),
        as on Lambda, in an object under `s3_prefix`."""
        target = parse_arn(destination_arn)
        body = json.dumps(record)
        name = function_arn.split(":")[6] if function_arn.count(":") >= 6 else None
        if target is not None and target.service == "s3":
            region, put = s3_record(target, function_arn, s3_prefix,
                                    json.dumps({**record, "payload": payload.decode(errors="replace")}))
            await self.aws("s3", region, "put_object", function_name=name, **put)
        elif target is not None and target.service == "sqs":
            url = (await self.aws("sqs", target.region, "get_queue_url", function_name=name,
                                  QueueName=target.resource, QueueOwnerAWSAccountId=target.account))["QueueUrl"]
            await self.aws("sqs", target.region, "send_message", function_name=name, QueueUrl=url, MessageBody=body)
        elif target is not None and target.service == "sns":
            await self.aws("sns", target.region, "publish", function_name=name, TopicArn=destination_arn,
                           Message=body)
        else:
            raise ValueError(f"{destination_arn} is not an SQS queue, SNS topic or S3 bucket")

    def close(self) -> None:
        """Stop without waiting for long polls in flight (their messages return to the queue)."""
        self._threads.shutdown()


def client_error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ("" for anything else)."""
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


class Backoff:
    """Exponential backoff with jitter for a poller's retries (throttles, source errors)."""

    def __init__(self, first: float = 0.5, limit: float = 30.0) -> None:
        self.first, self.limit = first, limit
        self.delay = 0.0

    def reset(self) -> None:
        self.delay = 0.0

    async def wait(self) -> None:
        self.delay = min(self.limit, self.delay * 2 if self.delay else self.first)
        await asyncio.sleep(self.delay * random.uniform(0.5, 1.0))
