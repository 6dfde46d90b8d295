"""Request bodies checked against botocore's model: Coral's ValidationException with the words
LocalStack's snapshots record against AWS (test_lambda_api.snapshot.json)."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from conftest import ROLE, make_zip

from .helpers import ECHO_HANDLER, error_code_and_status, http_request


@pytest.fixture
def unvalidated_client(server):
    """A client that lets constraint breaks through to the server (botocore checks some itself)."""
    return server.client(parameter_validation=False)


def refused(excinfo) -> tuple[str, int, str]:
    code, status = error_code_and_status(excinfo.value)
    return code, status, excinfo.value.response["Error"]["Message"]


def test_several_broken_constraints_are_joined_in_the_models_order(unvalidated_client, unique_name):
    with pytest.raises(ClientError) as excinfo:
        unvalidated_client.create_function(FunctionName=unique_name, Runtime="python3.11", Role="r1",
                                           Handler="app.handler", MemorySize=64,
                                           Code={"ZipFile": make_zip({"app.py": ECHO_HANDLER})})
    assert refused(excinfo) == ("ValidationException", 400, (
        "2 validation errors detected: Value 'r1' at 'role' failed to satisfy constraint: Member must satisfy "
        "regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+; "
        "Value '64' at 'memorySize' failed to satisfy constraint: Member must have value greater than or "
        "equal to 128"))


def test_lists_render_as_aws_prints_them(unvalidated_client, unique_name):
    with pytest.raises(ClientError) as excinfo:
        unvalidated_client.create_function(FunctionName=unique_name, Runtime="python3.11", Role=ROLE,
                                           Handler="app.handler", Architectures=["x86_64", "arm64"],
                                           Code={"ZipFile": make_zip({"app.py": ECHO_HANDLER})})
    # test_function_multi_arch / create_function_invalid_arch-like recordings
    assert refused(excinfo) == ("ValidationException", 400, (
        "1 validation error detected: Value '[x86_64, arm64]' at 'architectures' failed to satisfy constraint: "
        "Member must have length less than or equal to 1"))


def test_maps_render_as_aws_prints_them(unvalidated_client, create_function):
    name = create_function()["FunctionName"]
    with pytest.raises(ClientError) as excinfo:
        unvalidated_client.create_alias(FunctionName=name, Name="live", FunctionVersion="$LATEST",
                                        RoutingConfig={"AdditionalVersionWeights": {"2": -1.0}})
    # test_alias_routingconfig: routing_config_exc_toosmall-like recording
    assert refused(excinfo) == ("ValidationException", 400, (
        "1 validation error detected: Value '{2=-1.0}' at 'routingConfig.additionalVersionWeights' failed to "
        "satisfy constraint: Map value must satisfy constraint: [Member must have value less than or equal to "
        "1.0, Member must have value greater than or equal to 0.0, Member must not be null]"))


def test_statement_ids_follow_the_model(lambda_client, create_function):
    name = create_function()["FunctionName"]
    with pytest.raises(ClientError) as excinfo:
        lambda_client.add_permission(FunctionName=name, StatementId="example.com", Action="lambda:InvokeFunction",
                                     Principal="s3.amazonaws.com")
    # test_permission_exceptions (recorded at line 7664)
    assert refused(excinfo) == ("ValidationException", 400, (
        "1 validation error detected: Value 'example.com' at 'statementId' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: ([a-zA-Z0-9-_]+)"))


def test_nested_sensitive_maps_are_not_shown(lambda_client, create_function):
    name = create_function()["FunctionName"]
    with pytest.raises(ClientError) as excinfo:
        lambda_client.update_function_configuration(FunctionName=name, Environment={"Variables": {"1ABC": "v"}})
    assert refused(excinfo) == ("ValidationException", 400, (
        "1 validation error detected: Value at 'environment.variables' failed to satisfy constraint: Map keys "
        "must satisfy constraint: [Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]"))


def test_oversized_create_function_names_the_limit(server):
    body = json.dumps({"FunctionName": "big", "Code": {"ZipFile": "A" * 70167300}}).encode()
    status, _headers, data = http_request(f"{server.url}/2015-03-31/functions", "POST", body)
    # test_oversized_request_create_lambda: 413 RequestEntityTooLargeException
    assert status == 413, data
    assert b"Request must be smaller than 70167211 bytes for the CreateFunction operation" in data


@pytest.mark.parametrize("function_name", [
    "no.such.fn",
    "arn:aws:lambda:eusc-de-east-1:123456789012:function:no-such-fn",
    "arn:aws-iso:lambda:us-iso-east-1:123456789012:function:no-such-fn",
    "no-such-fn:$LATEST.PUBLISHED",
], ids=["dot-in-name", "eusc-region", "iso-partition", "latest-published"])
def test_todays_function_name_pattern_is_accepted(lambda_client, function_name):
    """The model's current FunctionName pattern allows these: a missing function is not found, not
    a broken constraint (the older, hand-copied pattern refused them)."""
    with pytest.raises(ClientError) as excinfo:
        lambda_client.get_function(FunctionName=function_name)
    assert error_code_and_status(excinfo.value) == ("ResourceNotFoundException", 404), excinfo.value.response


def test_a_function_can_be_read_by_its_name_and_qualifiers_still_work(lambda_client, create_function):
    name = create_function()["FunctionName"]
    assert lambda_client.get_function(FunctionName=f"{name}:$LATEST")["Configuration"]["FunctionName"] == name
