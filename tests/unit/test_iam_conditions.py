"""Condition operators (lambdalet.iam.conditions): every operator, IfExists, set qualifiers, Null, variables."""

import pytest

from lambdalet.iam.conditions import compile_condition, parse_date
from lambdalet.iam.errors import MalformedPolicy


def holds(condition, **context):
    """Evaluate a Condition element against a context given with `__` for `:` in keys."""
    values = {key.replace("__", ":").lower(): value for key, value in context.items()}
    return compile_condition(condition).holds(values)


def one(operator, key, value, context_value):
    context = {} if context_value is None else {key.lower(): context_value}
    return compile_condition({operator: {key: value}}).holds(context)


@pytest.mark.parametrize(
    "operator, policy, request_value, expected",
    [
        ("StringEquals", "alice", "alice", True),
        ("StringEquals", "alice", "Alice", False),
        ("StringEquals", ["bob", "alice"], "alice", True),
        ("StringNotEquals", "alice", "alice", False),
        ("StringNotEquals", ["bob", "carol"], "alice", True),
        ("StringEqualsIgnoreCase", "ALICE", "alice", True),
        ("StringNotEqualsIgnoreCase", "ALICE", "alice", False),
        ("StringNotEqualsIgnoreCase", "ALICE", "bob", True),
        ("StringLike", "ali*", "alice", True),
        ("StringLike", "al?ce", "alice", True),
        ("StringLike", "al?ce", "allice", False),
        ("StringLike", "ALI*", "alice", False),
        ("StringNotLike", "ali*", "alice", False),
        ("StringNotLike", "bo*", "alice", True),
        ("StringEquals", "a*", "abc", False),  # no wildcards outside the Like operators
        ("NumericEquals", "10", "10.0", True),
        ("NumericNotEquals", "10", "11", True),
        ("NumericNotEquals", "10", "10", False),
        ("NumericLessThan", "10", "9", True),
        ("NumericLessThan", "10", "10", False),
        ("NumericLessThanEquals", "10", "10", True),
        ("NumericGreaterThan", "10", "10", False),
        ("NumericGreaterThan", "10", "11", True),
        ("NumericGreaterThanEquals", "10", "10", True),
        ("NumericGreaterThanEquals", 10, "9", False),
        ("NumericEquals", "10", "ten", False),
        ("DateEquals", "2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z", True),
        ("DateEquals", "2020-01-01T00:00:00Z", "1577836800", True),  # epoch seconds
        ("DateEquals", "2020-01-01T01:00:00+01:00", "2020-01-01T00:00:00Z", True),
        ("DateNotEquals", "2020-01-01", "2020-01-02", True),
        ("DateLessThan", "2020-01-01T00:00:00Z", "2019-12-31T23:59:59Z", True),
        ("DateLessThan", "2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z", False),
        ("DateLessThanEquals", "2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z", True),
        ("DateGreaterThan", "2020-01-01T00:00:00Z", "2020-06-01T00:00:00.5Z", True),
        ("DateGreaterThan", "1577836800", "2019-06-01T00:00:00Z", False),
        ("DateGreaterThanEquals", "2020-01-01", "2020-01-01T00:00:00Z", True),
        ("Bool", "true", "true", True),
        ("Bool", "true", "false", False),
        ("Bool", True, "TRUE", True),
        ("BinaryEquals", "QmluYXJ5", "QmluYXJ5", True),
        ("BinaryEquals", "QmluYXJ5", "QmluYXJ6", False),
        ("IpAddress", "203.0.113.0/24", "203.0.113.9", True),
        ("IpAddress", "203.0.113.0/24", "203.0.114.9", False),
        ("IpAddress", "2001:db8::/32", "2001:db8::1", True),
        ("IpAddress", ["10.0.0.0/8", "2001:db8::/32"], "2001:db9::1", False),
        ("IpAddress", "203.0.113.7", "203.0.113.7", True),
        ("IpAddress", "10.0.0.0/8", "not-an-ip", False),
        ("NotIpAddress", "203.0.113.0/24", "198.51.100.1", True),
        ("NotIpAddress", "203.0.113.0/24", "203.0.113.1", False),
        ("ArnEquals", "arn:aws:sns:us-east-1:111122223333:topic", "arn:aws:sns:us-east-1:111122223333:topic", True),
        ("ArnEquals", "arn:aws:sns:*:111122223333:*", "arn:aws:sns:eu-west-1:111122223333:topic", True),
        ("ArnLike", "arn:aws:sns:*:111122223333:*", "arn:aws:sns:eu-west-1:444455556666:topic", False),
        # A wildcard stays within its colon-separated part, except in the last (resource) part.
        ("ArnLike", "arn:aws:s*:us-east-1:111122223333:x", "arn:aws:s3:x:us-east-1:111122223333:x", False),
        ("ArnLike", "arn:aws:lambda:*:*:function:*", "arn:aws:lambda:us-east-1:111122223333:function:f:prod", True),
        ("ArnLike", "arn:aws:lambda:us-east-1:111122223333:function:f", "arn:aws:lambda:us-east-1:111122223333:function:F", False),
        ("ArnLike", "*", "arn:aws:s3:::bucket", True),
        ("ArnNotEquals", "arn:aws:s3:::bucket", "arn:aws:s3:::other", True),
        ("ArnNotLike", "arn:aws:s3:::buck*", "arn:aws:s3:::bucket", False),
    ],
)
def test_operator(operator, policy, request_value, expected):
    assert one(operator, "test:Key", policy, request_value) is expected


