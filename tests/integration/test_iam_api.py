"""The IAM subset: users, access keys, roles, inline and managed policies, over IAM's query protocol.

A real server driven by boto3's `iam` client, the AWS CLI and raw form posts: each action's
answer field by field (as AWS's documented examples and moto show them), IAM's errors with their
codes, statuses and words, names unique whatever their case, what is kept surviving a restart,
and hostile input answered with IAM's errors, never a 500. One server of `--auth iam` checks that
the root key signs IAM's requests too.
"""

from __future__ import annotations

import datetime
import http.client
import json
import re
import uuid
from urllib.parse import urlencode

import boto3
import pytest
from botocore.config import Config

from conftest import Server, aws_cli, running

from .helpers import aws_error

ACCOUNT = "000000000000"
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
ALLOW_LOGS = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs:*", "Resource": "*"}]}
ROOT_KEY, ROOT_SECRET = "LKIATESTROOTKEY00002", "root-secret-of-the-iam-tests-012345"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with running(Server(tmp_path_factory.mktemp("iam-api"))) as server:
        yield server


@pytest.fixture
def iam(srv):
    """boto3's iam client, without its own checks of the parameters: the server's are under test."""
    return srv.client("iam", parameter_validation=False)


def name(prefix: str = "n") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def post(srv: Server, params: dict[str, str] | bytes) -> tuple[int, str]:
    """A raw form post to `/`, as a query-protocol client sends it (unsigned: --auth open)."""
    body = params if isinstance(params, bytes) else urlencode(params).encode()
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.request("POST", "/", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
        reply = conn.getresponse()
        return reply.status, reply.read().decode()
    finally:
        conn.close()


def recent(when: datetime.datetime) -> bool:
    return abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()) < 120


# -- users ----------------------------------------------------------------------------------------


