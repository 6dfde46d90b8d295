"""Placement across nodes (issue 20): a function's synchronous invokes run on its home node
whichever node the client asks, and spill over to another node when the home has no room.

The database is the PostgreSQL of the PostgreSQL pass (`scripts/with-postgres`), else one SQLite
file both servers open.
"""

from __future__ import annotations

import contextlib
import json
import socket
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator
from urllib.parse import urlparse

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from conftest import POSTGRES, ROLE, Server, fresh_postgres_database, make_zip

from lambdalet.placement import rank

from .helpers import wait_until
from .test_streaming import STREAMING_BOOTSTRAP, Signal, system_python

SLEEPER = """
import time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"echo": event["n"]}
"""


def status(node: Server) -> dict:
    with urllib.request.urlopen(node.url + "/_lambdalet/status", timeout=10) as answer:
        return json.load(answer)


def environments(node: Server, name: str) -> int:
    counts = status(node)["functions"].get(name, {}).get("environments", {})
    return sum(counts.values())


@contextlib.contextmanager
def two_nodes(tmp_path, *args: str, env: dict[str, str] | None = None,
              client=lambda node: node.client(), role=lambda node: ROLE) -> Iterator[tuple[Server, Server, str]]:
    """Two nodes that know each other, and a 128 MB function both see."""
    database = (fresh_postgres_database(POSTGRES["url"]) if POSTGRES["url"]
                else f"sqlite:///{tmp_path / 'shared.db'}")
    nodes = (Server(tmp_path / "first", extra_env=env, args=["--database-url", database, *args]),
             Server(tmp_path / "second", extra_env=env, args=["--database-url", database, *args]))
    name = f"placed-{uuid.uuid4().hex[:8]}"
    try:
        for node in nodes:
            node.start()
        client(nodes[0]).create_function(FunctionName=name, Runtime="python3.11", Role=role(nodes[0]),
                                         Handler="app.handler", Code={"ZipFile": make_zip({"app.py": SLEEPER})},
                                         MemorySize=128, Timeout=60)
        wait_until(lambda: all(len(status(node)["nodes"]) == 2 for node in nodes), timeout=20,
                   what="each node to count both among the live nodes")
        wait_until(lambda: name in [f["FunctionName"] for f in client(nodes[1]).list_functions()["Functions"]],
                   timeout=10, what="the second node to see the function")
        yield nodes[0], nodes[1], name
    finally:
        for node in nodes:
            node.stop()


def invoke(node: Server, name: str, n: int, sleep: float = 0, client=None) -> dict:
    response = (client or node.client()).invoke(FunctionName=name, Payload=json.dumps({"n": n, "sleep": sleep}))
    body = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, body
    return body


def test_invokes_through_either_node_run_on_the_functions_home(tmp_path):
    with two_nodes(tmp_path) as (first, second, name):
        for n in range(6):
            assert invoke((first, second)[n % 2], name, n) == {"echo": n}
        counts = sorted(environments(node, name) for node in (first, second))
        assert counts == [0, 1], counts  # one warm environment, on the home, served all six


def test_invokes_spill_to_another_node_when_the_home_has_no_room(tmp_path):
    # Each node's memory budget holds two 128 MB environments.
    with two_nodes(tmp_path, "--memory-budget-mb", "256") as (first, second, name):
        targets = [first, second] * 2
        with ThreadPoolExecutor(len(targets)) as pool:  # four at once: two run on the home, two spill
            answers = list(pool.map(lambda pair: invoke(pair[1], name, pair[0], sleep=3), enumerate(targets)))
        assert answers == [{"echo": n} for n in range(4)]
        assert [environments(node, name) for node in (first, second)] == [2, 2]

        # each node's /metrics reports its own invocations, labelled with its name; the console's
        # chart through either node shows the cluster's
        for node in (first, second):
            with urllib.request.urlopen(node.url + "/metrics", timeout=10) as scraped:
                found = [s for family in text_string_to_metric_families(scraped.read().decode())
                         for s in family.samples if s.name == "lambdalet_invocations_total"
                         and s.labels["function"] == name]
            node_name = f"{socket.gethostname()}:{urlparse(node.url).port}"  # the default --node-name
            assert [(s.labels["node"], s.value) for s in found] == [(node_name, 2.0)]
            with urllib.request.urlopen(f"{node.url}/_lambdalet/console/functions/{name}/metrics?period=15m",
                                        timeout=10) as charted:
                chart = json.load(charted)
            assert sum(point["invocations"] for point in chart["points"]) == 4
            assert max(point["concurrent"] for point in chart["points"]) >= 0


ROOT_KEY, ROOT_SECRET = "LKIAPLACEMENTROOT001", "root-secret-of-placement-0123456789"


