"""Execution environments: warm reuse, retirement on change, parallelism, reaping (DESIGN.md, CONTRACT.md §5.3)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

from conftest import invoke_json, make_zip

from .helpers import COUNTER_HANDLER, create_python_function, decoded_log, environment_counts, wait_until


def test_warm_environment_is_reused_across_sequential_invokes(server, lambda_client, create_function):
    name = create_function(COUNTER_HANDLER)["FunctionName"]

    results = [invoke_json(lambda_client, name)[1] for _ in range(3)]

    assert [r["count"] for r in results] == [1, 2, 3]
    assert len({r["env_id"] for r in results}) == 1
    wait_until(lambda: environment_counts(server, name) == {"idle": 1, "busy": 0, "starting": 0},
               timeout=5, what="/_lambdalet/status to show one idle environment")


def test_configuration_update_retires_warm_environments(lambda_client, create_function):
    name = create_function(COUNTER_HANDLER)["FunctionName"]
    assert [invoke_json(lambda_client, name)[1]["count"] for _ in range(2)] == [1, 2]

    lambda_client.update_function_configuration(FunctionName=name, Environment={"Variables": {"VERSION": "2"}})
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})

    assert invoke_json(lambda_client, name)[1]["count"] == 1


def test_code_update_retires_warm_environments(lambda_client, create_function):
    name = create_function(COUNTER_HANDLER)["FunctionName"]
    assert [invoke_json(lambda_client, name)[1]["count"] for _ in range(2)] == [1, 2]

    new_code = COUNTER_HANDLER.replace('return {"count": COUNT', 'return {"code": "v2", "count": COUNT')
    lambda_client.update_function_code(FunctionName=name, ZipFile=make_zip({"app.py": new_code}))
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})

    result = invoke_json(lambda_client, name)[1]
    assert result["code"] == "v2"
    assert result["count"] == 1


SLEEPY_HANDLER = """\
import time
import uuid

ENV_ID = uuid.uuid4().hex


def handler(event, context):
    time.sleep(1)
    return {"env_id": ENV_ID}
"""


def test_concurrent_invokes_run_in_parallel_environments(lambda_client, create_function):
    name = create_function(SLEEPY_HANDLER, Timeout=10)["FunctionName"]

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: invoke_json(lambda_client, name), range(4)))
    elapsed = time.monotonic() - started

    assert all(resp["StatusCode"] == 200 and "FunctionError" not in resp for resp, _ in results), results
    payloads = [payload for _, payload in results]
    assert len({p["env_id"] for p in payloads}) == 4, "each concurrent invoke needs its own environment"
    assert elapsed < 3.5, f"4 invokes of a 1 s handler took {elapsed:.2f} s: they did not run in parallel"


def test_idle_environments_are_reaped_after_keep_alive(fresh_server, unique_name):
    fresh_server.extra_env["LAMBDALET_KEEP_ALIVE"] = "1"
    fresh_server.start()
    client = fresh_server.client()
    create_python_function(client, unique_name, COUNTER_HANDLER)

    first = client.invoke(FunctionName=unique_name, Payload=b"{}", LogType="Tail")
    assert "Init Duration" in decoded_log(first)

    wait_until(lambda: environment_counts(fresh_server, unique_name) == {"idle": 0, "busy": 0, "starting": 0},
               timeout=15, interval=0.25, what="the idle environment to be reaped")

    after = client.invoke(FunctionName=unique_name, Payload=b"{}", LogType="Tail")
    assert json.loads(after["Payload"].read())["count"] == 1
    assert "Init Duration" in decoded_log(after), "an invoke after reaping is a cold start"