def test_a_user_is_created_read_listed_renamed_and_deleted(iam):
    user_name = name("User")
    created = iam.create_user(UserName=user_name, Path="/team/")["User"]
    assert set(created) == {"Path", "UserName", "UserId", "Arn", "CreateDate"}
    assert created["Path"] == "/team/" and created["UserName"] == user_name
    assert re.fullmatch(r"AIDA[A-Z0-9]{17}", created["UserId"])
    assert created["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/team/{user_name}"
    assert recent(created["CreateDate"])
    assert iam.get_user(UserName=user_name.upper())["User"] == created  # names match whatever their case
    listed = iam.list_users(PathPrefix="/team/")
    assert created in listed["Users"] and listed["IsTruncated"] is False
    assert created not in iam.list_users(PathPrefix="/other/")["Users"]

    new_name = name("Renamed")
    iam.update_user(UserName=user_name, NewUserName=new_name, NewPath="/moved/")
    renamed = iam.get_user(UserName=new_name)["User"]
    assert (renamed["UserId"], renamed["Arn"]) == (created["UserId"], f"arn:aws:iam::{ACCOUNT}:user/moved/{new_name}")
    assert aws_error(iam.get_user, UserName=user_name) == (
        "NoSuchEntity", 404, f"The user with name {user_name} cannot be found.")
    iam.delete_user(UserName=new_name)
    assert aws_error(iam.delete_user, UserName=new_name) == (
        "NoSuchEntity", 404, f"The user with name {new_name} cannot be found.")


def test_user_names_are_unique_whatever_their_case(iam):
    user_name = name("Dup")
    iam.create_user(UserName=user_name)
    assert aws_error(iam.create_user, UserName=user_name.lower()) == (
        "EntityAlreadyExists", 409, f"User with name {user_name.lower()} already exists.")
    other = name("other")
    iam.create_user(UserName=other)
    assert aws_error(iam.update_user, UserName=other, NewUserName=user_name.upper()) == (
        "EntityAlreadyExists", 409, f"User with name {user_name.upper()} already exists.")


def test_get_user_without_a_name_is_the_caller_the_root_under_open(iam):
    user = iam.get_user()["User"]
    assert (user["UserId"], user["Arn"]) == (ACCOUNT, f"arn:aws:iam::{ACCOUNT}:root")


@pytest.mark.parametrize("bad, constraint", [
    ("bad name", r"Member must satisfy regular expression pattern: [\w+=,.@-]+"),
    ("x" * 65, "Member must have length less than or equal to 64"),
    ("a'; DROP TABLE iam_users; --", r"Member must satisfy regular expression pattern: [\w+=,.@-]+"),
    ("<script>", r"Member must satisfy regular expression pattern: [\w+=,.@-]+"),
])
def test_a_bad_user_name_is_a_validation_error_in_iams_words(iam, bad, constraint):
    assert aws_error(iam.create_user, UserName=bad) == (
        "ValidationError", 400, f"1 validation error detected: Value '{bad}' at 'userName' failed to satisfy "
                                f"constraint: {constraint}")


def test_a_bad_path_is_a_validation_error(iam):
    code, status, message = aws_error(iam.create_user, UserName=name(), Path="no-slashes")
    assert (code, status) == ("ValidationError", 400)
    assert message.startswith("1 validation error detected: Value 'no-slashes' at 'path' failed to satisfy constraint")


# -- access keys ------------------------------------------------------------------------------------


def test_access_keys_are_created_listed_deactivated_and_deleted_two_at_most(iam):
    user_name = name("keys")
    iam.create_user(UserName=user_name)
    key = iam.create_access_key(UserName=user_name)["AccessKey"]
    assert set(key) == {"UserName", "AccessKeyId", "Status", "SecretAccessKey", "CreateDate"}
    assert key["UserName"] == user_name and key["Status"] == "Active" and recent(key["CreateDate"])
    assert re.fullmatch(r"AKIA[A-Z0-9]{16}", key["AccessKeyId"])
    assert len(key["SecretAccessKey"]) == 40
    second = iam.create_access_key(UserName=user_name.upper())["AccessKey"]
    assert second["AccessKeyId"] != key["AccessKeyId"] and second["SecretAccessKey"] != key["SecretAccessKey"]
    assert aws_error(iam.create_access_key, UserName=user_name) == (
        "LimitExceeded", 409, "Cannot exceed quota for AccessKeysPerUser: 2")

    listed = iam.list_access_keys(UserName=user_name)["AccessKeyMetadata"]
    assert sorted(k["AccessKeyId"] for k in listed) == sorted([key["AccessKeyId"], second["AccessKeyId"]])
    assert all(set(k) == {"UserName", "AccessKeyId", "Status", "CreateDate"} for k in listed)  # no secret
    iam.update_access_key(UserName=user_name, AccessKeyId=key["AccessKeyId"], Status="Inactive")
    statuses = {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=user_name)["AccessKeyMetadata"]}
    assert statuses == {key["AccessKeyId"]: "Inactive", second["AccessKeyId"]: "Active"}
    iam.delete_access_key(UserName=user_name, AccessKeyId=key["AccessKeyId"])
    assert [k["AccessKeyId"] for k in iam.list_access_keys(UserName=user_name)["AccessKeyMetadata"]] == [
        second["AccessKeyId"]]
    assert aws_error(iam.delete_access_key, UserName=user_name, AccessKeyId=key["AccessKeyId"]) == (
        "NoSuchEntity", 404, f"The Access Key with id {key['AccessKeyId']} cannot be found")
    iam.create_access_key(UserName=user_name)  # one was deleted: room for another


def test_an_access_key_belongs_to_its_user(iam):
    owner, other = name("owner"), name("other")
    iam.create_user(UserName=owner)
    iam.create_user(UserName=other)
    key_id = iam.create_access_key(UserName=owner)["AccessKey"]["AccessKeyId"]
    assert aws_error(iam.update_access_key, UserName=other, AccessKeyId=key_id, Status="Inactive") == (
        "NoSuchEntity", 404, f"The Access Key with id {key_id} cannot be found")
    missing = name("missing")
    assert aws_error(iam.create_access_key, UserName=missing) == (
        "NoSuchEntity", 404, f"The user with name {missing} cannot be found.")
    assert aws_error(iam.list_access_keys, UserName=missing)[:2] == ("NoSuchEntity", 404)


