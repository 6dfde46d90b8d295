"""Kinesis and DynamoDB Streams event source mappings delivered for real (moto), restarts included.

Event shapes and failure records are Lambda's (developer guide with-kinesis / with-ddb, AWS-recorded
snapshots of test_lambda_integration_kinesis.py / _dynamodbstreams.py).
"""

from __future__ import annotations

import base64
import datetime
import json
import signal
import time
from collections import Counter

import pytest

from conftest import ROLE

from .esm_support import (  # noqa: F401 (lam, n, srv: the modules' fixtures)
    lam, n, srv,
    ISO_MS, REGION, Recorder, create_recording_function, ddb_payload, kinesis_payload, lambda_arn, new_queue,
    new_stream, new_table_stream, put_kinesis, wait_gone, wait_state,
)
from .helpers import wait_until


def kinesis_deliveries(recorder: Recorder) -> list[tuple[int, dict, dict]]:
    """(invocation index, record, decoded payload) for every delivered Kinesis record."""
    return [(i, r, kinesis_payload(r)) for i, inv in enumerate(recorder.drain()) for r in inv["event"]["Records"]]


def failure_records(moto, url: str, count: int = 1, timeout: float = 60) -> list[dict]:
    sqs = moto.client("sqs")
    got: list[dict] = []

    def more():
        got.extend(json.loads(m["Body"]) for m in sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []))
        return len(got) >= count
    wait_until(more, timeout=timeout, interval=0, what=f"{count} on-failure record(s)")
    return got


def test_kinesis_event_shape_and_in_order_delivery_from_trim_horizon(lam, moto, n):
    recorder = Recorder(moto, n("recorder"))
    stream_arn, shard = new_stream(moto, n("stream"))
    put = [put_kinesis(moto, stream_arn, {"n": i}, key=f"key-{i}") for i in range(7)]
    create_recording_function(lam, n("fn"), recorder.url)
    created = lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=n("fn"),
                                              StartingPosition="TRIM_HORIZON", BatchSize=3)
    recorder.wait(lambda _: len(kinesis_deliveries(recorder)) >= 7, what="seven records")
    delivered = kinesis_deliveries(recorder)
    assert [p["n"] for _, _, p in delivered] == list(range(7)), "in shard order, each once"
    assert all(len(inv["event"]["Records"]) <= 3 for inv in recorder.invocations)
    assert len(recorder.invocations) >= 3

    for (_, record, payload), sent in zip(delivered, put):
        assert set(record) == {"kinesis", "eventSource", "eventVersion", "eventID", "eventName", "invokeIdentityArn",
                               "awsRegion", "eventSourceARN"}
        assert set(record["kinesis"]) == {"kinesisSchemaVersion", "partitionKey", "sequenceNumber", "data",
                                          "approximateArrivalTimestamp"}
        assert record["kinesis"]["kinesisSchemaVersion"] == "1.0"
        assert record["kinesis"]["partitionKey"] == f"key-{payload['n']}"
        assert record["kinesis"]["sequenceNumber"] == sent["SequenceNumber"]
        assert isinstance(record["kinesis"]["approximateArrivalTimestamp"], (int, float))
        assert abs(record["kinesis"]["approximateArrivalTimestamp"] - datetime.datetime.now().timestamp()) < 600
        assert record["eventID"] == f"{shard}:{sent['SequenceNumber']}"
        assert (record["eventSource"], record["eventVersion"], record["eventName"]) == (
            "aws:kinesis", "1.0", "aws:kinesis:record")
        assert record["invokeIdentityArn"] == ROLE
        assert (record["awsRegion"], record["eventSourceARN"]) == (REGION, stream_arn)
    got = wait_until(lambda: (m := lam.get_event_source_mapping(UUID=created["UUID"]))["LastProcessingResult"] == "OK"
                     and m, what="LastProcessingResult OK")
    assert got["State"] == "Enabled"