def test_a_forwarded_invoke_is_authenticated_by_its_home_with_the_callers_signature(tmp_path):
    def signed(node: Server, secret: str = ROOT_SECRET):
        return boto3.client("lambda", endpoint_url=node.url, region_name="us-east-1", aws_access_key_id=ROOT_KEY,
                            aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}))

    def lambda_role(node: Server) -> str:
        iam = boto3.client("iam", endpoint_url=node.url, region_name="us-east-1", aws_access_key_id=ROOT_KEY,
                           aws_secret_access_key=ROOT_SECRET)
        return iam.create_role(RoleName="placed", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "lambda.amazonaws.com"}}]}))["Role"]["Arn"]

    root = {"LAMBDALET_ROOT_ACCESS_KEY_ID": ROOT_KEY, "LAMBDALET_ROOT_SECRET_ACCESS_KEY": ROOT_SECRET}
    with two_nodes(tmp_path, "--auth", "iam", env=root, client=signed, role=lambda_role) as (first, second, name):
        for n, node in enumerate((first, second, first, second)):
            assert invoke(node, name, n, client=signed(node)) == {"echo": n}
        assert sorted(environments(node, name) for node in (first, second)) == [0, 1]
        for node in (first, second):
            with pytest.raises(ClientError) as refused:
                signed(node, "not-the-secret").invoke(FunctionName=name, Payload=b"{}")
            assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"



def test_a_change_through_one_node_is_read_at_once_through_the_other(tmp_path):
    """Read-your-writes behind a load balancer: each request after a change may reach another node,
    which answers with the change (api/consistency.py), not with its view of a moment ago."""
    with two_nodes(tmp_path) as (first, second, name):
        writer, reader = first.client(), second.client()
        for n in range(5):
            created = f"{name}-{n}"
            writer.create_function(FunctionName=created, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                                   Code={"ZipFile": make_zip({"app.py": SLEEPER})}, Description=f"first {n}")
            reader.get_waiter("function_active_v2").wait(FunctionName=created)
            assert reader.get_function(FunctionName=created)["Configuration"]["Description"] == f"first {n}"
            writer.get_waiter("function_updated_v2").wait(FunctionName=created)
            writer.update_function_configuration(FunctionName=created, Description=f"second {n}")
            assert reader.get_function_configuration(FunctionName=created)["Description"] == f"second {n}"
            assert invoke(second, created, n) == {"echo": n}
            writer.delete_function(FunctionName=created)
            with pytest.raises(ClientError) as gone:
                reader.get_function(FunctionName=created)
            assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"
        for n in range(5):  # Active through one node: invoked at once through the other, wherever its home
            created = f"{name}-active-{n}"
            writer.create_function(FunctionName=created, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                                   Code={"ZipFile": make_zip({"app.py": SLEEPER})})
            writer.get_waiter("function_active_v2").wait(FunctionName=created, WaiterConfig={"Delay": 0.1})
            assert invoke(second, created, n) == {"echo": n}


def test_events_accepted_through_either_node_run_on_the_functions_home(tmp_path):
    with two_nodes(tmp_path) as (first, second, name):
        for n in range(6):
            answer = (first, second)[n % 2].client().invoke(FunctionName=name, InvocationType="Event",
                                                            Payload=json.dumps({"n": n}))
            assert answer["StatusCode"] == 202
        wait_until(lambda: status(first)["functions"][name]["async_queue"]["depth"] == 0, timeout=60,
                   what="every event to have run")
        counts = sorted(environments(node, name) for node in (first, second))
        assert counts[0] == 0 and counts[1] >= 1, counts  # all on one node: the home


ECHO_REQUEST = """
def handler(event, context):
    return {"sourceIp": event["requestContext"]["http"]["sourceIp"], "headers": sorted(event["headers"])}
"""


def test_function_url_requests_through_either_node_run_on_the_functions_home(tmp_path):
    # (no listeners of their own: on one host only one node could bind a URL's port)
    with two_nodes(tmp_path, "--function-url-ports", "none") as (first, second, _):
        name = f"web-{uuid.uuid4().hex[:8]}"
        first.client().create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                                       Code={"ZipFile": make_zip({"app.py": ECHO_REQUEST})})
        url = first.client().create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
        url_id = urlparse(url).hostname.split(".")[0]  # http://<url-id>.lambda-url.<region>.localhost:<port>/
        for node in (first, second, first, second):  # by path on each node's API port
            request = urllib.request.Request(f"{node.url}/lambda-url/{url_id}/hello", headers={"X-Custom": "1"})
            with urllib.request.urlopen(request, timeout=30) as answer:
                body = json.load(answer)
            assert body["sourceIp"] == "127.0.0.1"  # the client's, not the forwarding node's (the same here)
            assert "x-custom" in body["headers"] and not [h for h in body["headers"] if h.startswith("x-lambdalet")]
        counts = sorted(environments(node, name) for node in (first, second))
        assert counts == [0, 1], counts  # one warm environment, on the home


