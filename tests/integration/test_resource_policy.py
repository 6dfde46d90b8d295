"""Generic resource policies (Put/Get/DeleteResourcePolicy by ARN), one policy with AddPermission/GetPolicy."""

import json

import pytest

from .helpers import aws_error

STALE = "00000000-0000-4000-8000-000000000000"
STATEMENT = {"Sid": "cross-account", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
             "Action": "lambda:InvokeFunction"}


def test_put_get_delete_and_the_same_policy_as_add_permission(lambda_client, create_function):
    created = create_function()
    name, arn = created["FunctionName"], created["FunctionArn"]
    statement = {**STATEMENT, "Resource": arn}
    put = lambda_client.put_resource_policy(ResourceArn=arn, Policy=json.dumps(
        {"Version": "2012-10-17", "Statement": [statement]}))
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert json.loads(put["Policy"]) == {"Version": "2012-10-17", "Id": "default", "Statement": [statement]}
    got = lambda_client.get_resource_policy(ResourceArn=arn)
    assert (got["Policy"], got["RevisionId"]) == (put["Policy"], put["RevisionId"])
    assert lambda_client.get_policy(FunctionName=name)["Policy"] == put["Policy"]  # one policy, seen both ways

    lambda_client.add_permission(FunctionName=name, StatementId="s3", Action="lambda:InvokeFunction",
                                 Principal="s3.amazonaws.com")
    both = json.loads(lambda_client.get_resource_policy(ResourceArn=arn)["Policy"])
    assert [s["Sid"] for s in both["Statement"]] == ["cross-account", "s3"]
    with pytest.raises(lambda_client.exceptions.ResourceConflictException):
        lambda_client.add_permission(FunctionName=name, StatementId="cross-account", Action="lambda:*", Principal="*")

    code, status, _ = aws_error(lambda: lambda_client.put_resource_policy(
        ResourceArn=arn, Policy=json.dumps({"Statement": [statement]}), RevisionId=STALE))
    assert (code, status) == ("PreconditionFailedException", 412)
    current = lambda_client.get_policy(FunctionName=name)["RevisionId"]
    code, status, _ = aws_error(lambda: lambda_client.delete_resource_policy(
        ResourceArn=arn, RevisionId=STALE))
    assert (code, status) == ("PreconditionFailedException", 412)
    deleted = lambda_client.delete_resource_policy(ResourceArn=arn, RevisionId=current)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    for call in (lambda: lambda_client.get_resource_policy(ResourceArn=arn),
                 lambda: lambda_client.get_policy(FunctionName=name),
                 lambda: lambda_client.delete_resource_policy(ResourceArn=arn)):
        assert aws_error(call)[:2] == ("ResourceNotFoundException", 404)


def test_versions_and_aliases_have_their_own_policies(lambda_client, create_function):
    created = create_function(Publish=True)
    name, arn = created["FunctionName"], created["FunctionArn"]
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    for qualified in (f"{arn}:1", f"{arn}:live"):
        lambda_client.put_resource_policy(ResourceArn=qualified, Policy=json.dumps({"Statement": STATEMENT}))
    assert json.loads(lambda_client.get_policy(FunctionName=name, Qualifier="1")["Policy"])["Statement"] == [STATEMENT]
    assert json.loads(lambda_client.get_policy(FunctionName=name, Qualifier="live")["Policy"])["Statement"] == [STATEMENT]
    assert aws_error(lambda: lambda_client.get_resource_policy(ResourceArn=arn))[:2] == (
        "ResourceNotFoundException", 404)


def test_refusals(lambda_client, create_function):
    arn = create_function()["FunctionArn"]
    cases = [
        (dict(ResourceArn=arn, Policy="{not json"), "InvalidParameterValueException", 400),
        (dict(ResourceArn=arn, Policy=json.dumps({"Statement": []})), "InvalidParameterValueException", 400),
        (dict(ResourceArn=arn, Policy=json.dumps({"Statement": [{"Effect": "Maybe", "Action": "*"}]})),
         "InvalidParameterValueException", 400),
        (dict(ResourceArn=f"{arn}:$LATEST", Policy=json.dumps({"Statement": STATEMENT})),
         "InvalidParameterValueException", 400),
        (dict(ResourceArn=f"{arn}:9", Policy=json.dumps({"Statement": STATEMENT})), "ResourceNotFoundException", 404),
        (dict(ResourceArn=f"{arn}-missing", Policy=json.dumps({"Statement": STATEMENT})),
         "ResourceNotFoundException", 404),
        (dict(ResourceArn=arn.replace("000000000000", "111111111111"), Policy=json.dumps({"Statement": STATEMENT})),
         "ResourceNotFoundException", 404),
        (dict(ResourceArn=arn, Policy=json.dumps({"Statement": [{**STATEMENT, "Sid": f"s{i}", "Condition": {
            "StringEquals": {"aws:SourceAccount": "1" * 200}}} for i in range(100)]})),
         "ValidationException", 400),  # past the model's 20,480 characters: Coral's check comes first
    ]
    for params, code, status in cases:
        assert aws_error(lambda: lambda_client.put_resource_policy(**params))[:2] == (code, status), params
    code, status, _ = aws_error(lambda: lambda_client.get_resource_policy(ResourceArn="not-an-arn"))
    assert (code, status) == ("ValidationException", 400)