@pytest.mark.parametrize("source", ["kinesis", "dynamodb"])
def test_latest_skips_what_was_there_before(lam, moto, n, source):
    recorder = Recorder(moto, n("recorder"))
    ddb = moto.client("dynamodb")
    if source == "kinesis":
        stream_arn, _ = new_stream(moto, n("stream"))

        def put(payload):
            put_kinesis(moto, stream_arn, payload)
    else:
        table = n("table")
        stream_arn = new_table_stream(moto, table)

        def put(payload):
            ddb.put_item(TableName=table, Item={"id": {"S": json.dumps(payload)}, "cmd": {"S": json.dumps(payload)}})
    decode = kinesis_payload if source == "kinesis" else ddb_payload
    put({"old": True})
    create_recording_function(lam, n("fn"), recorder.url)
    created = lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=n("fn"),
                                              StartingPosition="LATEST")
    wait_state(lam, created["UUID"], "Enabled")
    probes = []

    def a_probe_arrived():  # LATEST starts wherever the shard is when the poller first reads it
        put({"probe": len(probes)})
        probes.append(1)
        return recorder.records()
    wait_until(a_probe_arrived, timeout=40, interval=1, what="a record put after the mapping to be delivered")
    payloads = [decode(r) for r in recorder.records()]
    assert {"old": True} not in payloads
    assert all("probe" in p for p in payloads)


def test_kinesis_at_timestamp_starts_at_the_timestamp(lam, moto, n):
    recorder = Recorder(moto, n("recorder"))
    stream_arn, _ = new_stream(moto, n("stream"))
    put_kinesis(moto, stream_arn, {"i": "before"})
    wait_until(lambda: time.time() > arrival_of_last(moto, stream_arn) + 1, what="a second after the first record")
    start = time.time()
    wait_until(lambda: time.time() > start + 1, what="a second after the starting timestamp")
    put_kinesis(moto, stream_arn, {"i": "after"})
    create_recording_function(lam, n("fn"), recorder.url)
    created = lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=n("fn"),
                                              StartingPosition="AT_TIMESTAMP", StartingPositionTimestamp=start)
    assert created["StartingPosition"] == "AT_TIMESTAMP"
    assert abs(created["StartingPositionTimestamp"].timestamp() - start) < 1
    recorder.wait(lambda _: kinesis_deliveries(recorder), what="the record after the timestamp")
    put_kinesis(moto, stream_arn, {"i": "later"})
    recorder.wait(lambda _: len(kinesis_deliveries(recorder)) >= 2, what="a later record")
    assert [p["i"] for _, _, p in kinesis_deliveries(recorder)] == ["after", "later"]


def arrival_of_last(moto, stream_arn: str) -> float:
    kinesis = moto.client("kinesis")
    shard = kinesis.describe_stream(StreamARN=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamARN=stream_arn, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return kinesis.get_records(StreamARN=stream_arn, ShardIterator=iterator)["Records"][-1][
        "ApproximateArrivalTimestamp"].timestamp()


def test_every_shard_is_polled(lam, moto, n):
    recorder = Recorder(moto, n("recorder"))
    stream_arn, _ = new_stream(moto, n("stream"), shards=2)
    kinesis = moto.client("kinesis")
    shards = kinesis.describe_stream(StreamARN=stream_arn)["StreamDescription"]["Shards"]
    sent = {}
    for i in range(6):
        shard = shards[i % 2]
        put = kinesis.put_record(StreamARN=stream_arn, Data=json.dumps({"i": i}).encode(), PartitionKey=f"k{i}",
                                 ExplicitHashKey=shard["HashKeyRange"]["StartingHashKey"])
        assert put["ShardId"] == shard["ShardId"]
        sent[i] = put
    create_recording_function(lam, n("fn"), recorder.url)
    lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=n("fn"), StartingPosition="TRIM_HORIZON")
    recorder.wait(lambda _: len(kinesis_deliveries(recorder)) >= 6, what="records of both shards")
    for _, record, payload in kinesis_deliveries(recorder):
        put = sent[payload["i"]]
        assert record["eventID"] == f"{put['ShardId']}:{put['SequenceNumber']}"
    for shard in shards:
        order = [p["i"] for _, r, p in kinesis_deliveries(recorder) if r["eventID"].startswith(shard["ShardId"] + ":")]
        assert len(order) == 3 and order == sorted(order)