def test_streamed_invokes_through_either_node_run_on_the_functions_home(tmp_path):
    """InvokeWithResponseStream and a RESPONSE_STREAM URL through the node that is not the home are
    relayed from the home as it writes (placement.relay): event-stream frames and all."""
    with two_nodes(tmp_path, "--function-url-ports", "none") as (first, second, name):
        for n, node in enumerate((first, second, first, second)):
            events = list(node.client().invoke_with_response_stream(
                FunctionName=name, Payload=json.dumps({"n": n}))["EventStream"])
            assert json.loads(b"".join(e["PayloadChunk"]["Payload"] for e in events if "PayloadChunk" in e)) \
                == {"echo": n}
            assert "InvokeComplete" in events[-1] and "ErrorCode" not in events[-1]["InvokeComplete"]
        counts = sorted(environments(node, name) for node in (first, second))
        assert counts == [0, 1], counts  # one warm environment, on the home

        web = f"web-{uuid.uuid4().hex[:8]}"
        first.client().create_function(FunctionName=web, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                                       Code={"ZipFile": make_zip({"app.py": ECHO_REQUEST})})
        url = first.client().create_function_url_config(FunctionName=web, AuthType="NONE",
                                                        InvokeMode="RESPONSE_STREAM")["FunctionUrl"]
        url_id = urlparse(url).hostname.split(".")[0]
        for node in (first, second, first, second):
            with urllib.request.urlopen(f"{node.url}/lambda-url/{url_id}/", timeout=30) as answer:
                assert json.load(answer)["sourceIp"] == "127.0.0.1"
        counts = sorted(environments(node, web) for node in (first, second))
        assert counts == [0, 1], counts


def test_a_stream_relayed_from_the_home_arrives_as_the_function_writes_it(tmp_path):
    with two_nodes(tmp_path) as (first, second, _):
        files = {"bootstrap": f'#!/bin/sh\nexec {system_python()} "$LAMBDA_TASK_ROOT/stream_bootstrap.py"\n',
                 "stream_bootstrap.py": STREAMING_BOOTSTRAP}
        nodes = {f"{socket.gethostname()}:{urlparse(node.url).port}": node for node in (first, second)}
        name = f"streamer-{uuid.uuid4().hex[:8]}"
        home = nodes[rank([(node, "") for node in nodes], name)[0][0]]
        other = second if home is first else first
        other.client().create_function(FunctionName=name, Runtime="provided.al2023", Role=ROLE, Handler="stream",
                                       Timeout=30, Code={"ZipFile": make_zip(files, modes={"bootstrap": 0o755})})
        other.client().get_waiter("function_active_v2").wait(FunctionName=name)
        signal = Signal()
        try:
            answer = other.client().invoke_with_response_stream(
                FunctionName=name, Payload=json.dumps({"chunks": ["first", "second"], "signal_port": signal.port}))
            stream = iter(answer["EventStream"])
            # the function waits for the signal: only a relay as it writes can have sent this
            assert next(stream) == {"PayloadChunk": {"Payload": b"first"}}
            signal.accept().sendall(b"go")
            assert b"".join(e["PayloadChunk"]["Payload"] for e in stream if "PayloadChunk" in e) == b"second"
        finally:
            signal.close()
        assert (environments(home, name), environments(other, name)) == (1, 0)


def test_a_hot_reload_function_runs_on_the_node_whose_host_has_its_directory(tmp_path):
    """Hot-reload code is a directory on one machine: its invokes run on the node it was given
    through, whichever node is the function's home by its name."""
    with two_nodes(tmp_path) as (first, second, _):
        code = tmp_path / "live-code"
        code.mkdir()
        (code / "app.py").write_text(SLEEPER)
        for path in (tmp_path, code, code / "app.py"):  # the linux sandbox's unprivileged user reads it
            path.chmod(path.stat().st_mode | 0o005)
        nodes = {f"{socket.gethostname()}:{urlparse(node.url).port}": node for node in (first, second)}
        name = next(candidate for candidate in (f"live-{uuid.uuid4().hex[:8]}" for _ in range(100))
                    if nodes[rank([(node, "") for node in nodes], candidate)[0][0]] is second)
        first.client().create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                                       Code={"S3Bucket": "hot-reload", "S3Key": str(code)})
        second.client().get_waiter("function_active_v2").wait(FunctionName=name)
        for n in range(3):
            assert invoke(second, name, n) == {"echo": n}
        assert [environments(node, name) for node in (first, second)] == [1, 0]
