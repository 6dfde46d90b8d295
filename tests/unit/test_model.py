"""ARN parsing and formatting (lambdalet.model)."""

import base64
import hashlib

import pytest

from lambdalet.errors import InvalidParameterValueException
from lambdalet.model import Arns, FunctionConfig, parse_function_name


@pytest.mark.parametrize(
    "raw, name, qualifier, account, region",
    [
        ("my-fn", "my-fn", None, None, None),
        ("my_fn:prod", "my_fn", "prod", None, None),
        ("my-fn:$LATEST", "my-fn", "$LATEST", None, None),
        ("123456789012:function:my-fn", "my-fn", None, "123456789012", None),
        ("123456789012:function:my-fn:7", "my-fn", "7", "123456789012", None),
        ("arn:aws:lambda:us-east-1:123456789012:function:my-fn", "my-fn", None, "123456789012", "us-east-1"),
        ("arn:aws:lambda:eu-west-2:123456789012:function:my-fn:live", "my-fn", "live", "123456789012", "eu-west-2"),
        ("arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f", "f", None, "123456789012", "us-gov-west-1"),
    ],
)
def test_parse_function_name_accepts_lambdas_forms(raw, name, qualifier, account, region):
    ref = parse_function_name(raw)
    assert (ref.name, ref.qualifier, ref.account, ref.region) == (name, qualifier, account, region)


@pytest.mark.parametrize(
    "raw",
    ["", "bad name!", "a" * 65, "arn:aws:lambda:us-east-1:123:function:f", "fn:qual:extra", "fn/slash",
     "arn:aws:s3:::bucket", "123456789012:layer:x"],
)
def test_parse_function_name_refuses_malformed_names(raw):
    with pytest.raises(InvalidParameterValueException):
        parse_function_name(raw)


def test_function_arns():
    arns = Arns("000000000000", "us-east-1")
    assert arns.function("f") == "arn:aws:lambda:us-east-1:000000000000:function:f"
    assert arns.function("f", "$LATEST") == "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST"


def test_configuration_shape_and_code_sha256_encoding():
    digest = hashlib.sha256(b"zip bytes").hexdigest()
    config = FunctionConfig(name="f", runtime="python3.12", handler="app.handler",
                            role="arn:aws:iam::000000000000:role/r", code_sha256=digest, code_size=9)
    api = config.to_api(Arns("000000000000", "us-east-1"))
    assert api["CodeSha256"] == base64.b64encode(hashlib.sha256(b"zip bytes").digest()).decode()
    assert api["State"] == "Active" and api["LastUpdateStatus"] == "Successful"
    assert api["Version"] == "$LATEST" and api["Timeout"] == 3 and api["MemorySize"] == 128
    assert api["EphemeralStorage"] == {"Size": 512}
    assert "Environment" not in api


def test_replace_makes_a_new_revision_and_round_trips_through_records():
    config = FunctionConfig(name="f", runtime="python3.12", handler="app.handler",
                            role="arn:aws:iam::000000000000:role/r", code_sha256="00" * 32, code_size=1,
                            environment={"A": "1"})
    updated = config.replace(timeout=10)
    assert updated.revision_id != config.revision_id and updated.timeout == 10
    assert FunctionConfig.from_record(updated.to_record()) == updated
