"""PostgreSQL's bad moments (issue 20): when the database drops every connection of a node
(`pg_terminate_backend`, as a failover or a restarted PostgreSQL does), the node goes on as if
nothing happened — the next API calls succeed without a client retry, accepted events run, and
the node keeps its heartbeat, so it stays in placement; and nodes started at once on a new
database all start.

PostgreSQL only: `make test` runs this file in its PostgreSQL pass (`scripts/with-postgres`).
"""

from __future__ import annotations

import json
import threading
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
import sqlalchemy
from botocore.config import Config

from lambdalet.store.schema import make_engine

from conftest import POSTGRES, ROLE, Server, fresh_postgres_database, make_zip, running

from .helpers import wait_until

HANDLER = """
def handler(event, context):
    print("event", event["n"])
    return event["n"]
"""


def drop_connections(database_url: str) -> int:
    """Terminate every other session on the node's database; how many there were."""
    engine = sqlalchemy.create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            return len(conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall())
    finally:
        engine.dispose()


def heartbeat(node: Server) -> float:
    """When the node last wrote its heartbeat, as `lambdalet nodes` lists it."""
    with urllib.request.urlopen(node.url + "/_lambdalet/nodes", timeout=10) as answer:
        return json.load(answer)["nodes"][0]["lastHeartbeat"]


def test_a_node_rides_out_dropped_database_connections(tmp_path):
    if not POSTGRES["url"]:
        pytest.fail("this test needs PostgreSQL: run it under scripts/with-postgres (make test does), "
                    "or give --postgres postgresql+psycopg://USER@HOST:PORT/DB")
    database = fresh_postgres_database(POSTGRES["url"])
    with running(Server(tmp_path / "node", args=["--database-url", database])) as node:
        lam = boto3.client("lambda", endpoint_url=node.url, region_name="us-east-1", aws_access_key_id="test",
                           aws_secret_access_key="test",  # one attempt each: a retry would hide a failed call
                           config=Config(retries={"total_max_attempts": 1}))
        name = f"outage-{uuid.uuid4().hex[:8]}"
        lam.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                            Code={"ZipFile": make_zip({"app.py": HANDLER})})
        assert lam.invoke(FunctionName=name, Payload=b'{"n": 0}')["Payload"].read() == b"0"
        beat = heartbeat(node)

        for round_ in range(1, 3):  # twice: the second outage finds the connections the first one made
            assert drop_connections(database) > 0
            assert lam.get_function(FunctionName=name)["Configuration"]["FunctionName"] == name
            lam.update_function_configuration(FunctionName=name, Description=f"after outage {round_}")
            lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1})
            assert lam.invoke(FunctionName=name, InvocationType="Event",
                              Payload=json.dumps({"n": round_}).encode())["StatusCode"] == 202

        logs = node.client("logs")

        def ran() -> set[str]:
            events = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}", filterPattern="event")["events"]
            return {event["message"].strip() for event in events}

        wait_until(lambda: {"event 1", "event 2"} <= ran(), timeout=30, what="both async events to run")
        # the heartbeat goes on: the node's row is newer than before the outages
        wait_until(lambda: heartbeat(node) > beat + 1,
                   timeout=20, what="a heartbeat after the outages")
        assert "Traceback" not in node.log_text()


def test_nodes_starting_at_once_on_a_new_database_all_start(tmp_path):
    """Every starting server creates the schema it lacks: on one new database at once, they take
    turns (an advisory lock) rather than fail on each other's CREATE TABLE."""
    if not POSTGRES["url"]:
        pytest.fail("this test needs PostgreSQL: run it under scripts/with-postgres (make test does)")
    database = fresh_postgres_database(POSTGRES["url"])
    start = threading.Barrier(4)

    def start_up(_: int) -> list[str]:
        start.wait()
        engine = make_engine(database)
        try:
            return sqlalchemy.inspect(engine).get_table_names()
        finally:
            engine.dispose()

    with ThreadPoolExecutor(4) as pool:
        tables = list(pool.map(start_up, range(4)))
    assert all("functions" in names and "nodes" in names for names in tables)
