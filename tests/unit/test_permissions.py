"""Which action on which resource each Lambda operation needs (api/permissions.py)."""

from __future__ import annotations

import json

import pytest

from lambdalet import service_model
from lambdalet.api.permissions import (
    ARN_MEMBER, CAPACITY_PROVIDER, CODE_SIGNING_CONFIG, EVENT_SOURCE_MAPPING, LAYER_VERSION, QUALIFIED, UNQUALIFIED,
    lambda_permission,
)
from lambdalet.model import Arns

ARNS = Arns("111122223333", "us-east-1")
FN = "arn:aws:lambda:us-east-1:111122223333:function:"


def test_every_operation_of_the_model_is_placed_once_at_most():
    groups = [QUALIFIED, UNQUALIFIED, LAYER_VERSION, CODE_SIGNING_CONFIG, EVENT_SOURCE_MAPPING, set(ARN_MEMBER),
              CAPACITY_PROVIDER]
    names = set(service_model.service_model("lambda").operation_names)
    for group in groups:
        assert group <= names, group - names  # no typo names an operation that does not exist
    for one, group in enumerate(groups):
        for other in groups[one + 1:]:
            assert not group & other


@pytest.mark.parametrize("operation, params, query, resource", [
    ("Invoke", {"FunctionName": "f"}, {}, FN + "f"),
    ("Invoke", {"FunctionName": "f"}, {"Qualifier": "prod"}, FN + "f:prod"),
    ("Invoke", {"FunctionName": "f:3"}, {}, FN + "f:3"),
    ("Invoke", {"FunctionName": FN + "f:$LATEST"}, {}, FN + "f:$LATEST"),
    ("InvokeWithResponseStream", {"FunctionName": "111122223333:function:f"}, {}, FN + "f"),
    ("GetAlias", {"FunctionName": "f", "Name": "prod"}, {}, FN + "f"),  # alias operations are on the function
    ("PublishVersion", {"FunctionName": "f"}, {}, FN + "f"),
    ("ListFunctions", {}, {}, "*"),
    ("GetAccountSettings", {}, {}, "*"),
    ("GetLayerVersion", {"LayerName": "libs", "VersionNumber": "2"}, {},
     "arn:aws:lambda:us-east-1:111122223333:layer:libs:2"),
    ("PublishLayerVersion", {"LayerName": "libs"}, {}, "arn:aws:lambda:us-east-1:111122223333:layer:libs"),
    ("GetLayerVersionByArn", {}, {"Arn": "arn:aws:lambda:us-east-1:444455556666:layer:x:1"},
     "arn:aws:lambda:us-east-1:444455556666:layer:x:1"),
    ("DeleteEventSourceMapping", {"UUID": "u-1"}, {},
     "arn:aws:lambda:us-east-1:111122223333:event-source-mapping:u-1"),
    ("TagResource", {"Resource": FN + "f"}, {}, FN + "f"),
])
def test_actions_and_resources(operation, params, query, resource):
    permission = lambda_permission(operation, params, query, None, ARNS)
    assert permission.resource == resource
    expected = {"Invoke": "InvokeFunction", "InvokeWithResponseStream": "InvokeFunction",
                "GetLayerVersionByArn": "GetLayerVersion"}.get(operation, operation)
    assert permission.action == "lambda:" + expected


def test_the_resource_account_is_the_arns():
    assert lambda_permission("Invoke", {"FunctionName": "arn:aws:lambda:us-east-1:444455556666:function:f"}, {},
                             None, ARNS).resource_account == "444455556666"
    assert lambda_permission("GetLayerVersionByArn", {}, {"Arn": "arn:aws:lambda:us-east-1:444455556666:layer:x:1"},
                             None, ARNS).resource_account == "444455556666"


def test_create_function_names_its_function_from_the_body_and_sets_its_condition_keys():
    body = json.dumps({"FunctionName": "new", "Layers": ["arn:aws:lambda:us-east-1:111122223333:layer:l:1"],
                       "VpcConfig": {"SubnetIds": ["subnet-1"], "SecurityGroupIds": ["sg-1"]},
                       "CodeSigningConfigArn": "arn:csc"}).encode()
    permission = lambda_permission("CreateFunction", {}, {}, body, ARNS)
    assert permission.resource == FN + "new"
    assert permission.context == {"lambda:layer": ["arn:aws:lambda:us-east-1:111122223333:layer:l:1"],
                                  "lambda:subnetids": ["subnet-1"], "lambda:securitygroupids": ["sg-1"],
                                  "lambda:codesigningconfigarn": "arn:csc"}


def test_condition_keys_of_permissions_urls_and_mappings():
    add = lambda_permission("AddPermission", {"FunctionName": "f"}, {},
                            b'{"Principal": "s3.amazonaws.com", "FunctionUrlAuthType": "NONE"}', ARNS)
    assert add.context == {"lambda:principal": "s3.amazonaws.com", "lambda:functionurlauthtype": "NONE"}
    url = lambda_permission("CreateFunctionUrlConfig", {"FunctionName": "f"}, {"Qualifier": "live"},
                            b'{"AuthType": "AWS_IAM"}', ARNS)
    assert (url.resource, url.context) == (FN + "f:live", {"lambda:functionurlauthtype": "AWS_IAM"})
    create = lambda_permission("CreateEventSourceMapping", {}, {}, b'{"FunctionName": "f"}', ARNS)
    assert (create.resource, create.context) == ("*", {"lambda:functionarn": FN + "f"})
    get = lambda_permission("GetEventSourceMapping", {"UUID": "u"}, {}, None, ARNS, mapping_function_arn=FN + "g")
    assert get.context == {"lambda:functionarn": FN + "g"}


def test_a_body_that_is_not_json_sets_no_keys_and_a_bad_name_asks_for_everything():
    assert lambda_permission("AddPermission", {"FunctionName": "f"}, {}, b"{not json", ARNS).context == {}
    assert lambda_permission("GetFunction", {"FunctionName": "bad name!"}, {}, None, ARNS).resource == "*"


def test_iam_actions_name_the_user_role_or_policy():
    from lambdalet.api.permissions import iam_permission

    me = "arn:aws:iam::111122223333:user/me"
    assert iam_permission("CreateUser", {"UserName": "a", "Path": "/ops/"}, "111122223333", me).resource == \
        "arn:aws:iam::111122223333:user/ops/a"
    assert iam_permission("ListAccessKeys", {}, "111122223333", me).resource == me
    assert iam_permission("GetRole", {"RoleName": "r"}, "111122223333", me).resource == \
        "arn:aws:iam::111122223333:role/r"
    attach = iam_permission("AttachRolePolicy", {"RoleName": "r", "PolicyArn": "arn:aws:iam::111122223333:policy/p"},
                            "111122223333", me)
    assert (attach.action, attach.resource, attach.context) == (
        "iam:AttachRolePolicy", "arn:aws:iam::111122223333:role/r", {"iam:policyarn": "arn:aws:iam::111122223333:policy/p"})
    assert iam_permission("ListUsers", {}, "111122223333", me).resource == "*"
