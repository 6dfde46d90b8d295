"""Recursive loop detection: Put/GetFunctionRecursionConfig and the loop it stops at 16.

The loop is AWS's own example: a function reading an SQS queue (moto, through an event source
mapping) that sends a message back to the same queue with its SDK. The function copies its
`_X_AMZN_TRACE_ID` into the message's `AWSTraceHeader` itself, because moto (unlike SQS) does not
take it from the `X-Amzn-Trace-Id` header botocore sends.
"""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

from conftest import ROLE, make_zip

from .esm_support import (  # noqa: F401 (lam, n, srv: the modules' fixtures)
    lam, n, srv, Recorder, client_error, new_queue, wait_state,
)
from .helpers import wait_until

LOOP_HANDLER = r'''
import json, os
import boto3

sqs = boto3.client("sqs")


def handler(event, context):
    trace = os.environ["_X_AMZN_TRACE_ID"]
    for record in event["Records"]:
        depth = json.loads(record["body"])["depth"]
        sqs.send_message(QueueUrl=os.environ["RECORDER"], MessageBody=json.dumps({"depth": depth, "trace": trace}))
        if depth + 1 < int(os.environ.get("STOP_AT", "1000")):
            sqs.send_message(QueueUrl=os.environ["QUEUE"], MessageBody=json.dumps({"depth": depth + 1}),
                             MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": trace}})
'''

TRACE_HANDLER = r'''
import os


def handler(event, context):
    return os.environ["_X_AMZN_TRACE_ID"]
'''


def _loop(lam, moto, n, *, stop_at: int | None = None, recursive_loop: str | None = None):
    """Queue (with a dead-letter queue after one receive), recorder, looping function and its mapping."""
    recorder = Recorder(moto, n("recorder"))
    dlq_url, dlq_arn = new_queue(moto, n("dlq"))
    url, arn = new_queue(moto, n("loop"), VisibilityTimeout="3",
                         RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"}))
    env = {"RECORDER": recorder.url, "QUEUE": url, **({"STOP_AT": str(stop_at)} if stop_at else {})}
    lam.create_function(FunctionName=n("fn"), Runtime="python3.12", Role=ROLE, Handler="app.handler",
                        Code={"ZipFile": make_zip({"app.py": LOOP_HANDLER})}, Timeout=3,
                        Environment={"Variables": env})
    if recursive_loop is not None:
        lam.put_function_recursion_config(FunctionName=n("fn"), RecursiveLoop=recursive_loop)
    mapping = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=n("fn"), BatchSize=1)
    wait_state(lam, mapping["UUID"], "Enabled")
    moto.client("sqs").send_message(QueueUrl=url, MessageBody=json.dumps({"depth": 0}))
    return recorder, dlq_url


def _lineage(trace: str) -> dict[str, int]:
    match = re.search(r"Lineage=([^;]+)", trace)
    assert match, trace
    return {entry.split(":")[-2]: int(entry.split(":")[-1]) for entry in match.group(1).split("|")}


def test_a_recursive_sqs_loop_is_stopped_after_16_invocations_and_the_message_goes_to_the_dlq(lam, moto, n, srv):
    recorder, dlq_url = _loop(lam, moto, n)
    sqs = moto.client("sqs")

    def dead_lettered():
        return sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=1).get("Messages")

    [dead] = wait_until(dead_lettered, timeout=90, interval=0.2, what="the 17th message in the dead-letter queue")
    assert json.loads(dead["Body"]) == {"depth": 16}
    depths = sorted(record["depth"] for record in recorder.drain())
    assert depths == list(range(16)), depths  # 16 invocations ran, the 17th was stopped
    counts = [next(iter(_lineage(record["trace"]).values())) for record in sorted(recorder.invocations,
                                                                                  key=lambda r: r["depth"])]
    assert counts == list(range(16))  # the function saw its own count in its trace header, from 0 as on AWS
    with urllib.request.urlopen(srv.url + "/metrics", timeout=10) as answer:
        metrics = answer.read().decode()
    assert re.search(rf'lambdalet_recursive_invocations_dropped_total\{{function="{n("fn")}",node="[^"]+"\}} [1-9]',
                     metrics)  # (every sample carries its node's name)


