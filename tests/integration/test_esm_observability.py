"""What a user sees of a mapping besides deliveries: /metrics, `lambdalet mappings`, a source that
went away, and a Kinesis stream resharded under a mapping.

The AWS services are `moto` in server mode, reached by the server through `AWS_ENDPOINT_URL`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROLE, Server, make_zip

from .helpers import wait_until

# Sends each record's payload (SQS body, Kinesis data) to the queue named by RECORDER.
RECORDER = """
import base64, json, os
import boto3

sqs = boto3.client("sqs")

def handler(event, context):
    for record in event["Records"]:
        body = record["body"] if "body" in record else base64.b64decode(record["kinesis"]["data"]).decode()
        sqs.send_message(QueueUrl=os.environ["RECORDER"], MessageBody=body)
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory, moto) -> Server:
    server = Server(tmp_path_factory.mktemp("esm-observability"), extra_env={"AWS_ENDPOINT_URL": moto.url})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def n():
    suffix = uuid.uuid4().hex[:8]
    return lambda what: f"{what}-{suffix}"


def queue(moto, name: str) -> tuple[str, str]:
    sqs = moto.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def recording_function(srv: Server, name: str, recorder_url: str) -> None:
    srv.client().create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                                 Code={"ZipFile": make_zip({"app.py": RECORDER})},
                                 Environment={"Variables": {"RECORDER": recorder_url}})


def received(moto, url: str, count: int) -> list[str]:
    """Wait for `count` bodies on a queue; return them in the order they arrived."""
    sqs, bodies = moto.client("sqs"), []

    def more() -> bool:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return len(bodies) >= count

    wait_until(more, timeout=60, what=f"{count} recorded records")
    return bodies


def state(srv: Server, uuid_: str, wanted: str) -> dict:
    return wait_until(lambda: (m := srv.client().get_event_source_mapping(UUID=uuid_))["State"] == wanted and m,
                      timeout=30, interval=0.2, what=f"mapping {uuid_} {wanted}")


def samples(srv: Server) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(srv.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "node"))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_and_the_cli_show_a_mapping_at_work(srv, moto, n):
    recorder_url, _ = queue(moto, n("recorder"))
    source_url, source_arn = queue(moto, n("source"))
    recording_function(srv, n("fn"), recorder_url)
    mapping = srv.client().create_event_source_mapping(FunctionName=n("fn"), EventSourceArn=source_arn,
                                                       FilterCriteria={"Filters": [{"Pattern": '{"body": {"keep": [true]}}'}]})
    moto.client("sqs").send_message(QueueUrl=source_url, MessageBody=json.dumps({"keep": False}))
    moto.client("sqs").send_message(QueueUrl=source_url, MessageBody=json.dumps({"keep": True}))
    assert received(moto, recorder_url, 1) == [json.dumps({"keep": True})]

    def counted() -> dict[str, float]:
        found = samples(srv)
        return {outcome: found.get(("lambdalet_event_source_mapping_records_total", tuple(sorted(
            {"mapping": mapping["UUID"], "function": n("fn"), "outcome": outcome}.items()))), 0.0)
            for outcome in ("polled", "filtered", "delivered", "failed")}

    # Both messages were polled; one matched no filter; the other was delivered (counted before the
    # delete, so once the recorder has it, the count may lag by the delete's round trip only).
    wait_until(lambda: counted() == {"polled": 2, "filtered": 1, "delivered": 1, "failed": 0}, timeout=10,
               what="the mapping's record counts")
    polls = samples(srv)[("lambdalet_event_source_mapping_poll_seconds_count", (("mapping", mapping["UUID"]),))]
    assert polls >= 1

    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    listed = subprocess.run([sys.executable, "-m", "lambdalet", "mappings", n("fn"), "--endpoint-url", srv.url],
                            capture_output=True, env=env, timeout=60)
    assert listed.returncode == 0, listed.stderr.decode()
    header, row = listed.stdout.decode().splitlines()
    assert header.split() == ["UUID", "FUNCTION", "SOURCE", "STATE", "BATCH", "LAST", "RESULT"]
    assert row.split()[:5] == [mapping["UUID"], n("fn"), source_arn, "Enabled", "10"]
    srv.client().delete_event_source_mapping(UUID=mapping["UUID"])


def test_a_queue_that_goes_away_disables_its_mapping_with_the_reason(srv, moto, n):
    recorder_url, _ = queue(moto, n("recorder"))
    source_url, source_arn = queue(moto, n("source"))
    recording_function(srv, n("fn"), recorder_url)
    mapping = srv.client().create_event_source_mapping(FunctionName=n("fn"), EventSourceArn=source_arn)
    moto.client("sqs").send_message(QueueUrl=source_url, MessageBody="before")
    assert received(moto, recorder_url, 1) == ["before"]

    moto.client("sqs").delete_queue(QueueUrl=source_url)
    disabled = state(srv, mapping["UUID"], "Disabled")
    assert source_arn in disabled["StateTransitionReason"]
    assert "does not exist" in disabled["StateTransitionReason"]
    srv.client().delete_event_source_mapping(UUID=mapping["UUID"])


def test_a_resharded_stream_is_read_parent_first_then_its_children(srv, moto, n):
    recorder_url, _ = queue(moto, n("recorder"))
    kinesis = moto.client("kinesis")
    kinesis.create_stream(StreamName=n("stream"), ShardCount=1)
    stream = kinesis.describe_stream(StreamName=n("stream"))["StreamDescription"]
    recording_function(srv, n("fn"), recorder_url)
    for i in range(3):
        kinesis.put_record(StreamName=n("stream"), Data=json.dumps({"i": i}).encode(), PartitionKey="k")
    [parent] = stream["Shards"]
    middle = (int(parent["HashKeyRange"]["StartingHashKey"]) + int(parent["HashKeyRange"]["EndingHashKey"])) // 2
    kinesis.split_shard(StreamName=n("stream"), ShardToSplit=parent["ShardId"], NewStartingHashKey=str(middle))
    for i in range(3, 6):
        kinesis.put_record(StreamName=n("stream"), Data=json.dumps({"i": i}).encode(), PartitionKey="k")

    mapping = srv.client().create_event_source_mapping(FunctionName=n("fn"), EventSourceArn=stream["StreamARN"],
                                                       StartingPosition="TRIM_HORIZON", BatchSize=2)
    order = [json.loads(body)["i"] for body in received(moto, recorder_url, 6)]
    assert order == list(range(6)), "one partition key: the parent's records first, then its child's, in order"
    srv.client().delete_event_source_mapping(UUID=mapping["UUID"])
