"""What a Python handler sees: the context object and the environment (CONTRACT.md §4.3, §5.1)."""

from __future__ import annotations

import json
import re

from conftest import invoke_json

from .helpers import create_python_function, function_arn

LOG_STREAM = re.compile(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$")

CONTEXT_HANDLER = """\
def handler(event, context):
    return {
        "aws_request_id": context.aws_request_id,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": str(context.memory_limit_in_mb),
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
"""

ENV_HANDLER = """\
import os


def handler(event, context):
    return {
        "env": {key: os.environ.get(key) for key in event["keys"]},
        "handler_dir": os.path.dirname(os.path.realpath(__file__)),
        "task_root": os.path.realpath(os.environ.get("LAMBDA_TASK_ROOT", "")),
        "log_stream_name": context.log_stream_name,
    }
"""

RESERVED_KEYS = [
    "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_RUNTIME_API", "AWS_EXECUTION_ENV", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "_HANDLER", "TZ",
]


def test_context_object(lambda_client, create_function):
    name = create_function(CONTEXT_HANDLER, Timeout=10)["FunctionName"]

    resp, ctx = invoke_json(lambda_client, name)

    assert ctx["aws_request_id"] == resp["ResponseMetadata"]["RequestId"]
    assert ctx["function_name"] == name
    assert ctx["function_version"] == "$LATEST"
    assert ctx["invoked_function_arn"] == function_arn(name)
    assert ctx["memory_limit_in_mb"] == "128"
    assert ctx["log_group_name"] == f"/aws/lambda/{name}"
    assert LOG_STREAM.match(ctx["log_stream_name"]), ctx["log_stream_name"]
    assert 0 < ctx["remaining_ms"] <= 10_000


def test_context_reports_the_arn_used_to_invoke(lambda_client, create_function):
    name = create_function(CONTEXT_HANDLER, MemorySize=256)["FunctionName"]
    qualified_arn = f"{function_arn(name)}:$LATEST"

    _, by_arn = invoke_json(lambda_client, function_arn(name))
    _, by_qualified_arn = invoke_json(lambda_client, qualified_arn)

    assert by_arn["invoked_function_arn"] == function_arn(name)
    assert by_qualified_arn["invoked_function_arn"] == qualified_arn
    assert by_arn["memory_limit_in_mb"] == "256"
    assert by_arn["function_name"] == name


def test_reserved_environment_variables(lambda_client, create_function):
    name = create_function(ENV_HANDLER, MemorySize=256)["FunctionName"]

    _, result = invoke_json(lambda_client, name, {"keys": RESERVED_KEYS})

    env = result["env"]
    assert env["AWS_REGION"] == "us-east-1"
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{name}"
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"] == result["log_stream_name"]
    assert LOG_STREAM.match(env["AWS_LAMBDA_LOG_STREAM_NAME"])
    assert re.match(r"^[\w.\-]+:\d+$", env["AWS_LAMBDA_RUNTIME_API"]), env["AWS_LAMBDA_RUNTIME_API"]
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
    assert env["LAMBDA_TASK_ROOT"] and result["task_root"] == result["handler_dir"]
    assert env["LAMBDA_RUNTIME_DIR"]
    assert env["_HANDLER"] == "app.handler"
    assert env["TZ"] and "UTC" in env["TZ"]


def test_user_environment_variables_are_visible(lambda_client, create_function):
    variables = {"GREETING": "hello world", "DB_URL": "postgres://u@h/db?x=1&y=2", "Mixed_Case1": "ok"}
    name = create_function(ENV_HANDLER, Environment={"Variables": variables})["FunctionName"]

    _, result = invoke_json(lambda_client, name, {"keys": list(variables)})

    assert result["env"] == variables


def test_boto3_is_importable_without_bundling_it(lambda_client, create_function):
    code = "import boto3\n\ndef handler(event, context):\n    return {'version': boto3.__version__, 'mark': getattr(boto3, 'MARK', None)}\n"
    name = create_function(code)["FunctionName"]

    resp, result = invoke_json(lambda_client, name)

    assert "FunctionError" not in resp, result
    assert re.match(r"^\d+\.\d+", result["version"])
    assert result["mark"] is None


def test_bundled_module_shadows_the_runtime_boto3(lambda_client, create_function):
    code = "import boto3\n\ndef handler(event, context):\n    return {'mark': getattr(boto3, 'MARK', None)}\n"
    name = create_function(files={"app.py": code, "boto3/__init__.py": "MARK = 1\n"})["FunctionName"]

    resp, result = invoke_json(lambda_client, name)

    assert "FunctionError" not in resp, result
    assert result == {"mark": 1}


def test_server_aws_endpoint_url_reaches_functions(fresh_server, unique_name):
    fresh_server.extra_env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:4566"
    fresh_server.start()
    client = fresh_server.client()
    create_python_function(client, unique_name, ENV_HANDLER)

    resp = client.invoke(FunctionName=unique_name, Payload=json.dumps({"keys": ["AWS_ENDPOINT_URL"]}))

    assert "FunctionError" not in resp
    assert json.loads(resp["Payload"].read())["env"] == {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}


INTERPRETER_STATE_HANDLER = """\
import logging
import os
import sys


def handler(event, context):
    return {
        "modules": sorted(name for name in sys.modules if "rehearsal" in name),
        "path_starts_at_task_root": sys.path[0] == os.environ["LAMBDA_TASK_ROOT"],
        "rehearsal_paths": [p for p in sys.path if "rehearsal" in p],
        "root_handlers": len(logging.getLogger().handlers),
        "trace_id": os.environ.get("_X_AMZN_TRACE_ID"),
    }
"""


def test_a_fresh_environment_carries_nothing_from_its_warm_up(lambda_client, create_function):
    """Spares warm up on a stand-in handler before they get a function (bootstrap.rehearse):
    the function's interpreter must look exactly as if that never happened."""
    name = create_function(INTERPRETER_STATE_HANDLER)["FunctionName"]

    _resp, state = invoke_json(lambda_client, name)

    assert state["modules"] == []
    assert state["rehearsal_paths"] == []
    assert state["path_starts_at_task_root"] is True
    assert state["root_handlers"] == 1  # the runtime's own Lambda log handler
    assert state["trace_id"] != "Root=1-00000000-000000000000000000000000"
