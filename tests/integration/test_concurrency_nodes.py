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
def two_nodes(tmp_path, *args: str) -> Iterator[tuple[Server, Server]]:
    """Two nodes sharing an account limit of LIMIT."""
    if not POSTGRES["url"]:
        pytest.fail("this test needs PostgreSQL: run it under scripts/with-postgres (make test does), "
                    "or give --postgres postgresql+psycopg://USER@HOST:PORT/DB")
    database = fresh_postgres_database(POSTGRES["url"])
    args = ("--database-url", database, "--account-concurrency", str(LIMIT), "--unreserved-concurrency-min", "1",
            *args)
    nodes = (Server(tmp_path / "first", args=list(args)), Server(tmp_path / "second", args=list(args)))
    try:
        for node in nodes:
            node.start()
        wait_until(lambda: all(len(status(node)["nodes"]) == 2 for node in nodes), timeout=20,
                   what="each node to count both among the live nodes")
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def status(node: Server) -> dict:
    with urllib.request.urlopen(node.url + "/_lambdalet/status", timeout=10) as answer:
        return json.load(answer)


def in_flight(node: Server) -> int:
    return status(node)["concurrency"]["in_flight"]


def new_function(nodes: tuple[Server, Server], **extra) -> tuple[str, Server]:
    """A function made through the first node, known to both, warm on its home node (placement.py):
    its name and that node."""
    name = f"sleeper-{uuid.uuid4().hex[:8]}"
    nodes[0].client().create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                                      Code={"ZipFile": make_zip({"app.py": SLEEPER})}, Timeout=60, **extra)
    wait_until(lambda: name in [f["FunctionName"] for f in nodes[1].client().list_functions()["Functions"]],
               timeout=10, what="the second node to see the function")
    assert isinstance(invoke(nodes[0], name, 0), dict)
    homes = [node for node in nodes if name in status(node)["functions"]
             and sum(status(node)["functions"][name]["environments"].values())]
    assert len(homes) == 1, homes
    return name, homes[0]


def homed_on_each(nodes: tuple[Server, Server]) -> dict[int, str]:
    """Functions whose homes are the first and the second node: {port: name}. Each new one's home
    is either node with even odds (rendezvous hashing): one of each comes within a few."""
    names: dict[int, str] = {}
    for _ in range(24):
        name, home = new_function(nodes)
        names.setdefault(home.port, name)
        if len(names) == 2:
            return names
    raise AssertionError(f"24 functions, all homed on one node: {names}")


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
    with two_nodes(tmp_path) as nodes:
        names = homed_on_each(nodes)
        targets = [(node, names[node.port]) for node in nodes for _ in range(LIMIT - 1)]  # six at once, 3 per node
        with ThreadPoolExecutor(len(targets)) as pool:
            results = list(pool.map(lambda target: invoke(target[0], target[1], 3), targets))
    ran = [r for r in results if isinstance(r, dict)]
    throttled = [r for r in results if isinstance(r, str)]
    assert most_at_once(ran) <= LIMIT, ran
    assert len(ran) >= LIMIT and throttled, results  # every slot was used, and no more
    assert set(throttled) == {"ConcurrentInvocationLimitExceeded"}


def test_a_reservation_holds_across_nodes(tmp_path):
    # Each node's memory budget holds two 128 MB environments: a third invocation at once spills
    # from the function's home to the other node (placement.py), and a fourth finds no slot left.
    with two_nodes(tmp_path, "--memory-budget-mb", "256") as nodes:
        name, _home = new_function(nodes, MemorySize=128)
        nodes[0].client().put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=3)
        wait_until(lambda: nodes[1].client().get_function_concurrency(FunctionName=name)
                   .get("ReservedConcurrentExecutions") == 3, timeout=10, what="the second node to see the reservation")
        time.sleep(1)  # the second node's registry follows changes every 0.5 s; its API read the database itself
        results = burst(nodes, name, per_node=3, sleep=3)
        ran_on = [sum(status(node)["functions"][name]["environments"].values()) for node in nodes]
    ran = [r for r in results if isinstance(r, dict)]
    assert most_at_once(ran) <= 3 and len(ran) >= 3, results
    assert sorted(ran_on) == [1, 2], ran_on  # it ran on both nodes
    assert set(r for r in results if isinstance(r, str)) == {"ReservedFunctionConcurrentInvocationLimitExceeded"}


def test_the_slots_of_a_killed_node_come_back_within_seconds(tmp_path):
    with two_nodes(tmp_path) as nodes:
        names = homed_on_each(nodes)
        doomed, survivor = nodes
        name, other = names[doomed.port], names[survivor.port]

        def hold() -> None:  # until its node dies under it
            while invoke(doomed, name, 30) == "ConcurrentInvocationLimitExceeded":  # the survivor's warm-up slot,
                time.sleep(0.2)                                                      # kept a renewal or two

        with ThreadPoolExecutor(LIMIT) as pool:  # the doomed node holds every slot, running
            holders = [pool.submit(hold) for _ in range(LIMIT)]
            wait_until(lambda: in_flight(doomed) == LIMIT, timeout=30, what="one node to hold every slot")
            assert invoke(survivor, other, 0) == "ConcurrentInvocationLimitExceeded"
            doomed.stop(signal.SIGKILL)
            killed = time.monotonic()
            wait_until(lambda: all(isinstance(r, dict) for r in burst((survivor,), other, LIMIT, 0.5)), timeout=30,
                       interval=0.5, what="the survivor to run the whole limit at once")
            print(f"the limit was whole again on the survivor {time.monotonic() - killed:.1f} s after the kill")
            for holder in holders:
                with pytest.raises(Exception):  # their node died under them
                    holder.result()
