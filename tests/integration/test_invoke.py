"""Invoke: response shapes, function errors, log tails, invocation types, client context (CONTRACT.md §3, §12)."""

from __future__ import annotations

import base64
import json
import re
import uuid

from .helpers import decoded_log, wait_for_function_log

PRINTING_HANDLER = """\
def handler(event, context):
    print("hello from the handler", event["marker"])
    return {"ok": True}
"""


def report_line(request_id: str) -> re.Pattern:
    return re.compile(
        rf"REPORT RequestId: {re.escape(request_id)}\tDuration: \d+\.\d{{2}} ms\tBilled Duration: \d+ ms\t"
        rf"Memory Size: 128 MB\tMax Memory Used: \d+ MB")


def test_request_response_returns_the_handler_result(lambda_client, create_function):
    name = create_function("def handler(event, context):\n    return {'got': event, 'n': [1, 2.5, None]}\n")["FunctionName"]

    resp = lambda_client.invoke(FunctionName=name, Payload=json.dumps({"a": 1, "b": "two"}))

    assert resp["StatusCode"] == 200
    assert resp["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in resp
    assert json.loads(resp["Payload"].read()) == {"got": {"a": 1, "b": "two"}, "n": [1, 2.5, None]}


def test_raising_handler_is_an_unhandled_function_error(lambda_client, create_function):
    code = "def handler(event, context):\n    raise ValueError('boom: ' + event['why'])\n"
    name = create_function(code)["FunctionName"]

    resp = lambda_client.invoke(FunctionName=name, Payload=json.dumps({"why": "bad input"}))

    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    error = json.loads(resp["Payload"].read())
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "boom: bad input"
    assert isinstance(error["stackTrace"], list) and error["stackTrace"]
    assert any("app.py" in frame for frame in error["stackTrace"])


def test_function_keeps_working_after_a_handler_error(lambda_client, create_function):
    code = "def handler(event, context):\n    if event.get('fail'):\n        raise KeyError('x')\n    return 'fine'\n"
    name = create_function(code)["FunctionName"]
    assert lambda_client.invoke(FunctionName=name, Payload=b'{"fail": true}')["FunctionError"] == "Unhandled"
    resp = lambda_client.invoke(FunctionName=name, Payload=b"{}")
    assert "FunctionError" not in resp
    assert json.loads(resp["Payload"].read()) == "fine"


def test_log_type_tail_returns_the_invocation_log(lambda_client, create_function):
    name = create_function(PRINTING_HANDLER)["FunctionName"]
    marker = uuid.uuid4().hex

    first = lambda_client.invoke(FunctionName=name, Payload=json.dumps({"marker": marker}), LogType="Tail")
    second = lambda_client.invoke(FunctionName=name, Payload=json.dumps({"marker": marker}), LogType="Tail")

    for resp in (first, second):
        request_id = resp["ResponseMetadata"]["RequestId"]
        log = decoded_log(resp)
        assert len(base64.b64decode(resp["LogResult"])) <= 4096
        assert f"START RequestId: {request_id} Version: $LATEST" in log
        assert f"hello from the handler {marker}" in log
        assert f"END RequestId: {request_id}" in log
        assert report_line(request_id).search(log), log
        assert log.index("START RequestId") < log.index("hello from the handler") < log.index("END RequestId") \
            < log.index("REPORT RequestId")
    assert re.search(r"\tInit Duration: \d+\.\d{2} ms", decoded_log(first)), "first invoke of an environment"
    assert "Init Duration" not in decoded_log(second), "second invoke reuses the warm environment"


def test_log_tail_keeps_the_last_4kb(lambda_client, create_function):
    code = "def handler(event, context):\n    for i in range(100):\n        print(f'line {i:03d} ' + 'x' * 95)\n"
    name = create_function(code)["FunctionName"]

    resp = lambda_client.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")

    request_id = resp["ResponseMetadata"]["RequestId"]
    raw = base64.b64decode(resp["LogResult"])
    log = raw.decode("utf-8", errors="replace")
    assert 3000 <= len(raw) <= 4096, len(raw)
    assert "line 099" in log and f"END RequestId: {request_id}" in log and report_line(request_id).search(log)
    assert "line 000" not in log and "START RequestId" not in log


def test_no_log_result_without_log_type_tail(lambda_client, create_function):
    name = create_function(PRINTING_HANDLER)["FunctionName"]
    resp = lambda_client.invoke(FunctionName=name, Payload=json.dumps({"marker": "m"}))
    assert "LogResult" not in resp


def test_dry_run_returns_204(lambda_client, create_function):
    name = create_function()["FunctionName"]
    resp = lambda_client.invoke(FunctionName=name, InvocationType="DryRun", Payload=b"{}")
    assert resp["StatusCode"] == 204
    assert resp["Payload"].read() == b""


def test_event_invocation_returns_202_and_runs_the_function(server, lambda_client, create_function):
    # The sandbox may give each environment a private /tmp, so the proof that the event ran is
    # the function's own log output, which the server writes under <data-dir>/logs/<name>/.
    code = """\
import pathlib


def handler(event, context):
    pathlib.Path(event["path"]).write_text(event["marker"])
    print("async event ran", event["marker"])
"""
    name = create_function(code)["FunctionName"]
    marker = uuid.uuid4().hex

    resp = lambda_client.invoke(FunctionName=name, InvocationType="Event",
                                Payload=json.dumps({"marker": marker, "path": f"/tmp/{marker}.txt"}))

    assert resp["StatusCode"] == 202
    assert resp["Payload"].read() == b""
    wait_for_function_log(server, name, f"async event ran {marker}", timeout=15)


def test_client_context_reaches_the_handler(lambda_client, create_function):
    code = """\
def handler(event, context):
    cc = context.client_context
    return {"custom": cc.custom, "env": cc.env}
"""
    name = create_function(code)["FunctionName"]
    client_context = {"custom": {"tenant": "acme", "n": 3}, "env": {"locale": "en"}, "client": {"app_title": "t"}}

    resp = lambda_client.invoke(FunctionName=name, Payload=b"{}",
                                ClientContext=base64.b64encode(json.dumps(client_context).encode()).decode())

    assert "FunctionError" not in resp
    assert json.loads(resp["Payload"].read()) == {"custom": {"tenant": "acme", "n": 3}, "env": {"locale": "en"}}
