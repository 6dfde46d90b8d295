"""Two accounts on one `--auth iam` server: cross-account access as AWS evaluates it (issue 18, items 2 and 5).

Account A (`--account-id`) keeps the functions and layers; account B, from the same accounts file,
has its root key and IAM users of its own. B's callers reach A's function by ARN only where A's
resource policy (AddPermission) allows *and* their own identity policies allow; B's root needs
only the former. Cross-account AssumeRole, layer version permissions, and what B sees of its
own (empty) Lambda namespace are checked too.
"""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config

from conftest import Server, make_zip, running

from .helpers import aws_error

A, B = "000000000000", "111111111111"
KEYS = {A: ("AKIAACCOUNTAROOT0001", "secret-of-account-a-0123456789"),
        B: ("AKIAACCOUNTBROOT0001", "secret-of-account-b-0123456789")}
FUNCTION = f"arn:aws:lambda:us-east-1:{A}:function:shared"
CODE = make_zip({"app.py": "def handler(event, context):\n    return {'ok': True}\n"})
LAYER_ZIP = make_zip({"python/lib.py": "X = 1\n"})


def client(srv: Server, service: str, key: str, secret: str, token: str | None = None):
    return boto3.client(service, endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id=key,
                        aws_secret_access_key=secret, aws_session_token=token,
                        config=Config(retries={"max_attempts": 1}))


def root(srv: Server, account: str, service: str = "lambda"):
    return client(srv, service, *KEYS[account])


def allow(action: str, resource: str = "*") -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action,
                                                                "Resource": resource}]})


def user(srv: Server, account: str, name: str, *policies: str) -> tuple[str, str]:
    iam = root(srv, account, "iam")
    iam.create_user(UserName=name)
    for number, document in enumerate(policies):
        iam.put_user_policy(UserName=name, PolicyName=f"p{number}", PolicyDocument=document)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    data = tmp_path_factory.mktemp("accounts")
    accounts = data.parent / f"{data.name}-accounts.toml"
    accounts.write_text("".join(f'[[account]]\nid = "{account}"\nroot_access_key_id = "{key}"\n'
                                f'root_secret_access_key = "{secret}"\n' for account, (key, secret) in KEYS.items()))
    with running(Server(data, args=["--auth", "iam", "--accounts-file", str(accounts), "--account-id", A])) as server:
        root(server, A, "iam").create_role(RoleName="fn", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "lambda.amazonaws.com"}}]}))
        lam = root(server, A)
        lam.create_function(FunctionName="shared", Runtime="python3.12", Role=f"arn:aws:iam::{A}:role/fn",
                            Handler="app.handler", Code={"ZipFile": CODE})
        lam.get_waiter("function_active_v2").wait(FunctionName="shared")
        yield server


def test_another_account_invokes_only_where_the_resource_policy_and_its_own_policies_allow(srv):
    bob = user(srv, B, "bob", allow("lambda:InvokeFunction", FUNCTION))
    eve = user(srv, B, "eve")
    assert client(srv, "sts", *bob).get_caller_identity()["Arn"] == f"arn:aws:iam::{B}:user/bob"
    as_bob, as_eve = client(srv, "lambda", *bob), client(srv, "lambda", *eve)
    assert aws_error(as_bob.invoke, FunctionName=FUNCTION, Payload=b"{}") == (
        "AccessDeniedException", 403,
        f"User: arn:aws:iam::{B}:user/bob is not authorized to perform: lambda:InvokeFunction on resource: "
        f"{FUNCTION} because no resource-based policy allows the lambda:InvokeFunction action")
    assert aws_error(root(srv, B).invoke, FunctionName=FUNCTION, Payload=b"{}")[0] == "AccessDeniedException"
    root(srv, A).add_permission(FunctionName="shared", StatementId="account-b", Action="lambda:InvokeFunction",
                                Principal=B)
    try:
        assert json.loads(as_bob.invoke(FunctionName=FUNCTION, Payload=b"{}")["Payload"].read()) == {"ok": True}
        assert json.loads(root(srv, B).invoke(FunctionName=FUNCTION, Payload=b"{}")["Payload"].read()) == {"ok": True}
        # the resource policy names account B, but eve's own policies do not allow it: both must, across accounts
        assert aws_error(as_eve.invoke, FunctionName=FUNCTION, Payload=b"{}") == (
            "AccessDeniedException", 403,
            f"User: arn:aws:iam::{B}:user/eve is not authorized to perform: lambda:InvokeFunction on resource: "
            f"{FUNCTION} because no identity-based policy allows the lambda:InvokeFunction action")
        assert aws_error(as_bob.get_function, FunctionName=FUNCTION)[0] == "AccessDeniedException"  # invoke only
    finally:
        root(srv, A).remove_permission(FunctionName="shared", StatementId="account-b")
    assert aws_error(as_bob.invoke, FunctionName=FUNCTION, Payload=b"{}")[0] == "AccessDeniedException"