def test_delete_user_is_refused_while_it_has_keys_or_policies(iam):
    user_name = name("busy")
    iam.create_user(UserName=user_name)
    key_id = iam.create_access_key(UserName=user_name)["AccessKey"]["AccessKeyId"]
    arn = iam.create_policy(PolicyName=name("p"), PolicyDocument=json.dumps(ALLOW_LOGS))["Policy"]["Arn"]
    iam.attach_user_policy(UserName=user_name, PolicyArn=arn)
    iam.put_user_policy(UserName=user_name, PolicyName="inline", PolicyDocument=json.dumps(ALLOW_LOGS))
    assert aws_error(iam.delete_user, UserName=user_name) == (
        "DeleteConflict", 409, "Cannot delete entity, must delete access keys first.")
    iam.delete_access_key(UserName=user_name, AccessKeyId=key_id)
    assert aws_error(iam.delete_user, UserName=user_name) == (
        "DeleteConflict", 409, "Cannot delete entity, must detach all policies first.")
    iam.detach_user_policy(UserName=user_name, PolicyArn=arn)
    assert aws_error(iam.delete_user, UserName=user_name) == (
        "DeleteConflict", 409, "Cannot delete entity, must delete policies first.")
    iam.delete_user_policy(UserName=user_name, PolicyName="INLINE")
    iam.delete_user(UserName=user_name)
    iam.delete_policy(PolicyArn=arn)


# -- roles ------------------------------------------------------------------------------------------


def test_a_role_is_created_read_listed_and_deleted(iam):
    role_name = name("Role")
    created = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=TRUST, Path="/service/",
                              Description="runs functions", MaxSessionDuration=7200)["Role"]
    assert created["RoleName"] == role_name and created["Path"] == "/service/"
    assert re.fullmatch(r"AROA[A-Z0-9]{17}", created["RoleId"])
    assert created["Arn"] == f"arn:aws:iam::{ACCOUNT}:role/service/{role_name}"
    assert created["AssumeRolePolicyDocument"] == json.loads(TRUST)  # answered URL-encoded, decoded by boto3
    assert (created["Description"], created["MaxSessionDuration"]) == ("runs functions", 7200)
    assert recent(created["CreateDate"])
    got = iam.get_role(RoleName=role_name.lower())["Role"]
    assert got == {**created, "RoleLastUsed": {}}
    assert created in iam.list_roles(PathPrefix="/service/")["Roles"]
    assert aws_error(iam.create_role, RoleName=role_name.upper(), AssumeRolePolicyDocument=TRUST) == (
        "EntityAlreadyExists", 409, f"Role with name {role_name.upper()} already exists.")

    plain = iam.create_role(RoleName=name("plain"), AssumeRolePolicyDocument=TRUST)["Role"]
    assert plain["MaxSessionDuration"] == 3600 and plain["Path"] == "/" and "Description" not in plain

    iam.delete_role(RoleName=role_name)
    assert aws_error(iam.get_role, RoleName=role_name) == (
        "NoSuchEntity", 404, f"The role with name {role_name} cannot be found.")
    assert aws_error(iam.delete_role, RoleName=role_name)[:2] == ("NoSuchEntity", 404)


@pytest.mark.parametrize("duration, constraint", [
    (3599, "Member must have value greater than or equal to 3600"),
    (43201, "Member must have value less than or equal to 43200"),
])
def test_max_session_duration_is_within_an_hour_and_twelve(iam, duration, constraint):
    assert aws_error(iam.create_role, RoleName=name(), AssumeRolePolicyDocument=TRUST,
                     MaxSessionDuration=duration) == (
        "ValidationError", 400, f"1 validation error detected: Value '{duration}' at 'maxSessionDuration' failed "
                                f"to satisfy constraint: {constraint}")


def test_the_trust_policy_is_replaced(iam):
    role_name = name("trust")
    iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=TRUST)
    other = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]}
    iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=json.dumps(other))
    assert iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"] == other
    assert aws_error(iam.update_assume_role_policy, RoleName=role_name, PolicyDocument="{nope") == (
        "MalformedPolicyDocument", 400, "Syntax errors in policy.")
    missing = name("missing")
    assert aws_error(iam.update_assume_role_policy, RoleName=missing, PolicyDocument=TRUST) == (
        "NoSuchEntity", 404, f"The role with name {missing} cannot be found.")


