"""SIGKILL the server while SQS batches and a Kinesis shard are in flight: at-least-once, nothing skipped.

The function sleeps before it records, so a record in the recorder means a *completed* invocation;
batches cut short by the kill must be delivered again after the restart. Duplicates are allowed
(at-least-once, not exactly-once) and counted.
"""

from __future__ import annotations

import signal
from collections import Counter

from .esm_support import (
    Recorder, create_recording_function, kinesis_payload, names, new_queue, new_stream, put_kinesis, sqs_payload,
    wait_queue_empty, wait_state,
)

MESSAGES = 12
RECORDS = 12


def test_sigkill_with_batches_in_flight_loses_nothing(fresh_server, moto):
    n = names()
    fresh_server.extra_env["AWS_ENDPOINT_URL"] = moto.url
    fresh_server.start()
    lam = fresh_server.client()
    recorder = Recorder(moto, n("recorder"))
    queue_url, queue_arn = new_queue(moto, n("source"), VisibilityTimeout="4")
    stream_arn, _ = new_stream(moto, n("stream"))
    create_recording_function(lam, n("fn"), recorder.url, timeout=4, env={"SLEEP": "1"})

    sqs = moto.client("sqs")
    for start in range(0, MESSAGES, 10):
        sqs.send_message_batch(QueueUrl=queue_url, Entries=[{"Id": str(i), "MessageBody": f'{{"sqs": {i}}}'}
                                                            for i in range(start, min(start + 10, MESSAGES))])
    for i in range(RECORDS):
        put_kinesis(moto, stream_arn, {"kinesis": i})
    # Two SQS batches at a time: the kill lands with most of the queue still to do.
    sqs_mapping = lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=n("fn"), BatchSize=2,
                                                  ScalingConfig={"MaximumConcurrency": 2})
    stream_mapping = lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=n("fn"),
                                                     StartingPosition="TRIM_HORIZON", BatchSize=3)

    def seen():
        sqs_ids, kinesis_ids = [], []
        for inv in recorder.drain():
            for record in inv["event"]["Records"]:
                if "body" in record:
                    sqs_ids.append(sqs_payload(record)["sqs"])
                else:
                    kinesis_ids.append(kinesis_payload(record)["kinesis"])
        return sqs_ids, kinesis_ids

    # Kill as soon as a batch has completed: the rest is in flight (SQS messages received and invisible,
    # the shard's next batch being processed or not yet read).
    recorder.wait(lambda _: any(seen()), timeout=60, what="a completed batch")
    sqs_before, kinesis_before = seen()
    assert len(sqs_before) < MESSAGES and len(kinesis_before) < RECORDS, "the kill must land mid-stream"
    fresh_server.stop(signal.SIGKILL)
    fresh_server.start()
    lam = fresh_server.client()
    for uuid_ in (sqs_mapping["UUID"], stream_mapping["UUID"]):
        wait_state(lam, uuid_, "Enabled", timeout=30)

    recorder.wait(lambda _: set(seen()[0]) >= set(range(MESSAGES)) and set(seen()[1]) >= set(range(RECORDS)),
                  timeout=90, what="every message and record after the restart")
    wait_queue_empty(moto, queue_url)
    sqs_ids, kinesis_ids = seen()
    assert set(sqs_ids) == set(range(MESSAGES))
    assert set(kinesis_ids) == set(range(RECORDS)), "no Kinesis record skipped"
    duplicates = {"sqs": sum(c - 1 for c in Counter(sqs_ids).values()),
                  "kinesis": sum(c - 1 for c in Counter(kinesis_ids).values())}
    print(f"duplicates after SIGKILL: {duplicates}; kinesis order: {kinesis_ids}")
    # Per shard, a redelivery only repeats: the first time each record is seen is in order.
    first_seen = list(dict.fromkeys(kinesis_ids))
    assert first_seen == list(range(RECORDS)), kinesis_ids
