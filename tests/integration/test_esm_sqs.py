"""SQS event source mappings delivered for real: moto's SQS, polled by the server, a function that records.

Event shapes are Lambda's (developer guide with-sqs, AWS-recorded snapshots of
test_lambda_integration_sqs.py); redelivery uses small visibility timeouts instead of sleeps.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter

import pytest

from .esm_support import (  # noqa: F401 (lam, n, srv: the modules' fixtures)
    lam, n, srv,
    REGION, Recorder, create_recording_function, new_queue, queue_counts, sqs_payload, wait_gone,
    wait_queue_empty, wait_state,
)

VT = "3"  # seconds of visibility timeout: a failed batch is back that fast; function timeout must be <= VT


@pytest.fixture
def sqs(moto):
    return moto.client("sqs")


def setup(lam, moto, n, *, queue_attributes=None, env=None, mapping=None, fifo=False, enabled_wait=True):
    """A queue, a recording function and a mapping between them: (queue url, queue arn, recorder, mapping)."""
    recorder = Recorder(moto, n("recorder"))
    attributes = {"VisibilityTimeout": VT, **(queue_attributes or {})}
    if fifo:
        attributes.update(FifoQueue="true", ContentBasedDeduplication="true")
    url, arn = new_queue(moto, n("source") + (".fifo" if fifo else ""), **attributes)
    create_recording_function(lam, n("fn"), recorder.url, timeout=int(VT), env=env)
    created = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=n("fn"), **(mapping or {}))
    if enabled_wait:
        wait_state(lam, created["UUID"], "Enabled")
    return url, arn, recorder, created


def deliveries(recorder: Recorder) -> list[tuple[str, dict, bool]]:
    """(messageId, record, invocation failed) for every delivered record."""
    return [(r["messageId"], r, inv["failed"]) for inv in recorder.drain() for r in inv["event"]["Records"]]


def test_standard_queue_event_shape_field_by_field_and_the_message_is_deleted(lam, moto, n, sqs):
    url, arn, recorder, _ = setup(lam, moto, n)
    body = json.dumps({"hello": "world"})
    sent = sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes={
        "Author": {"DataType": "String", "StringValue": "John Grisham"},
        "WeeksOn": {"DataType": "Number", "StringValue": "6"},
        "Blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
    })
    [invocation] = recorder.wait(lambda invs: invs, what="the message to be delivered")
    [record] = invocation["event"]["Records"]
    assert set(invocation["event"]) == {"Records"}

    assert set(record) - {"md5OfMessageAttributes"} == {"messageId", "receiptHandle", "body", "attributes",
                                                        "messageAttributes", "md5OfBody", "eventSource",
                                                        "eventSourceARN", "awsRegion"}
    assert record["messageId"] == sent["MessageId"]
    assert isinstance(record["receiptHandle"], str) and record["receiptHandle"]
    assert record["body"] == body
    assert record["md5OfBody"] == hashlib.md5(body.encode()).hexdigest()
    assert (record["eventSource"], record["eventSourceARN"], record["awsRegion"]) == ("aws:sqs", arn, REGION)
    assert record["md5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]  # AWS's recorded events carry it

    attributes = record["attributes"]
    assert {"ApproximateReceiveCount", "SentTimestamp", "SenderId",
            "ApproximateFirstReceiveTimestamp"} <= set(attributes)
    assert all(isinstance(v, str) for v in attributes.values()), attributes
    assert attributes["ApproximateReceiveCount"] == "1"
    assert attributes["SentTimestamp"].isdigit() and attributes["ApproximateFirstReceiveTimestamp"].isdigit()
    assert len(attributes["SentTimestamp"]) == 13  # epoch milliseconds
    assert attributes["SenderId"]

    assert record["messageAttributes"] == {
        "Author": {"stringValue": "John Grisham", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
        "WeeksOn": {"stringValue": "6", "stringListValues": [], "binaryListValues": [], "dataType": "Number"},
        "Blob": {"binaryValue": base64.b64encode(b"\x00\x01\xff").decode(), "stringListValues": [],
                 "binaryListValues": [], "dataType": "Binary"},
    }
    wait_queue_empty(moto, url)  # deleted after success
    assert len(recorder.drain()) == 1

    plain = sqs.send_message(QueueUrl=url, MessageBody="no attributes")["MessageId"]
    [record] = recorder.wait(lambda _: [r for m, r, _ in deliveries(recorder) if m == plain], what="a plain message")
    assert record["messageAttributes"] == {}
    assert "md5OfMessageAttributes" in record and record["md5OfMessageAttributes"] is None


def test_fifo_records_carry_group_and_deduplication_and_keep_group_order(lam, moto, n, sqs):
    # A long visibility timeout: a batch that outlived it would come again, concurrently with the
    # group's next batch, and SQS (as moto) keeps a group's order only while none does.
    url, arn, recorder, _ = setup(lam, moto, n, fifo=True, mapping={"BatchSize": 2},
                                  queue_attributes={"VisibilityTimeout": "60"})
    sent = {}
    for i in range(6):
        group = f"g{i % 2}"
        sent[sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"i": i}), MessageGroupId=group,
                              MessageDeduplicationId=f"dedup-{i}")["MessageId"]] = (group, i)
    # SQS is at least once: wait for every message rather than for six deliveries
    recorder.wait(lambda invs: {m for m, _, _ in deliveries(recorder)} >= set(sent), what="six FIFO messages")
    delivered = deliveries(recorder)
    assert {m for m, _, _ in delivered} == set(sent)
    assert all(len(inv["event"]["Records"]) <= 2 for inv in recorder.invocations)
    for message_id, record, _ in delivered:
        group, i = sent[message_id]
        assert record["attributes"]["MessageGroupId"] == group
        assert record["attributes"]["MessageDeduplicationId"] == f"dedup-{i}"
        assert record["eventSourceARN"] == arn
        # (AWS also adds attributes.SequenceNumber; moto 5 does not return one to any consumer.)
    for group in ("g0", "g1"):
        order = [sqs_payload(r)["i"] for _, r, _ in delivered if r["attributes"]["MessageGroupId"] == group]
        first = list(dict.fromkeys(order))  # a batch that came again (see above) repeats what it held
        assert first == sorted(first), f"group {group} delivered out of order: {order}"
    wait_queue_empty(moto, url)


def test_a_failed_batch_comes_back_after_the_visibility_timeout(lam, moto, n, sqs):
    url, _, recorder, _ = setup(lam, moto, n, mapping={"BatchSize": 1})
    message_id = sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"fail_attempts": 1}))["MessageId"]
    recorder.wait(lambda invs: [i for i in invs if not i["failed"]], timeout=40, what="the successful retry")
    attempts = [(r["attributes"]["ApproximateReceiveCount"], failed) for m, r, failed in deliveries(recorder)
                if m == message_id]
    assert attempts == [("1", True), ("2", False)]
    wait_queue_empty(moto, url)


def test_redrive_policy_moves_an_always_failing_message_to_the_dead_letter_queue(lam, moto, n, sqs):
    dlq_url, dlq_arn = new_queue(moto, n("dlq"))
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
    url, _, recorder, _ = setup(lam, moto, n, queue_attributes={"RedrivePolicy": redrive}, mapping={"BatchSize": 1})
    body = json.dumps({"fail": True, "n": 1})
    message_id = sqs.send_message(QueueUrl=url, MessageBody=body)["MessageId"]

    def in_dlq():
        return sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages")
    letters = recorder.wait(lambda _: in_dlq(), timeout=60, what="the message in the DLQ")
    assert [(m["MessageId"], m["Body"]) for m in letters] == [(message_id, body)]
    counts = [r["attributes"]["ApproximateReceiveCount"] for m, r, _ in deliveries(recorder) if m == message_id]
    assert counts == ["1", "2"]
    wait_queue_empty(moto, url)


def test_report_batch_item_failures_only_the_listed_messages_come_back(lam, moto, n, sqs):
    recorder_mapping = {"FunctionResponseTypes": ["ReportBatchItemFailures"], "BatchSize": 10,
                        "MaximumBatchingWindowInSeconds": 1}
    url, _, recorder, _ = setup(lam, moto, n, mapping=recorder_mapping)
    ids = {}
    for name, payload in (("ok-1", {}), ("bad", {"partial_fail": True, "partial_fail_attempts": 1}), ("ok-2", {})):
        ids[name] = sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"name": name, **payload}))["MessageId"]
    recorder.wait(lambda _: [1 for m, r, _ in deliveries(recorder)
                             if m == ids["bad"] and r["attributes"]["ApproximateReceiveCount"] == "2"],
                  timeout=40, what="the reported message to come back")
    wait_queue_empty(moto, url)
    counts = Counter(m for m, _, _ in deliveries(recorder))
    assert counts == {ids["ok-1"]: 1, ids["ok-2"]: 1, ids["bad"]: 2}


@pytest.mark.parametrize("response", [
    {"batchItemFailures": [{"foo": "notvalid"}]},
    {"batchItemFailures": [{"itemIdentifier": ""}]},
    {"batchItemFailures": [{"itemIdentifier": 123}]},
    {"batchItemFailures": [{"itemIdentifier": "3d1e8f7c-0000-4000-8000-000000000000"}]},
], ids=["unknown-key", "empty-identifier", "number-identifier", "unknown-message-id"])
def test_an_invalid_batch_item_failures_response_fails_the_whole_batch(lam, moto, n, sqs, response):
    url, _, recorder, _ = setup(lam, moto, n, env={"RESPONSE": json.dumps(response)},
                                mapping={"FunctionResponseTypes": ["ReportBatchItemFailures"], "BatchSize": 1})
    message_id = sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": 1}))["MessageId"]
    recorder.wait(lambda _: len(deliveries(recorder)) >= 2, timeout=40, what="the batch to be delivered again")
    counts = [r["attributes"]["ApproximateReceiveCount"] for m, r, _ in deliveries(recorder) if m == message_id]
    assert counts == ["1", "2"]
    wait_queue_empty(moto, url)


@pytest.mark.parametrize("response", [{"batchItemFailures": []}, {"batchItemFailures": None}, {}, None, "", []],
                         ids=["empty-list", "null-list", "empty-object", "null", "empty-string", "json-list"])
def test_an_empty_batch_item_failures_response_is_success(lam, moto, n, sqs, response):
    url, _, recorder, _ = setup(lam, moto, n, env={"RESPONSE": json.dumps(response)},
                                mapping={"FunctionResponseTypes": ["ReportBatchItemFailures"], "BatchSize": 1})
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": 1}))
    recorder.wait(lambda invs: invs, what="the delivery")
    wait_queue_empty(moto, url)
    assert len(recorder.drain()) == 1


def test_batch_size_caps_a_batch_and_the_window_gathers_one(lam, moto, n, sqs):
    recorder = Recorder(moto, n("recorder"))
    url, arn = new_queue(moto, n("source"), VisibilityTimeout="10")
    create_recording_function(lam, n("fn"), recorder.url, timeout=3)
    for start in range(0, 25, 10):  # 25 messages waiting before the mapping exists
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": json.dumps({"i": i})}
                                                      for i in range(start, min(start + 10, 25))])
    lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=n("fn"), BatchSize=20,
                                    MaximumBatchingWindowInSeconds=2)
    recorder.wait(lambda _: len(deliveries(recorder)) >= 25, timeout=40, what="25 messages")
    sizes = [len(inv["event"]["Records"]) for inv in recorder.invocations]
    assert sorted(sqs_payload(r)["i"] for _, r, _ in deliveries(recorder)) == list(range(25))
    assert max(sizes) <= 20, sizes
    assert max(sizes) > 10, f"a BatchSize of 20 with a window delivers more than one receive's 10: {sizes}"
    wait_queue_empty(moto, url)


def test_disable_stops_delivery_and_enable_resumes_it(lam, moto, n, sqs):
    url, _, recorder, created = setup(lam, moto, n, mapping={"BatchSize": 1})
    # A second, always-enabled mapping on the same function: its deliveries pace the test.
    pace_url, pace_arn = new_queue(moto, n("pace"), VisibilityTimeout=VT)
    pace = lam.create_event_source_mapping(EventSourceArn=pace_arn, FunctionName=n("fn"), BatchSize=1)
    wait_state(lam, pace["UUID"], "Enabled")

    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"m": "before"}))
    recorder.wait(lambda _: [1 for _, r, _ in deliveries(recorder) if r["body"] == '{"m": "before"}'],
                  what="delivery while enabled")
    wait_queue_empty(moto, url)
    assert lam.update_event_source_mapping(UUID=created["UUID"], Enabled=False)["State"] == "Disabling"
    wait_state(lam, created["UUID"], "Disabled")

    while_disabled = sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"m": "while-disabled"}))["MessageId"]
    for i in range(2):  # two round trips through the function on the other mapping
        sqs.send_message(QueueUrl=pace_url, MessageBody=json.dumps({"pace": i}))
        recorder.wait(lambda _: [1 for _, r, _ in deliveries(recorder) if r["body"] == json.dumps({"pace": i})],
                      what=f"pace message {i}")
    assert while_disabled not in {m for m, _, _ in deliveries(recorder)}
    assert queue_counts(moto, url) == (1, 0), "the disabled mapping left the message alone"

    lam.update_event_source_mapping(UUID=created["UUID"], Enabled=True)
    wait_state(lam, created["UUID"], "Enabled")
    recorder.wait(lambda _: [1 for m, _, _ in deliveries(recorder) if m == while_disabled],
                  what="delivery after enabling")
    [record] = [r for m, r, _ in deliveries(recorder) if m == while_disabled]
    assert record["attributes"]["ApproximateReceiveCount"] == "1"  # nobody received it while disabled
    wait_queue_empty(moto, url)


def test_filtered_out_messages_are_deleted_and_never_delivered(lam, moto, n, sqs):
    pattern = {"body": {"kind": ["keep"], "size": [{"numeric": [">", 10]}]}}
    url, _, recorder, created = setup(lam, moto, n, mapping={
        "BatchSize": 1, "FilterCriteria": {"Filters": [{"Pattern": json.dumps(pattern)}]}})
    assert json.loads(created["FilterCriteria"]["Filters"][0]["Pattern"]) == pattern
    dropped = [sqs.send_message(QueueUrl=url, MessageBody=b)["MessageId"] for b in (
        json.dumps({"kind": "drop", "size": 50}),
        json.dumps({"kind": "keep", "size": 5}),
        "plain text, not JSON",
    )]
    kept = sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"kind": "keep", "size": 11}))["MessageId"]
    recorder.wait(lambda _: [1 for m, _, _ in deliveries(recorder) if m == kept], what="the matching message")
    wait_queue_empty(moto, url)  # the filtered-out messages were deleted, not left to come back
    delivered = {m for m, _, _ in deliveries(recorder)}
    assert delivered == {kept}, f"filtered-out messages delivered: {delivered & set(dropped)}"


def test_deleting_a_mapping_stops_delivery(lam, moto, n, sqs):
    url, _, recorder, created = setup(lam, moto, n, mapping={"BatchSize": 1})
    pace_url, pace_arn = new_queue(moto, n("pace"), VisibilityTimeout=VT)
    wait_state(lam, lam.create_event_source_mapping(EventSourceArn=pace_arn, FunctionName=n("fn"),
                                                    BatchSize=1)["UUID"], "Enabled")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"m": "before"}))
    recorder.wait(lambda _: deliveries(recorder), what="delivery while the mapping exists")
    wait_queue_empty(moto, url)
    assert lam.delete_event_source_mapping(UUID=created["UUID"])["State"] == "Deleting"
    wait_gone(lam, created["UUID"])

    orphan = sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"m": "after"}))["MessageId"]
    for i in range(2):
        sqs.send_message(QueueUrl=pace_url, MessageBody=json.dumps({"pace": i}))
        recorder.wait(lambda _: [1 for _, r, _ in deliveries(recorder) if r["body"] == json.dumps({"pace": i})],
                      what=f"pace message {i}")
    assert orphan not in {m for m, _, _ in deliveries(recorder)}
    [message] = sqs.receive_message(QueueUrl=url, AttributeNames=["All"], WaitTimeSeconds=1)["Messages"]
    assert message["MessageId"] == orphan
    assert message["Attributes"]["ApproximateReceiveCount"] == "1", "a deleted mapping received it"


def test_maximum_concurrency_caps_concurrent_invocations(lam, moto, n, sqs):
    url, _, recorder, _ = setup(lam, moto, n, env={"SLEEP": "0.5"},
                                mapping={"BatchSize": 1, "ScalingConfig": {"MaximumConcurrency": 2}})
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": json.dumps({"i": i})}
                                                  for i in range(10)])
    recorder.wait(lambda _: len(deliveries(recorder)) >= 10, timeout=60, what="ten messages")
    events = sorted([(inv["started"], 1) for inv in recorder.invocations] +
                    [(inv["finished"], -1) for inv in recorder.invocations], key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak <= 2, f"{peak} invocations ran at once with MaximumConcurrency 2"
    wait_queue_empty(moto, url)


def test_update_to_another_function_and_an_alias_target(lam, moto, n, sqs):
    url, _, recorder, created = setup(lam, moto, n, mapping={"BatchSize": 1})
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"m": 1}))
    recorder.wait(lambda invs: invs, what="the first delivery")
    assert recorder.invocations[0]["function"] == n("fn")

    other = n("other")
    create_recording_function(lam, other, recorder.url, timeout=int(VT))
    lam.publish_version(FunctionName=other)
    lam.create_alias(FunctionName=other, Name="live", FunctionVersion="1")
    updated = lam.update_event_source_mapping(UUID=created["UUID"], FunctionName=f"{other}:live")
    assert updated["FunctionArn"].endswith(f":function:{other}:live")
    wait_state(lam, created["UUID"], "Enabled")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"m": 2}))
    def second_deliveries(invocations):
        return [i for i in invocations if i["event"]["Records"][0]["body"] == json.dumps({"m": 2})]
    [second] = recorder.wait(second_deliveries, what="the second delivery")
    assert (second["function"], second["version"]) == (other, "1")
    assert second["invoked_arn"].endswith(f":function:{other}:live")


def test_fifo_failure_retries_its_group_before_later_messages(lam, moto, n, sqs):
    url, _, recorder, _ = setup(lam, moto, n, fifo=True, mapping={"BatchSize": 1})
    first = sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"i": 0, "fail_attempts": 1}),
                             MessageGroupId="g")["MessageId"]
    later = [sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"i": i}), MessageGroupId="g")["MessageId"]
             for i in (1, 2)]
    recorder.wait(lambda _: len(deliveries(recorder)) >= 4, timeout=40, what="four deliveries")
    order = [(m, failed) for m, _, failed in deliveries(recorder)]
    assert order == [(first, True), (first, False), (later[0], False), (later[1], False)]
    wait_queue_empty(moto, url)
