"""The model-driven body check (lambdalet.api.model_body): Coral's words, as LocalStack's snapshots
record them against AWS (test_lambda_api.snapshot.json)."""

import pytest

from lambdalet.api import model_body

ROLE = "arn:aws:iam::123456789012:role/r"


def test_problems_follow_the_models_member_order_and_wording():
    found = model_body.body_problems("CreateFunction", {
        "FunctionName": "f", "Role": "r1", "Architectures": ["X86_64"], "MemorySize": 64,
        "Environment": {"Variables": {"1ABC": "v"}}})
    assert found == [
        "Value 'r1' at 'role' failed to satisfy constraint: Member must satisfy regular expression pattern: "
        "arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+",
        "Value null at 'code' failed to satisfy constraint: Member must not be null",
        "Value '64' at 'memorySize' failed to satisfy constraint: Member must have value greater than or equal to 128",
        # sensitive map: not shown (test_function_invalid_env_vars / create_function_invalid_env_vars)
        "Value at 'environment.variables' failed to satisfy constraint: Map keys must satisfy constraint: "
        "[Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]",
        "Value '[X86_64]' at 'architectures' failed to satisfy constraint: Member must satisfy constraint: "
        "[Member must satisfy enum value set: [x86_64, arm64], Member must not be null]",
    ]


@pytest.mark.parametrize("key", ["1ABC", "A", "WITH-DASH", "sp ace"])
def test_environment_keys_follow_the_model_pattern(key):
    found = model_body.body_problems("UpdateFunctionConfiguration",
                                     {"Environment": {"Variables": {key: "v"}}})
    assert len(found) == 1 and "Map keys must satisfy constraint" in found[0]


def test_maps_of_doubles_render_as_java_prints_them():
    found = model_body.body_problems("UpdateAlias", {"RoutingConfig": {"AdditionalVersionWeights": {"2": -1.0}}})
    assert found == ["Value '{2=-1.0}' at 'routingConfig.additionalVersionWeights' failed to satisfy constraint: "
                     "Map value must satisfy constraint: [Member must have value less than or equal to 1.0, "
                     "Member must have value greater than or equal to 0.0, Member must not be null]"]


def test_statement_ids_follow_the_model():
    found = model_body.body_problems("AddPermission", {"StatementId": "bad id!", "Action": "lambda:InvokeFunction",
                                                       "Principal": "s3.amazonaws.com"})
    assert found == ["Value 'bad id!' at 'statementId' failed to satisfy constraint: "
                     "Member must satisfy regular expression pattern: ([a-zA-Z0-9-_]+)"]


def test_a_valid_body_has_no_problems_and_checkers_are_compiled_once():
    body = {"FunctionName": "f", "Role": ROLE, "Code": {"ZipFile": "UEs="}, "Architectures": ["x86_64"]}
    assert model_body.body_problems("CreateFunction", body) == []
    assert model_body.body_checker("CreateFunction") is model_body.body_checker("CreateFunction")


def test_operations_without_json_members_have_no_checker():
    assert model_body.body_checker("Invoke") is None


def test_lists_render_as_aws_prints_them():
    found = model_body.body_problems("CreateFunction", {
        "FunctionName": "f", "Role": ROLE, "Code": {"ZipFile": "UEs="}, "Architectures": ["x86_64", "arm64"]})
    assert found == ["Value '[x86_64, arm64]' at 'architectures' failed to satisfy constraint: "
                     "Member must have length less than or equal to 1"]
