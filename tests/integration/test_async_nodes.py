"""The asynchronous queue on two nodes sharing one database (issue 20): an event claimed by a node
that dies is claimed again by a live one once the dead node's heartbeat is stale, and a node that
is stopped (SIGTERM) finishes what it runs and hands the events it has not started to the other.

The database is the PostgreSQL of the PostgreSQL pass (`scripts/with-postgres`), else one SQLite
file both servers open.
"""

from __future__ import annotations

import contextlib
import json
import signal
import uuid
from collections import Counter
from typing import Iterator

from conftest import POSTGRES, ROLE, Server, fresh_postgres_database, make_zip
from lambdalet.placement import rank

from .helpers import server_status, wait_until

RECORDER = """
import os
import time
import boto3

sqs = boto3.client("sqs")

def handler(event, context):
    sqs.send_message(QueueUrl=os.environ["RECORDER"], MessageBody="start " + event["id"])
    time.sleep(event["sleep"])
    sqs.send_message(QueueUrl=os.environ["RECORDER"], MessageBody="done " + event["id"])
"""


class Recorder:
    """The "start <id>" and "done <id>" lines the function sends to an SQS queue, counted."""

    def __init__(self, moto, suffix: str) -> None:
        self.sqs = moto.client("sqs")
        self.url = self.sqs.create_queue(QueueName=f"recorder-{suffix}")["QueueUrl"]
        self.seen: Counter[str] = Counter()

    def read(self) -> Counter[str]:
        for message in self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10,
                                                WaitTimeSeconds=1).get("Messages", []):
            self.seen[message["Body"]] += 1
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return self.seen

    def all_done(self, ids: list[str]) -> bool:
        return all(self.read()[f"done {event_id}"] for event_id in ids)


@contextlib.contextmanager
def two_nodes(tmp_path, moto, first_args: tuple[str, ...] = ()) -> Iterator[tuple[Server, Server, Recorder, str]]:
    """Two running nodes and a slow function whose home is the first (events accepted through
    either run there: placement.py), made through the second, which so has its code when the
    first goes away (the first fetches it from the second when it runs an event)."""
    database = (fresh_postgres_database(POSTGRES["url"]) if POSTGRES["url"]
                else f"sqlite:///{tmp_path / 'shared.db'}")
    env = {"AWS_ENDPOINT_URL": moto.url}
    first = Server(tmp_path / "first", extra_env=env,
                   args=["--database-url", database, "--node-name", "first", *first_args])
    second = Server(tmp_path / "second", extra_env=env, args=["--database-url", database, "--node-name", "second"])
    suffix = uuid.uuid4().hex[:8]
    recorder = Recorder(moto, suffix)
    name = next(candidate for candidate in (f"slow-{suffix}-{n}" for n in range(100))
                if rank([("first", ""), ("second", "")], candidate)[0][0] == "first")
    try:
        first.start()
        second.start()
        wait_until(lambda: all(len(server_status(node)["nodes"]) == 2 for node in (first, second)), timeout=20,
                   what="each node to count both among the live nodes")
        second.client().create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                                        Code={"ZipFile": make_zip({"app.py": RECORDER})}, Timeout=60,
                                        Environment={"Variables": {"RECORDER": recorder.url}})
        wait_until(lambda: name in [f["FunctionName"] for f in first.client().list_functions()["Functions"]],
                   timeout=10, what="the first node to see the function")
        response = first.client().invoke(FunctionName=name, Payload=json.dumps({"id": "warm", "sleep": 0}))
        assert "FunctionError" not in response, response["Payload"].read()
        yield first, second, recorder, name
    finally:
        first.stop()
        second.stop()


def enqueue(server: Server, name: str, count: int, sleep: float) -> list[str]:
    ids = [f"event-{n}" for n in range(count)]
    client = server.client()
    for event_id in ids:
        assert client.invoke(FunctionName=name, InvocationType="Event",
                             Payload=json.dumps({"id": event_id, "sleep": sleep}))["StatusCode"] == 202
    return ids


def test_the_events_a_killed_node_claimed_are_run_by_the_live_one(tmp_path, moto):
    with two_nodes(tmp_path, moto) as (first, second, recorder, name):
        # Accepted by the first node, which claims them at once and starts running them.
        ids = enqueue(first, name, 6, sleep=5)
        wait_until(lambda: any(recorder.read()[f"start {event_id}"] for event_id in ids), timeout=30,
                   what="the first node to start an event")
        first.stop(signal.SIGKILL)  # mid-flight: its claims stay in the database, naming a dead node
        wait_until(lambda: recorder.all_done(ids), timeout=90, interval=0.5,
                   what="the second node to run every event the first had claimed")
    assert "claimed by nodes no longer live" in second.log_path.read_text()


def test_a_stopped_node_finishes_what_it_runs_and_hands_the_rest_over(tmp_path, moto):
    # One event runs at a time on the first node: the others wait there, claimed.
    with two_nodes(tmp_path, moto, first_args=("--async-workers", "1")) as (first, second, recorder, name):
        ids = enqueue(first, name, 4, sleep=2)
        running = wait_until(lambda: [event_id for event_id in ids if recorder.read()[f"start {event_id}"]],
                             timeout=30, what="the first node to start an event")
        first.stop()  # SIGTERM: a drain (the tests' --drain-timeout is 5 s, the event takes 2)
        wait_until(lambda: recorder.all_done(ids), timeout=60, interval=0.5,
                   what="the second node to run the events the first handed over")
    log = first.log_path.read_text()
    assert "asynchronous events handed back" in log, log
    # The event in flight when the drain began was finished, not stopped and run again.
    assert recorder.seen[f"start {running[0]}"] == 1 and recorder.seen[f"done {running[0]}"] == 1, recorder.seen
