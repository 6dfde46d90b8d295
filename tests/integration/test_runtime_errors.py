"""Failures of the function, not of the request: init errors, timeouts, crashes (CONTRACT.md §3.3, §4.3)."""

from __future__ import annotations

import json
import re
import time

import pytest

from .helpers import decoded_log

INIT_FAILURES = {
    "syntax-error": ({"app.py": "def handler(event, context:\n    return 1\n"}, "app.handler",
                     "Runtime.UserCodeSyntaxError"),
    "missing-attribute": ({"app.py": "def other(event, context):\n    return 1\n"}, "app.handler",
                          "Runtime.HandlerNotFound"),
    "malformed-handler-name": ({"app.py": "def handler(event, context):\n    return 1\n"}, "nodot",
                               "Runtime.MalformedHandlerName"),
    "missing-module": ({"app.py": "def handler(event, context):\n    return 1\n"}, "nosuchmodule.handler",
                       "Runtime.ImportModuleError"),
    "import-of-missing-dependency": ({"app.py": "import nosuchdependency\n\ndef handler(event, context):\n    return 1\n"},
                                     "app.handler", "Runtime.ImportModuleError"),
}


@pytest.mark.parametrize("files,handler,error_type", INIT_FAILURES.values(), ids=INIT_FAILURES.keys())
def test_init_failures_are_unhandled_function_errors(lambda_client, create_function, files, handler, error_type):
    name = create_function(files=files, Handler=handler)["FunctionName"]

    for _ in range(2):  # the failure is reported on every invoke, not only the first
        resp = lambda_client.invoke(FunctionName=name, Payload=b"{}")
        assert resp["StatusCode"] == 200
        assert resp["FunctionError"] == "Unhandled"
        error = json.loads(resp["Payload"].read())
        assert error["errorType"] == error_type, error
        assert error["errorMessage"]


TIMEOUT_HANDLER = """\
import time

COUNT = 0


def handler(event, context):
    global COUNT
    COUNT += 1
    if event.get("sleep"):
        time.sleep(event["sleep"])
    return {"count": COUNT}
"""


def test_timeout_is_reported_and_the_next_invoke_is_a_cold_start(lambda_client, create_function):
    name = create_function(TIMEOUT_HANDLER, Timeout=1)["FunctionName"]

    started = time.monotonic()
    resp = lambda_client.invoke(FunctionName=name, Payload=json.dumps({"sleep": 5}))
    elapsed = time.monotonic() - started

    assert elapsed < 4, f"the 1 s timeout took {elapsed:.1f} s to fire"
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    error = json.loads(resp["Payload"].read())
    assert error["errorType"] == "Sandbox.Timedout"
    assert error["errorMessage"].endswith("Task timed out after 1.00 seconds"), error["errorMessage"]

    after = lambda_client.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
    assert "FunctionError" not in after
    assert json.loads(after["Payload"].read()) == {"count": 1}, "module state must start afresh"
    assert "Init Duration" in decoded_log(after)


def test_timeout_log_tail_reports_status_timeout(lambda_client, create_function):
    name = create_function(TIMEOUT_HANDLER, Timeout=1)["FunctionName"]
    resp = lambda_client.invoke(FunctionName=name, Payload=json.dumps({"sleep": 5}), LogType="Tail")
    request_id = resp["ResponseMetadata"]["RequestId"]
    log = decoded_log(resp)
    assert "Task timed out after 1.00 seconds" in log
    assert re.search(rf"REPORT RequestId: {request_id}\t.*Status: timeout", log), log


EXIT_HANDLER = """\
import os

COUNT = 0


def handler(event, context):
    global COUNT
    COUNT += 1
    if event.get("exit"):
        os._exit(3)
    return {"count": COUNT}
"""


def test_runtime_exit_is_reported_and_the_function_recovers(lambda_client, create_function):
    name = create_function(EXIT_HANDLER)["FunctionName"]

    resp = lambda_client.invoke(FunctionName=name, Payload=json.dumps({"exit": True}))

    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    error = json.loads(resp["Payload"].read())
    assert error["errorType"] == "Runtime.ExitError"
    assert "Runtime exited with error: exit status 3" in error["errorMessage"]

    after = lambda_client.invoke(FunctionName=name, Payload=b"{}")
    assert "FunctionError" not in after
    assert json.loads(after["Payload"].read()) == {"count": 1}
