"""Code that outlives its node (issue 20): a function and a layer uploaded through one node run on
another after the first is gone with its whole data directory, because each package is also kept
in the database (store/shared_blobs.py) and read back from there by digest; and so do the
provisioned environments spread over the nodes, a dead node's share made again on the survivor.

PostgreSQL only (on SQLite there is one machine): `make test` runs this file in its PostgreSQL pass.
"""

from __future__ import annotations

import json
import shutil
import signal
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from conftest import POSTGRES, ROLE, Server, fresh_postgres_database, make_zip

from .helpers import wait_until
from .test_placement import environments, status, two_nodes

APP = """
import json, os

def handler(event, context):
    with open("/opt/python/shared.txt") as layer_file:
        return {"code": "v1", "layer": layer_file.read()}
"""


def test_code_and_layers_run_on_another_node_after_their_node_is_lost(tmp_path):
    if not POSTGRES["url"]:
        pytest.fail("this test needs PostgreSQL: run it under scripts/with-postgres (make test does), "
                    "or give --postgres postgresql+psycopg://USER@HOST:PORT/DB")
    database = fresh_postgres_database(POSTGRES["url"])
    first = Server(tmp_path / "first", args=["--database-url", database, "--node-name", "node-a"])
    second = Server(tmp_path / "second", args=["--database-url", database, "--node-name", "node-b"])
    name = f"lost-{uuid.uuid4().hex[:8]}"
    try:
        first.start()
        second.start()
        a = first.client()
        layer = a.publish_layer_version(LayerName=f"shared-{name}",
                                        Content={"ZipFile": make_zip({"python/shared.txt": "from the layer"})})
        a.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                          Code={"ZipFile": make_zip({"app.py": APP})}, Layers=[layer["LayerVersionArn"]])
        a.get_waiter("function_active_v2").wait(FunctionName=name)
        plain, bare = f"{name}-plain", f"{name}-bare"
        for other in (plain, bare):
            a.create_function(FunctionName=other, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                              Code={"ZipFile": make_zip({"app.py": f"def handler(e, c):\n    return {other!r}\n"})})
            a.get_waiter("function_active_v2").wait(FunctionName=other)

        first.stop()  # the machine is lost: its blob store with it
        shutil.rmtree(first.data_dir)
        b = second.client()
        wait_until(lambda: name in [f["FunctionName"] for f in b.list_functions()["Functions"]],
                   what="node-b to know the function")
        answer = b.invoke(FunctionName=name)
        assert "FunctionError" not in answer, answer["Payload"].read()
        assert json.loads(answer["Payload"].read()) == {"code": "v1", "layer": "from the layer"}

        # GetFunction's Code.Location downloads a package from a node that never had it
        location = b.get_function(FunctionName=plain)["Code"]["Location"]
        with urllib.request.urlopen(location, timeout=30) as download:
            assert download.read()[:2] == b"PK"

        # a layer given, through this node, to a function whose code it lacks
        b.update_function_configuration(FunctionName=bare, Layers=[layer["LayerVersionArn"]])
        b.get_waiter("function_updated_v2").wait(FunctionName=bare)
        assert json.loads(b.invoke(FunctionName=bare)["Payload"].read()) == bare
        assert "read from the database" in second.log_text()
    finally:
        first.stop()
        second.stop()


def test_layers_are_one_set_whichever_node_is_asked(tmp_path):
    """Nodes publishing one layer at once number its versions from the database's counter, and
    a layer published, permitted or deleted through one node is seen through the other at once."""
    if not POSTGRES["url"]:
        pytest.fail("this test needs PostgreSQL: run it under scripts/with-postgres (make test does)")
    database = fresh_postgres_database(POSTGRES["url"])
    nodes = [Server(tmp_path / name, args=["--database-url", database, "--node-name", name]) for name in "ab"]
    layer = f"both-{uuid.uuid4().hex[:8]}"
    try:
        for node in nodes:
            node.start()
        clients = [node.client() for node in nodes]

        def publish(i: int) -> int:
            return clients[i % 2].publish_layer_version(
                LayerName=layer, Content={"ZipFile": make_zip({"n.txt": str(i)})})["Version"]

        with ThreadPoolExecutor(8) as pool:
            numbers = sorted(pool.map(publish, range(8)))
        assert numbers == list(range(1, 9))
        a, b = clients
        assert [v["Version"] for v in b.list_layer_versions(LayerName=layer)["LayerVersions"]] == list(range(8, 0, -1))
        a.add_layer_version_permission(LayerName=layer, VersionNumber=3, StatementId="everyone",
                                       Action="lambda:GetLayerVersion", Principal="*")
        assert "everyone" in b.get_layer_version_policy(LayerName=layer, VersionNumber=3)["Policy"]
        a.delete_layer_version(LayerName=layer, VersionNumber=3)
        with pytest.raises(ClientError) as gone:
            b.get_layer_version(LayerName=layer, VersionNumber=3)
        assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"
    finally:
        for node in nodes:
            node.stop()


def provisioned_environments(node: Server, name: str) -> int:
    """Environments of the function on `node` that are idle (provisioned ones wait there)."""
    return status(node)["functions"].get(name, {}).get("environments", {}).get("idle", 0)


def test_provisioned_environments_are_spread_over_the_nodes_and_made_again_when_one_dies(tmp_path):
    """Provisioned concurrency is dealt over the first nodes of the function's ranking
    (provisioned_homes.py), which take its invokes in turn, and a dead node's share is made again
    by a survivor (PostgreSQL: the survivor reads the code it never had)."""
    if not POSTGRES["url"]:
        pytest.fail("this test needs PostgreSQL: run it under scripts/with-postgres (make test does)")
    with two_nodes(tmp_path) as (first, second, name):
        version = first.client().publish_version(FunctionName=name)["Version"]
        wait_until(lambda: version in [v["Version"] for v in second.client().list_versions_by_function(
            FunctionName=name)["Versions"]], timeout=10, what="the second node to know the version")
        second.client().put_provisioned_concurrency_config(FunctionName=name, Qualifier=version,
                                                           ProvisionedConcurrentExecutions=2)

        def ready(through: Server) -> bool:
            config = through.client().get_provisioned_concurrency_config(FunctionName=name, Qualifier=version)
            return config["Status"] == "READY" and config["AllocatedProvisionedConcurrentExecutions"] == 2

        # one environment on each node, reported as READY with both through either
        wait_until(lambda: ready(first) and ready(second), timeout=60, what="the provisioned environments")
        assert [provisioned_environments(node, name) for node in (first, second)] == [1, 1]
        def call(n: int) -> dict:
            return json.loads(first.client().invoke(FunctionName=name, Qualifier=version,
                                                    Payload=json.dumps({"n": n, "sleep": 1}))["Payload"].read())

        with ThreadPoolExecutor(2) as pool:  # two at once, in turn to each node's provisioned environment
            for round_ in range(2):
                assert list(pool.map(call, (2 * round_, 2 * round_ + 1))) == [{"echo": 2 * round_},
                                                                              {"echo": 2 * round_ + 1}]
        assert [environments(node, name) for node in (first, second)] == [1, 1]  # no cold start anywhere

        dead, other = first, second
        dead.stop(signal.SIGKILL)  # its share is dealt again once its heartbeat is stale
        wait_until(lambda: ready(other) and provisioned_environments(other, name) >= 2, timeout=60,
                   what="the survivor to make the dead node's share (its code read from the database)")
        assert json.loads(other.client().invoke(FunctionName=name, Qualifier=version,
                                                Payload=b'{"n": 1}')["Payload"].read()) == {"echo": 1}
