"""Where an asynchronous invocation's outcome goes: destinations and dead-letter queues.

- **Destinations** (`DestinationConfig.OnSuccess` / `OnFailure` of an event invoke config) get
  Lambda's invocation record: the request and response with `requestContext.condition` saying why.
  A record goes to an SQS queue or an SNS topic as the message, to an EventBridge bus as an event's
  `detail`, to another function of this server as the payload of an asynchronous invoke, or (on
  failure only) to an S3 bucket as an object under `aws/lambda/async/<function>/` (`s3_record`).
- **Dead-letter queues** (`DeadLetterConfig.TargetArn` of a function version, SQS or SNS) get the
  original event unchanged, with the `RequestID`, `ErrorCode` and `ErrorMessage` attributes.

AWS services are reached with boto3, configured the standard botocore way: `AWS_ENDPOINT_URL`,
`AWS_ENDPOINT_URL_SQS`, ... and credentials in the server's environment, so the same server works
against AWS itself or any server that speaks its protocols. As on Lambda, a record that cannot be
delivered (after botocore's own retries) is logged and dropped: it never blocks the queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from lambdalet.errors import InvalidParameterValueException
from lambdalet.invoke.types import InvocationResult
from lambdalet.validation import constraint_error

log = logging.getLogger(__name__)

#: The pattern botocore's model gives DestinationConfig's `Destination` (and the 350 length cap).
DESTINATION_ARN = re.compile(r"^$|arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:([a-z]{2}(-gov)?-[a-z]+-\d{1})?:(\d{12})?:(.*)")
DESTINATION_ARN_MAX = 350
DESTINATION_SERVICES = ("sqs", "sns", "events", "lambda", "s3")
ON_FAILURE_ONLY = ("s3",)  # an S3 bucket takes failure records only, as on Lambda
DEAD_LETTER_SERVICES = ("sqs", "sns")
SUCCESS_DETAIL_TYPE = "Lambda Function Invocation Result - Success"
FAILURE_DETAIL_TYPE = "Lambda Function Invocation Result - Failure"
ERROR_MESSAGE_LIMIT = 1024  # the DLQ's ErrorMessage attribute: the first 1 KB


@dataclass(frozen=True)
class Target:
    """A parsed destination ARN: `arn:<partition>:<service>:<region>:<account>:<resource>`."""

    arn: str
    service: str
    region: str
    account: str
    resource: str


def parse_arn(arn: str) -> Target | None:
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or not parts[2] or not parts[5]:
        return None
    return Target(arn, parts[2], parts[3], parts[4], parts[5])


def check_destination(arn: str, member: str) -> Target | None:
    """Validate one `Destination` of a DestinationConfig; None for an empty one (no destination)."""
    if len(arn) > DESTINATION_ARN_MAX or not DESTINATION_ARN.fullmatch(arn):
        requirement = (f"have length less than or equal to {DESTINATION_ARN_MAX}" if len(arn) > DESTINATION_ARN_MAX
                       else f"satisfy regular expression pattern: {DESTINATION_ARN.pattern}")
        raise constraint_error(arn, member, requirement)
    if not arn:
        return None
    target = parse_arn(arn)
    if target is None or target.service not in DESTINATION_SERVICES:
        raise InvalidParameterValueException(
            f"The destination ARN {arn} is invalid. Lambdalet delivers to an SQS queue, an SNS topic, an "
            "EventBridge event bus, a Lambda function or (on failure) an S3 bucket.")
    if target.service == "s3" and (target.region or target.account or "/" in target.resource):
        raise InvalidParameterValueException(f"The destination ARN {arn} is invalid: it is not an S3 bucket.")
    if target.service == "events" and not target.resource.startswith("event-bus/"):
        raise InvalidParameterValueException(f"The destination ARN {arn} is invalid: it is not an event bus.")
    if target.service == "lambda" and not target.resource.startswith("function:"):
        raise InvalidParameterValueException(f"The destination ARN {arn} is invalid: it is not a function.")
    return target


def s3_record(target: Target, function_arn: str, prefix: str, body: str) -> tuple[str, dict[str, Any]]:
    """A failure record as an object in an S3 bucket: the region of the client that writes it (a
    bucket's ARN names none: the function's) and put_object's arguments. Lambda's key is
    `<prefix>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<uuid>`, the prefix `aws/lambda/async/<function>` for
    asynchronous invocations and `aws/lambda/<mapping UUID>/<shard>` for an event source mapping's."""
    moment = datetime.fromtimestamp(time.time(), timezone.utc)
    key = f"{prefix}/{moment:%Y/%m/%d}/{moment:%Y-%m-%dT%H.%M.%S}-{uuid.uuid4()}"
    return (target.region or function_arn.split(":")[3],
            {"Bucket": target.resource, "Key": key, "Body": body.encode(), "ContentType": "application/json"})


