"""SnapStart: environments forked from one initialised template (linux backend, --snapstart-latest)."""

from __future__ import annotations

import base64
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import ROLE, Server, invoke_json, make_zip

pytestmark = pytest.mark.snapstart

HEAVY = """
import os, random, socket, time
from snapshot_restore_py import register_before_snapshot, register_after_restore

time.sleep(0.3)  # a slow init, paid once per configuration with SnapStart
HOOKS = {"before": 0, "after": 0}

@register_before_snapshot
def before():
    HOOKS["before"] += 1

@register_after_restore
def after():
    HOOKS["after"] += 1

def handler(event, context):
    if "gate" in event:  # stay busy so that a second environment is needed
        with socket.create_connection(("127.0.0.1", event["gate"])) as conn:
            conn.recv(2)
    return {"hooks": HOOKS, "random": random.random(), "stream": context.log_stream_name,
            "initialization_type": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"],
            "version": os.environ.get("VERSION")}
"""


@pytest.fixture(scope="module")
def snap_server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("snap") / "data", args=["--snapstart-latest"])
    srv.start()
    yield srv
    srv.stop()


def create(client, name: str, code: str = HEAVY, runtime: str = "python3.12", **kwargs) -> dict:
    return client.create_function(FunctionName=name, Runtime=runtime, Role=ROLE, Handler="app.handler",
                                  Code={"ZipFile": make_zip({"app.py": code})}, Timeout=30, MemorySize=512,
                                  SnapStart={"ApplyOn": "PublishedVersions"}, **kwargs)


def report(resp) -> str:
    return next(line for line in base64.b64decode(resp["LogResult"]).decode().splitlines() if line.startswith("REPORT"))


def test_snapstart_is_refused_where_it_would_have_no_effect(unique_name, snap_server):
    with pytest.raises(snap_server.client().exceptions.InvalidParameterValueException) as error:
        create(snap_server.client(), unique_name, runtime="python3.11")
    assert "python3.12" in str(error.value)


def test_environments_fork_from_one_initialised_template(snap_server):
    client = snap_server.client()
    config = create(client, "forked")
    # AWS reports $LATEST as not optimised (also here, where --snapstart-latest forks it all the same)
    assert config["SnapStart"] == {"ApplyOn": "PublishedVersions", "OptimizationStatus": "Off"}

    gate = socket.create_server(("127.0.0.1", 0))
    gate.settimeout(30)
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(invoke_json, client, "forked", {"gate": gate.getsockname()[1]}, LogType="Tail")
        conn, _ = gate.accept()  # the first environment is busy now
        second_resp, second = invoke_json(client, "forked", {}, LogType="Tail")
        conn.sendall(b"go")
        conn.close()
        first_resp, first = held.result()
    gate.close()

    for result in (first, second):
        assert result["hooks"] == {"before": 1, "after": 1}  # init and before-snapshot once, restore per environment
        assert result["initialization_type"] == "snap-start"
    assert first["stream"] != second["stream"]  # two environments
    assert first["random"] != second["random"]  # re-seeded after each fork
    assert "\tRestore Duration: " in report(second_resp) and "Init Duration" not in report(second_resp)


def test_published_versions_get_snapstart_without_the_latest_flag(lambda_client, create_function):
    """The shared server runs without --snapstart-latest: $LATEST starts normally, versions restore."""
    name = create_function(HEAVY, Runtime="python3.12", Timeout=30, MemorySize=512,
                           SnapStart={"ApplyOn": "PublishedVersions"})["FunctionName"]
    latest_resp, latest = invoke_json(lambda_client, name, {}, LogType="Tail")
    assert latest["initialization_type"] == "on-demand" and "\tInit Duration: " in report(latest_resp)
    published = lambda_client.publish_version(FunctionName=name)
    version = published["Version"]
    assert published["SnapStart"] == {"ApplyOn": "PublishedVersions", "OptimizationStatus": "On"}  # as AWS
    assert lambda_client.get_function_configuration(FunctionName=name)["SnapStart"]["OptimizationStatus"] == "Off"
    resp, restored = invoke_json(lambda_client, name, {}, Qualifier=version, LogType="Tail")
    assert restored["initialization_type"] == "snap-start" and "\tRestore Duration: " in report(resp)
    assert resp["ExecutedVersion"] == version


def test_a_configuration_change_makes_a_new_template(snap_server):
    client = snap_server.client()
    create(client, "changing", Environment={"Variables": {"VERSION": "one"}})
    assert invoke_json(client, "changing", {})[1]["version"] == "one"
    client.update_function_configuration(FunctionName="changing", Environment={"Variables": {"VERSION": "two"}})
    assert invoke_json(client, "changing", {})[1]["version"] == "two"


def test_an_init_error_in_the_template_reaches_the_invocation(snap_server):
    client = snap_server.client()
    create(client, "broken", code="import no_such_module\n\ndef handler(event, context):\n    return 1\n")
    resp, body = invoke_json(client, "broken", {})
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ImportModuleError"
    client.update_function_code(FunctionName="broken", ZipFile=make_zip({"app.py": HEAVY}))
    assert invoke_json(client, "broken", {})[1]["hooks"] == {"before": 1, "after": 1}
