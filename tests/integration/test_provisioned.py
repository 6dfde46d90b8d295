"""Provisioned concurrency: configs, READY before traffic, no cold start, spill-over, release."""

from __future__ import annotations

import base64

import pytest

from conftest import invoke_json
from .helpers import aws_error, function_arn, wait_until

HANDLER = """
import os

def handler(event, context):
    return os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"]
"""


def report(resp) -> str:
    return next(line for line in base64.b64decode(resp["LogResult"]).decode().splitlines() if line.startswith("REPORT"))


def status(client, name: str, qualifier: str) -> dict:
    return client.get_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier)


def test_provisioned_environments_are_ready_before_traffic_and_are_not_cold(lambda_client, create_function):
    name = create_function(HANDLER, Publish=True)["FunctionName"]
    put = lambda_client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1",
                                                           ProvisionedConcurrentExecutions=2)
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202 and put["RequestedProvisionedConcurrentExecutions"] == 2
    wait_until(lambda: status(lambda_client, name, "1")["Status"] == "READY", timeout=20, what="READY")
    ready = status(lambda_client, name, "1")
    assert ready["AllocatedProvisionedConcurrentExecutions"] == ready["AvailableProvisionedConcurrentExecutions"] == 2

    resp, body = invoke_json(lambda_client, name, {}, Qualifier="1", LogType="Tail")
    assert body == "provisioned-concurrency" and "Init Duration" not in report(resp)
    assert invoke_json(lambda_client, name, {})[1] == "on-demand"  # $LATEST is not provisioned

    listed = lambda_client.list_provisioned_concurrency_configs(FunctionName=name)["ProvisionedConcurrencyConfigs"]
    assert [c["FunctionArn"].rsplit(":", 1)[1] for c in listed] == ["1"]
    lambda_client.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    with pytest.raises(lambda_client.exceptions.ProvisionedConcurrencyConfigNotFoundException):
        status(lambda_client, name, "1")
    assert invoke_json(lambda_client, name, {}, Qualifier="1")[1] == "on-demand"  # released


def test_provisioned_concurrency_validation(lambda_client, create_function):
    name = create_function(HANDLER, Publish=True)["FunctionName"]
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException):
        lambda_client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="$LATEST",
                                                         ProvisionedConcurrentExecutions=1)
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="9",
                                                         ProvisionedConcurrentExecutions=1)
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException):
        lambda_client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1",
                                                         ProvisionedConcurrentExecutions=2)
    lambda_client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1)
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    with pytest.raises(lambda_client.exceptions.ResourceConflictException):  # version 1 is covered already
        lambda_client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="live",
                                                         ProvisionedConcurrentExecutions=1)
    lambda_client.delete_alias(FunctionName=name, Name="live")
    with pytest.raises(lambda_client.exceptions.ResourceConflictException):
        lambda_client.delete_function(FunctionName=name, Qualifier="1")


def test_provisioned_concurrency_through_an_alias_survives_a_restart(fresh_server):
    from conftest import ROLE, make_zip

    fresh_server.start()
    client = fresh_server.client()
    client.create_function(FunctionName="pc", Runtime="python3.12", Role=ROLE, Handler="app.handler",
                           Code={"ZipFile": make_zip({"app.py": HANDLER})}, Publish=True)
    client.create_alias(FunctionName="pc", Name="prod", FunctionVersion="1")
    client.put_provisioned_concurrency_config(FunctionName="pc", Qualifier="prod", ProvisionedConcurrentExecutions=1)
    fresh_server.restart()
    wait_until(lambda: status(client, "pc", "prod")["Status"] == "READY", timeout=20, what="READY after restart")
    assert invoke_json(client, "pc", {}, Qualifier="prod")[1] == "provisioned-concurrency"