@pytest.mark.parametrize(
    "operator, expected",
    [
        ("StringEquals", False), ("StringNotEquals", True), ("StringLike", False), ("StringNotLike", True),
        ("StringEqualsIgnoreCase", False), ("StringNotEqualsIgnoreCase", True),
        ("NumericLessThan", False), ("NumericNotEquals", True), ("DateGreaterThan", False), ("DateNotEquals", True),
        ("Bool", False), ("BinaryEquals", False), ("IpAddress", False), ("NotIpAddress", True),
        ("ArnLike", False), ("ArnNotLike", True), ("ArnEquals", False), ("ArnNotEquals", True),
    ],
)
def test_absent_key_is_false_for_positive_operators_and_true_for_negated_ones(operator, expected):
    value = {"Numeric": "1", "Date": "2020-01-01", "Bool": "true", "IpAd": "10.0.0.0/8", "NotI": "10.0.0.0/8"}
    policy_value = next((v for prefix, v in value.items() if operator.startswith(prefix)), "arn:aws:s3:::b")
    assert one(operator, "test:Key", policy_value, None) is expected
    assert one(operator + "IfExists", "test:Key", policy_value, None) is True


def test_if_exists_still_tests_a_present_key():
    assert one("StringEqualsIfExists", "ec2:InstanceType", "t2.micro", "t2.micro") is True
    assert one("StringEqualsIfExists", "ec2:InstanceType", "t2.micro", "m5.large") is False


def test_null():
    assert one("Null", "aws:TokenIssueTime", "true", None) is True
    assert one("Null", "aws:TokenIssueTime", "true", "2020-01-01") is False
    assert one("Null", "aws:TokenIssueTime", "false", "2020-01-01") is True
    assert one("Null", "aws:TokenIssueTime", False, None) is False
    assert one("Null", "aws:TagKeys", "true", []) is True  # an empty list is no value


def test_keys_are_case_insensitive_values_case_sensitive():
    assert holds({"StringEquals": {"AWS:UserName": "alice"}}, aws__username="alice")
    assert not holds({"StringEquals": {"aws:username": "alice"}}, aws__username="ALICE")


def test_keys_of_a_block_and_blocks_are_anded_values_ored():
    condition = {
        "StringEquals": {"aws:username": ["alice", "bob"], "aws:principalaccount": "111122223333"},
        "Bool": {"aws:SecureTransport": "true"},
    }
    context = dict(aws__username="bob", aws__principalaccount="111122223333", aws__securetransport="true")
    assert holds(condition, **context)
    assert not holds(condition, **{**context, "aws__securetransport": "false"})
    assert not holds(condition, **{**context, "aws__principalaccount": "444455556666"})
    assert not holds(condition, **{**context, "aws__username": "carol"})


def test_for_all_values():
    condition = {"ForAllValues:StringEquals": {"aws:TagKeys": ["Department", "Project"]}}
    assert holds(condition, aws__tagkeys=["Department"])
    assert holds(condition, aws__tagkeys=["Department", "Project"])
    assert not holds(condition, aws__tagkeys=["Department", "Owner"])
    assert holds(condition)  # absent: vacuously true, as AWS warns
    assert holds(condition, aws__tagkeys=[])
    # ForAllValues with a negated operator: none of the request values may be listed.
    negated = {"ForAllValues:StringNotEquals": {"aws:TagKeys": ["Secret"]}}
    assert holds(negated, aws__tagkeys=["Department", "Owner"])
    assert not holds(negated, aws__tagkeys=["Department", "Secret"])


