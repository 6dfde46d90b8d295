"""Concurrency limits across nodes (issue 20): two servers on one PostgreSQL never run more than the
account limit or a reservation at once, counted from the outside, and the slots a killed node held
come back to the others within seconds.

PostgreSQL only (SQLite is one machine): `make test` runs this file in its PostgreSQL pass
(`scripts/with-postgres`); run alone, give `--postgres URL`.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import pytest
from botocore.exceptions import ClientError

from conftest import POSTGRES, ROLE, Server, fresh_postgres_database, make_zip

from .helpers import wait_until

LIMIT = 4
# Each invocation reports when it ran, by the host's clock that every node shares here.
SLEEPER = """
import time

def handler(event, context):
    started = time.time()
    time.sleep(event["sleep"])
    return {"started": started, "ended": time.time()}
"""


@contextlib.contextmanager
def two_nodes(tmp_path) -> Iterator[tuple[Server, Server, str]]:
    """Two nodes sharing an account limit of LIMIT, and a function warm on both."""
    if not POSTGRES["url"]:
        pytest.fail("this test needs PostgreSQL: run it under scripts/with-postgres (make test does), "
                    "or give --postgres postgresql+psycopg://USER@HOST:PORT/DB")
    database = fresh_postgres_database(POSTGRES["url"])
    args = ["--database-url", database, "--account-concurrency", str(LIMIT), "--unreserved-concurrency-min", "1"]
    nodes = (Server(tmp_path / "first", args=args), Server(tmp_path / "second", args=args))
    name = f"sleeper-{uuid.uuid4().hex[:8]}"
    try:
        for node in nodes:
            node.start()
        nodes[0].client().create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                                          Code={"ZipFile": make_zip({"app.py": SLEEPER})}, Timeout=60)
        wait_until(lambda: name in [f["FunctionName"] for f in nodes[1].client().list_functions()["Functions"]],
                   timeout=10, what="the second node to see the function")
        for node in nodes:
            invoke(node, name, 0)
        yield nodes[0], nodes[1], name
    finally:
        for node in nodes:
            node.stop()


def invoke(node: Server, name: str, sleep: float) -> dict | str:
    """The function's interval, or the throttle's Reason."""
    try:
        response = node.client().invoke(FunctionName=name, Payload=json.dumps({"sleep": sleep}))
    except ClientError as error:
        assert error.response["Error"]["Code"] == "TooManyRequestsException", error.response
        return error.response["Reason"]
    body = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, body
    return body


def burst(nodes: tuple[Server, ...], name: str, per_node: int, sleep: float) -> list[dict | str]:
    """`per_node` concurrent invokes through each node at once."""
    targets = [node for node in nodes for _ in range(per_node)]
    with ThreadPoolExecutor(len(targets)) as pool:
        return list(pool.map(lambda node: invoke(node, name, sleep), targets))


def most_at_once(intervals: list[dict]) -> int:
    edges = sorted([(i["started"], 1) for i in intervals] + [(i["ended"], -1) for i in intervals])
    running = most = 0
    for _at, step in edges:  # an end sorts before a start at the same instant
        running += step
        most = max(most, running)
    return most


def test_the_account_limit_holds_across_nodes(tmp_path):
    with two_nodes(tmp_path) as (first, second, name):
        results = burst((first, second), name, per_node=LIMIT + 2, sleep=3)
    ran = [r for r in results if isinstance(r, dict)]
    throttled = [r for r in results if isinstance(r, str)]
    assert most_at_once(ran) <= LIMIT, ran
    assert len(ran) >= LIMIT and throttled, results  # every slot was used, and no more
    assert set(throttled) == {"ConcurrentInvocationLimitExceeded"}


def test_a_reservation_holds_across_nodes(tmp_path):
    with two_nodes(tmp_path) as (first, second, name):
        first.client().put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=2)
        wait_until(lambda: second.client().get_function_concurrency(FunctionName=name)
                   .get("ReservedConcurrentExecutions") == 2, timeout=10, what="the second node to see the reservation")
        time.sleep(1)  # the second node's registry follows changes every 0.5 s; its API read the database itself
        results = burst((first, second), name, per_node=3, sleep=3)
    ran = [r for r in results if isinstance(r, dict)]
    assert most_at_once(ran) <= 2 and len(ran) >= 2, results
    assert set(r for r in results if isinstance(r, str)) == {"ReservedFunctionConcurrentInvocationLimitExceeded"}


def in_flight(node: Server) -> int:
    with urllib.request.urlopen(node.url + "/_lambdalet/status", timeout=10) as answer:
        return json.load(answer)["concurrency"]["in_flight"]


def test_the_slots_of_a_killed_node_come_back_within_seconds(tmp_path):
    def hold() -> None:  # until the first node dies under it
        while invoke(first, name, 30) == "ConcurrentInvocationLimitExceeded":  # the second's warm-up slot, kept
            time.sleep(0.2)                                                      # until its next renewal or two

    with two_nodes(tmp_path) as (first, second, name):
        with ThreadPoolExecutor(LIMIT) as pool:  # the first node holds every slot, running
            holders = [pool.submit(hold) for _ in range(LIMIT)]
            wait_until(lambda: in_flight(first) == LIMIT, timeout=30, what="the first node to hold every slot")
            assert invoke(second, name, 0) == "ConcurrentInvocationLimitExceeded"
            first.stop(signal.SIGKILL)
            killed = time.monotonic()
            wait_until(lambda: all(isinstance(r, dict) for r in burst((second,), name, LIMIT, 0.5)), timeout=30,
                       interval=0.5, what="the second node to run the whole limit at once")
            print(f"the limit was whole again on the second node {time.monotonic() - killed:.1f} s after the kill")
            for holder in holders:
                with pytest.raises(Exception):  # their node died under them
                    holder.result()