def test_provisioned_concurrency_refusals_in_aws_words(lambda_client, create_function):
    """As AWS answers (LocalStack's test_provisioned_concurrency_exceptions/_limits, recorded against AWS)."""
    created = create_function(HANDLER, Publish=True)
    name, arn = created["FunctionName"], created["FunctionArn"]
    missing = arn + "-nope"
    for call in (lambda_client.get_provisioned_concurrency_config, lambda_client.delete_provisioned_concurrency_config):
        assert aws_error(call, FunctionName=name + "-nope", Qualifier="noalias") == (
            "ResourceNotFoundException", 404, f"Cannot find alias arn: {missing}:noalias")
        assert aws_error(call, FunctionName=name + "-nope", Qualifier="1") == (
            "ResourceNotFoundException", 404, f"Function not found: {missing}:1")
        assert aws_error(call, FunctionName=name, Qualifier="noalias") == (
            "ResourceNotFoundException", 404, f"Cannot find alias arn: {arn}:noalias")
        assert aws_error(call, FunctionName=name, Qualifier="10") == (
            "ResourceNotFoundException", 404, f"Function not found: {arn}:10")
        assert aws_error(call, FunctionName=name, Qualifier="$LATEST") == (
            "InvalidParameterValueException", 400,
            "The function resource provided must be an alias or a published version.")
    assert aws_error(lambda_client.get_provisioned_concurrency_config, FunctionName=name, Qualifier="1") == (
        "ProvisionedConcurrencyConfigNotFoundException", 404, "No Provisioned Concurrency Config found for this function")
    put = lambda_client.put_provisioned_concurrency_config
    assert aws_error(put, FunctionName=name + "-nope", Qualifier="noalias", ProvisionedConcurrentExecutions=1) == (
        "ResourceNotFoundException", 404, f"Cannot find alias arn: {missing}:noalias")
    assert aws_error(put, FunctionName=name, Qualifier="10", ProvisionedConcurrentExecutions=1) == (
        "ResourceNotFoundException", 404, f"Function not found: {arn}:10")
    unreserved = lambda_client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]
    assert aws_error(put, FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=unreserved + 1) == (
        "InvalidParameterValueException", 400,
        f"Specified ConcurrentExecutions for function is greater than account's unreserved concurrency [{unreserved}].")
    assert aws_error(put, FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=unreserved - 99) == (
        "InvalidParameterValueException", 400,
        "Specified ConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its "
        "minimum value of [100].")


def test_reserved_concurrency_cannot_drop_below_the_provisioned_total(lambda_client, create_function):
    """As AWS answers (LocalStack's test_lambda.py provisioned/reserved interplay, recorded against AWS)."""
    name = create_function(HANDLER, Publish=True)["FunctionName"]
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=2)
    assert aws_error(lambda_client.put_provisioned_concurrency_config, FunctionName=name, Qualifier="1",
                     ProvisionedConcurrentExecutions=3) == (
        "InvalidParameterValueException", 400,
        "Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution for function")
    lambda_client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=2)
    assert aws_error(lambda_client.put_function_concurrency, FunctionName=name, ReservedConcurrentExecutions=1) == (
        "InvalidParameterValueException", 400,
        " ReservedConcurrentExecutions  1 should not be lower than function's total provisioned concurrency [2].")
    assert lambda_client.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 2
    lambda_client.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)


def test_one_version_provisioned_twice_is_refused_in_aws_words(lambda_client, create_function):
    """As AWS answers (LocalStack's test_lambda_provisioned_lifecycle, recorded against AWS)."""
    name = create_function(HANDLER, Publish=True)["FunctionName"]
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    put = lambda_client.put_provisioned_concurrency_config
    put(FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1)
    assert aws_error(put, FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=1) == (
        "ResourceConflictException", 409,
        "Alias can't be used for Provisioned Concurrency configuration on an already Provisioned version")
    lambda_client.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    put(FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=1)
    assert aws_error(put, FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1) == (
        "ResourceConflictException", 409, "Version is pointed by a Provisioned Concurrency alias")
    lambda_client.delete_alias(FunctionName=name, Name="live")  # its provisioned concurrency goes with it
    assert aws_error(lambda_client.get_provisioned_concurrency_config, FunctionName=name, Qualifier="live") == (
        "ResourceNotFoundException", 404, f"Cannot find alias arn: {function_arn(name)}:live")
    assert lambda_client.list_provisioned_concurrency_configs(FunctionName=name)["ProvisionedConcurrencyConfigs"] == []


def test_provisioned_concurrency_is_set_aside_within_the_reserved(lambda_client, create_function):
    """As AWS enforces it (LocalStack's test_lambda_concurrency_block, recorded against AWS): with
    reserved concurrency 1 and one provisioned environment on version 1, $LATEST is throttled while
    version 1 runs; with reserved 2, one slot is left for $LATEST."""
    name = create_function(HANDLER, Publish=True)["FunctionName"]
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    assert invoke_json(lambda_client, name, {})[1] == "on-demand"
    lambda_client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1)
    wait_until(lambda: status(lambda_client, name, "1")["Status"] == "READY", what="provisioned concurrency READY")
    assert aws_error(lambda_client.invoke, FunctionName=name) == ("TooManyRequestsException", 429, "Rate Exceeded.")
    with pytest.raises(lambda_client.exceptions.TooManyRequestsException) as throttled:
        lambda_client.invoke(FunctionName=name)
    assert throttled.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert invoke_json(lambda_client, name, {}, Qualifier="1")[1] == "provisioned-concurrency"
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=2)
    assert invoke_json(lambda_client, name, {})[1] == "on-demand"
    lambda_client.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    assert invoke_json(lambda_client, name, {})[1] == "on-demand"
