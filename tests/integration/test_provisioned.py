"""Provisioned concurrency: configs, READY before traffic, no cold start, spill-over, release."""

from __future__ import annotations

import base64

import pytest

from conftest import invoke_json
from .helpers import wait_until

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