def test_kinesis_failing_batch_is_retried_then_sent_to_the_on_failure_destination(lam, moto, n):
    recorder = Recorder(moto, n("recorder"))
    dest_url, dest_arn = new_queue(moto, n("on-failure"))
    stream_arn, shard = new_stream(moto, n("stream"))
    poison = put_kinesis(moto, stream_arn, {"fail": True})
    after = put_kinesis(moto, stream_arn, {"ok": True})
    create_recording_function(lam, n("fn"), recorder.url)
    lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=n("fn"), StartingPosition="TRIM_HORIZON",
                                    BatchSize=1, MaximumRetryAttempts=1,
                                    DestinationConfig={"OnFailure": {"Destination": dest_arn}})
    [record] = failure_records(moto, dest_url)
    assert ISO_MS.match(record.pop("timestamp"))
    info = record.pop("KinesisBatchInfo")
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert info.pop("approximateArrivalOfFirstRecord") and info.pop("approximateArrivalOfLastRecord")
    assert info == {"shardId": shard, "startSequenceNumber": poison["SequenceNumber"],
                    "endSequenceNumber": poison["SequenceNumber"], "batchSize": 1, "streamArn": stream_arn}
    recorder.wait(lambda _: [1 for _, _, p in kinesis_deliveries(recorder) if p == {"ok": True}],
                  what="the record after the failed one")
    attempts = [p for _, _, p in kinesis_deliveries(recorder)]
    assert attempts == [{"fail": True}, {"fail": True}, {"ok": True}], "1 + MaximumRetryAttempts, then move on"
    assert after["SequenceNumber"] and failure_records_left(moto, dest_url) == 0


def test_kinesis_on_failure_record_and_batch_reach_an_s3_bucket(lam, moto, n):
    recorder = Recorder(moto, n("recorder"))
    s3 = moto.client("s3")
    bucket = n("failures")
    s3.create_bucket(Bucket=bucket)
    stream_arn, shard = new_stream(moto, n("stream"))
    put_kinesis(moto, stream_arn, {"fail": True})
    create_recording_function(lam, n("fn"), recorder.url)
    mapping = lam.create_event_source_mapping(
        EventSourceArn=stream_arn, FunctionName=n("fn"), StartingPosition="TRIM_HORIZON", BatchSize=1,
        MaximumRetryAttempts=0, DestinationConfig={"OnFailure": {"Destination": f"arn:aws:s3:::{bucket}"}})
    prefix = f"aws/lambda/{mapping['UUID']}/{shard}/"
    [listed] = wait_until(lambda: s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents"),
                          timeout=60, what="the failure record in the bucket")
    record = json.loads(s3.get_object(Bucket=bucket, Key=listed["Key"])["Body"].read())
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["KinesisBatchInfo"]["shardId"] == shard and record["KinesisBatchInfo"]["batchSize"] == 1
    batch = json.loads(record["payload"])  # the event the function got, as Lambda adds it for S3
    [kinesis_record] = batch["Records"]
    assert json.loads(base64.b64decode(kinesis_record["kinesis"]["data"])) == {"fail": True}