def check_dead_letter(arn: str) -> str:
    """Validate DeadLetterConfig.TargetArn ("" removes the dead-letter queue)."""
    if not arn:
        return ""
    if not arn.startswith("arn:"):
        raise InvalidParameterValueException("Invalid dead letter ARN: ARNs must start with 'arn:'")
    target = parse_arn(arn)
    if target is None or target.service not in DEAD_LETTER_SERVICES:
        raise InvalidParameterValueException(
            f"The provided target arn {arn} is invalid: a dead-letter queue is an SQS queue or an SNS topic.")
    return arn


def _json_or_text(data: bytes) -> Any:
    try:
        return json.loads(data) if data else None
    except (ValueError, RecursionError):
        return data.decode(errors="replace")


def invocation_record(*, request_id: str, function_arn: str, condition: str, attempts: int, payload: bytes,
                      result: InvocationResult | None, at: float) -> dict[str, Any]:
    """Lambda's invocation record. `function_arn` is qualified; without any attempt's result
    (an event too old to run at all) there is no responseContext or responsePayload."""
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {"requestId": request_id, "functionArn": function_arn, "condition": condition,
                           "approximateInvokeCount": attempts},
        "requestPayload": _json_or_text(payload),
    }
    if result is not None:
        record["responseContext"] = {"statusCode": 200, "executedVersion": result.executed_version}
        if result.function_error:
            record["responseContext"]["functionError"] = "Unhandled"
        record["responsePayload"] = _json_or_text(result.payload)
    return record


@dataclass(frozen=True)
class Failure:
    """Why the last attempt of an event failed, for the dead-letter queue's attributes."""

    error_code: int  # the HTTP status of the failed attempt: 200 for a function error, 429 throttled, ...
    message: str

    @classmethod
    def of_result(cls, result: InvocationResult) -> "Failure":
        body = _json_or_text(result.payload)
        message = body.get("errorMessage") if isinstance(body, dict) else None
        return cls(200, str(message or result.error_type or "Unhandled"))


#: A function and its execution role's ARN: whose credentials a delivery is made with.
Role = tuple[str, str]


