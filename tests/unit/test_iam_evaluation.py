"""Policy evaluation (lambdalet.iam.evaluation): AWS's allow/deny rules within and across accounts."""

from datetime import datetime, timezone

import pytest

from lambdalet.iam.documents import PolicyKind, compile_policy
from lambdalet.iam.evaluation import (
    AuthorizationRequest,
    Outcome,
    Principal,
    access_denied_message,
    authorize,
    request_context,
)

A, B = "111122223333", "444455556666"
FUNCTION = f"arn:aws:lambda:us-east-1:{A}:function:f"
ROOT_A = Principal(f"arn:aws:iam::{A}:root", A, A)
ROOT_B = Principal(f"arn:aws:iam::{B}:root", B, B)
ALICE = Principal(f"arn:aws:iam::{A}:user/team/alice", A, "AIDAALICE", username="alice")
BOB_B = Principal(f"arn:aws:iam::{B}:user/bob", B, "AIDABOB", username="bob")
ROLE_A = f"arn:aws:iam::{A}:role/service/runner"
SESSION_A = Principal(f"arn:aws:sts::{A}:assumed-role/runner/s1", A, "AROARUNNER:s1", role_arn=ROLE_A)
ROLE_B = f"arn:aws:iam::{B}:role/deployer"
SESSION_B = Principal(f"arn:aws:sts::{B}:assumed-role/deployer/s2", B, "AROADEPLOYER:s2", role_arn=ROLE_B)
S3 = Principal("", "", service="s3.amazonaws.com")
ANONYMOUS = Principal("", "")


def identity(*statements):
    return compile_policy({"Version": "2012-10-17", "Statement": list(statements)}, PolicyKind.IDENTITY)


def resource_policy(*statements):
    return compile_policy({"Version": "2012-10-17", "Statement": list(statements)}, PolicyKind.RESOURCE)


def allow(action="lambda:*", resource="*", **extra):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action="lambda:*", resource="*", **extra):
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def grant(principal, action="lambda:InvokeFunction", effect="Allow", **extra):
    return {"Effect": effect, "Principal": principal, "Action": action, "Resource": FUNCTION, **extra}


def request(principal, action="lambda:InvokeFunction", resource=FUNCTION, account=A, **context):
    return AuthorizationRequest(principal, action, resource, account, context)


def decide(principal, identities=(), resource=None, action="lambda:InvokeFunction", **context):
    return authorize(request(principal, action, **context), list(identities), resource)


ALLOW = Outcome.ALLOW
EXPLICIT = Outcome.EXPLICIT_DENY
IMPLICIT = Outcome.IMPLICIT_DENY


def test_nothing_allows_by_default():
    assert decide(ALICE).outcome is IMPLICIT
    assert not decide(ALICE).allowed


def test_identity_policy_allows_within_the_account():
    assert decide(ALICE, [identity(allow())]).allowed
    assert decide(SESSION_A, [identity(allow("lambda:Invoke*", FUNCTION))]).allowed
    assert decide(ALICE, [identity(allow("lambda:GetFunction"))]).outcome is IMPLICIT


def test_explicit_deny_wins_over_any_allow():
    everything = identity(allow("*"))
    assert decide(ALICE, [everything, identity(deny("lambda:Invoke*"))]).outcome is EXPLICIT
    assert decide(ALICE, [everything], resource_policy(grant("*", effect="Deny"))).outcome is EXPLICIT
    assert decide(ALICE, [identity(allow(), deny("lambda:InvokeFunction"))], resource_policy(grant("*"))).outcome is EXPLICIT


def test_root_of_the_resource_account_is_allowed_except_by_a_resource_policy_deny():
    assert decide(ROOT_A).allowed
    assert decide(ROOT_A, [identity(deny("*"))]).allowed  # no identity policy applies to root
    denied = decide(ROOT_A, resource=resource_policy(grant({"AWS": A}, effect="Deny")))
    assert denied.outcome is EXPLICIT and denied.reason == "with an explicit deny in a resource-based policy"