def failure_records_left(moto, url: str) -> int:
    attributes = moto.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def test_kinesis_on_failure_record_field_by_field(lam, moto, n):
    recorder = Recorder(moto, n("recorder"))
    dest_url, dest_arn = new_queue(moto, n("on-failure"))
    stream_arn, _ = new_stream(moto, n("stream"))
    put_kinesis(moto, stream_arn, {"fail": True})
    create_recording_function(lam, n("fn"), recorder.url)
    lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=n("fn"), StartingPosition="TRIM_HORIZON",
                                    BatchSize=1, MaximumRetryAttempts=1,
                                    DestinationConfig={"OnFailure": {"Destination": dest_arn}})
    [record] = failure_records(moto, dest_url)
    request_ids = [inv["request_id"] for inv in recorder.drain()]
    assert set(record) == {"requestContext", "responseContext", "version", "timestamp", "KinesisBatchInfo"}
    assert record["version"] == "1.0"
    context = record["requestContext"]
    assert {k: context[k] for k in ("functionArn", "condition", "approximateInvokeCount")} == {
        "functionArn": lambda_arn(n("fn")), "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 2}
    assert context["requestId"] in request_ids
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    info = record["KinesisBatchInfo"]
    assert set(info) == {"shardId", "startSequenceNumber", "endSequenceNumber", "approximateArrivalOfFirstRecord",
                         "approximateArrivalOfLastRecord", "batchSize", "streamArn"}
    assert ISO_MS.match(info["approximateArrivalOfFirstRecord"])
    assert ISO_MS.match(info["approximateArrivalOfLastRecord"])


def test_bisect_batch_on_function_error_isolates_the_poison_record(lam, moto, n):
    recorder = Recorder(moto, n("recorder"))
    dest_url, dest_arn = new_queue(moto, n("on-failure"))
    stream_arn, _ = new_stream(moto, n("stream"))
    sent = [put_kinesis(moto, stream_arn, p) for p in ({"i": 0}, {"i": 1}, {"i": 2, "fail": True}, {"i": 3})]
    create_recording_function(lam, n("fn"), recorder.url)
    lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=n("fn"), StartingPosition="TRIM_HORIZON",
                                    BatchSize=4, MaximumBatchingWindowInSeconds=1, BisectBatchOnFunctionError=True,
                                    MaximumRetryAttempts=1, DestinationConfig={"OnFailure": {"Destination": dest_arn}})
    [record] = failure_records(moto, dest_url)
    assert record["KinesisBatchInfo"]["batchSize"] == 1
    assert record["KinesisBatchInfo"]["startSequenceNumber"] == sent[2]["SequenceNumber"]
    recorder.wait(lambda _: [1 for _, _, p in kinesis_deliveries(recorder) if p == {"i": 3}],
                  what="the record after the poison one")
    batches = [[kinesis_payload(r)["i"] for r in inv["event"]["Records"]] for inv in recorder.drain()]
    assert [2] in batches, f"the batch was bisected down to the poison record: {batches}"
    succeeded = {kinesis_payload(r)["i"] for inv in recorder.invocations if not inv["failed"]
                 for r in inv["event"]["Records"]}
    assert succeeded == {0, 1, 3}, batches


def test_kinesis_partial_batch_response_checkpoints_at_the_failed_sequence_number(lam, moto, n):
    recorder = Recorder(moto, n("recorder"))
    dest_url, dest_arn = new_queue(moto, n("on-failure"))
    stream_arn, _ = new_stream(moto, n("stream"))
    sent = [put_kinesis(moto, stream_arn, p) for p in ({"i": 0}, {"i": 1, "partial_fail": True}, {"i": 2})]
    create_recording_function(lam, n("fn"), recorder.url)
    lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=n("fn"), StartingPosition="TRIM_HORIZON",
                                    BatchSize=3, MaximumBatchingWindowInSeconds=1, MaximumRetryAttempts=1,
                                    FunctionResponseTypes=["ReportBatchItemFailures"],
                                    DestinationConfig={"OnFailure": {"Destination": dest_arn}})
    [record] = failure_records(moto, dest_url)
    assert record["KinesisBatchInfo"]["startSequenceNumber"] == sent[1]["SequenceNumber"]
    assert record["KinesisBatchInfo"]["endSequenceNumber"] == sent[2]["SequenceNumber"]
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    # The function did not fail: it answered; AWS records functionError null then.
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": None}
    batches = [[kinesis_payload(r)["i"] for r in inv["event"]["Records"]] for inv in recorder.drain()]
    assert batches[0] == [0, 1, 2], batches
    assert batches[1][0] == 1, f"the retry starts at the reported record, not before it: {batches}"
    delivered = Counter(i for batch in batches for i in batch)
    assert delivered[0] == 1, batches


@pytest.mark.parametrize("response", [
    {"batchItemFailures": [{"itemIdentifier": ""}]},
    {"batchItemFailures": [{"itemIdentifier": None}]},
    {"batchItemFailures": [{"foo": "bar"}]},
    {"batchItemFailures": [{"itemIdentifier": 123}]},
    {"batchItemFailures": [{"itemIdentifier": "999"}]},
], ids=["empty-identifier", "null-identifier", "unknown-key", "number-identifier", "unknown-sequence-number"])
def test_kinesis_invalid_batch_item_failures_fail_the_whole_batch(lam, moto, n, response):
    recorder = Recorder(moto, n("recorder"))
    dest_url, dest_arn = new_queue(moto, n("on-failure"))
    stream_arn, _ = new_stream(moto, n("stream"))
    sent = [put_kinesis(moto, stream_arn, {"i": i}) for i in range(2)]
    create_recording_function(lam, n("fn"), recorder.url, env={"RESPONSE": json.dumps(response)})
    lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=n("fn"), StartingPosition="TRIM_HORIZON",
                                    BatchSize=2, MaximumBatchingWindowInSeconds=1, MaximumRetryAttempts=1,
                                    FunctionResponseTypes=["ReportBatchItemFailures"],
                                    DestinationConfig={"OnFailure": {"Destination": dest_arn}})
    [record] = failure_records(moto, dest_url)
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": None}
    info = record["KinesisBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        sent[0]["SequenceNumber"], sent[1]["SequenceNumber"], 2)
    batches = [[kinesis_payload(r)["i"] for r in inv["event"]["Records"]] for inv in recorder.drain()]
    assert batches == [[0, 1], [0, 1]], "the whole batch is retried"


@pytest.mark.parametrize("response", ["", [], None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}],
                         ids=["empty-string", "json-list", "null", "empty-object", "empty-list", "null-list"])