def test_delete_role_is_refused_while_it_has_policies(iam):
    role_name = name("busy-role")
    iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=TRUST)
    arn = iam.create_policy(PolicyName=name("p"), PolicyDocument=json.dumps(ALLOW_LOGS))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=role_name, PolicyArn=arn)
    iam.put_role_policy(RoleName=role_name, PolicyName="inline", PolicyDocument=json.dumps(ALLOW_LOGS))
    assert aws_error(iam.delete_role, RoleName=role_name) == (
        "DeleteConflict", 409, "Cannot delete entity, must detach all policies first.")
    iam.detach_role_policy(RoleName=role_name, PolicyArn=arn)
    assert aws_error(iam.delete_role, RoleName=role_name) == (
        "DeleteConflict", 409, "Cannot delete entity, must delete policies first.")
    iam.delete_role_policy(RoleName=role_name, PolicyName="inline")
    iam.delete_role(RoleName=role_name)


# -- inline policies --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["user", "role"])
def test_inline_policies_are_put_read_listed_replaced_and_deleted(iam, kind):
    owner = name(kind)
    if kind == "user":
        iam.create_user(UserName=owner)
        put, get, list_, delete = iam.put_user_policy, iam.get_user_policy, iam.list_user_policies, iam.delete_user_policy
        owner_param = "UserName"
    else:
        iam.create_role(RoleName=owner, AssumeRolePolicyDocument=TRUST)
        put, get, list_, delete = iam.put_role_policy, iam.get_role_policy, iam.list_role_policies, iam.delete_role_policy
        owner_param = "RoleName"
    put(**{owner_param: owner}, PolicyName="Logs", PolicyDocument=json.dumps(ALLOW_LOGS))
    put(**{owner_param: owner}, PolicyName="another", PolicyDocument=json.dumps(ALLOW_LOGS))
    answer = get(**{owner_param: owner.upper()}, PolicyName="logs")
    assert {k: v for k, v in answer.items() if k != "ResponseMetadata"} == {
        owner_param: owner, "PolicyName": "Logs", "PolicyDocument": ALLOW_LOGS}
    assert list_(**{owner_param: owner})["PolicyNames"] == ["another", "Logs"]
    replaced = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}
    put(**{owner_param: owner}, PolicyName="Logs", PolicyDocument=json.dumps(replaced))
    assert get(**{owner_param: owner}, PolicyName="Logs")["PolicyDocument"] == replaced
    assert list_(**{owner_param: owner})["PolicyNames"] == ["another", "Logs"]
    delete(**{owner_param: owner}, PolicyName="Logs")
    assert aws_error(get, **{owner_param: owner}, PolicyName="Logs") == (
        "NoSuchEntity", 404, f"The {kind} policy with name Logs cannot be found.")
    assert aws_error(delete, **{owner_param: owner}, PolicyName="Logs") == (
        "NoSuchEntity", 404, f"The {kind} policy with name Logs cannot be found.")
    missing = name("missing")
    assert aws_error(put, **{owner_param: missing}, PolicyName="p", PolicyDocument=json.dumps(ALLOW_LOGS)) == (
        "NoSuchEntity", 404, f"The {kind} with name {missing} cannot be found.")


def test_inline_policies_of_a_user_are_limited_together(iam):
    user_name = name("quota")
    iam.create_user(UserName=user_name)
    half = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                                               "Resource": "arn:aws:s3:::" + "b" * 1000}]})
    iam.put_user_policy(UserName=user_name, PolicyName="one", PolicyDocument=half)
    assert aws_error(iam.put_user_policy, UserName=user_name, PolicyName="two", PolicyDocument=half) == (
        "LimitExceeded", 409, f"Maximum policy size of 2048 bytes exceeded for user {user_name}")
    iam.put_user_policy(UserName=user_name, PolicyName="one", PolicyDocument=half)  # replacing is not adding
    spaced = json.dumps(ALLOW_LOGS, indent=400)  # white space does not count
    assert len(spaced) > 2048
    iam.put_user_policy(UserName=user_name, PolicyName="spaced", PolicyDocument=spaced)


