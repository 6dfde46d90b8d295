"""Tag operations on each kind of Lambda ARN: AWS's not-found and validation answers, by kind."""

import pytest

ACCOUNT_REGION = "us-east-1:000000000000"


def _error(client, call):
    with pytest.raises(client.exceptions.ClientError) as caught:
        call()
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"].get("Message")


@pytest.mark.parametrize("arn, what", [
    (f"arn:aws:lambda:{ACCOUNT_REGION}:code-signing-config:csc-0123456789abcdefg", "Code signing config"),
    (f"arn:aws:lambda:{ACCOUNT_REGION}:capacity-provider:my-provider", "Capacity provider"),
    (f"arn:aws:lambda:{ACCOUNT_REGION}:event-source-mapping:00000000-0000-4000-8000-000000000000",
     "Event source mapping"),
])
def test_a_resource_that_does_not_exist_is_not_found_in_its_kinds_words(lambda_client, arn, what):
    for call in (lambda: lambda_client.tag_resource(Resource=arn, Tags={"a": "b"}),
                 lambda: lambda_client.untag_resource(Resource=arn, TagKeys=["a"]),
                 lambda: lambda_client.list_tags(Resource=arn)):
        assert _error(lambda_client, call) == ("ResourceNotFoundException", 404, f"{what} not found: {arn}")


def test_a_qualified_non_function_arn_breaks_the_pattern(lambda_client):
    arn = f"arn:aws:lambda:{ACCOUNT_REGION}:capacity-provider:my-provider:alias"
    code, status, message = _error(lambda_client, lambda: lambda_client.list_tags(Resource=arn))
    assert (code, status) == ("ValidationException", 400)
    assert message.startswith(f"1 validation error detected: Value '{arn}' at 'resource' failed to satisfy")
