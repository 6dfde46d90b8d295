"""A cluster as a user builds it (issue 20): three nodes, each a host of its own (a network
namespace), on one PostgreSQL, behind a real HAProxy configured as docs/cluster.md says.

Through the balancer: the API answers the same whichever node a request reaches; the account
limit holds for the cluster, counted from the outside; and a node killed with SIGKILL in the
middle of a burst of synchronous, asynchronous and SQS-mapped invocations loses no accepted
work — every async event and every message runs at least once on the survivors, sync calls on
the dead node fail or are retried by the client; restarted, it serves again; and when every
database connection drops at once, the cluster rides it out.

PostgreSQL and root only: `make test` runs this file in its PostgreSQL pass (netns_cluster.py).
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator
from urllib.parse import urlparse

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from conftest import POSTGRES, ROLE, fresh_postgres_database, make_zip
from lambdalet.placement import rank

from .helpers import wait_until
from .netns_cluster import NetnsCluster
from .test_database_outage import drop_connections

LIMIT = 4
RECORDER = """
import json, os, time
import boto3

sqs = boto3.client("sqs", endpoint_url=os.environ["RECORDER_ENDPOINT"], region_name="us-east-1")

def handler(event, context):
    started = time.time()
    time.sleep(event.get("sleep", 0) if isinstance(event, dict) else 0)
    records = event.get("Records") if isinstance(event, dict) else None
    keys = [r["body"] for r in records] if records else [json.dumps(event.get("key"))]
    for key in keys:
        sqs.send_message(QueueUrl=os.environ["RECORDER"], MessageBody=key)
    return {"started": started, "ended": time.time()}
