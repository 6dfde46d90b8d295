"""The stream poller without a server: record shapes, answers, lanes, bisect, and the poller itself
against an in-memory Kinesis (a fake PollerContext), so retries and checkpoints run in milliseconds."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from lambdalet.errors import TooManyRequestsException
from lambdalet.events.mappings import DYNAMODB, KINESIS, EventSourceMapping
from lambdalet.events.sources import streams
from lambdalet.events.sources.base import Delivery, SourceGone
from lambdalet.events.sources.stream_events import (
    MAX_PAYLOAD, StreamRecord, dynamodb_record, failed_from, failure_record, halves, iso_time, kinesis_record,
    lane_of, take_batch)
from lambdalet.events.sources.stream_windows import MAX_STATE, Window, window_answer, window_of
from lambdalet.invoke.types import InvocationResult
from lambdalet.store.mappings import Checkpoint

STREAM = "arn:aws:kinesis:us-east-1:000000000000:stream/s"
TABLE_STREAM = "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/2026-01-01T00:00:00.000"
ROLE = "arn:aws:iam::000000000000:role/r"
AT = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)


def _records(*sequence_numbers: str, size: int = 10) -> list[StreamRecord]:
    return [StreamRecord(s, "k", 0.0, {}, size) for s in sequence_numbers]


# -- record shapes -------------------------------------------------------------------------------


def test_a_kinesis_record_is_shaped_as_lambda_sends_it():
    raw = {"SequenceNumber": "495", "ApproximateArrivalTimestamp": AT, "Data": b"hello", "PartitionKey": "pk"}
    record = kinesis_record(raw, shard_id="shardId-000000000000", stream_arn=STREAM, region="us-east-1", role=ROLE)
    assert record.event == {
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "pk", "sequenceNumber": "495",
                    "data": "aGVsbG8=", "approximateArrivalTimestamp": AT.timestamp()},
        "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": "shardId-000000000000:495",
        "eventName": "aws:kinesis:record", "invokeIdentityArn": ROLE, "awsRegion": "us-east-1",
        "eventSourceARN": STREAM}
    assert (record.sequence_number, record.partition_key, record.arrival) == ("495", "pk", AT.timestamp())
    assert record.size == len(json.dumps(record.event))


def test_a_dynamodb_record_gets_epoch_seconds_base64_binaries_and_the_stream_arn():
    raw = {"eventID": "e1", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
           "awsRegion": "us-east-1",
           "dynamodb": {"ApproximateCreationDateTime": datetime(2026, 1, 2, tzinfo=timezone.utc),
                        "Keys": {"id": {"S": "a"}},
                        "NewImage": {"id": {"S": "a"}, "b": {"B": b"foobar"}, "m": {"M": {"x": {"BS": [b"\x00"]}}}},
                        "SequenceNumber": "100", "SizeBytes": 26, "StreamViewType": "NEW_IMAGE"}}
    record = dynamodb_record(raw, stream_arn=TABLE_STREAM)
    assert list(record.event) == ["eventID", "eventName", "eventVersion", "eventSource", "awsRegion", "dynamodb",
                                  "eventSourceARN"]
    change = record.event["dynamodb"]
    assert change["ApproximateCreationDateTime"] == 1767312000
    assert change["NewImage"]["b"] == {"B": "Zm9vYmFy"}
    assert change["NewImage"]["m"] == {"M": {"x": {"BS": ["AA=="]}}}
    assert record.event["eventSourceARN"] == TABLE_STREAM
    assert record.partition_key == json.dumps({"id": {"S": "a"}})


# -- answers -------------------------------------------------------------------------------------

BATCH = _records("1", "2", "3")


@pytest.mark.parametrize("answer", [b"", b"null", b"{}", b'""', b'{"batchItemFailures": []}',
                                    b'{"batchItemFailures": null}'])
def test_empty_answers_are_a_success(answer):
    assert failed_from(answer, BATCH, True) is None


@pytest.mark.parametrize("answer", [b"not json", b"[1]", b'{"batchItemFailures": [{"itemIdentifier": 123}]}',
                                    b'{"batchItemFailures": [{"itemIdentifier": ""}]}',
                                    b'{"batchItemFailures": [{"itemIdentifier": null}]}',
                                    b'{"batchItemFailures": [{"foo": "2"}]}',
                                    b'{"batchItemFailures": [{"itemIdentifier": "9"}]}',
                                    b'{"batchItemFailures": {"itemIdentifier": "2"}}'])
def test_invalid_answers_fail_the_whole_batch(answer):
    assert failed_from(answer, BATCH, True) == 0


def test_the_lowest_reported_sequence_number_is_where_the_retry_starts():
    answer = b'{"batchItemFailures": [{"itemIdentifier": "3"}, {"itemIdentifier": "2"}]}'
    assert failed_from(answer, BATCH, True) == 1
    assert failed_from(answer, BATCH, False) is None


# -- splitting -----------------------------------------------------------------------------------


def test_halves_put_the_older_half_first_and_one_record_stays_whole():
    assert [[r.sequence_number for r in half] for half in halves(_records("1", "2", "3"))] == [["1", "2"], ["3"]]
    assert len(halves(_records("1"))) == 1


def test_lanes_are_stable_per_key_and_one_lane_without_parallelization():
    assert lane_of("key", 1) == 0
    assert lane_of("key", 7) == lane_of("key", 7)
    assert len({lane_of(f"k{i}", 4) for i in range(100)}) == 4


def test_a_batch_stops_at_the_batch_size_or_before_6_mb_but_takes_at_least_one():
    assert take_batch(_records(*"123456"), 4) == 4
    big = _records("1", "2", "3", size=MAX_PAYLOAD // 2)
    assert take_batch(big, 10) == 1
    assert take_batch(_records("1", size=MAX_PAYLOAD * 2), 10) == 1
    assert take_batch(_records("1", "2", size=1000), 10, room=1500) == 1  # a window's state takes room too


def test_the_failure_record_has_the_batch_metadata_as_aws_sends_it():
    records = [StreamRecord("1", "k", AT.timestamp(), {}, 1), StreamRecord("2", "k", AT.timestamp() + 1, {}, 1)]
    kinesis = failure_record(kind=KINESIS, shard_id="shardId-0", stream_arn=STREAM, records=records, request_id="r",
                             function_arn="arn:f", condition="RetryAttemptsExhausted", attempts=3,
                             executed_version="$LATEST", function_error=False, at=0.0)
    assert kinesis == {
        "requestContext": {"requestId": "r", "functionArn": "arn:f", "condition": "RetryAttemptsExhausted",
                           "approximateInvokeCount": 3},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": None},
        "version": "1.0", "timestamp": "1970-01-01T00:00:00.000Z",
        "KinesisBatchInfo": {"shardId": "shardId-0", "startSequenceNumber": "1", "endSequenceNumber": "2",
                             "approximateArrivalOfFirstRecord": "2026-01-02T03:04:05.678Z",
                             "approximateArrivalOfLastRecord": "2026-01-02T03:04:06.678Z",
                             "batchSize": 2, "streamArn": STREAM}}
    aged = failure_record(kind=DYNAMODB, shard_id="s", stream_arn=TABLE_STREAM, records=records, request_id="r",
                          function_arn="arn:f", condition="RecordAgeExceeded", attempts=0, executed_version=None,
                          function_error=False, at=0.0)
    assert "responseContext" not in aged and aged["requestContext"]["approximateInvokeCount"] == 1
    assert aged["DDBStreamBatchInfo"]["approximateArrivalOfFirstRecord"] == "2026-01-02T03:04:05Z"


# -- the poller against an in-memory Kinesis ------------------------------------------------------


class ClientError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.response = {"Error": {"Code": code}}


class FakeContext:
    """A PollerContext with a Kinesis of in-memory shards and a scripted function."""

    def __init__(self, shards: dict[str, list[tuple[str, str]]], parents: dict[str, str] | None = None,
                 closed: tuple[str, ...] = (), answer=None, arrival=None) -> None:
        self.shards = shards  # shard id -> [(partition key, data)]
        self.parents = parents or {}
        self.closed = closed
        self.answer = answer or (lambda records, attempt: InvocationResult(b"null"))
        self.arrival = arrival  # (shard, index) -> datetime; None: now
        self.events: list[dict[str, Any]] = []
        self.saved: dict[str, Checkpoint] = {}
        self.invocations: list[list[str]] = []
        self.failures: list[dict[str, Any]] = []
        self.reports: list[str] = []
        self.counts: dict[str, int] = {}
        self.gone = False

    # what the poller calls
    def role(self, mapping):
        return ROLE

    async def aws(self, service, region, operation, **params):
        await asyncio.sleep(0)
        if self.gone:
            raise ClientError("ResourceNotFoundException")
        if operation == "list_shards":
            return {"Shards": [{"ShardId": s, "ParentShardId": self.parents.get(s),
                                "SequenceNumberRange": {"StartingSequenceNumber": "0",
                                                        **({"EndingSequenceNumber": "9"} if s in self.closed else {})}}
                               for s in self.shards]}
        if operation == "get_shard_iterator":
            kind = params["ShardIteratorType"]
            start = {"TRIM_HORIZON": 0, "LATEST": len(self.shards[params["ShardId"]])}.get(kind)
            if kind == "AFTER_SEQUENCE_NUMBER":
                start = int(params["StartingSequenceNumber"].split("-")[1]) + 1
            if kind == "AT_TIMESTAMP":
                records = self.shards[params["ShardId"]]
                start = next((i for i in range(len(records)) if self.arrival is None
                              or self.arrival(params["ShardId"], i).timestamp() >= params["Timestamp"]), len(records))
            return {"ShardIterator": f"{params['ShardId']}|{start}"}
        if operation == "get_records":
            shard, start = params["ShardIterator"].split("|")
            data = self.shards[shard][int(start):int(start) + params["Limit"]]
            end = int(start) + len(data)
            now = datetime.now(timezone.utc)
            records = [{"SequenceNumber": f"{shard}-{int(start) + i:03d}", "PartitionKey": key,
                        "Data": value.encode(),
                        "ApproximateArrivalTimestamp": self.arrival(shard, int(start) + i) if self.arrival else now}
                       for i, (key, value) in enumerate(data)]
            ended = shard in self.closed and end == len(self.shards[shard])
            return {"Records": records, "NextShardIterator": None if ended else f"{shard}|{end}",
                    "MillisBehindLatest": 0}
        raise AssertionError(operation)

    async def invoke(self, mapping, payload: bytes) -> Delivery:
        event = json.loads(payload)
        sequence_numbers = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
        self.invocations.append(sequence_numbers)
        self.events.append(event)
        result = self.answer(sequence_numbers, len(self.invocations))
        if isinstance(result, Exception):
            raise result
        return Delivery(f"req-{len(self.invocations)}", result, "$LATEST")

    async def checkpoints(self, mapping):
        return dict(self.saved)

    async def save_checkpoint(self, mapping, shard_id, sequence_number, *, closed=False, window_state=None,
                              started_at=None):
        self.saved[shard_id] = Checkpoint(sequence_number, closed, window_state, started_at)

    async def report(self, mapping, last_result):
        self.reports.append(last_result)

    def count(self, mapping, outcome, records):
        self.counts[outcome] = self.counts.get(outcome, 0) + records

    def observe_poll(self, mapping, seconds):
        pass

    async def send_failure_record(self, destination_arn, record, **where):
        self.failures.append(record)


def _mapping(**settings: Any) -> EventSourceMapping:
    defaults = {"BatchSize": 100, "MaximumBatchingWindowInSeconds": 0, "StartingPosition": "TRIM_HORIZON",
                "ParallelizationFactor": 1, "BisectBatchOnFunctionError": False, "MaximumRetryAttempts": -1,
                "MaximumRecordAgeInSeconds": -1, "TumblingWindowInSeconds": 0,
                "DestinationConfig": {"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:000000000000:dlq"}},
                "FunctionResponseTypes": []}
    return EventSourceMapping("u", "f", None, "arn:aws:lambda:us-east-1:000000000000:function:f", STREAM, KINESIS,
                              {**defaults, **settings}, True, "Enabled", "", "No records processed", 0.0)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(streams, "IDLE_POLL_SECONDS", 0.01)
    monkeypatch.setattr(streams, "DISCOVERY_SECONDS", 0.05)

    async def no_wait(self):
        await asyncio.sleep(0)
    monkeypatch.setattr(streams.Backoff, "wait", no_wait)


def _run(ctx: FakeContext, mapping: EventSourceMapping, until, timeout: float = 5.0) -> None:
    """Run the poller until `until()` holds, then cancel it, as the manager does."""
    async def main():
        task = asyncio.create_task(streams.StreamPoller(mapping, ctx).run())
        deadline = asyncio.get_running_loop().time() + timeout
        while not until():
            if task.done():
                task.result()
            assert asyncio.get_running_loop().time() < deadline, "the poller did not get there"
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    asyncio.run(main())


def _seq(shard: str, *indexes: int) -> list[str]:
    return [f"{shard}-{i:03d}" for i in indexes]


def test_batches_arrive_in_order_and_the_checkpoint_follows():
    ctx = FakeContext({"s0": [("k", str(i)) for i in range(5)]})
    _run(ctx, _mapping(BatchSize=2), lambda: ctx.saved.get("s0") == Checkpoint("s0-004", False, None))
    assert ctx.invocations == [_seq("s0", 0, 1), _seq("s0", 2, 3), _seq("s0", 4)]
    assert ctx.reports[-1] == "OK" and ctx.counts["delivered"] == 5


def test_a_restart_resumes_after_the_checkpoint():
    ctx = FakeContext({"s0": [("k", str(i)) for i in range(4)]})
    ctx.saved["s0"] = Checkpoint("s0-001", False, None)
    _run(ctx, _mapping(), lambda: ctx.saved["s0"].sequence_number == "s0-003")
    assert ctx.invocations == [_seq("s0", 2, 3)]


def test_a_latest_shard_not_yet_checkpointed_resumes_from_when_the_mapping_began():
    ctx = FakeContext({"s0": [("k", "before the mapping")]},
                      arrival=lambda shard, i: datetime(2020, 1, 1, tzinfo=timezone.utc) if i == 0 else written)
    _run(ctx, _mapping(StartingPosition="LATEST"), lambda: "s0" in ctx.saved)  # stopped before any batch
    assert ctx.saved["s0"].sequence_number is None and ctx.saved["s0"].started_at is not None
    written = datetime.now(timezone.utc)
    ctx.shards["s0"].append(("k", "written while the server was down"))
    _run(ctx, _mapping(StartingPosition="LATEST"), lambda: ctx.saved["s0"].sequence_number == "s0-001")
    assert ctx.invocations == [["s0-001"]]  # the new record, not the one from before the mapping


def test_a_child_shard_waits_for_its_parent_to_end():
    ctx = FakeContext({"parent": [("k", "a")], "child": [("k", "b")]}, parents={"child": "parent"}, closed=("parent",))
    _run(ctx, _mapping(), lambda: ctx.saved.get("child", Checkpoint(None, False, None)).sequence_number == "child-000")
    assert ctx.invocations == [["parent-000"], ["child-000"]]
    assert ctx.saved["parent"] == Checkpoint("parent-000", True, None)


def test_retries_exhausted_send_the_batch_metadata_and_move_on():
    ctx = FakeContext({"s0": [("k", "bad"), ("k", "good")]},
                      answer=lambda seqs, n: InvocationResult(b'{"errorMessage": "x"}', function_error=True)
                      if "s0-000" in seqs else InvocationResult(b"null"))
    _run(ctx, _mapping(BatchSize=1, MaximumRetryAttempts=2), lambda: ctx.saved.get("s0", Checkpoint(None, 0, None))
         .sequence_number == "s0-001")
    assert ctx.invocations == [["s0-000"]] * 3 + [["s0-001"]]
    failure = ctx.failures[0]
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 3
    assert failure["responseContext"]["functionError"] == "Unhandled"
    assert failure["KinesisBatchInfo"]["batchSize"] == 1
    assert "PROBLEM: Function call failed" in ctx.reports and ctx.counts["failed"] == 1


def test_a_partial_failure_checkpoints_before_the_failed_record_and_retries_from_it():
    def answer(seqs, n):
        if "s0-002" in seqs:
            return InvocationResult(json.dumps({"batchItemFailures": [{"itemIdentifier": "s0-002"}]}).encode())
        return InvocationResult(b"{}")
    ctx = FakeContext({"s0": [("k", str(i)) for i in range(4)]}, answer=answer)
    _run(ctx, _mapping(FunctionResponseTypes=["ReportBatchItemFailures"], MaximumRetryAttempts=1),
         lambda: ctx.saved.get("s0", Checkpoint(None, 0, None)).sequence_number == "s0-003")
    assert ctx.invocations == [_seq("s0", 0, 1, 2, 3), _seq("s0", 2, 3)]  # the first invocation and one retry
    assert ctx.failures[0]["requestContext"]["approximateInvokeCount"] == 2
    assert ctx.failures[0]["KinesisBatchInfo"]["startSequenceNumber"] == "s0-002"
    assert ctx.failures[0]["KinesisBatchInfo"]["batchSize"] == 2
    assert ctx.failures[0]["responseContext"]["functionError"] is None


def test_bisect_isolates_the_bad_record_without_using_retries():
    ctx = FakeContext({"s0": [("k", str(i)) for i in range(4)]},
                      answer=lambda seqs, n: InvocationResult(b"{}", function_error="s0-001" in seqs))
    _run(ctx, _mapping(BisectBatchOnFunctionError=True, MaximumRetryAttempts=0),
         lambda: ctx.saved.get("s0", Checkpoint(None, 0, None)).sequence_number == "s0-003")
    assert ctx.invocations == [_seq("s0", 0, 1, 2, 3), _seq("s0", 0, 1), _seq("s0", 0), _seq("s0", 1),
                               _seq("s0", 2, 3)]
    assert [f["KinesisBatchInfo"]["startSequenceNumber"] for f in ctx.failures] == ["s0-001"]


def test_a_throttle_retries_without_counting():
    ctx = FakeContext({"s0": [("k", "a")]},
                      answer=lambda seqs, n: InvocationResult(b"") if n > 3 else TooManyRequestsException(
                          "Rate exceeded", "ReservedFunctionConcurrentInvocationLimitExceeded"))
    _run(ctx, _mapping(MaximumRetryAttempts=0), lambda: "s0" in ctx.saved)
    assert len(ctx.invocations) == 4 and ctx.failures == []


def test_old_records_are_discarded_before_invoking():
    ctx = FakeContext({"s0": [("k", "a")]})
    mapping = _mapping(MaximumRecordAgeInSeconds=60)
    real = ctx.aws

    async def aged(service, region, operation, **params):
        answer = await real(service, region, operation, **params)
        for record in answer.get("Records", []):
            record["ApproximateArrivalTimestamp"] = AT.replace(year=2000)
        return answer
    ctx.aws = aged
    _run(ctx, mapping, lambda: "s0" in ctx.saved)
    assert ctx.invocations == []
    assert ctx.failures[0]["requestContext"]["condition"] == "RecordAgeExceeded"
    assert "responseContext" not in ctx.failures[0]


def test_parallelization_keeps_order_per_partition_key():
    keys = [f"k{i % 6}" for i in range(60)]
    ctx = FakeContext({"s0": [(key, str(i)) for i, key in enumerate(keys)]})
    _run(ctx, _mapping(BatchSize=5, ParallelizationFactor=3),
         lambda: ctx.saved.get("s0", Checkpoint(None, 0, None)).sequence_number == "s0-059")
    delivered = [seq for batch in ctx.invocations for seq in batch]
    assert sorted(delivered) == _seq("s0", *range(60))
    for key in set(keys):
        mine = [seq for seq in delivered if keys[int(seq.split("-")[1])] == key]
        assert mine == sorted(mine)


def test_filtered_records_are_skipped_and_the_checkpoint_moves_past_them():
    criteria = {"Filters": [{"Pattern": json.dumps({"data": {"keep": [True]}})}]}
    ctx = FakeContext({"s0": [("k", json.dumps({"keep": False})), ("k", json.dumps({"keep": True})),
                              ("k", json.dumps({"keep": False}))]})
    _run(ctx, _mapping(FilterCriteria=criteria), lambda: ctx.saved.get("s0", Checkpoint(None, 0, None))
         .sequence_number == "s0-002")
    assert ctx.invocations == [["s0-001"]] and ctx.counts["filtered"] == 2


def test_a_stream_that_does_not_exist_stops_the_mapping():
    ctx = FakeContext({})
    ctx.gone = True
    with pytest.raises(SourceGone, match="does not exist"):
        asyncio.run(streams.StreamPoller(_mapping(), ctx).run())


def test_data_is_base64_of_the_raw_bytes():
    ctx = FakeContext({"s0": [("k", "héllo")]})
    seen: list[str] = []
    real = ctx.invoke

    async def invoke(mapping, payload):
        seen.append(json.loads(payload)["Records"][0]["kinesis"]["data"])
        return await real(mapping, payload)
    ctx.invoke = invoke
    _run(ctx, _mapping(), lambda: "s0" in ctx.saved)
    assert base64.b64decode(seen[0]).decode() == "héllo"


# -- tumbling windows ----------------------------------------------------------------------------

#: In the window 07:04:00–07:06:00 of 120 s, the one of AWS's example event.
PAST = datetime(2020, 12, 9, 7, 4, 30, tzinfo=timezone.utc)


def test_windows_are_aligned_on_the_epoch_and_a_record_at_the_end_is_in_the_next():
    start, end = window_of(PAST.timestamp(), 120)
    assert (iso_time(start, False), iso_time(end, False)) == ("2020-12-09T07:04:00Z", "2020-12-09T07:06:00Z")
    assert window_of(end, 120)[0] == end
    assert window_of(59.999, 60) == (0.0, 60.0) and window_of(60.0, 1) == (60.0, 61.0)


def test_the_window_members_are_named_and_ordered_as_aws_sends_them():
    members = Window(*window_of(PAST.timestamp(), 120), {"1": 282}).members("shardId-000000000006", STREAM)
    assert members == {"window": {"start": "2020-12-09T07:04:00Z", "end": "2020-12-09T07:06:00Z"},
                       "state": {"1": 282}, "shardId": "shardId-000000000006", "eventSourceARN": STREAM,
                       "isFinalInvokeForWindow": False, "isWindowTerminatedEarly": False}
    assert list(members) == ["window", "state", "shardId", "eventSourceARN", "isFinalInvokeForWindow",
                             "isWindowTerminatedEarly"]


def test_a_window_is_kept_as_json_and_an_unreadable_one_starts_afresh():
    window = Window(60.0, 120.0, {"sum": 3})
    assert Window.from_json(window.to_json()) == window
    for kept in (None, "", "not json", '{"start": 0}', '{"start": 0, "end": 1, "state": [1]}'):
        assert Window.from_json(kept) is None


@pytest.mark.parametrize("answer", [b"", b"null", b"{}", b'""', b"not json", b'{"state": null}', b'{"state": [1]}',
                                    b'{"batchItemFailures": []}'])
def test_a_windowed_answer_without_a_state_object_fails_the_invocation(answer):
    assert window_answer(answer, BATCH, True) == (None, 0)


def test_a_windowed_answer_gives_its_state_and_where_its_failures_start():
    answer = json.dumps({"state": {"sum": 3}, "batchItemFailures": [{"itemIdentifier": "2"}]}).encode()
    assert window_answer(answer, BATCH, True) == ({"sum": 3}, 1)
    assert window_answer(answer, BATCH, False) == ({"sum": 3}, None)


def test_a_state_over_1_mb_is_too_big():
    assert Window(0.0, 1.0, {"x": "a" * MAX_STATE}).oversized()
    assert not Window(0.0, 1.0, {"x": "a" * 1000}).oversized()


def _summing(ctx: FakeContext):
    """A function that adds the records' data (numbers) into `state["sum"]`."""
    def answer(seqs, n):
        event = ctx.events[-1]
        numbers = [int(base64.b64decode(r["kinesis"]["data"])) for r in event["Records"]]
        return InvocationResult(json.dumps({"state": {"sum": event["state"].get("sum", 0) + sum(numbers)}}).encode())
    return answer