def test_kinesis_empty_batch_item_failures_are_success(lam, moto, n, response):
    recorder = Recorder(moto, n("recorder"))
    stream_arn, _ = new_stream(moto, n("stream"))
    put_kinesis(moto, stream_arn, {"i": 0})
    create_recording_function(lam, n("fn"), recorder.url, env={"RESPONSE": json.dumps(response)})
    lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=n("fn"), StartingPosition="TRIM_HORIZON",
                                    BatchSize=1, MaximumRetryAttempts=2,
                                    FunctionResponseTypes=["ReportBatchItemFailures"])
    recorder.wait(lambda _: kinesis_deliveries(recorder), what="the first record")
    put_kinesis(moto, stream_arn, {"i": 1})
    recorder.wait(lambda _: len(kinesis_deliveries(recorder)) >= 2, what="the next record")
    assert [p["i"] for _, _, p in kinesis_deliveries(recorder)] == [0, 1], "no retry of a successful batch"


def test_parallelization_factor_keeps_order_per_partition_key(lam, moto, n):
    recorder = Recorder(moto, n("recorder"))
    stream_arn, _ = new_stream(moto, n("stream"))
    for i in range(12):
        put_kinesis(moto, stream_arn, {"i": i, "key": "abc"[i % 3]}, key="abc"[i % 3])
    create_recording_function(lam, n("fn"), recorder.url, env={"SLEEP": "0.3"})
    lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=n("fn"), StartingPosition="TRIM_HORIZON",
                                    BatchSize=2, ParallelizationFactor=3)
    recorder.wait(lambda _: len(kinesis_deliveries(recorder)) >= 12, what="twelve records")
    delivered = [p for _, _, p in kinesis_deliveries(recorder)]
    assert sorted(p["i"] for p in delivered) == list(range(12))
    for key in "abc":
        order = [p["i"] for p in delivered if p["key"] == key]
        assert order == sorted(order), f"partition key {key} out of order: {order}"