@pytest.mark.parametrize(
    "named",
    [f"arn:aws:iam::{A}:user/team/alice", "*", {"AWS": "*"}, {"AWS": [B, f"arn:aws:iam::{A}:user/team/alice"]}],
)
def test_same_account_resource_policy_naming_the_user_allows_without_an_identity_policy(named):
    principal = named if named == "*" or isinstance(named, dict) else {"AWS": named}
    assert decide(ALICE, resource=resource_policy(grant(principal))).allowed


@pytest.mark.parametrize("account_name", [A, f"arn:aws:iam::{A}:root"])
def test_same_account_resource_policy_naming_only_the_account_delegates_to_identity_policies(account_name):
    policy = resource_policy(grant({"AWS": account_name}))
    for principal in (ALICE, SESSION_A):
        decision = decide(principal, resource=policy)
        assert decision.outcome is IMPLICIT
        assert decision.reason == "because no identity-based policy allows the lambda:InvokeFunction action"
        assert decide(principal, [identity(allow())], policy).allowed
    assert decide(ROOT_A, resource=policy).allowed


def test_resource_policy_naming_a_role_covers_its_sessions_and_the_session_arn_itself():
    assert decide(SESSION_A, resource=resource_policy(grant({"AWS": ROLE_A}))).allowed
    assert decide(SESSION_A, resource=resource_policy(grant({"AWS": SESSION_A.arn}))).allowed
    other_role = f"arn:aws:iam::{A}:role/other"
    assert decide(SESSION_A, resource=resource_policy(grant({"AWS": other_role}))).outcome is IMPLICIT


def test_cross_account_needs_both_an_identity_and_a_resource_allow():
    mine = identity(allow())
    shared = resource_policy(grant({"AWS": B}))
    assert decide(BOB_B, [mine], shared).allowed  # naming the other account is enough across accounts
    assert decide(SESSION_B, [mine], resource_policy(grant({"AWS": ROLE_B}))).allowed
    missing_resource = decide(BOB_B, [mine])
    assert missing_resource.outcome is IMPLICIT
    assert missing_resource.reason == "because no resource-based policy allows the lambda:InvokeFunction action"
    missing_identity = decide(BOB_B, resource=shared)
    assert missing_identity.reason == "because no identity-based policy allows the lambda:InvokeFunction action"
    # Both missing: the identity-based policy is named.
    assert decide(BOB_B).reason == "because no identity-based policy allows the lambda:InvokeFunction action"
    # A grant to the resource's own account does not reach another account.
    assert decide(BOB_B, [mine], resource_policy(grant({"AWS": A}))).outcome is IMPLICIT


def test_root_of_another_account_needs_only_the_resource_allow():
    assert decide(ROOT_B, resource=resource_policy(grant({"AWS": B}))).allowed
    assert decide(ROOT_B, resource=resource_policy(grant({"AWS": f"arn:aws:iam::{B}:root"}))).allowed
    assert decide(ROOT_B).reason == "because no resource-based policy allows the lambda:InvokeFunction action"


def test_resource_policy_deny_naming_an_account_covers_its_principals():
    policy = resource_policy(grant("*"), grant({"AWS": B}, effect="Deny", Sid="no-b"))
    assert decide(BOB_B, [identity(allow())], policy).outcome is EXPLICIT
    assert decide(ALICE, resource=policy).allowed


def test_service_principals_are_allowed_only_by_resource_policies():
    by_service = resource_policy(grant({"Service": "s3.amazonaws.com"}))
    assert decide(S3, resource=by_service).allowed
    assert decide(S3, [identity(allow("*"))]).reason == "because no resource-based policy allows the lambda:InvokeFunction action"
    assert decide(S3, resource=resource_policy(grant({"Service": "sns.amazonaws.com"}))).outcome is IMPLICIT
    assert decide(S3, resource=resource_policy(grant({"AWS": A}))).outcome is IMPLICIT
    assert decide(ALICE, resource=by_service).outcome is IMPLICIT