def _finals(ctx: FakeContext) -> list[dict[str, Any]]:
    return [event for event in ctx.events if event["isFinalInvokeForWindow"]]


def _window_closed(ctx: FakeContext, finals: int, sequence_number: str):
    return lambda: len(_finals(ctx)) == finals and ctx.saved.get("s0") == Checkpoint(sequence_number, False, None)


def test_records_go_to_their_window_and_each_window_ends_with_a_final_invocation_with_its_state():
    offsets = [0, 10, 100]  # two records in 07:04–07:06, one in 07:06–07:08
    ctx = FakeContext({"s0": [("k", "1"), ("k", "2"), ("k", "4")]},
                      arrival=lambda shard, i: PAST.replace(second=0) + timedelta(seconds=30 + offsets[i]))
    ctx.answer = _summing(ctx)
    _run(ctx, _mapping(TumblingWindowInSeconds=120), _window_closed(ctx, 2, "s0-002"))
    shape = [(e["window"]["start"], [r["kinesis"]["sequenceNumber"] for r in e["Records"]], e["state"],
              e["isFinalInvokeForWindow"]) for e in ctx.events]
    assert shape == [("2020-12-09T07:04:00Z", _seq("s0", 0, 1), {}, False),
                     ("2020-12-09T07:04:00Z", [], {"sum": 3}, True),
                     ("2020-12-09T07:06:00Z", _seq("s0", 2), {}, False),
                     ("2020-12-09T07:06:00Z", [], {"sum": 4}, True)]
    assert all(e["shardId"] == "s0" and e["eventSourceARN"] == STREAM and e["isWindowTerminatedEarly"] is False
               and e["window"]["end"] > e["window"]["start"] for e in ctx.events)


