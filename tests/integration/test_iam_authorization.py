"""`--auth iam` authorisation: IAM users, roles and policies decide who may do what (issue 18, items 4, 5, 7).

A real server in iam mode; the root key creates users, roles and policies through boto3's `iam`
client, and each scenario calls Lambda, CloudWatch Logs, STS, IAM and function URLs as those
users and role sessions, checking AWS's answers: AccessDeniedException with AWS's message,
explicit denies, resource policies from AddPermission, AssumeRole's trust policies, temporary
credentials and policies changed while the server runs.
"""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from conftest import Server, make_zip, running

from .helpers import aws_error

ACCOUNT = "000000000000"
ROOT_KEY = "LKIATESTROOTKEY00002"
ROOT_SECRET = "root-secret-of-the-tests-0123456789"
ROOT = {"LAMBDALET_ROOT_ACCESS_KEY_ID": ROOT_KEY, "LAMBDALET_ROOT_SECRET_ACCESS_KEY": ROOT_SECRET}
CODE = make_zip({"app.py": "import json\ndef handler(event, context):\n"
                           "    return {'statusCode': 200, 'body': json.dumps(event.get('requestContext', event))}\n"})
FN_ARN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:"
LAMBDA_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


def client(srv: Server, service: str = "lambda", key: str = ROOT_KEY, secret: str = ROOT_SECRET,
           token: str | None = None):
    return boto3.client(service, endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id=key,
                        aws_secret_access_key=secret, aws_session_token=token,
                        config=Config(retries={"max_attempts": 1}))


def policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: str | list[str], resource: str | list[str] = "*", **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: str | list[str], resource: str | list[str] = "*") -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with running(Server(tmp_path_factory.mktemp("iam-authz"), extra_env=ROOT, args=["--auth", "iam"])) as server:
        iam = client(server, "iam")
        iam.create_role(RoleName="fn-role", AssumeRolePolicyDocument=LAMBDA_TRUST)
        lam = client(server)
        for name in ("alpha", "beta"):
            lam.create_function(FunctionName=name, Runtime="python3.12", Role=f"arn:aws:iam::{ACCOUNT}:role/fn-role",
                                Handler="app.handler", Code={"ZipFile": CODE})
            lam.get_waiter("function_active_v2").wait(FunctionName=name)
        yield server


def new_user(srv: Server, name: str, *policies: str) -> tuple[str, str]:
    """A user with inline policies, and its access key."""
    iam = client(srv, "iam")
    iam.create_user(UserName=name)
    for number, document in enumerate(policies):
        iam.put_user_policy(UserName=name, PolicyName=f"p{number}", PolicyDocument=document)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def as_user(srv: Server, credentials: tuple[str, str], service: str = "lambda"):
    return client(srv, service, *credentials)


