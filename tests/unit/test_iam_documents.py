"""Policy documents (lambdalet.iam.documents): IAM's MalformedPolicyDocument wording and what compiles."""

import json

import pytest

from lambdalet.iam.documents import MalformedPolicy, Policy, PolicyKind, compile_policy

IDENTITY, RESOURCE, TRUST = PolicyKind.IDENTITY, PolicyKind.RESOURCE, PolicyKind.TRUST
BUCKET = "arn:aws:s3:::example_bucket"


def statement(**fields):
    return {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": BUCKET, **fields}


def document(*statements, version="2012-10-17"):
    body = {"Statement": list(statements)}
    if version is not None:
        body["Version"] = version
    return body


def message(doc, kind=IDENTITY):
    with pytest.raises(MalformedPolicy) as caught:
        compile_policy(doc if isinstance(doc, str) else json.dumps(doc), kind)
    assert caught.value.message == str(caught.value)
    return caught.value.message


SYNTAX = "Syntax errors in policy."
LEGACY = "The policy failed legacy parsing"


@pytest.mark.parametrize(
    "doc",
    [
        "{not json",
        "[]",
        json.dumps({"Version": "2012-10-17"}),
        json.dumps({"Version": "2012-10-17", "Statement": []}),
        json.dumps({"Version": "2012-10-17", "Statement": "x"}),
        json.dumps({"Version": "2012-10-17", "Extra": 1, "Statement": statement()}),
        json.dumps({"Version": "2012-10-17", "Id": 5, "Statement": statement()}),
        json.dumps({"Version": "2013-01-01", "Statement": statement()}),
        json.dumps(document(statement(Effect="Maybe"))),
        json.dumps(document(statement(Effect=True))),
        json.dumps(document({"Action": "s3:ListBucket", "Resource": BUCKET})),
        json.dumps(document(statement(Bogus="x"))),
        json.dumps(document(statement(Action=5))),
        json.dumps(document(statement(Resource=[BUCKET, 3]))),
        json.dumps(document(statement(NotAction="s3:Get*"))),
        json.dumps(document(statement(NotResource=BUCKET))),
        json.dumps(document(statement(Sid=1))),
        json.dumps(document(statement(Condition=[]))),
        json.dumps(document(statement(Condition={"DateGreaterThan": "b"}))),
        json.dumps(document(statement(Condition={"DateGreaterThan": {"a": {}}}))),
        json.dumps(document(statement(Condition={"x": {"a": "1"}}))),
        json.dumps(document(statement(Condition={"ForAnyValue::StringEqualsIfExists": {"a": "asf"}}))),
        json.dumps(document(statement(Condition={"StringEqualsX": {"aws:username": "a"}}))),
    ],
)
def test_syntax_errors(doc):
    assert message(doc) == SYNTAX


def test_unknown_operator_with_an_empty_block_is_accepted_as_iam_does():
    assert isinstance(compile_policy(document(statement(Condition={"Whatever": {}})), IDENTITY), Policy)


def test_version():
    assert message(document(statement(), version=None)) == "Policy document must be version 2012-10-17 or greater."
    assert message(document(statement(), version="2008-10-17")) == "Policy document must be version 2012-10-17 or greater."
    # Resource and trust policies may be older or unversioned (Lambda and S3 accept both).
    trust = statement(Principal={"Service": "lambda.amazonaws.com"}, Action="sts:AssumeRole")
    del trust["Resource"]
    compile_policy(document(trust, version="2008-10-17"), TRUST)
    compile_policy(document(statement(Principal="*"), version=None), RESOURCE)


def test_principal_rules_by_kind():
    assert message(document(statement(Principal="*"))) == "Policy document should not specify a principal."
    assert message(document(statement(NotPrincipal={"AWS": "*"}))) == "Policy document should not specify a principal."
    assert message(document(statement()), RESOURCE) == "Missing required field Principal"
    assume = {"Effect": "Allow", "Action": "sts:AssumeRole"}
    assert message(document(assume), TRUST) == "Missing required field Principal"
    assert message(document(statement(Principal={"AWS": "arn:aws:iam::*:root"})), RESOURCE) == (
        'Invalid principal in policy: "AWS":"arn:aws:iam::*:root"'
    )
    assert message(document(statement(Principal={"AWS": "alice"})), RESOURCE) == 'Invalid principal in policy: "AWS":"alice"'
    assert message(document(statement(Principal={"Nobody": "x"})), RESOURCE) == SYNTAX
    assert message(document(statement(Principal="someone")), RESOURCE) == SYNTAX


def test_trust_policy_rules():
    principal = {"AWS": "arn:aws:iam::111122223333:root"}
    assert message(document({"Effect": "Allow", "Principal": principal, "Action": "lambda:InvokeFunction"}), TRUST) == (
        "Trust Policy statement actions can only be sts:AssumeRole, sts:AssumeRoleWithSAML,  and sts:AssumeRoleWithWebIdentity"
    )
    with_resource = {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole", "Resource": "*"}
    assert message(document(with_resource), TRUST) == "Has prohibited field Resource."
    ok = compile_policy(document({"Effect": "Allow", "Principal": principal, "Action": ["sts:AssumeRole", "sts:TagSession"]}), TRUST)
    assert ok.kind is TRUST


def test_legacy_parsing():
    assert message(document(statement(Effect="allow"))) == LEGACY  # Effect is case-sensitive here
    assert message(document(statement(Condition={"DateGreaterThan": {"aws:CurrentTime": "not-a-date"}}))) == LEGACY
    assert message(document(statement(Condition={"DateLessThan": {"aws:CurrentTime": "2016-13-01T00:00:00Z"}}))) == LEGACY
    assert message(document(statement(Resource="arn:aws:s3::example_bucket"))) == LEGACY
    assert message(document(statement(Resource="arn:aws::a:b:c"))) == LEGACY


def test_resource_formats():
    assert message(document(statement(Resource="sdfsadf"))) == 'Resource sdfsadf must be in ARN format or "*".'
    assert message(document(statement(Resource=""))) == 'Resource  must be in ARN format or "*".'
    assert message(document(statement(Resource="arn:error:s3:::example_bucket"))) == (
        'Partition "error" is not valid for resource "arn:error:s3:::example_bucket".'
    )
    assert message(document(statement(Resource="arn:b:c:d:e:f:g:h"))) == 'Partition "b" is not valid for resource "arn:b:c:d:e:f:g:h".'
    assert message(document(statement(Resource="arn:bsdfdsafsad"))) == 'Partition "bsdfdsafsad" is not valid for resource "arn:bsdfdsafsad:*:*:*:*".'
    assert message(document(statement(Resource="arn:aws"))) == "Resource vendor must be fully qualified and cannot contain regexes."
    assert message(document(statement(Resource="arn:aws:iam:us-east-1::example_bucket"))) == (
        "IAM resource arn:aws:iam:us-east-1::example_bucket cannot contain region information."
    )
    assert message(document(statement(Resource="arn:aws:s3:us-east-1::example_bucket"))) == (
        "Resource arn:aws:s3:us-east-1::example_bucket can not contain region information."
    )
    assert message(document(statement(Resource="arn:aws:iam::111122223333:bucket"))).startswith(
        'IAM resource path must either be "*" or start with user/, federated-user/, role/'
    )


def test_actions_and_resources_must_be_present():
    no_action = {"Effect": "Allow", "Resource": BUCKET}
    assert message(document(no_action)) == "Policy statement must contain actions."
    assert message(document(statement(Action=[]))) == "Policy statement must contain actions."
    # IAM reports missing actions before a bad resource.
    assert message(document({"Effect": "Allow", "Resource": "bad"})) == "Policy statement must contain actions."
    no_resource = {"Effect": "Allow", "Action": "s3:ListBucket"}
    assert message(document(no_resource)) == "Policy statement must contain resources."
    assert message(document(statement(Resource=[]))) == "Policy statement must contain resources."
    # A resource policy's statement may leave Resource out (it then means the resource itself).
    compile_policy(document({"Effect": "Allow", "Action": "lambda:InvokeFunction", "Principal": "*"}), RESOURCE)


def test_action_vendors():
    assert message(document(statement(Action="ListBucket"))) == "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
    assert message(document(statement(Action="s:3:ListBucket"))) == "Actions/Condition can contain only one colon."
    assert message(document(statement(Action="a a:ListBucket"))) == "Vendor a a is not valid"
    compile_policy(document(statement(Action="*")), IDENTITY)


def test_sids_must_be_unique():
    doc = document(statement(Sid="A"), statement(Sid="A"))
    assert message(doc) == "Statement IDs (SID) in a single policy must be unique."
    compile_policy(document(statement(Sid=""), statement(Sid="")), IDENTITY)


def test_compiled_policy_is_immutable_and_reports_its_condition_keys():
    doc = document(
        statement(Condition={"StringEquals": {"AWS:SourceAccount": "1"}, "Bool": {"aws:SecureTransport": "true"}}),
        statement(Sid="b", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
    )
    policy = compile_policy(json.dumps(doc), IDENTITY)
    assert policy.condition_keys == frozenset({"aws:sourceaccount", "aws:securetransport", "aws:sourceip"})
    assert len(policy.statements) == 2 and policy.version == "2012-10-17"
    with pytest.raises(AttributeError):
        policy.statements = ()
    with pytest.raises(AttributeError):
        policy.statements[0].allow = False


def test_single_statement_object_and_null_entries_are_accepted():
    policy = compile_policy({"Version": "2012-10-17", "Statement": statement(Resource=[BUCKET, None])}, IDENTITY)
    assert len(policy.statements) == 1


def test_wildcards_compile_for_actions_case_insensitively_and_resources_case_sensitively():
    policy = compile_policy(document(statement(Action="Lambda:get*", Resource="arn:aws:lambda:*:function:F?")), IDENTITY)
    (only,) = policy.statements
    assert only.matches_action("lambda:getfunction") and only.matches_action("LAMBDA:GETPOLICY")
    assert not only.matches_action("lambda:invokefunction")
    context = {}
    assert only.matches_resource("arn:aws:lambda:us-east-1:111122223333:function:F1", context)
    assert not only.matches_resource("arn:aws:lambda:us-east-1:111122223333:function:f1", context)
    assert not only.matches_resource("arn:aws:lambda:us-east-1:111122223333:function:F12", context)
