"""What a stream poller sends and reads back, as pure functions: no AWS, no event loop.

- Records: a Kinesis or DynamoDB Streams GetRecords answer (as boto3 parses it) turned into the
  record Lambda delivers (`kinesis_record`, `dynamodb_record`), kept with what the poller needs
  about it (`StreamRecord`: sequence number, partition key, arrival time, size).
- Answers: `failed_from` reads a function's answer (`ReportBatchItemFailures`, CONTRACT §7.2) as
  "where the failed part of the batch starts".
- Splitting: `lane_of` (ParallelizationFactor keeps order per partition key), `halves` (bisect),
  `take_batch` (BatchSize and Lambda's 6 MB payload cap).
- The on-failure destination's record (`failure_record`), shaped as LocalStack's snapshots of AWS
  show it: no records, only the batch's metadata (`KinesisBatchInfo` / `DDBStreamBatchInfo`).
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

from lambdalet.events.mappings import KINESIS

#: Lambda's cap on a synchronous invocation's payload: a batch never grows past it.
MAX_PAYLOAD = 6 * 1024 * 1024
#: `{"Records": []}` around the records, and a comma between two of them.
_ENVELOPE, _SEPARATOR = len(b'{"Records": []}'), len(b", ")


@dataclass(frozen=True)
class StreamRecord:
    """One stream record: Lambda's shape of it (`event`) and what batching and retries need."""

    sequence_number: str
    partition_key: str
    #: Epoch seconds the stream received it (Kinesis) or the item changed (DynamoDB).
    arrival: float
    event: dict[str, Any]
    #: Bytes of `event` as JSON: what it adds to an invocation's payload.
    size: int


def _epoch(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def _with_size(sequence_number: str, partition_key: str, arrival: float, event: dict[str, Any]) -> StreamRecord:
    return StreamRecord(sequence_number, partition_key, arrival, event, len(json.dumps(event).encode()))


def kinesis_record(raw: dict[str, Any], *, shard_id: str, stream_arn: str, region: str, role: str) -> StreamRecord:
    """A record of Kinesis GetRecords as Lambda delivers it (CONTRACT §7.3: data base64, arrival in
    epoch seconds, eventID `shardId:sequenceNumber`, the function's role as invokeIdentityArn)."""
    sequence_number = raw["SequenceNumber"]
    data = raw["Data"]
    arrival = _epoch(raw["ApproximateArrivalTimestamp"])
    event = {
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": raw["PartitionKey"],
                    "sequenceNumber": sequence_number,
                    "data": base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode(),
                    "approximateArrivalTimestamp": round(arrival, 3)},
        "eventSource": "aws:kinesis", "eventVersion": "1.0",
        "eventID": f"{shard_id}:{sequence_number}", "eventName": "aws:kinesis:record",
        "invokeIdentityArn": role, "awsRegion": region, "eventSourceARN": stream_arn,
    }
    return _with_size(sequence_number, raw["PartitionKey"], arrival, event)