def test_dynamodb_stream_event_shapes_in_order(lam, moto, n):
    recorder = Recorder(moto, n("recorder"))
    table = n("table")
    stream_arn = new_table_stream(moto, table)
    ddb = moto.client("dynamodb")
    ddb.put_item(TableName=table, Item={"id": {"S": "a"}, "v": {"N": "1"}})
    ddb.put_item(TableName=table, Item={"id": {"S": "a"}, "v": {"N": "2"}})
    ddb.delete_item(TableName=table, Key={"id": {"S": "a"}})
    create_recording_function(lam, n("fn"), recorder.url)
    lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=n("fn"), StartingPosition="TRIM_HORIZON",
                                    BatchSize=10)
    recorder.wait(lambda _: len(recorder.records()) >= 3, what="three stream records")
    records = recorder.records()
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    for record in records:
        assert {"eventID", "eventName", "eventVersion", "eventSource", "awsRegion", "dynamodb",
                "eventSourceARN"} <= set(record)
        assert (record["eventSource"], record["awsRegion"], record["eventSourceARN"]) == (
            "aws:dynamodb", REGION, stream_arn)
        assert record["eventID"]
        assert record["eventVersion"] == "1.1"  # what Lambda's DynamoDB records say
        data = record["dynamodb"]
        assert data["Keys"] == {"id": {"S": "a"}}
        assert data["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert isinstance(data["SequenceNumber"], str) and data["SequenceNumber"]
        assert isinstance(data["SizeBytes"], int)
        assert isinstance(data["ApproximateCreationDateTime"], (int, float)), "epoch seconds, as Lambda sends it"
    insert, modify, remove = (r["dynamodb"] for r in records)
    assert insert["NewImage"] == {"id": {"S": "a"}, "v": {"N": "1"}} and "OldImage" not in insert
    assert modify["NewImage"] == {"id": {"S": "a"}, "v": {"N": "2"}}
    assert modify["OldImage"] == {"id": {"S": "a"}, "v": {"N": "1"}}
    assert remove["OldImage"] == {"id": {"S": "a"}, "v": {"N": "2"}} and "NewImage" not in remove
    seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert seqs == sorted(seqs)


def test_dynamodb_failure_goes_to_the_on_failure_destination(lam, moto, n):
    recorder = Recorder(moto, n("recorder"))
    dest_url, dest_arn = new_queue(moto, n("on-failure"))
    table = n("table")
    stream_arn = new_table_stream(moto, table)
    ddb = moto.client("dynamodb")
    ddb.put_item(TableName=table, Item={"id": {"S": "bad"}, "cmd": {"S": json.dumps({"fail": True})}})
    ddb.put_item(TableName=table, Item={"id": {"S": "good"}, "cmd": {"S": json.dumps({"ok": True})}})
    create_recording_function(lam, n("fn"), recorder.url)
    lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=n("fn"), StartingPosition="TRIM_HORIZON",
                                    BatchSize=1, MaximumRetryAttempts=0,
                                    DestinationConfig={"OnFailure": {"Destination": dest_arn}})
    [record] = failure_records(moto, dest_url)
    bad_seq = recorder.records()[0]["dynamodb"]["SequenceNumber"]
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["requestContext"]["functionArn"] == lambda_arn(n("fn"))
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    info = record["DDBStreamBatchInfo"]
    assert set(info) >= {"shardId", "startSequenceNumber", "endSequenceNumber", "approximateArrivalOfFirstRecord",
                         "approximateArrivalOfLastRecord", "batchSize", "streamArn"}
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"], info["streamArn"]) == (
        bad_seq, bad_seq, 1, stream_arn)
    recorder.wait(lambda _: [1 for r in recorder.records() if ddb_payload(r) == {"ok": True}],
                  what="the record after the failed one")


def test_kinesis_filter_criteria_on_data(lam, moto, n):
    recorder = Recorder(moto, n("recorder"))
    stream_arn, _ = new_stream(moto, n("stream"))
    for payload in ({"kind": "drop", "i": 0}, {"kind": "keep", "i": 1}, {"kind": "drop", "i": 2}):
        put_kinesis(moto, stream_arn, payload)
    moto.client("kinesis").put_record(StreamARN=stream_arn, Data=b"not json", PartitionKey="pk")
    put_kinesis(moto, stream_arn, {"kind": "keep", "i": 4})
    create_recording_function(lam, n("fn"), recorder.url)
    pattern = json.dumps({"data": {"kind": ["keep"]}})
    lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=n("fn"), StartingPosition="TRIM_HORIZON",
                                    BatchSize=1, FilterCriteria={"Filters": [{"Pattern": pattern}]})
    recorder.wait(lambda _: [1 for _, _, p in kinesis_deliveries(recorder) if p["i"] == 4], what="the last match")
    assert [p["i"] for _, _, p in kinesis_deliveries(recorder)] == [1, 4]


def test_dynamodb_filter_criteria_on_event_name_and_image(lam, moto, n):
    recorder = Recorder(moto, n("recorder"))
    table = n("table")
    stream_arn = new_table_stream(moto, table)
    ddb = moto.client("dynamodb")
    for key, kind in (("a", "drop"), ("b", "keep")):
        ddb.put_item(TableName=table, Item={"id": {"S": key}, "kind": {"S": kind}})
    ddb.put_item(TableName=table, Item={"id": {"S": "b"}, "kind": {"S": "keep"}, "v": {"N": "2"}})  # MODIFY
    ddb.put_item(TableName=table, Item={"id": {"S": "c"}, "kind": {"S": "keep"}})
    create_recording_function(lam, n("fn"), recorder.url)
    pattern = json.dumps({"eventName": ["INSERT"], "dynamodb": {"NewImage": {"kind": {"S": ["keep"]}}}})
    lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=n("fn"), StartingPosition="TRIM_HORIZON",
                                    BatchSize=1, FilterCriteria={"Filters": [{"Pattern": pattern}]})
    recorder.wait(lambda _: [1 for r in recorder.records() if r["dynamodb"]["Keys"]["id"]["S"] == "c"],
                  what="the last match")
    assert [(r["eventName"], r["dynamodb"]["Keys"]["id"]["S"]) for r in recorder.records()] == [
        ("INSERT", "b"), ("INSERT", "c")]