def test_service_principal_with_source_conditions():
    policy = resource_policy(grant({"Service": "s3.amazonaws.com"}, Condition={
        "StringEquals": {"AWS:SourceAccount": A}, "ArnLike": {"aws:SourceArn": "arn:aws:s3:::uploads-*"},
    }))
    assert decide(S3, resource=policy, **{"aws:SourceAccount": A, "aws:SourceArn": "arn:aws:s3:::uploads-1"}).allowed
    assert not decide(S3, resource=policy, **{"aws:SourceAccount": B, "aws:SourceArn": "arn:aws:s3:::uploads-1"}).allowed
    assert not decide(S3, resource=policy).allowed


def test_anonymous_callers_need_a_public_grant():
    assert decide(ANONYMOUS, resource=resource_policy(grant("*"))).allowed
    assert decide(ANONYMOUS, resource=resource_policy(grant({"AWS": A}))).outcome is IMPLICIT


def test_not_principal():
    everyone_but_alice = {"Effect": "Deny", "NotPrincipal": {"AWS": [ALICE.arn]}, "Action": "lambda:*", "Resource": FUNCTION}
    policy = resource_policy(grant("*"), everyone_but_alice)
    assert decide(ALICE, resource=policy).allowed
    assert decide(SESSION_A, resource=policy).outcome is EXPLICIT
    allow_others = resource_policy({"Effect": "Allow", "NotPrincipal": {"AWS": B}, "Action": "lambda:*", "Resource": FUNCTION})
    assert decide(ALICE, resource=allow_others).allowed
    assert decide(BOB_B, [identity(allow())], allow_others).outcome is IMPLICIT


def test_not_action_and_not_resource():
    everything_but_delete = identity({"Effect": "Allow", "NotAction": "lambda:Delete*", "Resource": "*"})
    assert decide(ALICE, [everything_but_delete]).allowed
    assert not decide(ALICE, [everything_but_delete], action="lambda:DeleteFunction").allowed
    not_this_function = identity({"Effect": "Allow", "Action": "*", "NotResource": FUNCTION})
    assert not decide(ALICE, [not_this_function]).allowed
    assert authorize(request(ALICE, resource=FUNCTION + "2"), [not_this_function], None).allowed
    deny_outside = identity(allow("*"), {"Effect": "Deny", "Action": "*", "NotResource": f"arn:aws:lambda:*:{A}:*"})
    assert decide(ALICE, [deny_outside]).allowed
    assert authorize(request(ALICE, resource=f"arn:aws:lambda:us-east-1:{B}:function:g", account=B),
                     [deny_outside], None).outcome is EXPLICIT


def test_action_wildcards_are_case_insensitive_resource_wildcards_span_colons_and_slashes():
    assert decide(ALICE, [identity(allow("LAMBDA:invoke*"))], action="lambda:InvokeFunction").allowed
    assert decide(ALICE, [identity(allow("lambda:invokefunction"))], action="Lambda:InvokeFunction").allowed
    assert decide(ALICE, [identity(allow("lambda:Invoke?unction"))]).allowed
    assert decide(ALICE, [identity(allow(resource="arn:aws:lambda:*"))]).allowed
    assert decide(ALICE, [identity(allow(resource="arn:aws:lambda:us-east-1:*:function:*"))]).allowed
    assert not decide(ALICE, [identity(allow(resource="arn:aws:lambda:us-east-1:*:function:F"))]).allowed
    assert authorize(request(ALICE, resource=f"arn:aws:lambda:us-east-1:{A}:function:f:prod"),
                     [identity(allow(resource=f"arn:aws:lambda:us-east-1:{A}:function:f*"))], None).allowed


def test_resource_policy_statement_without_resource_means_the_resource_itself():
    policy = resource_policy({"Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunction"})
    assert decide(ALICE, resource=policy).allowed


def test_conditions_with_principal_derived_keys():
    policy = identity(allow(Condition={"StringEquals": {"aws:PrincipalAccount": A, "aws:username": "alice"}}))
    assert decide(ALICE, [policy]).allowed
    renamed = Principal(ALICE.arn, A, "AIDAALICE", username="alice2")
    assert not decide(renamed, [policy]).allowed
    session = identity(allow(Condition={"StringEquals": {"aws:PrincipalArn": ROLE_A}, "StringLike": {"aws:userid": "AROA*:s1"}}))
    assert decide(SESSION_A, [session]).allowed
    typed = resource_policy(grant("*", Condition={"StringEquals": {"aws:PrincipalType": "AssumedRole"}}))
    assert decide(SESSION_A, resource=typed).allowed and not decide(ALICE, resource=typed).allowed
    # An explicit context value wins over the derived one.
    assert not decide(ALICE, [policy], **{"AWS:username": "mallory"}).allowed


