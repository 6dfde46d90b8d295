"""InvokeAsync: the deprecated operation old code still calls, on the same durable queue as `Event`."""

from __future__ import annotations

import io
import json
import uuid

from .helpers import aws_error, wait_for_function_log

PRINTER = """
import json

def handler(event, context):
    print("async-got " + json.dumps(event, sort_keys=True) + " arn=" + context.invoked_function_arn)
    return "ok"
"""


def test_invoke_async_reaches_the_queue_and_the_function(server, lambda_client, create_function):
    name = create_function(PRINTER)["FunctionName"]
    marker = uuid.uuid4().hex
    response = lambda_client.invoke_async(FunctionName=name, InvokeArgs=json.dumps({"marker": marker}))
    assert response["Status"] == 202
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    text = wait_for_function_log(server, name, f'async-got {{"marker": "{marker}"}}', timeout=30)
    assert f"arn=arn:aws:lambda:us-east-1:000000000000:function:{name}\n" in text


def test_invoke_async_takes_a_file_like_body_and_a_qualified_name(server, lambda_client, create_function):
    name = create_function(PRINTER, Publish=True)["FunctionName"]
    marker = uuid.uuid4().hex
    lambda_client.invoke_async(FunctionName=f"{name}:1", InvokeArgs=io.BytesIO(json.dumps({"m": marker}).encode()))
    text = wait_for_function_log(server, name, f'async-got {{"m": "{marker}"}}', timeout=30)
    assert f"arn=arn:aws:lambda:us-east-1:000000000000:function:{name}:1\n" in text


def test_invoke_async_refusals(lambda_client, create_function):
    name = create_function(PRINTER)["FunctionName"]
    for payload, qualified, refusal in (("{}", f"{name}-missing", ("ResourceNotFoundException", 404)),
                                        ("{not json", name, ("InvalidRequestContentException", 400)),
                                        ("{}", f"{name}:7", ("ResourceNotFoundException", 404)),
                                        (b"[" * 10 + b"1" + b"]" * 10 + b" " * (1024 * 1024), name,
                                         ("RequestTooLargeException", 413))):
        assert aws_error(lambda_client.invoke_async, FunctionName=qualified, InvokeArgs=payload)[:2] == refusal