def test_the_state_is_kept_with_the_checkpoint_and_a_restart_resumes_the_window_with_it():
    future = datetime.now(timezone.utc) + timedelta(hours=1)  # a window that does not end during the test
    ctx = FakeContext({"s0": [("k", "1"), ("k", "2")]}, arrival=lambda shard, i: future)
    ctx.answer = _summing(ctx)
    mapping = _mapping(TumblingWindowInSeconds=900, BatchSize=1)
    _run(ctx, mapping, lambda: ctx.saved.get("s0", Checkpoint(None, 0, None)).sequence_number == "s0-001")
    kept = Window.from_json(ctx.saved["s0"].window_state)
    assert kept is not None and kept.state == {"sum": 3} and kept.start <= future.timestamp() < kept.end

    restarted = FakeContext({"s0": [("k", "1"), ("k", "2"), ("k", "5")]}, arrival=lambda shard, i: future)
    restarted.answer = _summing(restarted)
    restarted.saved = dict(ctx.saved)
    _run(restarted, mapping, lambda: restarted.saved["s0"].sequence_number == "s0-002")
    assert [(e["state"], len(e["Records"])) for e in restarted.events] == [({"sum": 3}, 1)]
    assert Window.from_json(restarted.saved["s0"].window_state).state == {"sum": 8}


