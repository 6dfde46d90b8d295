"""Two servers sharing one database: each mapping is polled by one of them, and the other takes
over when that one dies (its lease in the database expires).

The database is the PostgreSQL of the PostgreSQL pass (`scripts/with-postgres`), else one SQLite
file both servers open. Functions are created before the second server starts, and the second
shares the first's code store (as nodes on a shared file system would): a server learns of
functions written elsewhere only at start-up, and fetching code from another node is issue 20's.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid
from urllib.parse import urlparse

from prometheus_client.parser import text_string_to_metric_families

from conftest import POSTGRES, ROLE, Server, fresh_postgres_database, make_zip

from lambdalet.placement import rank

from .helpers import wait_until

RECORDER = """
import os
import boto3

sqs = boto3.client("sqs")

def handler(event, context):
    for record in event["Records"]:
        sqs.send_message(QueueUrl=os.environ["RECORDER"], MessageBody=record["body"])
"""


def polled_by(server: Server, mapping_uuid: str) -> float:
    """How many records this server's pollers read for the mapping (its /metrics)."""
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "lambdalet_event_source_mapping_records_total"
               and sample.labels.get("mapping") == mapping_uuid and sample.labels.get("outcome") == "polled")


def test_one_node_polls_a_mapping_and_another_takes_over_when_it_dies(tmp_path, moto):
    database = (fresh_postgres_database(POSTGRES["url"]) if POSTGRES["url"]
                else f"sqlite:///{tmp_path / 'shared.db'}")
    env = {"AWS_ENDPOINT_URL": moto.url}
    first = Server(tmp_path / "first", extra_env=env, args=["--database-url", database])
    second = Server(tmp_path / "second", extra_env=env, args=["--database-url", database])
    suffix = uuid.uuid4().hex[:8]
    sqs = moto.client("sqs")
    recorder = sqs.create_queue(QueueName=f"recorder-{suffix}")["QueueUrl"]
    source = sqs.create_queue(QueueName=f"source-{suffix}", Attributes={"VisibilityTimeout": "5"})["QueueUrl"]
    source_arn = sqs.get_queue_attributes(QueueUrl=source, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    try:
        first.start()
        first.client().create_function(FunctionName=f"fn-{suffix}", Runtime="python3.11", Role=ROLE,
                                       Handler="app.handler", Code={"ZipFile": make_zip({"app.py": RECORDER})},
                                       Environment={"Variables": {"RECORDER": recorder}})
        second.data_dir.mkdir(parents=True)
        for store in ("blobs", "code"):
            (second.data_dir / store).symlink_to(first.data_dir / store)
        second.start()
        mapping = second.client().create_event_source_mapping(FunctionName=f"fn-{suffix}", EventSourceArn=source_arn)
        # Both nodes answer for it: the mapping lives in the database, not in one server's memory.
        for node in (first, second):
            wait_until(lambda: node.client().get_event_source_mapping(UUID=mapping["UUID"])["State"] == "Enabled",
                       timeout=30, what="the mapping to be enabled")

        got: list[str] = []

        def delivered(*bodies: str) -> bool:
            for message in sqs.receive_message(QueueUrl=recorder, MaxNumberOfMessages=10,
                                               WaitTimeSeconds=1).get("Messages", []):
                got.append(message["Body"])
                sqs.delete_message(QueueUrl=recorder, ReceiptHandle=message["ReceiptHandle"])
            return set(bodies) <= set(got)

        for i in range(5):
            sqs.send_message(QueueUrl=source, MessageBody=json.dumps({"before": i}))
        wait_until(lambda: delivered(*(json.dumps({"before": i}) for i in range(5))), timeout=60,
                   what="the first messages")
        counts = {node: polled_by(node, mapping["UUID"]) for node in (first, second)}
        holder, other = (first, second) if counts[first] else (second, first)
        assert counts[holder] >= 5 and counts[other] == 0, "exactly one node polls the mapping"
        names = {f"{socket.gethostname()}:{urlparse(node.url).port}": node for node in (first, second)}  # defaults
        assert holder is names[rank([(name, "") for name in names], f"fn-{suffix}")[0][0]], \
            "the function's home polls its mapping (its batches run on the warm environments)"

        holder.stop(signal.SIGKILL)  # its lease stays in the database until it expires
        sqs.send_message(QueueUrl=source, MessageBody=json.dumps({"after": "the holder died"}))
        wait_until(lambda: delivered(json.dumps({"after": "the holder died"})), timeout=90,
                   what="the other node to take the mapping over")
        assert polled_by(other, mapping["UUID"]) >= 1
    finally:
        first.stop()
        second.stop()


def _nodes(server: Server) -> list[dict]:
    with urllib.request.urlopen(server.url + "/_lambdalet/nodes", timeout=10) as answer:
        return json.load(answer)["nodes"]


def test_nodes_heartbeat_into_the_database_and_drop_out_when_they_stop_or_die(tmp_path):
    database = (fresh_postgres_database(POSTGRES["url"]) if POSTGRES["url"]
                else f"sqlite:///{tmp_path / 'shared.db'}")
    first = Server(tmp_path / "first", args=["--database-url", database, "--node-name", "node-a"])
    second = Server(tmp_path / "second", args=["--database-url", database, "--node-name", "node-b",
                                               "--advertise-url", "http://node-b.example:9001"])
    try:
        first.start()
        second.start()
        listed = _nodes(first)
        assert [(node["name"], node["self"]) for node in listed] == [("node-a", True), ("node-b", False)]
        assert listed[0]["url"] == first.url and listed[1]["url"] == "http://node-b.example:9001"
        # what provisioned environments it keeps; and on PostgreSQL, the node's grants
        load = {"inFlight", "environments", "memoryUsedMb", "memoryLimitMb", "provisioned"}
        assert set(listed[0]["load"]) == (load | {"concurrencyGrants"} if POSTGRES["url"] else load)

        shown = subprocess.run([sys.executable, "-m", "lambdalet", "nodes", "--endpoint-url", second.url],
                               capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert lines[0].split()[:2] == ["NODE", "(*"] and any(line.startswith("* node-b") for line in lines)
        assert any(line.strip().startswith("node-a") and first.url in line for line in lines)

        # a function created through one node runs on the other, which fetches its code by digest
        first.client().create_function(FunctionName="made-on-a", Runtime="python3.11", Role=ROLE, Handler="app.handler",
                                       Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    return 'ran on b'\n"})})
        first.client().get_waiter("function_active_v2").wait(FunctionName="made-on-a")
        second.stop()
        second.start()
        assert json.loads(second.client().invoke(FunctionName="made-on-a")["Payload"].read()) == "ran on b"
        # on PostgreSQL from the database (store/shared_blobs.py), on a shared SQLite file from node-a
        assert ("read from the database" if POSTGRES["url"] else "fetched from node node-a") in second.log_text()

        # changes made through one node reach the other while it runs: code, creation, deletion
        a, b = first.client(), second.client()
        a.update_function_code(FunctionName="made-on-a",
                               ZipFile=make_zip({"app.py": "def handler(e, c):\n    return 'new code'\n"}))
        wait_until(lambda: json.loads(b.invoke(FunctionName="made-on-a")["Payload"].read()) == "new code",
                   what="node-b to run the code updated through node-a")
        a.create_function(FunctionName="made-later", Runtime="python3.11", Role=ROLE, Handler="app.handler",
                          Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    return 1\n"})})
        wait_until(lambda: "made-later" in [f["FunctionName"] for f in b.list_functions()["Functions"]],
                   what="node-b to list the function made through node-a")
        a.delete_function(FunctionName="made-later")
        wait_until(lambda: "made-later" not in [f["FunctionName"] for f in b.list_functions()["Functions"]],
                   what="node-b to drop the function deleted through node-a")

        second.stop()  # a clean stop leaves at once
        assert [node["name"] for node in _nodes(first)] == ["node-a"]
        second.start()
        wait_until(lambda: len(_nodes(first)) == 2, what="node-b back")
        second.stop(signal.SIGKILL)  # a dead node drops out once its heartbeat is older than nodes.LIVE_S
        wait_until(lambda: [node["name"] for node in _nodes(first)] == ["node-a"], timeout=30,
                   what="the killed node to drop out")
    finally:
        first.stop()
        second.stop()