"""


def client(url: str, service: str = "lambda", attempts: int = 3):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test",
                        config=Config(retries={"total_max_attempts": attempts, "mode": "standard"}, read_timeout=120))


def status(url: str) -> dict:
    with urllib.request.urlopen(url + "/_lambdalet/status", timeout=10) as answer:
        return json.load(answer)


@pytest.fixture
def cluster(tmp_path, moto) -> Iterator[NetnsCluster]:
    if not POSTGRES["url"]:
        pytest.fail("this test needs PostgreSQL: run it under scripts/with-postgres (make test does)")
    database = fresh_postgres_database(POSTGRES["url"])
    ports = [urlparse(database.replace("postgresql+psycopg", "http")).port, moto.port]
    built = NetnsCluster(tmp_path, database, ports, ["--account-concurrency", str(LIMIT),
                                                     "--unreserved-concurrency-min", "1"], env={})
    built.env["AWS_ENDPOINT_URL"] = built.host_url(moto.url)  # the pollers' SQS, through the relay
    try:
        built.start()
        wait_until(lambda: all(len(status(node.url)["nodes"]) == 3 for node in built.nodes), timeout=30,
                   what="each node to count all three")
        yield built
    finally:
        built.stop()


def url_answers(url: str) -> bool:
    """Whether a function URL answers 200 there."""
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status == 200
    except OSError:
        return False


def drain(sqs, queue: str, into: list[str]) -> list[str]:
    for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
        into.append(message["Body"])
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    return into


def test_three_nodes_behind_haproxy(cluster, moto):
    lb = client(cluster.lb_url)
    sqs = moto.client("sqs")
    suffix = uuid.uuid4().hex[:8]
    recorder = sqs.create_queue(QueueName=f"recorder-{suffix}")["QueueUrl"]
    name = f"cluster-{suffix}"
    lb.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler", Timeout=10,
                       Code={"ZipFile": make_zip({"app.py": RECORDER})},
                       Environment={"Variables": {"RECORDER": cluster.host_url(recorder),
                                                  "RECORDER_ENDPOINT": cluster.host_url(moto.url)}})
    lb.get_waiter("function_active_v2").wait(FunctionName=name)

    # one state, whichever node answers: a change through the balancer, read on each node
    lb.update_function_configuration(FunctionName=name, Description="seen everywhere")
    for node in cluster.nodes:
        wait_until(lambda: client(node.url).get_function(FunctionName=name)["Configuration"]["Description"]
                   == "seen everywhere", timeout=10, what=f"{node.name} to see the change")

    # a function URL made through one node is served by every node, on its own port
    url = lb.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
    port = urlparse(url).port
    assert url == f"http://127.0.0.1:{port}/"
    for node in cluster.nodes:
        wait_until(lambda: url_answers(f"http://{node.ip}:{port}/"), timeout=10, what=f"{node.name} to serve the URL")
    assert all(url_answers(url) for _ in range(3))  # through the balancer
    lb.delete_function_url_config(FunctionName=name)
    for node in cluster.nodes:
        wait_until(lambda: not url_answers(f"http://{node.ip}:{port}/"), timeout=10,
                   what=f"{node.name} to stop serving the deleted URL")

    # the account limit holds for the cluster: at most LIMIT run at once, counted from their own clocks
    def sync(key: str, sleep: float = 1.0, attempts: int = 1) -> dict | str:
        try:
            answer = client(cluster.lb_url, attempts=attempts).invoke(
                FunctionName=name, Payload=json.dumps({"key": key, "sleep": sleep}).encode())
            return json.loads(answer["Payload"].read())
        except ClientError as error:
            return error.response["Error"]["Code"]
        except BotoCoreError as error:  # a connection to a node that died
            return type(error).__name__

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda i: sync(f"limit-{i}"), range(12)))
    ran = [a for a in answers if isinstance(a, dict)]
    assert ran and all(a == "TooManyRequestsException" for a in answers if not isinstance(a, dict)), answers
    edges = sorted([(a["started"], 1) for a in ran] + [(a["ended"], -1) for a in ran], key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _when, step in edges:
        running += step
        peak = max(peak, running)
    assert peak <= LIMIT, f"{peak} ran at once across the nodes; the limit is {LIMIT}"

    # a mixed burst, and a node killed in its middle: the function's home, which runs its sync
    # invokes, accepts its events and polls its mapping
    victim = next(node for node in cluster.nodes
                  if node.name == rank([(node.name, "") for node in cluster.nodes], name)[0][0])
    source = sqs.create_queue(QueueName=f"source-{suffix}", Attributes={"VisibilityTimeout": "10"})["QueueUrl"]
    source_arn = sqs.get_queue_attributes(QueueUrl=source, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    lb.create_event_source_mapping(FunctionName=name, EventSourceArn=source_arn, BatchSize=5)
    got: list[str] = []
    drain(sqs, recorder, got)  # what the limit check recorded
    got.clear()
    expected = {json.dumps(f"async-{i}") for i in range(20)} | {f"message-{i}" for i in range(20)}
    for i in range(10):
        lb.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"key": f"async-{i}"}).encode())
        sqs.send_message(QueueUrl=source, MessageBody=f"message-{i}")
    with ThreadPoolExecutor(2) as pool:  # two at a time: room under the limit for the async and mapped ones
        burst = [pool.submit(sync, f"sync-{i}", 0.5, 3) for i in range(8)]
        time.sleep(0.5)  # the burst under way (it lasts seconds): the kill lands in its middle
        victim.kill()
        for i in range(10, 20):  # accepted by the survivors while the dead node's claims wait
            lb.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"key": f"async-{i}"}).encode())
            sqs.send_message(QueueUrl=source, MessageBody=f"message-{i}")
        outcomes = [future.result() for future in burst]
    assert any(isinstance(outcome, dict) for outcome in outcomes), outcomes  # the rest failed or were throttled

    wait_until(lambda: expected <= set(drain(sqs, recorder, got)), timeout=120, interval=0.5,
               what="every async event and SQS message to run at least once on the survivors")
    survivors = [node for node in cluster.nodes if node is not victim]
    for node in survivors:  # (the dead node is out of placement once its heartbeat is 10 s stale)
        wait_until(lambda: len(status(node.url)["nodes"]) == 2, timeout=30, what=f"{node.name} to drop the dead node")

    # the dead node comes back and takes work again; then every database connection drops at once
    # (a PostgreSQL restart or failover): the cluster goes on, with no accepted event lost
    victim.start()
    wait_until(lambda: all(len(status(node.url)["nodes"]) == 3 for node in cluster.nodes), timeout=30,
               what="the restarted node to be counted live again")
    assert client(victim.url).get_function(FunctionName=name)["Configuration"]["Description"] == "seen everywhere"
    assert drop_connections(cluster.database.replace(cluster.host_ip, "127.0.0.1")) > 0
    # (sync first: the events' cold starts on the restarted home would hold every slot of the limit)
    again = [sync(f"again-{i}", 0, attempts=3) for i in range(6)]
    assert all(isinstance(answer, dict) for answer in again), again
    later = {json.dumps(f"after-{i}") for i in range(6)}
    for i in range(6):
        lb.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"key": f"after-{i}"}).encode())
    wait_until(lambda: later <= set(drain(sqs, recorder, got)), timeout=60, interval=0.5,
               what="the events accepted after the connections dropped to run")