def test_each_mapping_has_its_own_position_in_the_stream(lam, moto, n):
    recorder = Recorder(moto, n("recorder"))
    stream_arn, _ = new_stream(moto, n("stream"))
    for i in range(3):
        put_kinesis(moto, stream_arn, {"i": i})
    for fn in (n("one"), n("two")):
        create_recording_function(lam, fn, recorder.url)
    first = lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=n("one"),
                                            StartingPosition="TRIM_HORIZON")["UUID"]
    lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=n("two"), StartingPosition="TRIM_HORIZON")

    def seen_by(fn):
        return [kinesis_payload(r)["i"] for inv in recorder.drain() if inv["function"] == fn
                for r in inv["event"]["Records"]]
    recorder.wait(lambda _: len(seen_by(n("one"))) >= 3 and len(seen_by(n("two"))) >= 3, what="both functions")
    assert seen_by(n("one")) == seen_by(n("two")) == [0, 1, 2]

    # A new mapping starts afresh: TRIM_HORIZON reads the shard from its oldest record again.
    wait_until(lambda: lam.get_event_source_mapping(UUID=first)["LastProcessingResult"] == "OK",
               what="the first mapping to report its batch")
    lam.delete_event_source_mapping(UUID=first)
    wait_gone(lam, first)
    lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=n("one"), StartingPosition="TRIM_HORIZON")
    recorder.wait(lambda _: len(seen_by(n("one"))) >= 6, what="the new mapping to read the shard again")
    assert seen_by(n("one")) == [0, 1, 2, 0, 1, 2]
    assert seen_by(n("two")) == [0, 1, 2]


@pytest.mark.parametrize("how", ["restart", "sigkill"])
def test_kinesis_resumes_after_a_restart_without_skipping(fresh_server, moto, n, how):
    fresh_server.extra_env["AWS_ENDPOINT_URL"] = moto.url
    fresh_server.start()
    lam = fresh_server.client()
    recorder = Recorder(moto, n("recorder"))
    stream_arn, _ = new_stream(moto, n("stream"))
    create_recording_function(lam, n("fn"), recorder.url)
    uuid_ = lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=n("fn"),
                                            StartingPosition="TRIM_HORIZON", BatchSize=2)["UUID"]
    for i in range(6):
        put_kinesis(moto, stream_arn, {"i": i})
    recorder.wait(lambda _: len(kinesis_deliveries(recorder)) >= 6, what="the first six records")
    before = len(kinesis_deliveries(recorder))

    if how == "restart":
        fresh_server.restart()
    else:
        fresh_server.stop(signal.SIGKILL)
        fresh_server.start()
    lam = fresh_server.client()
    assert lam.get_event_source_mapping(UUID=uuid_)["State"] in ("Enabled", "Enabling", "Creating")
    for i in range(6, 12):
        put_kinesis(moto, stream_arn, {"i": i})
    recorder.wait(lambda _: {p["i"] for _, _, p in kinesis_deliveries(recorder)} >= set(range(12)), timeout=60,
                  what="all twelve records")
    delivered = [p["i"] for _, _, p in kinesis_deliveries(recorder)]
    after_restart = delivered[before:]
    assert sorted(set(delivered)) == list(range(12)), "no record skipped"
    if how == "restart":
        assert after_restart == list(range(6, 12)), f"resumes after the last processed record: {delivered}"
    else:
        duplicates = sum(c - 1 for c in Counter(delivered).values())
        print(f"SIGKILL: {duplicates} duplicate deliveries: {delivered}")
        assert [i for i in after_restart if i >= 6] == list(range(6, 12)), f"in order after the restart: {delivered}"