def test_a_user_without_policies_may_do_nothing_but_ask_who_it_is(srv):
    alice = new_user(srv, "alice")
    identity = as_user(srv, alice, "sts").get_caller_identity()
    assert identity["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/alice" and identity["Account"] == ACCOUNT
    assert identity["UserId"].startswith("AIDA")
    assert aws_error(as_user(srv, alice).get_function, FunctionName="alpha") == (
        "AccessDeniedException", 403,
        f"User: arn:aws:iam::{ACCOUNT}:user/alice is not authorized to perform: lambda:GetFunction on resource: "
        f"{FN_ARN}alpha because no identity-based policy allows the lambda:GetFunction action")
    code, status, message = aws_error(as_user(srv, alice).list_functions)
    assert (code, status) == ("AccessDeniedException", 403) and "lambda:ListFunctions on resource: *" in message
    code, status, _ = aws_error(as_user(srv, alice, "iam").create_user, UserName="mallory")
    assert (code, status) == ("AccessDenied", 403)
    code, status, _ = aws_error(as_user(srv, alice, "logs").describe_log_groups)
    assert (code, status) == ("AccessDeniedException", 400)  # CloudWatch Logs' common errors: a 400


def test_a_narrow_policy_allows_exactly_what_it_names(srv):
    bob = new_user(srv, "bob", policy(allow(["lambda:GetFunction", "lambda:InvokeFunction"], FN_ARN + "alpha")))
    lam = as_user(srv, bob)
    assert lam.get_function(FunctionName="alpha")["Configuration"]["FunctionName"] == "alpha"
    assert lam.invoke(FunctionName="alpha", Payload=b"{}")["StatusCode"] == 200
    assert aws_error(lam.get_function, FunctionName="beta")[:2] == ("AccessDeniedException", 403)
    # a version or alias is another resource: function:alpha does not grant function:alpha:$LATEST
    code, _, message = aws_error(lam.invoke, FunctionName="alpha", Qualifier="$LATEST", Payload=b"{}")
    assert code == "AccessDeniedException" and f"on resource: {FN_ARN}alpha:$LATEST " in message
    assert aws_error(lam.delete_function, FunctionName="alpha")[:2] == ("AccessDeniedException", 403)


def test_wildcards_and_an_explicit_deny(srv):
    carol = new_user(srv, "carol", policy(allow("lambda:Get*", FN_ARN + "*")),
                     policy(deny("lambda:GetFunctionConfiguration", FN_ARN + "beta")))
    lam = as_user(srv, carol)
    assert lam.get_function_configuration(FunctionName="alpha")["FunctionName"] == "alpha"
    assert lam.get_function(FunctionName="beta")["Configuration"]["FunctionName"] == "beta"
    assert aws_error(lam.get_function_configuration, FunctionName="beta") == (
        "AccessDeniedException", 403,
        f"User: arn:aws:iam::{ACCOUNT}:user/carol is not authorized to perform: lambda:GetFunctionConfiguration on "
        f"resource: {FN_ARN}beta with an explicit deny in an identity-based policy")


def test_a_policy_changed_while_the_server_runs_applies_to_the_next_request(srv):
    dave = new_user(srv, "dave")
    iam, lam = client(srv, "iam"), as_user(srv, dave)
    assert aws_error(lam.get_function, FunctionName="alpha")[0] == "AccessDeniedException"
    iam.put_user_policy(UserName="dave", PolicyName="read", PolicyDocument=policy(allow("lambda:GetFunction")))
    assert lam.get_function(FunctionName="alpha")["Configuration"]["FunctionName"] == "alpha"
    iam.put_user_policy(UserName="dave", PolicyName="read", PolicyDocument=policy(allow("lambda:ListFunctions")))
    assert aws_error(lam.get_function, FunctionName="alpha")[0] == "AccessDeniedException"
    managed = iam.create_policy(PolicyName="read-alpha", PolicyDocument=policy(
        allow("lambda:GetFunction", FN_ARN + "alpha")))["Policy"]["Arn"]
    iam.attach_user_policy(UserName="dave", PolicyArn=managed)
    assert lam.get_function(FunctionName="alpha")["Configuration"]["FunctionName"] == "alpha"
    iam.detach_user_policy(UserName="dave", PolicyArn=managed)
    assert aws_error(lam.get_function, FunctionName="alpha")[0] == "AccessDeniedException"


def test_an_inactive_or_deleted_access_key_no_longer_authenticates(srv):
    erin = new_user(srv, "erin", policy(allow("lambda:ListFunctions")))
    lam, iam = as_user(srv, erin), client(srv, "iam")
    assert lam.list_functions()["Functions"]
    iam.update_access_key(UserName="erin", AccessKeyId=erin[0], Status="Inactive")
    assert aws_error(lam.list_functions) == ("UnrecognizedClientException", 403,
                                             "The security token included in the request is invalid.")
    iam.update_access_key(UserName="erin", AccessKeyId=erin[0], Status="Active")
    assert lam.list_functions()["Functions"]
    iam.delete_access_key(UserName="erin", AccessKeyId=erin[0])
    assert aws_error(lam.list_functions)[0] == "UnrecognizedClientException"


def test_a_resource_policy_naming_a_user_allows_it_in_the_account(srv):
    frank = new_user(srv, "frank")
    lam = as_user(srv, frank)
    assert aws_error(lam.invoke, FunctionName="beta", Payload=b"{}")[0] == "AccessDeniedException"
    root = client(srv)
    # naming the account delegates to the account's identity policies: not enough on its own
    root.add_permission(FunctionName="beta", StatementId="account", Action="lambda:InvokeFunction",
                        Principal=ACCOUNT)
    assert aws_error(lam.invoke, FunctionName="beta", Payload=b"{}")[0] == "AccessDeniedException"
    root.add_permission(FunctionName="beta", StatementId="frank", Action="lambda:InvokeFunction",
                        Principal=f"arn:aws:iam::{ACCOUNT}:user/frank")
    assert lam.invoke(FunctionName="beta", Payload=b"{}")["StatusCode"] == 200
    assert aws_error(lam.get_function, FunctionName="beta")[0] == "AccessDeniedException"  # InvokeFunction only
    root.remove_permission(FunctionName="beta", StatementId="frank")
    assert aws_error(lam.invoke, FunctionName="beta", Payload=b"{}")[0] == "AccessDeniedException"
    root.remove_permission(FunctionName="beta", StatementId="account")


def test_assume_role_checks_the_trust_policy_and_names_the_session(srv):
    grace = new_user(srv, "grace", policy(allow("sts:AssumeRole", f"arn:aws:iam::{ACCOUNT}:role/*")))
    iam = client(srv, "iam")
    trust = policy({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/grace"},
                    "Action": "sts:AssumeRole"})
    role = iam.create_role(RoleName="invoker", AssumeRolePolicyDocument=trust)["Role"]
    iam.put_role_policy(RoleName="invoker", PolicyName="alpha", PolicyDocument=policy(
        allow("lambda:InvokeFunction", FN_ARN + "alpha")))
    sts = as_user(srv, grace, "sts")
    assumed = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="grace-session", DurationSeconds=900)
    credentials = assumed["Credentials"]
    assert credentials["AccessKeyId"].startswith("ASIA") and credentials["SessionToken"]
    assert assumed["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/invoker/grace-session"
    assert assumed["AssumedRoleUser"]["AssumedRoleId"] == f"{role['RoleId']}:grace-session"
    session = (credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"])
    assert client(srv, "sts", *session).get_caller_identity()["Arn"] == assumed["AssumedRoleUser"]["Arn"]
    lam = client(srv, "lambda", *session)
    assert lam.invoke(FunctionName="alpha", Payload=b"{}")["StatusCode"] == 200
    code, _, message = aws_error(lam.invoke, FunctionName="beta", Payload=b"{}")
    assert code == "AccessDeniedException"
    assert message.startswith(f"User: arn:aws:sts::{ACCOUNT}:assumed-role/invoker/grace-session is not authorized")
    # the token is checked: altered, it names no session
    assert aws_error(client(srv, "lambda", *session[:2], session[2][:-3] + "AAA").list_functions)[0] == \
        "UnrecognizedClientException"
    # a user the trust policy does not name may not assume the role, nor may a root
    heidi = new_user(srv, "heidi", policy(allow("sts:AssumeRole")))
    assert aws_error(as_user(srv, heidi, "sts").assume_role, RoleArn=role["Arn"], RoleSessionName="x1")[:2] == (
        "AccessDenied", 403)
    assert aws_error(client(srv, "sts").assume_role, RoleArn=role["Arn"], RoleSessionName="x1") == (
        "AccessDenied", 403, "Roles may not be assumed by root accounts.")
    assert aws_error(sts.assume_role, RoleArn=f"arn:aws:iam::{ACCOUNT}:role/missing", RoleSessionName="x1")[:2] == (
        "AccessDenied", 403)
    assert aws_error(sts.assume_role, RoleArn=role["Arn"], RoleSessionName="x1", DurationSeconds=7200) == (
        "ValidationError", 400, "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
    code, status, message = aws_error(sts.assume_role, RoleArn=role["Arn"], RoleSessionName="x1",
                                      Policy=policy(allow("lambda:*")))
    assert (code, status) == ("ValidationError", 400) and "not supported" in message


def test_an_expired_session_is_refused_with_expired_token(srv):
    """A session minted an hour ago for 15 minutes, under the server's own key (read from its database)."""
    from lambdalet.auth.sessions import SessionMinter
    from lambdalet.store.schema import make_engine
    from lambdalet.store.server_keys import shared_key

    url = (srv.args[srv.args.index("--database-url") + 1] if "--database-url" in srv.args
           else f"sqlite:///{srv.data_dir / 'lambdalet.db'}")
    key = shared_key(make_engine(url), "session-minting")
    role = client(srv, "iam").get_role(RoleName="fn-role")["Role"]
    old = SessionMinter(bytes(key)).mint(ACCOUNT, role["Arn"], role["RoleId"], "old", 900, now=time.time() - 3600)
    lam = client(srv, "lambda", old.session.access_key_id, old.secret_access_key, old.session_token)
    assert aws_error(lam.list_functions) == ("ExpiredTokenException", 403,
                                             "The security token included in the request is expired")


def _url_get(url: str, credentials: Credentials | None = None) -> tuple[int, bytes]:
    parts = urlsplit(url)
    headers = {"Host": parts.netloc}
    if credentials is not None:
        request = AWSRequest(method="GET", url=url)
        SigV4Auth(credentials, "lambda", "us-east-1").add_auth(request)
        headers = {**headers, **dict(request.headers.items())}
    conn = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=60)
    try:
        conn.request("GET", parts.path or "/", headers=headers)
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def test_aws_iam_urls_need_both_invoke_permissions_and_name_the_caller(srv):
    url = client(srv).create_function_url_config(FunctionName="alpha", AuthType="AWS_IAM")["FunctionUrl"]
    try:
        ivan = new_user(srv, "ivan", policy(allow("lambda:InvokeFunctionUrl", FN_ARN + "alpha")))
        status, body = _url_get(url, Credentials(*ivan))
        assert status == 403 and b"Forbidden" in body  # InvokeFunctionUrl alone is not enough since Oct 2025
        client(srv, "iam").put_user_policy(UserName="ivan", PolicyName="invoke", PolicyDocument=policy(
            allow("lambda:InvokeFunction", FN_ARN + "alpha")))
        status, body = _url_get(url, Credentials(*ivan))
        assert status == 200, body
        iam = json.loads(body)["authorizer"]["iam"]
        assert iam["userArn"] == f"arn:aws:iam::{ACCOUNT}:user/ivan" and iam["accessKey"] == ivan[0]
    finally:
        client(srv).delete_function_url_config(FunctionName="alpha")


def test_none_urls_need_a_resource_policy_for_everyone(srv):
    lam = client(srv)
    url = lam.create_function_url_config(FunctionName="beta", AuthType="NONE")["FunctionUrl"]
    try:
        assert _url_get(url)[0] == 403
        lam.add_permission(FunctionName="beta", StatementId="url", Action="lambda:InvokeFunctionUrl", Principal="*",
                           FunctionUrlAuthType="NONE")
        assert _url_get(url)[0] == 403  # InvokeFunction too
        lam.add_permission(FunctionName="beta", StatementId="invoke", Action="lambda:InvokeFunction", Principal="*")
        status, body = _url_get(url)
        assert status == 200, body
    finally:
        lam.delete_function_url_config(FunctionName="beta")
        for sid in ("url", "invoke"):
            lam.remove_permission(FunctionName="beta", StatementId=sid)


def test_logs_are_authorised_by_log_group(srv):
    judy = new_user(srv, "judy", policy(allow("logs:DescribeLogStreams",
                                              f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws/lambda/alpha*")))
    logs = as_user(srv, judy, "logs")
    client(srv).invoke(FunctionName="alpha", Payload=b"{}")
    assert "logStreams" in logs.describe_log_streams(logGroupName="/aws/lambda/alpha")
    code, status, message = aws_error(logs.describe_log_streams, logGroupName="/aws/lambda/beta")
    assert (code, status) == ("AccessDeniedException", 400)
    assert "logs:DescribeLogStreams" in message


def test_iam_actions_are_authorised_too(srv):
    kim = new_user(srv, "kim", policy(allow(["iam:GetUser", "iam:ListUsers"])))
    iam = as_user(srv, kim, "iam")
    assert iam.get_user(UserName="alice")["User"]["UserName"] == "alice"
    code, status, message = aws_error(iam.put_user_policy, UserName="kim", PolicyName="escalate",
                                      PolicyDocument=policy(allow("*")))
    assert (code, status) == ("AccessDenied", 403)
    assert message.startswith(f"User: arn:aws:iam::{ACCOUNT}:user/kim is not authorized to perform: "
                              f"iam:PutUserPolicy on resource: arn:aws:iam::{ACCOUNT}:user/kim")


CALLER_CODE = make_zip({"app.py": '''
import json, os
import boto3

def handler(event, context):
    out = {"arn": boto3.client("sts").get_caller_identity()["Arn"], "key": os.environ["AWS_ACCESS_KEY_ID"],
           "endpoint": os.environ.get("AWS_ENDPOINT_URL_LAMBDA")}
    lam = boto3.client("lambda")
    out["invoked"] = json.loads(lam.invoke(FunctionName=event["target"], Payload=b'{"from": "caller"}')["Payload"].read())
    try:
        lam.invoke(FunctionName=event["forbidden"], Payload=b"{}")
    except lam.exceptions.ClientError as exc:
        out["denied"] = exc.response["Error"]["Code"]
    return out
'''})


def test_a_function_acts_with_its_role_and_may_invoke_exactly_what_it_allows(srv):
    iam, lam = client(srv, "iam"), client(srv)
    iam.create_role(RoleName="caller-role", AssumeRolePolicyDocument=LAMBDA_TRUST)
    iam.put_role_policy(RoleName="caller-role", PolicyName="invoke-alpha", PolicyDocument=policy(
        allow("lambda:InvokeFunction", FN_ARN + "alpha")))
    lam.create_function(FunctionName="caller", Runtime="python3.12", Role=f"arn:aws:iam::{ACCOUNT}:role/caller-role",
                        Handler="app.handler", Code={"ZipFile": CALLER_CODE}, Timeout=30)
    lam.get_waiter("function_active_v2").wait(FunctionName="caller")
    reply = lam.invoke(FunctionName="caller", Payload=json.dumps({"target": "alpha", "forbidden": "beta"}))
    out = json.loads(reply["Payload"].read())
    assert "FunctionError" not in reply, out
    assert out["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/caller-role/caller"
    assert out["key"].startswith("ASIA")  # the role's temporary credentials, never the server's
    assert out["endpoint"] == srv.url
    assert out["invoked"]["statusCode"] == 200 and json.loads(out["invoked"]["body"]) == {"from": "caller"}
    assert out["denied"] == "AccessDeniedException"


def test_a_role_must_exist_trust_lambda_and_be_passable(srv):
    iam, lam = client(srv, "iam"), client(srv)
    iam.create_role(RoleName="not-for-lambda", AssumeRolePolicyDocument=policy(
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}))
    for role in (f"arn:aws:iam::{ACCOUNT}:role/missing", f"arn:aws:iam::{ACCOUNT}:role/not-for-lambda"):
        assert aws_error(lam.create_function, FunctionName="refused", Runtime="python3.12", Role=role,
                         Handler="app.handler", Code={"ZipFile": CODE}) == (
            "InvalidParameterValueException", 400, "The role defined for the function cannot be assumed by Lambda.")
        assert aws_error(lam.update_function_configuration, FunctionName="alpha", Role=role)[0] == \
            "InvalidParameterValueException"
    maker = new_user(srv, "maker", policy(allow("lambda:CreateFunction")))
    code, status, message = aws_error(as_user(srv, maker).create_function, FunctionName="made", Runtime="python3.12",
                                      Role=f"arn:aws:iam::{ACCOUNT}:role/fn-role", Handler="app.handler",
                                      Code={"ZipFile": CODE})
    assert (code, status) == ("AccessDeniedException", 403) and "iam:PassRole" in message
