"""A memory-hungry function costs only its own environment; ordinary ones are not refused."""

import json

import pytest

from conftest import invoke_json

GREEDY = """
def handler(event, context):
    block = bytearray(event["mb"] * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    return len(block)
"""

THREADS_AND_SDK = """
import resource, threading, time
import boto3

def handler(event, context):
    threads = [threading.Thread(target=time.sleep, args=(0.2,)) for _ in range(20)]
    for t in threads:
        t.start()
    boto3.client("s3", region_name="us-east-1")
    for t in threads:
        t.join()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
"""


def test_exceeding_memory_size_is_lambdas_out_of_memory_and_the_next_invoke_works(lambda_client, create_function):
    name = create_function(GREEDY, MemorySize=128, Timeout=30)["FunctionName"]
    resp, body = invoke_json(lambda_client, name, {"mb": 200}, LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.OutOfMemory"
    assert body["errorMessage"].endswith("Error: Runtime exited with error: signal: killed")
    import base64
    report = [line for line in base64.b64decode(resp["LogResult"]).decode().splitlines() if line.startswith("REPORT")]
    assert report and report[0].endswith("Status: error\tError Type: Runtime.OutOfMemory")

    resp, body = invoke_json(lambda_client, name, {"mb": 1})
    assert "FunctionError" not in resp and body == 1024 * 1024


def test_memory_size_is_about_resident_memory_not_address_space(lambda_client, create_function):
    """Twenty thread stacks and an SDK client reserve far more than 128 MB of address space."""
    name = create_function(THREADS_AND_SDK, MemorySize=128, Timeout=30)["FunctionName"]
    resp, peak_mb = invoke_json(lambda_client, name)
    assert "FunctionError" not in resp, json.dumps(peak_mb)
    assert peak_mb < 128


def test_a_larger_memory_size_allows_the_same_allocation(lambda_client, create_function):
    name = create_function(GREEDY, MemorySize=512, Timeout=30)["FunctionName"]
    resp, body = invoke_json(lambda_client, name, {"mb": 200})
    assert "FunctionError" not in resp and body == 200 * 1024 * 1024


def test_every_environment_gets_its_own_memory_size_whatever_started_before_it(lambda_client, create_function):
    """Spares write the last environment's limits ahead of time; a different MemorySize must
    still be the one that holds, in both directions."""
    big = create_function(GREEDY, MemorySize=512, Timeout=30)["FunctionName"]
    small = create_function(GREEDY, MemorySize=128, Timeout=30)["FunctionName"]
    for _round in range(2):
        resp, body = invoke_json(lambda_client, small, {"mb": 200})
        assert body["errorType"] == "Runtime.OutOfMemory"
        resp, body = invoke_json(lambda_client, big, {"mb": 200})
        assert "FunctionError" not in resp and body == 200 * 1024 * 1024


CPU_SPINNER = """
import time

def handler(event, context):
    started, cpu_started = time.monotonic(), time.process_time()
    while time.monotonic() - started < event["seconds"]:
        pass
    return {"cpu": time.process_time() - cpu_started, "wall": time.monotonic() - started}
"""


@pytest.mark.isolation
def test_a_cpu_bound_128_mb_function_gets_its_share_over_seconds(lambda_client, create_function):
    """CPU in proportion to memory (1,769 MB per vCPU): a 128 MB function spinning for 5 s gets about
    7 % of a core over them, whatever the quota's accounting period — never the whole core. (No lower
    bound: on a busy host it may get less.)"""
    name = create_function(CPU_SPINNER, MemorySize=128, Timeout=30)["FunctionName"]
    invoke_json(lambda_client, name, {"seconds": 0})  # init (unthrottled, as on Lambda) is over
    _resp, result = invoke_json(lambda_client, name, {"seconds": 5})
    share = result["cpu"] / result["wall"]
    assert 0 < share <= 0.12, result  # 128 / 1,769 = 7.2 %; a partial first and last period allowed for