def _attribute_json(value: Any) -> Any:
    """DynamoDB attribute values as JSON has them: boto3 hands binary (`B`, `BS`) as bytes, Lambda
    sends base64 text."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {key: _attribute_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_attribute_json(item) for item in value]
    return value


def _whole_if_whole(seconds: float) -> float | int:
    return int(seconds) if seconds == int(seconds) else seconds


#: The `dynamodb` members Lambda passes on, in the order it sends them.
_DYNAMODB_MEMBERS = ("Keys", "NewImage", "OldImage", "SequenceNumber", "SizeBytes", "StreamViewType")


def dynamodb_record(raw: dict[str, Any], *, stream_arn: str) -> StreamRecord:
    """A record of DynamoDB Streams GetRecords as Lambda delivers it: the stream's own record with
    `eventSourceARN` added, `ApproximateCreationDateTime` in epoch seconds, binary values in base64."""
    change = raw["dynamodb"]
    arrival = _epoch(change["ApproximateCreationDateTime"])
    dynamodb: dict[str, Any] = {"ApproximateCreationDateTime": _whole_if_whole(arrival)}
    for member in _DYNAMODB_MEMBERS:
        if member in change:
            dynamodb[member] = _attribute_json(change[member])
    # eventVersion is what DynamoDB Streams and Lambda say today (moto says "1.0"): always 1.1.
    event: dict[str, Any] = {"eventID": raw["eventID"], "eventName": raw["eventName"], "eventVersion": "1.1",
                             "eventSource": "aws:dynamodb", "awsRegion": raw["awsRegion"], "dynamodb": dynamodb}
    if "userIdentity" in raw:  # a TTL deletion says the service did it
        event["userIdentity"] = raw["userIdentity"]
    event["eventSourceARN"] = stream_arn
    key = json.dumps(dynamodb.get("Keys", {}), sort_keys=True)
    return _with_size(change["SequenceNumber"], key, arrival, event)


def payload(records: Sequence[StreamRecord], extra: dict[str, Any] | None = None) -> bytes:
    """The invocation's event: `{"Records": [...]}` (plus a tumbling window's members, if any)."""
    return json.dumps({"Records": [record.event for record in records], **(extra or {})}).encode()


def take_batch(pending: Sequence[StreamRecord], batch_size: int, room: int = MAX_PAYLOAD) -> int:
    """How many of `pending` (oldest first) the next batch takes: up to `batch_size`, and no more
    than fit in `room` (6 MB, less what a tumbling window adds to the event), but always at least
    one (a record alone is under the cap by the streams' limits)."""
    size, count = _ENVELOPE, 0
    for record in pending[:batch_size]:
        size += record.size + (_SEPARATOR if count else 0)
        if count and size > room:
            break
        count += 1
    return count


def lane_of(partition_key: str, lanes: int) -> int:
    """The lane (0..lanes-1) of a partition key: stable across restarts, so one key is always in one lane."""
    return zlib.crc32(partition_key.encode()) % lanes if lanes > 1 else 0


def halves(records: Sequence[StreamRecord]) -> list[list[StreamRecord]]:
    """BisectBatchOnFunctionError: the batch in two, oldest half first (one record does not split)."""
    if len(records) < 2:
        return [list(records)]
    middle = (len(records) + 1) // 2
    return [list(records[:middle]), list(records[middle:])]


def failed_from(answer: bytes, records: Sequence[StreamRecord], report_item_failures: bool) -> int | None:
    """Where the failed part of a successful invocation's batch starts (None: nothing failed).

    Without ReportBatchItemFailures a successful invocation is a success. With it (CONTRACT §7.2):
    no answer, `null`, `{}`, or an empty or null `batchItemFailures` mean success; the lowest
    reported sequence number is where the retry starts; anything else (not JSON, not a list, an
    entry that is not `{"itemIdentifier": "<a sequence number of the batch>"}`) fails the batch."""
    if not report_item_failures:
        return None
    try:
        body = json.loads(answer) if answer.strip() else None
    except ValueError:
        return 0
    if body is None or body == "":
        return None
    if not isinstance(body, dict):
        return 0
    failures = body.get("batchItemFailures")
    if failures is None or failures == []:
        return None
    if not isinstance(failures, list):
        return 0
    where = {record.sequence_number: index for index, record in enumerate(records)}
    lowest = len(records)
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in where:
            return 0
        lowest = min(lowest, where[identifier])
    return lowest


def iso_time(at: float, milliseconds: bool) -> str:
    """Epoch seconds as UTC ISO 8601 with a `Z`, as Lambda writes times in what it sends."""
    moment = datetime.fromtimestamp(at, timezone.utc)
    return moment.isoformat(timespec="milliseconds" if milliseconds else "seconds").replace("+00:00", "Z")


def failure_record(*, kind: str, shard_id: str, stream_arn: str, records: Sequence[StreamRecord],
                   request_id: str, function_arn: str, condition: str, attempts: int,
                   executed_version: str | None, function_error: bool, at: float) -> dict[str, Any]:
    """What the on-failure destination gets for a discarded batch. `condition` is
    RetryAttemptsExhausted (with the last invocation's responseContext) or RecordAgeExceeded (none).
    Kinesis' batch info gives arrival times with milliseconds, DynamoDB's without (as AWS sends them)."""
    record: dict[str, Any] = {"requestContext": {"requestId": request_id, "functionArn": function_arn,
                                                 "condition": condition, "approximateInvokeCount": max(attempts, 1)}}
    if executed_version is not None:
        record["responseContext"] = {"statusCode": 200, "executedVersion": executed_version,
                                     "functionError": "Unhandled" if function_error else None}
    record["version"] = "1.0"
    record["timestamp"] = iso_time(at, True)
    kinesis = kind == KINESIS
    record["KinesisBatchInfo" if kinesis else "DDBStreamBatchInfo"] = {
        "shardId": shard_id,
        "startSequenceNumber": records[0].sequence_number,
        "endSequenceNumber": records[-1].sequence_number,
        "approximateArrivalOfFirstRecord": iso_time(records[0].arrival, kinesis),
        "approximateArrivalOfLastRecord": iso_time(records[-1].arrival, kinesis),
        "batchSize": len(records),
        "streamArn": stream_arn,
    }
    return record
