"""Logs across nodes (issue 20): the CloudWatch Logs subset and `lambdalet logs` answer through
any node with the streams every node wrote, and a group's retention and deletion apply to all.

The database is the PostgreSQL of the PostgreSQL pass (`scripts/with-postgres`), else one SQLite
file both servers open.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import POSTGRES, ROLE, Server, fresh_postgres_database, make_zip

from .helpers import wait_until

PRINTER = """
def handler(event, context):
    print("hello from", context.function_name)
    return context.function_name
"""


def status(node: Server) -> dict:
    with urllib.request.urlopen(node.url + "/_lambdalet/status", timeout=10) as answer:
        return json.load(answer)


def ran_on(nodes: list[Server], name: str) -> Server:
    """The node holding the function's environment after an invoke (its home: placement.py)."""
    found = [node for node in nodes if sum(status(node)["functions"].get(name, {}).get("environments", {}).values())]
    assert len(found) == 1, [status(node)["functions"].get(name) for node in nodes]
    [home] = found
    return home


def test_logs_of_every_node_through_any_node(tmp_path):
    database = (fresh_postgres_database(POSTGRES["url"]) if POSTGRES["url"]
                else f"sqlite:///{tmp_path / 'shared.db'}")
    nodes = [Server(tmp_path / name, args=["--database-url", database, "--node-name", name]) for name in ("a", "b")]
    group = f"/shared/{uuid.uuid4().hex[:8]}"
    try:
        for node in nodes:
            node.start()
        wait_until(lambda: all(len(status(node)["nodes"]) == 2 for node in nodes), timeout=20,
                   what="each node to count both among the live nodes")
        lam = nodes[0].client()
        # functions writing to one log group until each node has run one (their homes differ by name)
        homes: dict[str, str] = {}
        created: list[str] = []
        for i in range(20):
            name = f"printer-{i}-{uuid.uuid4().hex[:6]}"
            lam.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                                Code={"ZipFile": make_zip({"app.py": PRINTER})},
                                LoggingConfig={"LogFormat": "Text", "LogGroup": group})
            created.append(name)
            lam.get_waiter("function_active_v2").wait(FunctionName=name)
            # (a home that does not know the function yet passes its invoke on: wait until it does)
            wait_until(lambda: name in status(nodes[1])["functions"], timeout=10, what="node b to know it")
            assert json.loads(lam.invoke(FunctionName=name)["Payload"].read()) == name
            home = ran_on(nodes, name)
            if home.url not in homes.values():
                homes[name] = home.url
            if len(homes) == 2:
                break
        assert len(homes) == 2, "twenty functions all placed on one node"

        for node in nodes:
            logs = node.client("logs")
            streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
            assert len(streams) >= 2 and all(stream["storedBytes"] == 0 for stream in streams)
            lines = [event["message"] for event in
                     logs.filter_log_events(logGroupName=group, filterPattern='"hello from"')["events"]]
            assert sorted(f"hello from {name}\n" for name in created) == sorted(set(lines)), lines
            for stream in streams:  # each stream's events, whichever node wrote it
                events = logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"],
                                             startFromHead=True)["events"]
                assert events and events[0]["message"].startswith("INIT_START")
            assert [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]] \
                == [group]

        # the CLI through either node prints both functions' lines
        for name in homes:
            shown = subprocess.run([sys.executable, "-m", "lambdalet", "logs", name, "--endpoint-url", nodes[1].url],
                                   capture_output=True, text=True, timeout=60)
            assert shown.returncode == 0, shown.stderr
            assert all(f"hello from {other}" in shown.stdout for other in homes), shown.stdout

        first, second = (node.client("logs") for node in nodes)
        with pytest.raises(ClientError) as exists:
            second.create_log_group(logGroupName=group)
        assert exists.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"
        first.put_retention_policy(logGroupName=group, retentionInDays=7)
        assert second.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]["retentionInDays"] == 7
        second.delete_log_group(logGroupName=group)
        for logs in (first, second):
            assert logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"] == []

        # only a node of the database may read another's files
        request = urllib.request.Request(nodes[0].url + "/_lambdalet/peer/logs", method="POST",
                                         data=json.dumps({"op": "group_names", "args": {}}).encode())
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403
    finally:
        for node in nodes:
            node.stop()
