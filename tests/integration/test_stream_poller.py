"""A smoke test of the stream poller end to end: a server, a Kinesis stream and a DynamoDB stream in
moto, a function that tells an SQS queue what it got. (The ESM suite, test_esm_streams.py, goes
through every setting; this checks the poller's two promises: in order, and resumed after a restart.)"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta

from conftest import ROLE, make_zip

from .helpers import wait_until

# Sends each batch it gets to the queue in RECORDER (AWS_ENDPOINT_URL reaches moto).
RECORDING = """\
import json, os
import boto3


def handler(event, context):
    boto3.client("sqs").send_message(QueueUrl=os.environ["RECORDER"], MessageBody=json.dumps(event))
"""


def _name(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:8]}"


def _batches(sqs, url: str, seen: list[dict]) -> list[dict]:
    """Every event the function recorded so far (in the order the queue returns them)."""
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return seen
        for message in messages:
            seen.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def _setup(fresh_server, moto, code: str = RECORDING) -> tuple:
    fresh_server.extra_env["AWS_ENDPOINT_URL"] = moto.url
    fresh_server.start()
    lam, sqs = fresh_server.client(), moto.client("sqs")
    recorder = sqs.create_queue(QueueName=_name("recorder"))["QueueUrl"]
    function = _name("fn")
    lam.create_function(FunctionName=function, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                        Code={"ZipFile": make_zip({"app.py": code})},
                        Environment={"Variables": {"RECORDER": recorder}})
    return lam, sqs, recorder, function


def test_kinesis_records_arrive_in_order_and_a_restart_resumes_after_the_checkpoint(fresh_server, moto):
    lam, sqs, recorder, function = _setup(fresh_server, moto)
    kinesis = moto.client("kinesis")
    stream = _name("stream")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    arn = wait_until(lambda: (d := kinesis.describe_stream(StreamName=stream)["StreamDescription"])["StreamStatus"]
                     == "ACTIVE" and d["StreamARN"], what="the stream")
    for i in range(5):
        kinesis.put_record(StreamARN=arn, Data=str(i).encode(), PartitionKey=f"k{i}")
    lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=function, StartingPosition="TRIM_HORIZON",
                                    BatchSize=2)
    seen: list[dict] = []

    def delivered() -> list[int]:
        events = _batches(sqs, recorder, seen)
        return [int(base64.b64decode(r["kinesis"]["data"])) for e in events for r in e["Records"]]
    wait_until(lambda: len(delivered()) >= 5, timeout=30, what="five records")
    assert delivered() == [0, 1, 2, 3, 4]
    assert all(len(event["Records"]) <= 2 for event in seen)

    fresh_server.restart()
    for i in range(5, 8):
        kinesis.put_record(StreamARN=arn, Data=str(i).encode(), PartitionKey=f"k{i}")
    wait_until(lambda: delivered()[-1:] == [7], timeout=30, what="the records put after the restart")
    after = delivered()[5:]
    # Only the batch in flight at the stop may come again; nothing is skipped, the order holds.
    assert after[0] >= 4 and after == list(range(after[0], 8))


def test_dynamodb_stream_records_arrive_as_lambda_shapes_them(fresh_server, moto):
    lam, sqs, recorder, function = _setup(fresh_server, moto)
    dynamodb = moto.client("dynamodb")
    table = _name("table")
    arn = dynamodb.create_table(
        TableName=table, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]
    lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=function, StartingPosition="TRIM_HORIZON")
    dynamodb.put_item(TableName=table, Item={"id": {"S": "a"}, "blob": {"B": b"foobar"}})
    dynamodb.put_item(TableName=table, Item={"id": {"S": "a"}, "n": {"N": "2"}})
    seen: list[dict] = []
    records = wait_until(lambda: len(r := [r for e in _batches(sqs, recorder, seen) for r in e["Records"]]) >= 2
                         and r, timeout=30, what="two stream records")
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY"]
    first = records[0]
    assert (first["eventSource"], first["eventVersion"], first["eventSourceARN"]) == ("aws:dynamodb", "1.1", arn)
    assert first["dynamodb"]["Keys"] == {"id": {"S": "a"}}
    assert first["dynamodb"]["NewImage"]["blob"] == {"B": "Zm9vYmFy"}
    assert isinstance(first["dynamodb"]["ApproximateCreationDateTime"], (int, float))
    assert records[1]["dynamodb"]["OldImage"] == first["dynamodb"]["NewImage"]


# Adds the records' numbers into state["sum"], and tells the queue in RECORDER what it got.
SUMMING = """\
import base64, json, os
import boto3


def handler(event, context):
    boto3.client("sqs").send_message(QueueUrl=os.environ["RECORDER"], MessageBody=json.dumps(event))
    numbers = [int(base64.b64decode(record["kinesis"]["data"])) for record in event["Records"]]
    return {"state": {"sum": event["state"].get("sum", 0) + sum(numbers)}}
"""


def test_a_tumbling_window_hands_its_final_invocation_the_state_of_its_records(fresh_server, moto):
    lam, sqs, recorder, function = _setup(fresh_server, moto, SUMMING)
    kinesis = moto.client("kinesis")
    stream = _name("stream")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    arn = wait_until(lambda: (d := kinesis.describe_stream(StreamName=stream)["StreamDescription"])["StreamStatus"]
                     == "ACTIVE" and d["StreamARN"], what="the stream")
    mapping = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=function,
                                              StartingPosition="TRIM_HORIZON", TumblingWindowInSeconds=2)
    assert mapping["TumblingWindowInSeconds"] == 2
    for i in range(1, 6):
        kinesis.put_record(StreamARN=arn, Data=str(i).encode(), PartitionKey=f"k{i}")
    seen: list[dict] = []

    def finals() -> list[dict]:
        return [event for event in _batches(sqs, recorder, seen) if event["isFinalInvokeForWindow"]]
    # The five records may fall in one window or two: wait until the finals account for all of them.
    wait_until(lambda: sum(event["state"].get("sum", 0) for event in finals()) == 15, timeout=30,
               what="the final invocations of the windows")
    windows: dict[str, list[dict]] = {}
    for event in seen:
        assert event["shardId"] == "shardId-000000000000" and event["eventSourceARN"] == arn
        assert event["isWindowTerminatedEarly"] is False
        start, end = event["window"]["start"], event["window"]["end"]
        assert start.endswith("Z") and end.endswith("Z")
        assert datetime.fromisoformat(end[:-1]) - datetime.fromisoformat(start[:-1]) == timedelta(seconds=2)
        windows.setdefault(start, []).append(event)
    for events in windows.values():  # (the queue need not keep their order)
        [final] = [event for event in events if event["isFinalInvokeForWindow"]]
        assert final["Records"] == []
        numbers = [int(base64.b64decode(r["kinesis"]["data"])) for e in events for r in e["Records"]]
        assert final["state"] == {"sum": sum(numbers)}
        assert any(event["state"] == {} for event in events if event is not final)
