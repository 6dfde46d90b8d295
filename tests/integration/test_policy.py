"""Resource policies: AddPermission, GetPolicy, RemovePermission with Lambda's statement shape."""

import functools
import json

import pytest

from .helpers import aws_error


def test_add_get_remove_permission(lambda_client, create_function):
    created = create_function()
    name, arn = created["FunctionName"], created["FunctionArn"]
    added = lambda_client.add_permission(FunctionName=name, StatementId="s3-invoke", Action="lambda:InvokeFunction",
                                         Principal="s3.amazonaws.com", SourceArn="arn:aws:s3:::bucket",
                                         SourceAccount="123456789012")
    assert added["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert json.loads(added["Statement"]) == {
        "Sid": "s3-invoke", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "lambda:InvokeFunction", "Resource": arn,
        "Condition": {"ArnLike": {"AWS:SourceArn": "arn:aws:s3:::bucket"},
                      "StringEquals": {"AWS:SourceAccount": "123456789012"}}}
    lambda_client.add_permission(FunctionName=name, StatementId="account", Action="lambda:GetFunction",
                                 Principal="123456789012")
    policy = lambda_client.get_policy(FunctionName=name)
    document = json.loads(policy["Policy"])
    assert document["Version"] == "2012-10-17" and [s["Sid"] for s in document["Statement"]] == ["s3-invoke", "account"]
    assert document["Statement"][1]["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}

    with pytest.raises(lambda_client.exceptions.ResourceConflictException):
        lambda_client.add_permission(FunctionName=name, StatementId="account", Action="lambda:*", Principal="*")
    with pytest.raises(lambda_client.exceptions.PreconditionFailedException):
        lambda_client.remove_permission(FunctionName=name, StatementId="account", RevisionId="stale")
    lambda_client.remove_permission(FunctionName=name, StatementId="account", RevisionId=policy["RevisionId"])
    lambda_client.remove_permission(FunctionName=name, StatementId="s3-invoke")
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_policy(FunctionName=name)
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.remove_permission(FunctionName=name, StatementId="gone")


def test_policies_of_versions_and_aliases_are_their_own(lambda_client, create_function):
    created = create_function(Publish=True)
    name = created["FunctionName"]
    arn = created["FunctionArn"]  # Publish=True answers with version 1 under the unqualified ARN
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    lambda_client.add_permission(FunctionName=name, Qualifier="live", StatementId="a", Action="lambda:InvokeFunction",
                                 Principal="*")
    statement = json.loads(lambda_client.get_policy(FunctionName=name, Qualifier="live")["Policy"])["Statement"][0]
    assert statement["Resource"] == f"{arn}:live"
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_policy(FunctionName=name, Qualifier="1")
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException):
        lambda_client.add_permission(FunctionName=name, Qualifier="$LATEST", StatementId="b",
                                     Action="lambda:InvokeFunction", Principal="*")
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.add_permission(FunctionName=name, Qualifier="9", StatementId="c",
                                     Action="lambda:InvokeFunction", Principal="*")


def test_permission_refusals_in_aws_words(lambda_client, create_function):
    """As AWS answers (LocalStack's test_permission_exceptions, recorded against AWS)."""
    created = create_function(Publish=True)
    name, arn = created["FunctionName"], created["FunctionArn"]
    add = functools.partial(lambda_client.add_permission, Action="lambda:InvokeFunction", StatementId="s")
    assert aws_error(add, FunctionName=name, Principal="invalid.nonaws.com") == (
        "InvalidParameterValueException", 400,
        "The provided principal was invalid. Please check the principal and try again.")
    assert aws_error(add, FunctionName=name, Qualifier="alias-doesnotexist", Principal="s3.amazonaws.com") == (
        "ResourceNotFoundException", 404, f"Cannot find alias arn: {arn}:alias-doesnotexist")
    assert aws_error(add, FunctionName=name, Qualifier="42", Principal="s3.amazonaws.com") == (
        "ResourceNotFoundException", 404, f"Function not found: {arn}:42")
    assert aws_error(lambda_client.get_policy, FunctionName=name + "-nope") == (
        "ResourceNotFoundException", 404, "The resource you requested does not exist.")
    assert aws_error(lambda_client.get_policy, FunctionName=name, Qualifier="77") == (
        "ResourceNotFoundException", 404, "The resource you requested does not exist.")
    remove = lambda_client.remove_permission
    assert aws_error(remove, FunctionName=name, StatementId="s") == (
        "ResourceNotFoundException", 404, "No policy is associated with the given resource.")
    assert aws_error(remove, FunctionName=name + "-nope", StatementId="s") == (
        "ResourceNotFoundException", 404, f"No policy found for: {arn}-nope")
    assert aws_error(remove, FunctionName=name, StatementId="s", Qualifier="alias-doesnotexist") == (
        "ResourceNotFoundException", 404, f"Cannot find alias arn: {arn}:alias-doesnotexist")
    for principal in ("alexa-appkit.amazon.com", "events.amazonaws.com"):  # AWS's service principals pass
        add(FunctionName=name, Principal=principal, StatementId=principal.replace(".", "-"))


def test_add_permission_takes_the_revision_id_of_the_alias_or_function(lambda_client, create_function):
    """On AWS a policy's RevisionId is its function's or alias's, so the one GetAlias/GetFunction
    answered is a valid precondition (LocalStack's test_function_revisions_permissions)."""
    name = create_function(Publish=True)["FunctionName"]
    alias = lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    lambda_client.add_permission(FunctionName=name, Qualifier="live", StatementId="a", Action="lambda:InvokeFunction",
                                 Principal="s3.amazonaws.com", RevisionId=alias["RevisionId"])
    function_revision = lambda_client.get_function(FunctionName=name)["Configuration"]["RevisionId"]
    lambda_client.add_permission(FunctionName=name, StatementId="b", Action="lambda:InvokeFunction",
                                 Principal="s3.amazonaws.com", RevisionId=function_revision)
    assert aws_error(lambda_client.add_permission, FunctionName=name, StatementId="c", Action="lambda:InvokeFunction",
                     Principal="s3.amazonaws.com", RevisionId="wrong") == (
        "PreconditionFailedException", 412,
        "The Revision Id provided does not match the latest Revision Id. Call the GetPolicy API to retrieve the "
        "latest Revision Id")
    policy_revision = lambda_client.get_policy(FunctionName=name)["RevisionId"]
    lambda_client.remove_permission(FunctionName=name, StatementId="b", RevisionId=policy_revision)