def test_request_context_keys():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    context = request_context(now=now, source_ip="203.0.113.5", secure_transport=False, **{"lambda:FunctionUrlAuthType": "AWS_IAM"})
    assert context == {
        "aws:currenttime": "2026-01-01T12:00:00Z", "aws:epochtime": str(int(now.timestamp())),
        "aws:sourceip": "203.0.113.5", "aws:securetransport": "false", "lambda:functionurlauthtype": "AWS_IAM",
    }
    policy = identity(allow(Condition={
        "DateLessThan": {"aws:CurrentTime": "2026-06-01T00:00:00Z"}, "NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"},
    }), deny(Condition={"Bool": {"aws:SecureTransport": "false"}}))
    assert authorize(AuthorizationRequest(ALICE, "lambda:InvokeFunction", FUNCTION, A, request_context(
        now=now, source_ip="203.0.113.5", secure_transport=True)), [policy], None).allowed
    assert authorize(AuthorizationRequest(ALICE, "lambda:InvokeFunction", FUNCTION, A, context), [policy], None).outcome is EXPLICIT
    late = request_context(now=datetime(2027, 1, 1, tzinfo=timezone.utc), source_ip="203.0.113.5", secure_transport=True)
    assert not authorize(AuthorizationRequest(ALICE, "lambda:InvokeFunction", FUNCTION, A, late), [policy], None).allowed


def test_policy_variables_in_resources():
    own_functions = identity(allow(resource="arn:aws:lambda:*:${aws:PrincipalAccount}:function:${aws:username}-*"))
    mine = f"arn:aws:lambda:us-east-1:{A}:function:alice-tool"
    assert authorize(request(ALICE, resource=mine), [own_functions], None).allowed
    assert not authorize(request(ALICE, resource=f"arn:aws:lambda:us-east-1:{A}:function:bob-tool"), [own_functions], None).allowed
    # A role session has no aws:username: the statement matches nothing.
    assert not authorize(request(SESSION_A, resource=mine), [own_functions], None).allowed


def test_access_denied_messages():
    get = request(ALICE, "lambda:GetFunction")
    assert access_denied_message(get, authorize(get, [], None)) == (
        f"User: arn:aws:iam::{A}:user/team/alice is not authorized to perform: lambda:GetFunction on resource: "
        f"{FUNCTION} because no identity-based policy allows the lambda:GetFunction action"
    )
    cross = request(BOB_B)
    assert access_denied_message(cross, authorize(cross, [identity(allow())], None)) == (
        f"User: arn:aws:iam::{B}:user/bob is not authorized to perform: lambda:InvokeFunction on resource: "
        f"{FUNCTION} because no resource-based policy allows the lambda:InvokeFunction action"
    )
    denied = request(SESSION_A)
    assert access_denied_message(denied, authorize(denied, [identity(allow(), deny())], None)) == (
        f"User: {SESSION_A.arn} is not authorized to perform: lambda:InvokeFunction on resource: "
        f"{FUNCTION} with an explicit deny in an identity-based policy"
    )
    both = authorize(denied, [identity(deny())], resource_policy(grant("*", effect="Deny")))
    assert both.reason == "with an explicit deny in an identity-based policy"  # identity named first
    assert access_denied_message(denied, authorize(denied, [identity(allow())], resource_policy(grant("*", effect="Deny")))).endswith(
        f"on resource: {FUNCTION} with an explicit deny in a resource-based policy"
    )
    service = request(S3)
    assert access_denied_message(service, authorize(service, [], None)).startswith("User: s3.amazonaws.com is not authorized")
    with pytest.raises(ValueError):
        access_denied_message(get, authorize(get, [identity(allow())], None))


