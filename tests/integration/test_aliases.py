"""Aliases: CRUD with Lambda's validation, invocation through an alias, weighted routing."""

from __future__ import annotations

import math

import pytest
from botocore.exceptions import ClientError

from conftest import invoke_json

from .helpers import aws_error, error_code_and_status, wait_updated

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


def test_alias_refusals_in_aws_words(lambda_client, two_versions):
    """As AWS answers (LocalStack's test_notfound_and_invalid_routingconfigs, recorded against AWS)."""
    name, arn = two_versions
    create = lambda_client.create_alias
    assert aws_error(create, FunctionName=name, Name="a", FunctionVersion="1",
                     RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}}) == (
        "InvalidParameterValueException", 400,
        "Invalid function version 1. Function version 1 is already included in routing configuration.")
    assert aws_error(create, FunctionName=name + "-unknown", Name="a", FunctionVersion="1",
                     RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}}) == (
        "ResourceNotFoundException", 404, f"Function not found: {arn}-unknown:1")
    assert aws_error(create, FunctionName=name, Name="a", FunctionVersion="1",
                     RoutingConfig={"AdditionalVersionWeights": {"10": 0.5}}) == (
        "ResourceNotFoundException", 404, f"Function not found: {arn}:10")


def test_weighted_alias_versions_must_share_role_and_dead_letter_queue(lambda_client, create_function):
    """AWS's developer guide (lambda-traffic-shifting-using-aliases): both versions of a weighted
    alias have the same execution role and the same dead-letter queue configuration."""
    name = create_function(Publish=True)["FunctionName"]
    role = lambda_client.get_function_configuration(FunctionName=name)["Role"]
    lambda_client.update_function_configuration(FunctionName=name, Role=role + "-other")
    wait_updated(lambda_client, name)
    assert lambda_client.publish_version(FunctionName=name)["Version"] == "2"
    lambda_client.update_function_configuration(FunctionName=name, Role=role, DeadLetterConfig={
        "TargetArn": "arn:aws:sqs:us-east-1:000000000000:dlq"})
    wait_updated(lambda_client, name)
    assert lambda_client.publish_version(FunctionName=name)["Version"] == "3"
    code, status, message = aws_error(lambda_client.create_alias, FunctionName=name, Name="canary",
                                      FunctionVersion="1", RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}})
    assert (code, status) == ("InvalidParameterValueException", 400) and "execution role" in message
    code, status, message = aws_error(lambda_client.create_alias, FunctionName=name, Name="canary",
                                      FunctionVersion="1", RoutingConfig={"AdditionalVersionWeights": {"3": 0.1}})
    assert (code, status) == ("InvalidParameterValueException", 400) and "dead-letter queue" in message
    lambda_client.create_alias(FunctionName=name, Name="canary", FunctionVersion="1")
    code, _, message = aws_error(lambda_client.update_alias, FunctionName=name, Name="canary",
                                 RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}})
    assert code == "InvalidParameterValueException" and "execution role" in message
    assert lambda_client.get_alias(FunctionName=name, Name="canary").get("RoutingConfig") is None


def test_a_missing_alias_in_aws_words(lambda_client, two_versions):
    """GetAlias and UpdateAlias say it differently on AWS (LocalStack's alias snapshots, recorded against AWS)."""
    name, arn = two_versions
    assert aws_error(lambda_client.get_alias, FunctionName=name, Name="non-existent") == (
        "ResourceNotFoundException", 404, f"Cannot find alias arn: {arn}:non-existent")
    assert aws_error(lambda_client.update_alias, FunctionName=name, Name="non-existent", Description="d") == (
        "ResourceNotFoundException", 404, f"Alias not found: {arn}:non-existent")
    lambda_client.delete_alias(FunctionName=name, Name="non-existent")  # 204, as AWS answers