def test_a_kept_window_that_ended_is_closed_before_the_next_one_opens():
    ended = Window(*window_of(PAST.timestamp(), 120), {"sum": 7})
    ctx = FakeContext({"s0": [("k", "1"), ("k", "2")]}, arrival=lambda shard, i: PAST + timedelta(minutes=5))
    ctx.saved["s0"] = Checkpoint("s0-000", False, ended.to_json())
    ctx.answer = _summing(ctx)
    _run(ctx, _mapping(TumblingWindowInSeconds=120), _window_closed(ctx, 2, "s0-001"))
    assert [(e["window"]["start"], e["state"], e["isFinalInvokeForWindow"]) for e in ctx.events] == [
        ("2020-12-09T07:04:00Z", {"sum": 7}, True), ("2020-12-09T07:08:00Z", {}, False),
        ("2020-12-09T07:08:00Z", {"sum": 2}, True)]


def test_an_answer_without_a_state_is_a_failure_and_is_retried():
    ctx = FakeContext({"s0": [("k", "1")]}, arrival=lambda shard, i: PAST)
    summing = _summing(ctx)
    ctx.answer = lambda seqs, n: InvocationResult(b"{}") if n == 1 else summing(seqs, n)
    _run(ctx, _mapping(TumblingWindowInSeconds=60), _window_closed(ctx, 1, "s0-000"))
    assert ctx.invocations == [["s0-000"], ["s0-000"], []]
    assert _finals(ctx)[0]["state"] == {"sum": 1} and "PROBLEM: Function call failed" in ctx.reports


