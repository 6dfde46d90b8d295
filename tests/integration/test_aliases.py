"""Aliases: CRUD with Lambda's validation, invocation through an alias, weighted routing."""

from __future__ import annotations

import math

import pytest
from botocore.exceptions import ClientError

from conftest import invoke_json

from .helpers import error_code_and_status, wait_updated

HANDLER = """
import os

def handler(event, context):
    return {"version": os.environ["AWS_LAMBDA_FUNCTION_VERSION"], "arn": context.invoked_function_arn}
"""


@pytest.fixture
def two_versions(lambda_client, create_function):
    created = create_function(HANDLER, Publish=True)
    name = created["FunctionName"]
    lambda_client.update_function_configuration(FunctionName=name, Description="second")
    wait_updated(lambda_client, name)
    assert lambda_client.publish_version(FunctionName=name)["Version"] == "2"
    return name, created["FunctionArn"]  # Publish=True answers with version 1 under the unqualified ARN


def test_alias_lifecycle(lambda_client, two_versions):
    name, arn = two_versions
    created = lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1", Description="d")
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["AliasArn"] == f"{arn}:live" and created["FunctionVersion"] == "1"
    assert lambda_client.get_alias(FunctionName=name, Name="live")["RevisionId"] == created["RevisionId"]
    lambda_client.create_alias(FunctionName=name, Name="beta", FunctionVersion="2")
    pages = lambda_client.get_paginator("list_aliases").paginate(FunctionName=name, PaginationConfig={"PageSize": 1})
    assert [a["Name"] for page in pages for a in page["Aliases"]] == ["beta", "live"]
    assert [a["Name"] for a in lambda_client.list_aliases(FunctionName=name, FunctionVersion="2")["Aliases"]] == ["beta"]

    with pytest.raises(lambda_client.exceptions.PreconditionFailedException):
        lambda_client.update_alias(FunctionName=name, Name="live", FunctionVersion="2", RevisionId="stale")
    updated = lambda_client.update_alias(FunctionName=name, Name="live", FunctionVersion="2",
                                         RevisionId=created["RevisionId"])
    assert updated["FunctionVersion"] == "2" and updated["RevisionId"] != created["RevisionId"]
    lambda_client.delete_alias(FunctionName=name, Name="live")
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_alias(FunctionName=name, Name="live")


def test_alias_validation(lambda_client, server, two_versions):
    name, _arn = two_versions
    raw = server.client(parameter_validation=False)
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    with pytest.raises(lambda_client.exceptions.ResourceConflictException):
        lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    with pytest.raises(ClientError) as excinfo:  # all digits: the model's pattern (test_alias_naming)
        raw.create_alias(FunctionName=name, Name="123", FunctionVersion="1")
    assert error_code_and_status(excinfo.value) == ("ValidationException", 400)
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.create_alias(FunctionName=name, Name="ghost", FunctionVersion="9")
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException):
        lambda_client.create_alias(FunctionName=name, Name="mixed", FunctionVersion="$LATEST",
                                   RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}})
    with pytest.raises(ClientError) as excinfo:  # the model's range (routing_config_exc_toohigh)
        raw.create_alias(FunctionName=name, Name="heavy", FunctionVersion="1",
                         RoutingConfig={"AdditionalVersionWeights": {"2": 1.5}})
    assert error_code_and_status(excinfo.value) == ("ValidationException", 400)
    assert excinfo.value.response["Error"]["Message"] == (
        "1 validation error detected: Value '{2=1.5}' at 'routingConfig.additionalVersionWeights' failed to satisfy "
        "constraint: Map value must satisfy constraint: [Member must have value less than or equal to 1.0, "
        "Member must have value greater than or equal to 0.0, Member must not be null]")
    with pytest.raises(lambda_client.exceptions.ResourceConflictException):
        lambda_client.delete_function(FunctionName=name, Qualifier="1")  # an alias points to it


def test_invoking_through_an_alias_runs_its_version(lambda_client, two_versions):
    name, arn = two_versions
    lambda_client.create_alias(FunctionName=name, Name="prod", FunctionVersion="1")
    for function_name, kwargs in ((name, {"Qualifier": "prod"}), (f"{name}:prod", {}), (f"{arn}:prod", {})):
        resp, body = invoke_json(lambda_client, function_name, {}, **kwargs)
        assert resp["ExecutedVersion"] == "1" and body == {"version": "1", "arn": f"{arn}:prod"}
    lambda_client.update_alias(FunctionName=name, Name="prod", FunctionVersion="2")
    assert invoke_json(lambda_client, name, {}, Qualifier="prod")[0]["ExecutedVersion"] == "2"


def test_weighted_routing_splits_traffic_by_weight(lambda_client, two_versions):
    name, _arn = two_versions
    weight, invokes = 0.3, 400
    lambda_client.create_alias(FunctionName=name, Name="canary", FunctionVersion="1",
                               RoutingConfig={"AdditionalVersionWeights": {"2": weight}})
    executed = [invoke_json(lambda_client, name, {}, Qualifier="canary")[0]["ExecutedVersion"] for _ in range(invokes)]
    assert set(executed) == {"1", "2"}
    expected, sd = invokes * weight, math.sqrt(invokes * weight * (1 - weight))
    assert abs(executed.count("2") - expected) < 6 * sd, executed.count("2")  # p(false alarm) < 1e-8
    lambda_client.update_alias(FunctionName=name, Name="canary", RoutingConfig={"AdditionalVersionWeights": {}})
    assert {invoke_json(lambda_client, name, {}, Qualifier="canary")[0]["ExecutedVersion"] for _ in range(20)} == {"1"}
