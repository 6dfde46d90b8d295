"""Tags: on CreateFunction, TagResource, UntagResource, ListTags."""

import pytest


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