def test_for_any_value():
    condition = {"ForAnyValue:StringLike": {"aws:TagKeys": ["Dep*"]}}
    assert holds(condition, aws__tagkeys=["Owner", "Department"])
    assert not holds(condition, aws__tagkeys=["Owner"])
    assert not holds(condition)  # absent: false
    assert not holds(condition, aws__tagkeys=[])
    assert holds({"ForAnyValue:StringLikeIfExists": {"aws:TagKeys": ["Dep*"]}})
    negated = {"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["Owner"]}}
    assert holds(negated, aws__tagkeys=["Owner", "Project"])
    assert not holds(negated, aws__tagkeys=["Owner"])
    assert not holds(negated)


def test_multivalued_key_without_a_qualifier():
    assert holds({"StringEquals": {"aws:TagKeys": "Owner"}}, aws__tagkeys=["Project", "Owner"])
    assert not holds({"StringNotEquals": {"aws:TagKeys": "Owner"}}, aws__tagkeys=["Project", "Owner"])
    assert holds({"StringNotEquals": {"aws:TagKeys": "Owner"}}, aws__tagkeys=["Project"])


def test_policy_variables_in_condition_values():
    condition = {"StringLike": {"s3:prefix": ["home/${aws:username}/*"]}}
    assert holds(condition, aws__username="alice", s3__prefix="home/alice/photos")
    assert not holds(condition, aws__username="alice", s3__prefix="home/bob/photos")
    assert not holds(condition, s3__prefix="home/alice/photos")  # no value: the variable matches nothing
    # A substituted value is literal: a '*' in it is not a wildcard.
    assert not holds(condition, aws__username="*", s3__prefix="home/bob/x")
    assert holds({"StringEquals": {"test:k": "${aws:username}"}}, aws__username="alice", test__k="alice")
    assert holds({"StringEquals": {"test:k": "${aws:username, 'nobody'}"}}, test__k="nobody")
    assert holds({"StringEquals": {"test:k": "a${*}b${?}c${$}"}}, test__k="a*b?c$")
    assert holds({"StringLike": {"test:k": "a${*}"}}, test__k="a*")
    assert not holds({"StringLike": {"test:k": "a${*}"}}, test__k="ab")
    assert holds({"StringEqualsIgnoreCase": {"test:k": "${aws:username}"}}, aws__username="Alice", test__k="ALICE")
    assert holds({"ArnLike": {"aws:SourceArn": "arn:aws:s3:::${aws:PrincipalAccount}-*"}},
                 aws__principalaccount="111122223333", aws__sourcearn="arn:aws:s3:::111122223333-logs")
    # Old documents have no variables: the text is literal.
    old = compile_condition({"StringEquals": {"test:k": "${aws:username}"}}, variables=False)
    assert old.holds({"test:k": "${aws:username}"}) and not old.holds({"test:k": "alice", "aws:username": "alice"})


def test_values_that_do_not_parse_fail_legacy_parsing():
    for block in ({"NumericLessThan": {"k:k": "ten"}}, {"DateLessThan": {"k:k": "soon"}}, {"IpAddress": {"k:k": "10.0.0.300/8"}}):
        with pytest.raises(MalformedPolicy, match="The policy failed legacy parsing"):
            compile_condition(block)


def test_unknown_operator_is_a_syntax_error():
    with pytest.raises(MalformedPolicy, match="Syntax errors in policy."):
        compile_condition({"StringSortOf": {"k:k": "v"}})
    with pytest.raises(MalformedPolicy, match="Syntax errors in policy."):
        compile_condition({"ForSomeValues:StringEquals": {"k:k": "v"}})


def test_condition_keys():
    condition = compile_condition({"StringEquals": {"AWS:SourceAccount": "1"}, "Null": {"aws:TokenIssueTime": "true"}})
    assert condition.keys == frozenset({"aws:sourceaccount", "aws:tokenissuetime"})


def test_parse_date():
    assert parse_date("1970-01-01T00:00:00Z") == 0
    assert parse_date("1970-01-01T01:00:00+0100") == 0
    assert parse_date("1970-01-02") == 86400
    assert parse_date("86400") == 86400
    assert parse_date("2020-02-30T00:00:00Z") is None
    assert parse_date("yesterday") is None
