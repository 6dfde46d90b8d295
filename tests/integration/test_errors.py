"""Lambda's error model over the wire: codes, statuses, and what a failed request leaves behind (CONTRACT.md §2)."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from conftest import ROLE, make_zip

from .helpers import ECHO_HANDLER, error_code_and_status, http_request


def assert_client_error(excinfo, code: str, status: int) -> None:
    assert error_code_and_status(excinfo.value) == (code, status), excinfo.value.response


@pytest.fixture
def unvalidated_client(server):
    """A client that lets out-of-range values through to the server (botocore checks minimums itself)."""
    return server.client(parameter_validation=False)


@pytest.mark.parametrize("operation", ["get_function", "get_function_configuration", "delete_function", "invoke"])
def test_unknown_function_is_not_found(lambda_client, unique_name, operation):
    with pytest.raises(ClientError) as excinfo:
        getattr(lambda_client, operation)(FunctionName=f"{unique_name}-missing")
    assert_client_error(excinfo, "ResourceNotFoundException", 404)


@pytest.mark.parametrize("operation", ["get_function", "invoke"])
def test_unknown_qualifier_is_not_found(lambda_client, create_function, operation):
    name = create_function()["FunctionName"]
    with pytest.raises(ClientError) as excinfo:
        getattr(lambda_client, operation)(FunctionName=name, Qualifier="7")
    assert_client_error(excinfo, "ResourceNotFoundException", 404)


def test_creating_an_existing_function_conflicts(lambda_client, create_function):
    created = create_function()
    with pytest.raises(ClientError) as excinfo:
        lambda_client.create_function(FunctionName=created["FunctionName"], Runtime="python3.11", Role=ROLE,
                                      Handler="app.handler", Code={"ZipFile": make_zip({"app.py": ECHO_HANDLER})})
    assert_client_error(excinfo, "ResourceConflictException", 409)
    # The original function is untouched.
    config = lambda_client.get_function_configuration(FunctionName=created["FunctionName"])
    assert config["CodeSha256"] == created["CodeSha256"]


INVALID = "InvalidParameterValueException"
#: A constraint of botocore's model is Coral's ValidationException (as LocalStack's snapshots record
#: for `role`, `architectures`, `snapStart.applyOn`); the rest are Lambda's own, semantic, rules
#: (an unknown runtime is InvalidParameterValueException: test_create_lambda_exceptions).
INVALID_CREATE_PARAMETERS = {
    "unknown-runtime": ({"Runtime": "python2.1"}, INVALID),
    "memory-too-small": ({"MemorySize": 64}, "ValidationException"),  # the model's min 128
    "memory-too-large": ({"MemorySize": 20000}, INVALID),  # the model allows 32768; Lambda 10240
    "timeout-zero": ({"Timeout": 0}, "ValidationException"),
    "timeout-too-long": ({"Timeout": 901}, INVALID),
    "ephemeral-storage-too-small": ({"EphemeralStorage": {"Size": 100}}, "ValidationException"),
    "handler-with-space": ({"Handler": "app handler"}, "ValidationException"),
    "not-a-zip": ({"Code": {"ZipFile": b"this is not a zip file"}}, INVALID),
    "reserved-env-key": ({"Environment": {"Variables": {"AWS_REGION": "eu-west-1"}}}, INVALID),
    "environment-over-4kb": ({"Environment": {"Variables": {"BIG": "x" * 5000}}}, INVALID),
}


@pytest.mark.parametrize("overrides,code", INVALID_CREATE_PARAMETERS.values(), ids=INVALID_CREATE_PARAMETERS.keys())
def test_invalid_create_parameters_are_rejected_and_leave_nothing(lambda_client, unvalidated_client, unique_name,
                                                                  overrides, code):
    name = f"{unique_name}-fn"
    params = {"FunctionName": name, "Runtime": "python3.11", "Role": ROLE, "Handler": "app.handler",
              "Code": {"ZipFile": make_zip({"app.py": ECHO_HANDLER})}, **overrides}
    try:
        with pytest.raises(ClientError) as excinfo:
            unvalidated_client.create_function(**params)
        assert_client_error(excinfo, code, 400)
        with pytest.raises(ClientError) as excinfo:
            lambda_client.get_function(FunctionName=name)
        assert_client_error(excinfo, "ResourceNotFoundException", 404)
    finally:
        try:
            lambda_client.delete_function(FunctionName=name)
        except ClientError:
            pass


def test_invalid_function_name_is_rejected(lambda_client):
    with pytest.raises(ClientError) as excinfo:
        lambda_client.create_function(FunctionName="bad name!", Runtime="python3.11", Role=ROLE,
                                      Handler="app.handler", Code={"ZipFile": make_zip({"app.py": ECHO_HANDLER})})
    # the model's FunctionName pattern, as recorded (test_function_arns: invalid_function_name_exc)
    assert_client_error(excinfo, "ValidationException", 400)
    listed = lambda_client.get_paginator("list_functions").paginate().build_full_result()["Functions"]
    assert "bad name!" not in {f["FunctionName"] for f in listed}


def test_zip_without_the_handler_file_is_accepted_and_fails_at_invoke(lambda_client, create_function):
    created = create_function(files={"other.py": ECHO_HANDLER})
    assert created["State"] == "Pending"  # as AWS answers a create; the handler is not looked for

    resp = lambda_client.invoke(FunctionName=created["FunctionName"], Payload=b"{}")

    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert json.loads(resp["Payload"].read())["errorType"] == "Runtime.ImportModuleError"


def test_invoke_payload_over_6mb_is_too_large(lambda_client, create_function):
    name = create_function()["FunctionName"]
    payload = b'"' + b"x" * (6 * 1024 * 1024 - 1) + b'"'
    assert len(payload) == 6 * 1024 * 1024 + 1
    with pytest.raises(ClientError) as excinfo:
        lambda_client.invoke(FunctionName=name, Payload=payload)
    assert_client_error(excinfo, "RequestTooLargeException", 413)


def test_invoke_payload_that_is_not_json_is_rejected(lambda_client, create_function):
    name = create_function()["FunctionName"]
    with pytest.raises(ClientError) as excinfo:
        lambda_client.invoke(FunctionName=name, Payload=b"{not json")
    assert_client_error(excinfo, "InvalidRequestContentException", 400)


@pytest.mark.parametrize("method,path", [("GET", "/2015-03-31/nope"), ("DELETE", "/2015-03-31/functions"),
                                         ("POST", "/2099-01-01/whatever")])
def test_unknown_route_is_a_client_error_with_an_error_type(server, method, path):
    status, headers, _ = http_request(server.url + path, method=method)
    assert 400 <= status < 500, status
    assert {k.lower() for k in headers} >= {"x-amzn-errortype"}, headers