def test_a_state_over_1_mb_ends_the_window_early_and_it_goes_on_with_a_fresh_state():
    ctx = FakeContext({"s0": [("k", "1"), ("k", "2")]}, arrival=lambda shard, i: PAST)
    big = {"big": "x" * MAX_STATE}
    ctx.answer = lambda seqs, n: InvocationResult(json.dumps({"state": big if n == 1 else {"n": n}}).encode())
    _run(ctx, _mapping(TumblingWindowInSeconds=60, BatchSize=1), _window_closed(ctx, 2, "s0-001"))
    shape = [(len(e["Records"]), e["state"] == big, e["isFinalInvokeForWindow"], e["isWindowTerminatedEarly"])
             for e in ctx.events]
    assert shape == [(1, False, False, False), (0, True, True, True), (1, False, False, False),
                     (0, False, True, False)]
    assert ctx.events[2]["state"] == {} and ctx.events[2]["window"] == ctx.events[0]["window"]


def test_a_final_invocation_that_keeps_failing_drops_the_state_after_the_retries():
    ctx = FakeContext({"s0": [("k", "1"), ("k", "2")]},
                      arrival=lambda shard, i: PAST + timedelta(minutes=5 * i))
    ctx.answer = lambda seqs, n: InvocationResult(b'{"state": {}}', function_error=not seqs)
    _run(ctx, _mapping(TumblingWindowInSeconds=60, MaximumRetryAttempts=1), _window_closed(ctx, 4, "s0-001"))
    assert ctx.invocations == [["s0-000"], [], [], ["s0-001"], [], []]


def test_a_shard_that_ends_ends_its_window():
    future = datetime.now(timezone.utc) + timedelta(hours=1)
    ctx = FakeContext({"s0": [("k", "1")]}, closed=("s0",), arrival=lambda shard, i: future)
    ctx.answer = _summing(ctx)
    _run(ctx, _mapping(TumblingWindowInSeconds=900), lambda: ctx.saved.get("s0") == Checkpoint("s0-000", True, None))
    assert [(len(e["Records"]), e["isFinalInvokeForWindow"], e["state"]) for e in ctx.events] == [
        (1, False, {}), (0, True, {"sum": 1})]


def test_a_window_keeps_a_shard_to_one_batch_at_a_time_whatever_the_parallelization():
    future = datetime.now(timezone.utc) + timedelta(hours=1)
    ctx = FakeContext({"s0": [(f"k{i}", str(i)) for i in range(6)]}, arrival=lambda shard, i: future)
    ctx.answer = _summing(ctx)
    _run(ctx, _mapping(TumblingWindowInSeconds=900, ParallelizationFactor=3),
         lambda: ctx.saved.get("s0", Checkpoint(None, 0, None)).sequence_number == "s0-005")
    assert ctx.invocations == [_seq("s0", *range(6))]
