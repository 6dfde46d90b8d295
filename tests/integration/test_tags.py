"""Tags: on CreateFunction, TagResource, UntagResource, ListTags."""

import pytest

from .helpers import aws_error


def test_tag_untag_and_list(lambda_client, create_function):
    created = create_function(Tags={"team": "core"})
    arn, name = created["FunctionArn"], created["FunctionName"]
    assert lambda_client.list_tags(Resource=arn)["Tags"] == {"team": "core"}
    lambda_client.tag_resource(Resource=arn, Tags={"env": "dev", "team": "platform"})
    assert lambda_client.list_tags(Resource=arn)["Tags"] == {"team": "platform", "env": "dev"}
    assert lambda_client.get_function(FunctionName=name)["Tags"] == {"team": "platform", "env": "dev"}
    lambda_client.untag_resource(Resource=arn, TagKeys=["team", "absent"])
    assert lambda_client.list_tags(Resource=arn)["Tags"] == {"env": "dev"}


def test_tag_errors(lambda_client, create_function):
    arn = create_function()["FunctionArn"]
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.list_tags(Resource=arn + "-missing")
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException):
        lambda_client.tag_resource(Resource=arn + ":1", Tags={"a": "b"})
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException):
        lambda_client.tag_resource(Resource=arn, Tags={f"key{i}": "v" for i in range(51)})


def test_tag_refusals_in_aws_words(lambda_client, create_function):
    """As AWS answers (LocalStack's test_tag_exceptions/test_tag_limits, recorded against AWS)."""
    arn = create_function(Publish=True)["FunctionArn"]
    qualified = ("InvalidParameterValueException", 400,
                 "Tags on function aliases and versions are not supported. Please specify a function ARN.")
    assert aws_error(lambda_client.tag_resource, Resource=arn + ":1", Tags={"a": "b"}) == qualified
    assert aws_error(lambda_client.tag_resource, Resource=arn + ":no-such-alias", Tags={"a": "b"}) == qualified
    assert aws_error(lambda_client.tag_resource, Resource=arn, Tags={}) == (
        "InvalidParameterValueException", 400, "An error occurred and the request cannot be processed.")
    too_many = ("InvalidParameterValueException", 400, "Number of tags exceeds resource tag limit.")
    assert aws_error(lambda_client.tag_resource, Resource=arn, Tags={f"k{i}": "v" for i in range(51)}) == too_many
    lambda_client.tag_resource(Resource=arn, Tags={f"k{i}": "v" for i in range(45)})
    assert aws_error(lambda_client.tag_resource, Resource=arn, Tags={f"x{i}": "v" for i in range(10)}) == too_many
    assert len(lambda_client.list_tags(Resource=arn)["Tags"]) == 45
    for call, params in ((lambda_client.tag_resource, {"Tags": {"a": "b"}}),
                         (lambda_client.untag_resource, {"TagKeys": ["a"]}), (lambda_client.list_tags, {})):
        assert aws_error(call, Resource=arn + "-nope", **params) == (
            "ResourceNotFoundException", 404, f"Function not found: {arn}-nope")


def test_create_function_with_too_many_tags_in_aws_words(lambda_client, create_function):
    assert aws_error(create_function, Tags={f"k{i}": "v" for i in range(51)}) == (
        "InvalidParameterValueException", 400, "Number of tags exceeds resource tag limit.")