def test_inline_policies_of_a_role_may_be_larger(iam):
    role_name = name("quota-role")
    iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=TRUST)
    big = json.dumps({"Version": "2012-10-17",
                      "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::" + "x" * 5200}]})
    iam.put_role_policy(RoleName=role_name, PolicyName="one", PolicyDocument=big)
    assert aws_error(iam.put_role_policy, RoleName=role_name, PolicyName="two", PolicyDocument=big) == (
        "LimitExceeded", 409, f"Maximum policy size of 10240 bytes exceeded for role {role_name}")


# -- managed policies ---------------------------------------------------------------------------------


def test_a_managed_policy_is_created_read_and_listed(iam):
    policy_name = name("Policy")
    created = iam.create_policy(PolicyName=policy_name, Path="/app/", PolicyDocument=json.dumps(ALLOW_LOGS),
                                Description="logs for the app")["Policy"]
    assert created["Arn"] == f"arn:aws:iam::{ACCOUNT}:policy/app/{policy_name}"
    assert re.fullmatch(r"ANPA[A-Z0-9]{17}", created["PolicyId"])
    assert {k: created[k] for k in ("PolicyName", "Path", "DefaultVersionId", "AttachmentCount",
                                    "PermissionsBoundaryUsageCount", "IsAttachable")} == {
        "PolicyName": policy_name, "Path": "/app/", "DefaultVersionId": "v1", "AttachmentCount": 0,
        "PermissionsBoundaryUsageCount": 0, "IsAttachable": True}
    assert recent(created["CreateDate"]) and created["UpdateDate"] == created["CreateDate"]
    got = iam.get_policy(PolicyArn=created["Arn"])["Policy"]
    assert got == {**created, "Description": "logs for the app"}
    version = iam.get_policy_version(PolicyArn=created["Arn"], VersionId="v1")["PolicyVersion"]
    assert version == {"Document": ALLOW_LOGS, "VersionId": "v1", "IsDefaultVersion": True,
                       "CreateDate": created["CreateDate"]}
    assert aws_error(iam.get_policy_version, PolicyArn=created["Arn"], VersionId="v2") == (
        "NoSuchEntity", 404, f"Policy {created['Arn']} version v2 does not exist or is not attachable.")
    assert got in iam.list_policies(Scope="Local", PathPrefix="/app/")["Policies"] or \
        {k: v for k, v in got.items() if k != "Description"} in iam.list_policies(Scope="Local")["Policies"]
    assert iam.list_policies(Scope="AWS")["Policies"] == []
    assert aws_error(iam.create_policy, PolicyName=policy_name.lower(), PolicyDocument=json.dumps(ALLOW_LOGS)) == (
        "EntityAlreadyExists", 409,
        f"A policy called {policy_name.lower()} already exists. Duplicate names are not allowed.")


def test_managed_policies_are_attached_listed_detached_and_deleted(iam):
    user_name, role_name = name("u"), name("r")
    iam.create_user(UserName=user_name)
    iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=TRUST)
    policy = iam.create_policy(PolicyName=name("shared"), PolicyDocument=json.dumps(ALLOW_LOGS))["Policy"]
    arn = policy["Arn"]
    iam.attach_user_policy(UserName=user_name, PolicyArn=arn)
    iam.attach_user_policy(UserName=user_name, PolicyArn=arn)  # twice: still one attachment
    iam.attach_role_policy(RoleName=role_name, PolicyArn=arn)
    attached = {"PolicyName": policy["PolicyName"], "PolicyArn": arn}
    assert iam.list_attached_user_policies(UserName=user_name)["AttachedPolicies"] == [attached]
    assert iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"] == [attached]
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 2
    assert arn in [p["Arn"] for p in iam.list_policies(OnlyAttached=True)["Policies"]]
    assert aws_error(iam.delete_policy, PolicyArn=arn) == (
        "DeleteConflict", 409, "Cannot delete a policy attached to entities.")
    iam.detach_user_policy(UserName=user_name, PolicyArn=arn)
    iam.detach_role_policy(RoleName=role_name, PolicyArn=arn)
    assert iam.list_attached_user_policies(UserName=user_name)["AttachedPolicies"] == []
    assert arn not in [p["Arn"] for p in iam.list_policies(OnlyAttached=True)["Policies"]]
    assert aws_error(iam.detach_role_policy, RoleName=role_name, PolicyArn=arn) == (
        "NoSuchEntity", 404, f"Policy {arn} was not found.")
    iam.delete_policy(PolicyArn=arn)
    assert aws_error(iam.get_policy, PolicyArn=arn) == ("NoSuchEntity", 404, f"Policy {arn} was not found.")
    assert aws_error(iam.attach_role_policy, RoleName=role_name, PolicyArn=arn) == (
        "NoSuchEntity", 404, f"Policy {arn} does not exist or is not attachable.")