def test_principal_properties():
    assert ROOT_A.is_root and not ALICE.is_root and not SESSION_A.is_root and not S3.is_root
    assert [p.kind for p in (ROOT_A, ALICE, SESSION_A, S3, ANONYMOUS)] == ["Account", "User", "AssumedRole", "Service", "Anonymous"]


def test_policies_remember_matching_statements_per_action_without_changing_answers():
    policy = identity(allow("lambda:Get*"), deny("lambda:GetPolicy"))
    for _ in range(3):
        assert decide(ALICE, [policy], action="lambda:GetFunction").allowed
        assert decide(ALICE, [policy], action="lambda:GetPolicy").outcome is EXPLICIT
        assert decide(ALICE, [policy], action="lambda:InvokeFunction").outcome is IMPLICIT


def test_trust_policy_decides_assume_role():
    role = f"arn:aws:iam::{A}:role/service/runner"
    trust = compile_policy({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com", "AWS": BOB_B.arn}, "Action": "sts:AssumeRole"},
    ]}, PolicyKind.TRUST)
    lam = Principal("", "", service="lambda.amazonaws.com")
    assert authorize(AuthorizationRequest(lam, "sts:AssumeRole", role, A), [], trust).allowed
    bob = AuthorizationRequest(BOB_B, "sts:AssumeRole", role, A)
    assert authorize(bob, [identity(allow("sts:AssumeRole"))], trust).allowed
    assert authorize(bob, [], trust).reason == "because no identity-based policy allows the sts:AssumeRole action"
    assert not authorize(AuthorizationRequest(ALICE, "sts:AssumeRole", role, A), [], trust).allowed


def test_variables_in_not_resource_and_old_documents_without_variables():
    others = identity(allow("*"), {"Effect": "Deny", "Action": "lambda:*", "NotResource": f"arn:aws:lambda:*:{A}:function:${{aws:username}}-*"})
    assert authorize(request(ALICE, resource=f"arn:aws:lambda:us-east-1:{A}:function:alice-x"), [others], None).allowed
    assert authorize(request(ALICE, resource=f"arn:aws:lambda:us-east-1:{A}:function:bob-x"), [others], None).outcome is EXPLICIT
    literal = compile_policy({"Version": "2008-10-17", "Statement": [grant("*") | {"Resource": FUNCTION + "${aws:username}"}]},
                             PolicyKind.RESOURCE)
    assert authorize(request(ALICE, resource=FUNCTION + "${aws:username}"), [], literal).allowed
    assert not authorize(request(ALICE, resource=FUNCTION + "alice"), [], literal).allowed


def test_resource_policy_deny_with_a_condition():
    policy = resource_policy(grant("*"), grant("*", effect="Deny", Sid="tls",
                                               Condition={"Bool": {"aws:SecureTransport": "false"}}))
    assert decide(BOB_B, [identity(allow())], policy, **{"aws:SecureTransport": True}).allowed
    assert decide(BOB_B, [identity(allow())], policy, **{"aws:SecureTransport": False}).outcome is EXPLICIT
    assert decide(BOB_B, [identity(allow())], policy).allowed  # Bool on an absent key is false: no deny


def test_a_decision_says_whether_it_read_the_request_context():
    """Authorisation remembers allowances that read no condition key (api/authorization.Decisions):
    a condition or a policy variable must mark the request as having read its context."""
    plain = AuthorizationRequest(ALICE, "lambda:InvokeFunction", FUNCTION, A, request_context(source_ip="10.0.0.1"))
    assert authorize(plain, (identity(allow()),), None).allowed and not plain.context_read
    conditioned = AuthorizationRequest(ALICE, "lambda:InvokeFunction", FUNCTION, A,
                                       request_context(source_ip="10.0.0.1"))
    ip = allow(Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})
    assert authorize(conditioned, (identity(ip),), None).allowed and conditioned.context_read
    variable = AuthorizationRequest(ALICE, "lambda:InvokeFunction", FUNCTION, A, request_context())
    named = allow(resource="arn:aws:lambda:us-east-1:*:function:${aws:username}*")
    assert not authorize(variable, (identity(named),), None).allowed and variable.context_read