class Deliveries:
    """Sends records and dead letters. boto3 is blocking, so calls run on a small thread pool;
    clients (thread-safe) are made once per service and region."""

    def __init__(self, to_function: Callable[[Target, bytes, "str | None"], Awaitable[None]], *,
                 threads: int = 8, aws_session: "Callable[[Role], Any] | None" = None) -> None:
        """`aws_session(role)`: a boto3 session acting as a function's role (--role-credentials
        upstream), or None for the server's own credentials."""
        self._to_function = to_function
        self._aws_session = aws_session
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lambdalet-destinations")
        self._clients: dict[tuple[str, str, Role | None], Any] = {}
        self._queue_urls: dict[str, str] = {}
        self._lock = threading.Lock()

    async def send_record(self, arn: str, record: dict[str, Any], function_arn: str, trace: str | None = None,
                          role: Role | None = None) -> bool:
        """Deliver one invocation record (`trace`: the invocation's, for a function destination;
        `role`: whose credentials to send it with); False (logged) when it could not be."""
        target = parse_arn(arn)
        body = json.dumps(record)
        try:
            if target is None:
                raise ValueError("not an ARN")
            if target.service == "lambda":
                await self._to_function(target, body.encode(), trace)
                return True
            detail_type = SUCCESS_DETAIL_TYPE if record["requestContext"]["condition"] == "Success" else FAILURE_DETAIL_TYPE
            await self._call(self._send_record, target, body, detail_type, function_arn, trace, role)
            return True
        except Exception as exc:
            log.warning("could not deliver the record of %s to %s: %s", record["requestContext"]["requestId"], arn,
                        exc)
            return False

    async def send_dead_letter(self, arn: str, payload: bytes, request_id: str, failure: Failure,
                               role: Role | None = None) -> bool:
        """Send one event to a dead-letter queue; False (logged) when it could not be."""
        target = parse_arn(arn)
        try:
            if target is None:
                raise ValueError("not an ARN")
            await self._call(self._send_dead_letter, target, payload.decode(errors="replace"), request_id, failure,
                             role)
            return True
        except Exception as exc:
            log.warning("could not send %s to the dead-letter queue %s: %s", request_id, arn, exc)
            return False

    async def send_to_queue(self, arn: str, body: str, attributes: dict[str, str], what: str) -> bool:
        """Send one message with String attributes to an SQS queue (a schedule's dead-letter queue);
        False (logged, naming `what`) when it could not be."""
        target = parse_arn(arn)
        message_attributes = {name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()}
        try:
            if target is None or target.service != "sqs":
                raise ValueError("not an SQS queue ARN")
            await self._call(self._send_message, target, body, message_attributes)
            return True
        except Exception as exc:
            log.warning("could not send %s to %s: %s", what, arn, exc)
            return False

    async def _call(self, function: Callable[..., None], *args: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def close(self) -> None:
        """Stop without waiting: an outcome still being sent is sent again after a restart."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- blocking: on the executor --------------------------------------------------------------

    def _client(self, service: str, region: str, role: Role | None = None) -> Any:
        """A client made once per service, region and role (the server's own credentials when
        there is no upstream STS to act as the role with)."""
        key = (service, region, role if self._aws_session is not None else None)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                import boto3  # only servers with destinations pay for importing it
                from botocore.config import Config
                session = self._aws_session(role) if self._aws_session is not None and role is not None else None
                client = (session or boto3.session.Session()).client(
                    service, region_name=region,
                    config=Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=10))
                self._clients[key] = client
            return client

    def _queue_url(self, target: Target, role: Role | None = None) -> str:
        url = self._queue_urls.get(target.arn)
        if url is None:
            url = self._client("sqs", target.region, role).get_queue_url(
                QueueName=target.resource, QueueOwnerAWSAccountId=target.account)["QueueUrl"]
            self._queue_urls[target.arn] = url
        return url

    def _send_message(self, target: Target, body: str, attributes: dict[str, dict[str, str]],
                      role: Role | None = None) -> None:
        self._client("sqs", target.region, role).send_message(
            QueueUrl=self._queue_url(target, role), MessageBody=body, MessageAttributes=attributes)

    def _send_record(self, target: Target, body: str, detail_type: str, function_arn: str,
                     trace: str | None = None, role: Role | None = None) -> None:
        """`trace`: the invocation's trace header, which goes on with the record (SQS's AWSTraceHeader,
        EventBridge's TraceHeader) so that a loop back to the function is counted."""
        if target.service == "sqs":
            traced = {"MessageSystemAttributes": {"AWSTraceHeader": {"DataType": "String", "StringValue": trace}}} \
                if trace else {}
            self._client("sqs", target.region, role).send_message(QueueUrl=self._queue_url(target, role),
                                                                  MessageBody=body, **traced)
        elif target.service == "sns":
            self._client("sns", target.region, role).publish(TopicArn=target.arn, Message=body)
        elif target.service == "s3":
            region, put = s3_record(target, function_arn, f"aws/lambda/async/{function_arn.split(':')[6]}", body)
            self._client("s3", region, role).put_object(**put)
        elif target.service == "events":
            entry = {"Source": "lambda", "DetailType": detail_type, "Detail": body,
                     "Resources": [function_arn, target.arn], "EventBusName": target.arn}
            if trace:
                entry["TraceHeader"] = trace
            reply = self._client("events", target.region, role).put_events(Entries=[entry])
            if reply.get("FailedEntryCount"):
                raise RuntimeError(f"EventBridge refused the event: {reply['Entries']}")
        else:
            raise ValueError(f"{target.service} is not a destination service")

    def _send_dead_letter(self, target: Target, body: str, request_id: str, failure: Failure,
                          role: Role | None = None) -> None:
        attributes = {
            "RequestID": {"DataType": "String", "StringValue": request_id},
            "ErrorCode": {"DataType": "Number", "StringValue": str(failure.error_code)},
            "ErrorMessage": {"DataType": "String", "StringValue": failure.message[:ERROR_MESSAGE_LIMIT] or "Unknown"},
        }
        if target.service == "sqs":
            self._send_message(target, body, attributes, role)
        elif target.service == "sns":
            self._client("sns", target.region, role).publish(TopicArn=target.arn, Message=body,
                                                             MessageAttributes=attributes)
        else:
            raise ValueError(f"{target.service} is not a dead-letter queue service")