def test_another_account_sees_its_own_lambda_namespace_empty(srv):
    lam = root(srv, B)
    assert lam.list_functions()["Functions"] == []
    assert lam.list_layers()["Layers"] == []
    assert aws_error(lam.get_function, FunctionName="shared") == (
        "ResourceNotFoundException", 404, f"Function not found: arn:aws:lambda:us-east-1:{B}:function:shared")
    code, status, message = aws_error(lam.create_function, FunctionName="mine", Runtime="python3.12",
                                      Role=f"arn:aws:iam::{B}:role/x", Handler="app.handler", Code={"ZipFile": CODE})
    assert (code, status) == ("InvalidParameterValueException", 400)
    assert message.startswith(f"This server keeps the Lambda resources of account {A} only")
    # IAM is the account's own: B's users are not A's
    assert [u["UserName"] for u in root(srv, A, "iam").list_users()["Users"]] == []


def test_a_role_of_one_account_is_assumed_from_the_other(srv):
    iam_a = root(srv, A, "iam")
    role = iam_a.create_role(RoleName="cross", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"AWS": f"arn:aws:iam::{B}:root"}}]}))["Role"]
    iam_a.put_role_policy(RoleName="cross", PolicyName="read", PolicyDocument=allow("lambda:GetFunction", FUNCTION))
    carol = user(srv, B, "carol", allow("sts:AssumeRole", role["Arn"]))
    dave = user(srv, B, "dave")
    assumed = client(srv, "sts", *carol).assume_role(RoleArn=role["Arn"], RoleSessionName="carol")
    credentials = assumed["Credentials"]
    assert assumed["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{A}:assumed-role/cross/carol"
    session = client(srv, "lambda", credentials["AccessKeyId"], credentials["SecretAccessKey"],
                     credentials["SessionToken"])
    assert session.get_function(FunctionName="shared")["Configuration"]["FunctionArn"] == FUNCTION
    # the trust policy names account B, so B's identity policies decide: dave's allow nothing
    assert aws_error(client(srv, "sts", *dave).assume_role, RoleArn=role["Arn"], RoleSessionName="dave")[:2] == (
        "AccessDenied", 403)


def test_layer_version_permissions_let_another_account_use_a_layer(srv):
    lam = root(srv, A)
    shared = lam.publish_layer_version(LayerName="shared-lib", Content={"ZipFile": LAYER_ZIP})["LayerVersionArn"]
    private = lam.publish_layer_version(LayerName="private-lib", Content={"ZipFile": LAYER_ZIP})["LayerVersionArn"]
    lam.add_layer_version_permission(LayerName="shared-lib", VersionNumber=1, StatementId="b",
                                     Action="lambda:GetLayerVersion", Principal=B)
    other = root(srv, B)
    assert other.get_layer_version_by_arn(Arn=shared)["LayerVersionArn"] == shared
    code, status, message = aws_error(other.get_layer_version_by_arn, Arn=private)
    assert (code, status) == ("AccessDeniedException", 403)
    assert message.endswith("because no resource-based policy allows the lambda:GetLayerVersion action")


def test_another_account_has_no_logs_or_schedules_of_its_own_here(srv):
    root(srv, A).invoke(FunctionName="shared", Payload=b"{}")  # account A has a log group now
    assert any(group["logGroupName"] == "/aws/lambda/shared"
               for group in root(srv, A, "logs").describe_log_groups()["logGroups"])
    logs = root(srv, B, "logs")
    assert logs.describe_log_groups()["logGroups"] == []
    assert aws_error(logs.describe_log_streams, logGroupName="/aws/lambda/shared") == (
        "ResourceNotFoundException", 400, "The specified log group does not exist.")
    code, status, message = aws_error(logs.create_log_group, logGroupName="mine")
    assert (code, status) == ("InvalidParameterException", 400) and f"logs of account {A} only" in message
    scheduler = root(srv, B, "scheduler")
    assert scheduler.list_schedules()["Schedules"] == []
    assert scheduler.list_schedule_groups()["ScheduleGroups"] == []
    assert aws_error(scheduler.get_schedule, Name="nightly")[:2] == ("ResourceNotFoundException", 404)
    code, status, message = aws_error(scheduler.create_schedule, Name="nightly", ScheduleExpression="rate(1 hour)",
                                      FlexibleTimeWindow={"Mode": "OFF"},
                                      Target={"Arn": FUNCTION, "RoleArn": f"arn:aws:iam::{B}:role/x"})
    assert (code, status) == ("ValidationException", 400) and f"schedules of account {A} only" in message
    # a user of B is authorised by its own policies on its own (empty) logs
    reader = user(srv, B, "log-reader", allow("logs:DescribeLogGroups"))
    assert client(srv, "logs", *reader).describe_log_groups()["logGroups"] == []
    assert aws_error(client(srv, "scheduler", *reader).list_schedules)[:2] == ("AccessDeniedException", 403)