def test_aws_managed_and_malformed_policy_arns(iam):
    role_name = name("r")
    iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=TRUST)
    aws_managed = "arn:aws:iam::aws:policy/AdministratorAccess"
    assert aws_error(iam.attach_role_policy, RoleName=role_name, PolicyArn=aws_managed) == (
        "NoSuchEntity", 404, f"Policy {aws_managed} does not exist or is not attachable.")
    assert aws_error(iam.get_policy, PolicyArn="not-an-arn-but-long-enough") == (
        "InvalidInput", 400, "ARN not-an-arn-but-long-enough is not valid.")
    other_account = "arn:aws:iam::111111111111:policy/theirs"
    assert aws_error(iam.get_policy, PolicyArn=other_account) == (
        "NoSuchEntity", 404, f"Policy {other_account} was not found.")
    missing_user = name("nobody")
    assert aws_error(iam.attach_user_policy, UserName=missing_user, PolicyArn=aws_managed) == (
        "NoSuchEntity", 404, f"The user with name {missing_user} cannot be found.")


# -- policy documents ------------------------------------------------------------------------------


@pytest.mark.parametrize("document", ["{not json", "[1, 2]", '"a string"', "[" * 60000 + "]" * 60000])
def test_a_document_that_is_not_a_json_object_is_malformed(iam, document):
    expected = ("MalformedPolicyDocument", 400, "Syntax errors in policy.")
    assert aws_error(iam.create_policy, PolicyName=name(), PolicyDocument=document) == expected
    assert aws_error(iam.create_role, RoleName=name(), AssumeRolePolicyDocument=document) == expected
    user_name = name("u")
    iam.create_user(UserName=user_name)
    assert aws_error(iam.put_user_policy, UserName=user_name, PolicyName="p", PolicyDocument=document) == expected


def test_policy_size_quotas(iam):
    big = json.dumps({"Version": "2012-10-17",
                      "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::" + "x" * 6200}]})
    assert aws_error(iam.create_policy, PolicyName=name(), PolicyDocument=big) == (
        "LimitExceeded", 409, "Cannot exceed quota for PolicySize: 6144")
    iam.create_policy(PolicyName=name(), PolicyDocument=json.dumps(ALLOW_LOGS, indent=200))  # white space is free
    big_trust = json.dumps({**json.loads(TRUST), "Id": "x" * 2100})
    assert aws_error(iam.create_role, RoleName=name(), AssumeRolePolicyDocument=big_trust) == (
        "LimitExceeded", 409, "Cannot exceed quota for ACLSizePerRole: 2048")


def test_hostile_documents_are_iam_errors(iam, srv):
    huge = json.dumps({"Statement": [], "Id": "x" * 140_000})
    code, status, message = aws_error(iam.create_policy, PolicyName=name(), PolicyDocument=huge)
    assert (code, status) == ("ValidationError", 400)
    assert message.endswith("Member must have length less than or equal to 131072")
    code, status, message = aws_error(iam.create_policy, PolicyName=name(), PolicyDocument='{"Id": "\u2603"}')
    assert (code, status) == ("ValidationError", 400) and "regular expression pattern" in message
    status, body = post(srv, {"Action": "CreatePolicy", "Version": "2010-05-08", "PolicyName": name(),
                              "PolicyDocument": '{"Id": "\x00"}'})
    assert status == 400 and "<Code>ValidationError</Code>" in body


