"""What the event-source-mapping tests share: a recording function, moto resources, a recorder reader.

The function under test records every invocation it receives by sending `{"request_id", "failed",
"function", "version", "invoked_arn", "started", "finished", "event"}` to an SQS "recorder" queue in moto (the server passes `AWS_ENDPOINT_URL` through to
functions); the test drains that queue. What the function does with a batch is steered by the
records themselves (a JSON payload in an SQS body, a Kinesis record's data or a DynamoDB item's
`cmd` attribute) and by environment variables:

* `{"fail": true}`: the invocation raises (the whole batch fails);
* `{"fail_attempts": N}` (SQS): it raises while the message's ApproximateReceiveCount <= N;
* `{"partial_fail": true}`: the record is reported in `batchItemFailures` (by messageId for SQS,
  sequenceNumber for streams); `{"partial_fail_attempts": N}` limits that to receive counts <= N;
* `RESPONSE` (env): returned verbatim (JSON) while every record is on its first receive, then `{}`;
* `SLEEP` (env): seconds to sleep before recording (the record marks a *completed* invocation).

Nothing here imports `lambdalet`.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import uuid
from typing import Callable

import pytest

from conftest import ROLE, Server, make_zip

from .helpers import wait_until

ACCOUNT = "000000000000"
REGION = "us-east-1"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

RECORDING_HANDLER = r'''
import base64, json, os, time
import boto3

sqs = boto3.client("sqs")


def _items(event):
    out = []
    for record in event.get("Records", []):
        if "body" in record:
            raw, ident = record["body"], record["messageId"]
        elif "kinesis" in record:
            raw = base64.b64decode(record["kinesis"]["data"]).decode("utf-8", "replace")
            ident = record["kinesis"]["sequenceNumber"]
        elif "dynamodb" in record:
            image = record["dynamodb"].get("NewImage") or record["dynamodb"].get("OldImage") or {}
            raw, ident = image.get("cmd", {}).get("S", "{}"), record["dynamodb"].get("SequenceNumber")
        else:
            raw, ident = "{}", None
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = {}
        out.append((record, payload if isinstance(payload, dict) else {}, ident))
    return out


def _count(record):
    return int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))


def handler(event, context):
    started = time.time()
    time.sleep(float(os.environ.get("SLEEP", "0")))
    items = _items(event)
    fail = any(p.get("fail") or _count(r) <= p.get("fail_attempts", 0) for r, p, _ in items)
    sqs.send_message(QueueUrl=os.environ["RECORDER"],
                     MessageBody=json.dumps({"request_id": context.aws_request_id, "failed": fail,
                                             "function": context.function_name,
                                             "version": context.function_version,
                                             "invoked_arn": context.invoked_function_arn,
                                             "started": started, "finished": time.time(), "event": event}))
    if fail:
        raise RuntimeError("failing on purpose")
    if "RESPONSE" in os.environ:
        if all(_count(r) == 1 for r, _, _ in items):
            return json.loads(os.environ["RESPONSE"])
        return {}
    failures = [{"itemIdentifier": ident} for r, p, ident in items
                if p.get("partial_fail") and _count(r) <= p.get("partial_fail_attempts", 10 ** 9)]
    if failures:
        return {"batchItemFailures": failures}
    return {"batchItemFailures": []} if os.environ.get("REPORTS") else None
'''


def lambda_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def names() -> Callable[[str], str]:
    suffix = uuid.uuid4().hex[:8]
    return lambda what: f"{what}-{suffix}"


def esm_server(tmp_path_factory, moto, label: str):
    srv = Server(tmp_path_factory.mktemp(label), extra_env={"AWS_ENDPOINT_URL": moto.url})
    srv.start()
    return srv


# Fixtures of the mapping test modules (imported by each): a server of the module's own pointed at
# the session's moto, a Lambda client that deletes the test's mappings afterwards, unique names.

@pytest.fixture(scope="module")
def srv(tmp_path_factory, moto, request):
    server = esm_server(tmp_path_factory, moto, request.module.__name__.rsplit(".", 1)[-1])
    yield server
    server.stop()


@pytest.fixture
def lam(srv):
    yield srv.client()
    delete_all_mappings(srv)


@pytest.fixture
def n():
    return names()


def create_recording_function(client, name: str, recorder_url: str, *, timeout: int = 3,
                              env: dict[str, str] | None = None, **kwargs) -> str:
    variables = {"RECORDER": recorder_url, **(env or {})}
    return client.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                                  Code={"ZipFile": make_zip({"app.py": RECORDING_HANDLER})}, Timeout=timeout,
                                  Environment={"Variables": variables}, **kwargs)["FunctionArn"]


def create_echo_function(client, name: str, **kwargs) -> str:
    code = "def handler(event, context):\n    return None\n"
    return client.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                                  Code={"ZipFile": make_zip({"app.py": code})}, **kwargs)["FunctionArn"]


# --- moto resources ------------------------------------------------------------------------------------------

def new_queue(moto, name: str, **attributes: str) -> tuple[str, str]:
    """An SQS queue in moto: (URL, ARN)."""
    sqs = moto.client("sqs")
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def queue_counts(moto, url: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    attributes = moto.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    a = attributes["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


def wait_queue_empty(moto, url: str, timeout: float = 30) -> None:
    wait_until(lambda: queue_counts(moto, url) == (0, 0), timeout=timeout, interval=0.2,
               what=f"{url} to be empty (every message deleted)")


def new_stream(moto, name: str, shards: int = 1) -> tuple[str, str]:
    """A Kinesis stream in moto: (ARN, first shard id)."""
    kinesis = moto.client("kinesis")
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    description = wait_until(lambda: (d := kinesis.describe_stream(StreamName=name)["StreamDescription"])
                             ["StreamStatus"] == "ACTIVE" and d, what=f"stream {name} ACTIVE")
    return description["StreamARN"], description["Shards"][0]["ShardId"]


def put_kinesis(moto, stream_arn: str, payload: dict, key: str = "pk") -> dict:
    """PutRecord; returns {"ShardId", "SequenceNumber"}."""
    return moto.client("kinesis").put_record(StreamARN=stream_arn, Data=json.dumps(payload).encode(),
                                            PartitionKey=key)


def new_table_stream(moto, name: str, view: str = "NEW_AND_OLD_IMAGES") -> str:
    """A DynamoDB table (hash key `id`) with a stream in moto; returns the stream ARN."""
    table = moto.client("dynamodb").create_table(
        TableName=name, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": view})
    return table["TableDescription"]["LatestStreamArn"]


# --- the recorder ------------------------------------------------------------------------------------------

class Recorder:
    """The invocations a recording function reported, in the order they reached the recorder queue."""

    def __init__(self, moto, name: str) -> None:
        self.moto = moto
        self.url, self.arn = new_queue(moto, name)
        self.invocations: list[dict] = []

    def drain(self) -> list[dict]:
        sqs = self.moto.client("sqs")
        while True:
            messages = sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                "Messages", [])
            if not messages:
                return self.invocations
            for message in messages:
                self.invocations.append(json.loads(message["Body"]))
            sqs.delete_message_batch(QueueUrl=self.url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])

    def wait(self, predicate: Callable[[list[dict]], object], *, timeout: float = 30, what: str = "invocations"):
        def probe():
            return predicate(self.drain())
        return wait_until(probe, timeout=timeout, interval=0.2, what=what)

    def records(self) -> list[dict]:
        """Every record of every invocation, in order."""
        return [r for inv in self.drain() for r in inv["event"].get("Records", [])]


def sqs_payload(record: dict) -> dict | str:
    try:
        return json.loads(record["body"])
    except ValueError:
        return record["body"]


def kinesis_payload(record: dict) -> dict:
    return json.loads(base64.b64decode(record["kinesis"]["data"]))


def ddb_payload(record: dict) -> dict:
    image = record["dynamodb"].get("NewImage") or record["dynamodb"].get("OldImage") or {}
    return json.loads(image.get("cmd", {}).get("S", "{}"))


# --- mapping helpers -----------------------------------------------------------------------------------------

def wait_state(client, uuid_: str, state: str, timeout: float = 30) -> dict:
    return wait_until(lambda: (m := client.get_event_source_mapping(UUID=uuid_))["State"] == state and m,
                      timeout=timeout, interval=0.2, what=f"mapping {uuid_} to be {state}")


def wait_gone(client, uuid_: str, timeout: float = 30) -> None:
    def gone() -> bool:
        try:
            client.get_event_source_mapping(UUID=uuid_)
        except client.exceptions.ResourceNotFoundException:
            return True
        return False
    wait_until(gone, timeout=timeout, interval=0.2, what=f"mapping {uuid_} to be deleted")


def client_error(client, call: Callable[[], object]):
    """Run `call`, which must fail with a ClientError; return (code, status, message, response)."""
    with pytest.raises(client.exceptions.ClientError) as caught:
        call()
    response = caught.value.response
    return (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"],
            response["Error"].get("Message", ""), response)


def assert_recent(value: datetime.datetime, slack: float = 300) -> None:
    assert isinstance(value, datetime.datetime), value
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - value).total_seconds()) < slack, value


def delete_all_mappings(server: Server) -> None:
    """Teardown: stop every mapping of a module's server so pollers do not pile up on moto."""
    client = server.client()
    try:
        mappings = client.get_paginator("list_event_source_mappings").paginate().build_full_result()
    except client.exceptions.ClientError:
        return
    for mapping in mappings.get("EventSourceMappings", []):
        try:
            client.delete_event_source_mapping(UUID=mapping["UUID"])
        except client.exceptions.ClientError:
            pass
