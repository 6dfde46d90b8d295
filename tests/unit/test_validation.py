"""Request validation (lambdalet.validation): Lambda's exception type and messages."""

import pytest

from lambdalet import validation
from lambdalet.errors import InvalidParameterValueException
from lambdalet.validation import Body


def test_integer_bounds_use_lambdas_constraint_wording():
    with pytest.raises(InvalidParameterValueException, match="Value '64' at 'memorySize'.*greater than or equal to 128"):
        Body({"MemorySize": 64}).integer("MemorySize", low=128, high=10240)
    with pytest.raises(InvalidParameterValueException, match="less than or equal to 900"):
        Body({"Timeout": 901}).integer("Timeout", low=1, high=900)
    assert Body({}).integer("Timeout", 3, low=1, high=900) == 3


def test_integer_refuses_booleans_and_strings():
    for value in (True, "5", 1.5):
        with pytest.raises(InvalidParameterValueException):
            Body({"Timeout": value}).integer("Timeout", low=1, high=900)


def test_environment_refuses_reserved_keys_by_name():
    with pytest.raises(InvalidParameterValueException, match="Reserved keys used in this request: AWS_REGION"):
        validation.environment(Body({"Environment": {"Variables": {"AWS_REGION": "x", "OK_KEY": "1"}}}))


def test_environment_refuses_more_than_4kb():
    big = {f"KEY{i}": "v" * 100 for i in range(40)}
    with pytest.raises(InvalidParameterValueException, match="exceeded the 4KB limit"):
        validation.environment(Body({"Environment": {"Variables": big}}))


def test_environment_accepts_ordinary_variables():
    assert validation.environment(Body({"Environment": {"Variables": {"DB_HOST": "x", "TZ": "UTC"}}})) == {
        "DB_HOST": "x", "TZ": "UTC"}


def test_unsupported_configuration_is_refused_unless_empty_or_default():
    validation.refuse_unsupported_config(Body({"VpcConfig": {"SubnetIds": [], "SecurityGroupIds": []},
                                               "TracingConfig": {"Mode": "PassThrough"}}))
    for member, value in [("KMSKeyArn", "arn:aws:kms:us-east-1:000000000000:key/k"),
                          ("TracingConfig", {"Mode": "Active"})]:
        with pytest.raises(InvalidParameterValueException, match=member):
            validation.refuse_unsupported_config(Body({member: value}))


def test_architecture_must_match_the_host():
    assert validation.architectures(Body({"Architectures": [validation.HOST_ARCHITECTURE]})) == (
        validation.HOST_ARCHITECTURE,)
    other = "arm64" if validation.HOST_ARCHITECTURE == "x86_64" else "x86_64"
    with pytest.raises(InvalidParameterValueException, match="cannot run on this"):
        validation.architectures(Body({"Architectures": [other]}))


def test_body_must_be_an_object():
    with pytest.raises(InvalidParameterValueException):
        Body(["not", "an", "object"])