# -- the protocol itself ------------------------------------------------------------------------------


def test_raw_requests_get_iams_xml(srv):
    status, body = post(srv, {"Action": "CreateGroup", "Version": "2010-05-08", "GroupName": "g"})
    assert status == 400
    assert '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">' in body
    assert "<Type>Sender</Type><Code>InvalidAction</Code>" in body
    assert "Could not find operation CreateGroup for version 2010-05-08" in body
    status, body = post(srv, {"Action": "CreateUser", "Version": "2010-05-08"})
    assert status == 400 and ("<Message>1 validation error detected: Value null at 'userName' failed to satisfy "
                              "constraint: Member must not be null</Message>") in body
    status, body = post(srv, {"Action": "ListUsers", "Version": "2010-05-08", "MaxItems": "lots"})
    assert status == 400 and "<Code>ValidationError</Code>" in body
    status, body = post(srv, {"Action": "ListUsers", "Version": "2010-05-08"})
    assert status == 200 and body.startswith('<ListUsersResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">')
    status, body = post(srv, {"Action": "DeleteUser", "Version": "2010-05-08", "UserName": name()})
    assert status == 404 and "<Code>NoSuchEntity</Code>" in body
    status, body = post(srv, b"Action=ListUsers&Version=2010-05-08&PathPrefix=%ff%fe&Marker=%00")
    assert status == 400 and "<Code>ValidationError</Code>" in body
    status, body = post(srv, {"Action": "GetCallerIdentity", "Version": "2011-06-15"})  # STS, as before
    assert status == 200 and 'xmlns="https://sts.amazonaws.com/doc/2011-06-15/"' in body


def test_lists_are_paginated(iam):
    prefix = f"/page{uuid.uuid4().hex[:6]}/"
    names = sorted(name("pg") for _ in range(5))
    for user_name in names:
        iam.create_user(UserName=user_name, Path=prefix)
    first = iam.list_users(PathPrefix=prefix, MaxItems=2)
    assert [u["UserName"] for u in first["Users"]] == names[:2] and first["IsTruncated"] is True
    second = iam.list_users(PathPrefix=prefix, MaxItems=2, Marker=first["Marker"])
    assert [u["UserName"] for u in second["Users"]] == names[2:4]
    paged = [u["UserName"] for p in iam.get_paginator("list_users").paginate(PathPrefix=prefix,
                                                                              PaginationConfig={"PageSize": 2})
             for u in p["Users"]]
    assert paged == names


