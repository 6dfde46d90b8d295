"""Function logs on disk: `<data-dir>/logs/<function-name>/` (CONTRACT.md §12)."""

from __future__ import annotations

import json
import uuid

from .helpers import wait_for_function_log

PRINTING_HANDLER = """\
def handler(event, context):
    print("log marker", event["marker"])
    return "ok"
"""


def test_log_files_hold_each_function_s_own_invocations(server, lambda_client, create_function):
    first = create_function(PRINTING_HANDLER)["FunctionName"]
    second = create_function(PRINTING_HANDLER)["FunctionName"]
    markers = {first: [uuid.uuid4().hex, uuid.uuid4().hex], second: [uuid.uuid4().hex]}

    request_ids: dict[str, list[str]] = {first: [], second: []}
    for name, name_markers in markers.items():
        for marker in name_markers:
            resp = lambda_client.invoke(FunctionName=name, Payload=json.dumps({"marker": marker}))
            assert "FunctionError" not in resp
            request_ids[name].append(resp["ResponseMetadata"]["RequestId"])

    for name in markers:
        last_id = request_ids[name][-1]
        log = wait_for_function_log(server, name, f"REPORT RequestId: {last_id}")
        for marker, request_id in zip(markers[name], request_ids[name]):
            assert f"log marker {marker}" in log
            assert f"START RequestId: {request_id} Version: $LATEST" in log
            assert f"END RequestId: {request_id}" in log
            assert f"REPORT RequestId: {request_id}\tDuration: " in log
        other = second if name == first else first
        for foreign in markers[other] + request_ids[other]:
            assert foreign not in log, f"{name}'s logs contain output of {other}"


def test_error_output_is_logged(server, lambda_client, create_function):
    code = "def handler(event, context):\n    raise RuntimeError('logged failure ' + event['marker'])\n"
    name = create_function(code)["FunctionName"]
    marker = uuid.uuid4().hex

    resp = lambda_client.invoke(FunctionName=name, Payload=json.dumps({"marker": marker}))

    assert resp["FunctionError"] == "Unhandled"
    request_id = resp["ResponseMetadata"]["RequestId"]
    log = wait_for_function_log(server, name, f"REPORT RequestId: {request_id}")
    assert f"logged failure {marker}" in log
