"""Resource policies: AddPermission, GetPolicy, RemovePermission with Lambda's statement shape."""

import json

import pytest


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