def test_the_aws_cli_manages_users_and_roles(srv):
    user_name, role_name = name("cli"), name("cli-role")
    user = json.loads(aws_cli(srv, "iam", "create-user", "--user-name", user_name).stdout)["User"]
    assert user["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/{user_name}"
    aws_cli(srv, "iam", "create-role", "--role-name", role_name, "--assume-role-policy-document", TRUST)
    role = json.loads(aws_cli(srv, "iam", "get-role", "--role-name", role_name).stdout)["Role"]
    assert role["AssumeRolePolicyDocument"] == json.loads(TRUST)
    aws_cli(srv, "iam", "put-role-policy", "--role-name", role_name, "--policy-name", "logs",
            "--policy-document", json.dumps(ALLOW_LOGS))
    assert json.loads(aws_cli(srv, "iam", "list-role-policies", "--role-name", role_name).stdout)[
        "PolicyNames"] == ["logs"]
    failed = aws_cli(srv, "iam", "get-user", "--user-name", name("nobody"), check=False)
    assert failed.returncode != 0 and b"NoSuchEntity" in failed.stderr


def test_what_iam_keeps_survives_a_restart(tmp_path):
    with running(Server(tmp_path / "data")) as server:
        iam = server.client("iam")
        user = iam.create_user(UserName="kept")["User"]
        key = iam.create_access_key(UserName="kept")["AccessKey"]
        role = iam.create_role(RoleName="kept-role", AssumeRolePolicyDocument=TRUST)["Role"]
        arn = iam.create_policy(PolicyName="kept-policy", PolicyDocument=json.dumps(ALLOW_LOGS))["Policy"]["Arn"]
        iam.attach_role_policy(RoleName="kept-role", PolicyArn=arn)
        iam.put_user_policy(UserName="kept", PolicyName="inline", PolicyDocument=json.dumps(ALLOW_LOGS))
        server.restart()
        iam = server.client("iam")
        assert iam.get_user(UserName="kept")["User"] == user
        assert iam.get_role(RoleName="kept-role")["Role"]["RoleId"] == role["RoleId"]
        assert [k["AccessKeyId"] for k in iam.list_access_keys(UserName="kept")["AccessKeyMetadata"]] == [
            key["AccessKeyId"]]
        assert iam.list_attached_role_policies(RoleName="kept-role")["AttachedPolicies"][0]["PolicyArn"] == arn
        assert iam.get_user_policy(UserName="kept", PolicyName="inline")["PolicyDocument"] == ALLOW_LOGS
        assert aws_error(iam.create_user, UserName="KEPT")[:2] == ("EntityAlreadyExists", 409)


def test_under_auth_iam_the_root_key_signs_iam_requests(tmp_path):
    env = {"LAMBDALET_ROOT_ACCESS_KEY_ID": ROOT_KEY, "LAMBDALET_ROOT_SECRET_ACCESS_KEY": ROOT_SECRET}
    with running(Server(tmp_path / "data", extra_env=env, args=["--auth", "iam"])) as server:
        def client(service: str, key: str = ROOT_KEY, secret: str = ROOT_SECRET):
            return boto3.client(service, endpoint_url=server.url, region_name="us-east-1", aws_access_key_id=key,
                                aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}))

        iam = client("iam")
        created = iam.create_user(UserName="signed")["User"]
        assert iam.get_user(UserName="signed")["User"] == created
        assert iam.get_user()["User"]["Arn"] == f"arn:aws:iam::{ACCOUNT}:root"
        assert client("sts").get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT}:root"
        assert aws_error(client("iam", key="AKIAUNKNOWNKEY000001").list_users)[:2] == ("InvalidClientTokenId", 403)
        assert aws_error(client("iam", secret="not-the-secret-0000000000000000").list_users)[:2] == (
            "SignatureDoesNotMatch", 403)
        listed = json.loads(aws_cli(server, "iam", "list-users", credentials=(ROOT_KEY, ROOT_SECRET)).stdout)
        assert [u["UserName"] for u in listed["Users"]] == ["signed"]


def test_concurrent_writes_keep_iams_rules(srv):
    """Writes racing each other: two keys per user and one user per name, whoever comes first."""
    from concurrent.futures import ThreadPoolExecutor

    user_name = name("race")
    clients = [srv.client("iam") for _ in range(8)]

    def outcome(call, **params) -> str:
        try:
            call(**params)
            return "ok"
        except Exception as exc:  # the error's code: what the test compares
            return exc.response["Error"]["Code"]  # type: ignore[attr-defined]

    with ThreadPoolExecutor(8) as pool:
        users = list(pool.map(lambda c: outcome(c.create_user, UserName=user_name), clients))
        keys = list(pool.map(lambda c: outcome(c.create_access_key, UserName=user_name), clients))
    assert sorted(users) == ["EntityAlreadyExists"] * 7 + ["ok"]
    assert sorted(keys) == ["LimitExceeded"] * 6 + ["ok"] * 2
    assert len(clients[0].list_access_keys(UserName=user_name)["AccessKeyMetadata"]) == 2


def test_tags_and_permissions_boundaries_are_refused_not_ignored(iam):
    code, status, message = aws_error(iam.create_user, UserName=name(), Tags=[{"Key": "team", "Value": "a"}])
    assert (code, status) == ("InvalidInput", 400) and message.startswith("Tags is not supported")
    code, _, message = aws_error(iam.create_role, RoleName=name(), AssumeRolePolicyDocument=TRUST,
                                 PermissionsBoundary="arn:aws:iam::000000000000:policy/boundary")
    assert code == "InvalidInput" and message.startswith("PermissionsBoundary is not supported")