def test_allow_lets_the_loop_run_past_16(lam, moto, n):
    recorder, _ = _loop(lam, moto, n, stop_at=20, recursive_loop="Allow")
    recorder.wait(lambda invocations: len(invocations) >= 20, timeout=90, what="20 invocations of the loop")
    assert sorted(r["depth"] for r in recorder.invocations) == list(range(20))


@pytest.fixture
def traced(lam, n):
    """A function answering its own trace header, and its lineage key (learnt from that answer)."""
    lam.create_function(FunctionName=n("trace"), Runtime="python3.12", Role=ROLE, Handler="app.handler",
                        Code={"ZipFile": make_zip({"app.py": TRACE_HANDLER})})
    trace = json.loads(lam.invoke(FunctionName=n("trace"))["Payload"].read())
    [(key, count)] = _lineage(trace).items()
    assert count == 0  # a first invocation is the chain's first
    return key


def _as_function(monkeypatch, trace: str) -> None:
    """Call as function code does: botocore copies _X_AMZN_TRACE_ID into X-Amzn-Trace-Id."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "caller")
    monkeypatch.setenv("_X_AMZN_TRACE_ID", trace)


ROOT = "Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8;Sampled=0"


def test_invoke_counts_the_callers_lineage_and_refuses_the_17th(lam, n, traced, monkeypatch):
    _as_function(monkeypatch, f"{ROOT};Lineage=ffffffff:3|{traced}:14")
    answered = json.loads(lam.invoke(FunctionName=n("trace"))["Payload"].read())
    assert answered.startswith(ROOT)
    assert _lineage(answered) == {"ffffffff": 3, traced: 15}  # the 16th invocation runs

    _as_function(monkeypatch, f"{ROOT};Lineage={traced}:15")  # the 17th does not
    code, status, message, response = client_error(lam, lambda: lam.invoke(FunctionName=n("trace")))
    assert (code, status) == ("RecursiveInvocationException", 400)
    assert "recursive loop" in message

    lam.put_function_recursion_config(FunctionName=n("trace"), RecursiveLoop="Allow")
    assert lam.invoke(FunctionName=n("trace"))["StatusCode"] == 200


def test_an_async_event_stopped_as_a_loop_goes_to_the_on_failure_destination(lam, moto, n, traced, monkeypatch):
    destination_url, destination_arn = new_queue(moto, n("failures"))
    lam.put_function_event_invoke_config(FunctionName=n("trace"), MaximumRetryAttempts=2,
                                         DestinationConfig={"OnFailure": {"Destination": destination_arn}})
    _as_function(monkeypatch, f"{ROOT};Lineage={traced}:15")
    assert lam.invoke(FunctionName=n("trace"), InvocationType="Event", Payload=b'{"x": 1}')["StatusCode"] == 202
    sqs = moto.client("sqs")
    [message] = wait_until(lambda: sqs.receive_message(QueueUrl=destination_url, WaitTimeSeconds=1).get("Messages"),
                           timeout=30, interval=0.2, what="the invocation record")
    record = json.loads(message["Body"])
    assert record["requestContext"]["condition"] == "RecursiveInvocationDetected"
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert record["requestPayload"] == {"x": 1}


def test_an_sqs_destination_record_carries_the_trace_on(lam, moto, n, traced, monkeypatch):
    destination_url, destination_arn = new_queue(moto, n("successes"))
    lam.put_function_event_invoke_config(FunctionName=n("trace"),
                                         DestinationConfig={"OnSuccess": {"Destination": destination_arn}})
    _as_function(monkeypatch, f"{ROOT};Lineage={traced}:4")
    lam.invoke(FunctionName=n("trace"), InvocationType="Event", Payload=b"{}")
    sqs = moto.client("sqs")
    [message] = wait_until(lambda: sqs.receive_message(QueueUrl=destination_url, WaitTimeSeconds=1,
                                                       MessageSystemAttributeNames=["AWSTraceHeader"]).get("Messages"),
                           timeout=30, interval=0.2, what="the invocation record")
    header = message["Attributes"]["AWSTraceHeader"]
    assert header.startswith(ROOT) and _lineage(header) == {traced: 5}  # a mapping on that queue counts on


def test_recursion_config_put_get_and_refusals(lam, n, srv):
    lam.create_function(FunctionName=n("cfg"), Runtime="python3.12", Role=ROLE, Handler="app.handler",
                        Code={"ZipFile": make_zip({"app.py": TRACE_HANDLER})})
    assert lam.get_function_recursion_config(FunctionName=n("cfg"))["RecursiveLoop"] == "Terminate"
    put = lam.put_function_recursion_config(FunctionName=n("cfg"), RecursiveLoop="Allow")
    assert (put["RecursiveLoop"], put["ResponseMetadata"]["HTTPStatusCode"]) == ("Allow", 200)
    arn = lam.get_function(FunctionName=n("cfg"))["Configuration"]["FunctionArn"]
    assert lam.get_function_recursion_config(FunctionName=arn)["RecursiveLoop"] == "Allow"
    srv.restart()  # kept in the database
    assert lam.get_function_recursion_config(FunctionName=n("cfg"))["RecursiveLoop"] == "Allow"
    lam.put_function_recursion_config(FunctionName=n("cfg"), RecursiveLoop="Terminate")
    assert lam.get_function_recursion_config(FunctionName=n("cfg"))["RecursiveLoop"] == "Terminate"

    code, status, message, _ = client_error(lam, lambda: lam.put_function_recursion_config(
        FunctionName=n("cfg"), RecursiveLoop="InvalidValue"))
    assert (code, status) == ("ValidationException", 400)
    assert message == ("1 validation error detected: Value 'InvalidValue' at 'recursiveLoop' failed to satisfy "
                       "constraint: Member must satisfy enum value set: [Terminate, Allow]")
    code, status, _, _ = client_error(lam, lambda: lam.get_function_recursion_config(FunctionName=n("missing")))
    assert (code, status) == ("ResourceNotFoundException", 404)
    code, status, _, _ = client_error(lam, lambda: lam.put_function_recursion_config(
        FunctionName=n("missing"), RecursiveLoop="Allow"))
    assert (code, status) == ("ResourceNotFoundException", 404)
    code, status, _, _ = client_error(lam, lambda: lam.get_function_recursion_config(FunctionName=f"{n('cfg')}:1"))
    assert status == 400, code


LOOP_BY_DESTINATION = r'''
import json, os
import boto3

sqs = boto3.client("sqs")


def handler(event, context):
    sqs.send_message(QueueUrl=os.environ["RECORDER"], MessageBody=os.environ["_X_AMZN_TRACE_ID"])
    return {"again": True}
'''


def test_a_loop_through_a_function_destination_is_stopped_too(lam, moto, n):
    """Two functions, each the other's on-success destination (AWS refuses a function as its own):
    each record is the next invocation, and the ping's 17th is stopped."""
    recorder = Recorder(moto, n("recorder"))
    dlq_url, dlq_arn = new_queue(moto, n("dlq"))
    arns = {}
    for role, extra in (("ping", {"DeadLetterConfig": {"TargetArn": dlq_arn}}), ("pong", {})):
        arns[role] = lam.create_function(FunctionName=n(role), Runtime="python3.12", Role=ROLE, Handler="app.handler",
                                         Code={"ZipFile": make_zip({"app.py": LOOP_BY_DESTINATION})},
                                         Environment={"Variables": {"RECORDER": recorder.url}}, **extra)["FunctionArn"]
    for role, other in (("ping", "pong"), ("pong", "ping")):
        lam.put_function_event_invoke_config(FunctionName=n(role),
                                             DestinationConfig={"OnSuccess": {"Destination": arns[other]}})
    lam.invoke(FunctionName=n("ping"), InvocationType="Event", Payload=b"{}")
    sqs = moto.client("sqs")
    [dead] = wait_until(lambda: sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=1).get("Messages"),
                        timeout=90, interval=0.2, what="the ping's 17th event in the dead-letter queue")
    assert json.loads(dead["Body"])["requestContext"]["condition"] == "Success"  # the 16th pong's record
    traces = _drain_bodies(moto, recorder.url)
    assert len(traces) == 32  # ping and pong ran 16 times each
    counts = sorted(count for trace in traces for count in _lineage(trace).values())
    assert max(counts) == 15  # each ran with 0..15; the 17th ping, which would have 16, was stopped


def _drain_bodies(moto, url: str) -> list[str]:
    sqs, bodies = moto.client("sqs"), []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [m["Body"] for m in messages]
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                        for i, m in enumerate(messages)])
    return bodies
