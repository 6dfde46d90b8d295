"""`--auth iam`: every request authenticated by its SigV4 signature (issue 18, items 1-3).

A real server in iam mode, driven by boto3, the AWS CLI and raw signed requests: the root key of
the account works for every API the server serves (Lambda, CloudWatch Logs, Scheduler, AWS_IAM
function URLs), and each way a signature fails gets AWS's error in that API's own shape.
"""

from __future__ import annotations

import datetime
import http.client
import json
import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import boto3
import pytest
from botocore import UNSIGNED
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from conftest import REPO_ROOT, ROLE, Server, aws_cli, free_port, make_zip, running

from .helpers import aws_error

ACCOUNT = "000000000000"
ROOT_KEY = "LKIATESTROOTKEY00001"
ROOT_SECRET = "root-secret-of-the-tests-0123456789"
ROOT = {"LAMBDALET_ROOT_ACCESS_KEY_ID": ROOT_KEY, "LAMBDALET_ROOT_SECRET_ACCESS_KEY": ROOT_SECRET}
CODE = make_zip({"app.py": "import json\ndef handler(event, context):\n"
                           "    return {'statusCode': 200, 'body': json.dumps(event.get('requestContext', event))}\n"})


@pytest.fixture(scope="module")
def iam_server(tmp_path_factory):
    with running(Server(tmp_path_factory.mktemp("iam"), extra_env=ROOT, args=["--auth", "iam"])) as srv:
        yield srv


def client(srv: Server, service: str = "lambda", key: str = ROOT_KEY, secret: str = ROOT_SECRET,
           token: str | None = None, **config):
    return boto3.client(service, endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id=key,
                        aws_secret_access_key=secret, aws_session_token=token,
                        config=Config(retries={"max_attempts": 1}, **config))


LAMBDA_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


@pytest.fixture(scope="module")
def function(iam_server):
    # under --auth iam a function's role must exist, and trust Lambda (issue 18, item 6)
    client(iam_server, "iam").create_role(RoleName=ROLE.rsplit("/", 1)[1], AssumeRolePolicyDocument=LAMBDA_TRUST)
    lam = client(iam_server)
    lam.create_function(FunctionName="signed", Runtime="python3.12", Role=ROLE, Handler="app.handler",
                        Code={"ZipFile": CODE})
    lam.get_waiter("function_active_v2").wait(FunctionName="signed")
    return "signed"


def raw(srv: Server, method: str, path: str, headers: dict[str, str] | None = None,
        body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


def signed_at(url: str, when: datetime.datetime, method: str = "GET", service: str = "lambda") -> dict[str, str]:
    """Headers of a request signed by the root key as a client whose clock reads `when` would sign it."""
    request = AWSRequest(method=method, url=url)
    auth = SigV4Auth(Credentials(ROOT_KEY, ROOT_SECRET), service, "us-east-1")
    request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")  # what add_auth takes from the clock
    auth._modify_request_before_signing(request)
    signature = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    auth._inject_signature_to_request(request, signature)
    return dict(request.headers.items())


def test_the_root_key_may_use_every_api(iam_server, function):
    lam = client(iam_server)
    assert function in [f["FunctionName"] for f in lam.list_functions()["Functions"]]
    reply = lam.invoke(FunctionName=function, Payload=b'{"hello": "world"}')
    assert json.loads(json.loads(reply["Payload"].read())["body"]) == {"hello": "world"}
    assert client(iam_server, "logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/signed")["logGroups"]
    assert "Schedules" in client(iam_server, "scheduler").list_schedules()


@pytest.mark.parametrize("key, secret, token, expected", [
    ("LKIAUNKNOWNKEY000001", ROOT_SECRET, None,
     ("UnrecognizedClientException", 403, "The security token included in the request is invalid.")),
    (ROOT_KEY, "not-the-secret-of-this-key-0000", None, ("InvalidSignatureException", 403, None)),
    (ROOT_KEY, ROOT_SECRET, "a-session-token-root-keys-never-have",
     ("UnrecognizedClientException", 403, "The security token included in the request is invalid.")),
], ids=["unknown key", "wrong secret", "session token on a root key"])
def test_a_signature_that_does_not_authenticate_is_refused(iam_server, key, secret, token, expected):
    code, status, message = aws_error(client(iam_server, key=key, secret=secret, token=token).list_functions)
    assert (code, status) == expected[:2]
    if expected[2] is not None:
        assert message == expected[2]
    else:
        assert message.startswith("The request signature we calculated does not match the signature you provided.")
    logs_code, logs_status, _ = aws_error(client(iam_server, "logs", key=key, secret=secret, token=token)
                                          .describe_log_groups)
    assert (logs_code, logs_status) == expected[:2]


def test_an_unsigned_request_is_missing_its_token(iam_server, function):
    assert aws_error(client(iam_server, signature_version=UNSIGNED).get_function, FunctionName=function) == (
        "MissingAuthenticationTokenException", 403, "Missing Authentication Token")
    status, headers, body = raw(iam_server, "GET", "/2015-03-31/functions/")
    assert status == 403 and headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    assert json.loads(body)["message"] == "Missing Authentication Token"
    status, headers, body = raw(iam_server, "POST", "/", {"X-Amz-Target": "Logs_20140328.DescribeLogGroups",
                                                          "Content-Type": "application/x-amz-json-1.1"}, b"{}")
    assert status == 403 and json.loads(body) == {"__type": "MissingAuthenticationTokenException",
                                                  "message": "Missing Authentication Token"}


def test_a_signature_from_a_clock_more_than_five_minutes_off_is_refused(iam_server):
    url = iam_server.url + "/2015-03-31/functions/"
    now = datetime.datetime.now(datetime.timezone.utc)
    status, _, _ = raw(iam_server, "GET", "/2015-03-31/functions/", signed_at(url, now - datetime.timedelta(minutes=1)))
    assert status == 200
    for skew in (datetime.timedelta(minutes=-6), datetime.timedelta(minutes=6)):
        status, headers, body = raw(iam_server, "GET", "/2015-03-31/functions/", signed_at(url, now + skew))
        assert status == 403 and headers["x-amzn-errortype"] == "InvalidSignatureException", body
        assert "Signature" in json.loads(body)["message"]


def test_presigned_urls_authenticate_until_they_expire(iam_server, function):
    url = client(iam_server).generate_presigned_url("get_function", Params={"FunctionName": function}, ExpiresIn=60)
    with urllib.request.urlopen(url, timeout=60) as reply:
        assert json.loads(reply.read())["Configuration"]["FunctionName"] == function
    parts = urlsplit(url)
    tampered = url.replace(f"/functions/{function}", "/functions/other")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(tampered, timeout=60)
    assert refused.value.code == 403 and refused.value.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert parts.query  # the signature travels in the query string, not a header


def test_the_aws_cli_signs_with_the_root_key(iam_server, function):
    got = json.loads(aws_cli(iam_server, "lambda", "get-function", "--function-name", function,
                             credentials=(ROOT_KEY, ROOT_SECRET)).stdout)
    assert got["Configuration"]["FunctionName"] == function
    refused = aws_cli(iam_server, "lambda", "list-functions", check=False)
    assert refused.returncode != 0 and b"UnrecognizedClientException" in refused.stderr


def test_a_client_of_another_region_is_still_refused(iam_server):
    other = boto3.client("lambda", endpoint_url=iam_server.url, region_name="eu-west-1", aws_access_key_id=ROOT_KEY,
                         aws_secret_access_key=ROOT_SECRET, config=Config(retries={"max_attempts": 1}))
    code, status, message = aws_error(other.list_functions)
    assert (code, status) == ("InvalidSignatureException", 403)
    assert message.startswith("Credential should be scoped to a valid region.")


def test_aws_iam_urls_verify_the_signature_and_name_the_caller(iam_server, function):
    url = client(iam_server).create_function_url_config(FunctionName=function, AuthType="AWS_IAM")["FunctionUrl"]
    parts = urlsplit(url)

    def get(headers: dict[str, str]) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=60)
        try:
            conn.request("GET", "/who", headers={"Host": parts.netloc, **headers})
            reply = conn.getresponse()
            return reply.status, reply.read()
        finally:
            conn.close()

    assert get({})[0] == 403
    request = AWSRequest(method="GET", url=url.rstrip("/") + "/who")
    SigV4Auth(Credentials(ROOT_KEY, "not-the-secret-of-this-key-0000"), "lambda", "us-east-1").add_auth(request)
    status, body = get(dict(request.headers.items()))
    assert status == 403 and b"Forbidden" in body
    request = AWSRequest(method="GET", url=url.rstrip("/") + "/who")
    SigV4Auth(Credentials(ROOT_KEY, ROOT_SECRET), "lambda", "us-east-1").add_auth(request)
    status, body = get(dict(request.headers.items()))
    assert status == 200, body
    iam = json.loads(body)["authorizer"]["iam"]
    assert iam["accessKey"] == ROOT_KEY and iam["accountId"] == ACCOUNT
    assert iam["userArn"] == f"arn:aws:iam::{ACCOUNT}:root" and iam["userId"] == ACCOUNT


def test_code_downloads_and_metrics_need_no_signature(iam_server, function):
    location = client(iam_server).get_function(FunctionName=function)["Code"]["Location"]
    with urllib.request.urlopen(location, timeout=60) as reply:
        assert reply.read() == CODE
    with urllib.request.urlopen(iam_server.url + "/metrics", timeout=60) as reply:
        assert reply.status == 200


def test_sts_names_the_caller(iam_server, server):
    identity = client(iam_server, "sts").get_caller_identity()
    assert (identity["Account"], identity["Arn"], identity["UserId"]) == (ACCOUNT, f"arn:aws:iam::{ACCOUNT}:root",
                                                                          ACCOUNT)
    assert aws_error(client(iam_server, "sts", key="LKIAUNKNOWNKEY000001").get_caller_identity) == (
        "InvalidClientTokenId", 403, "The security token included in the request is invalid.")
    assert aws_error(client(iam_server, "sts", secret="not-the-secret-of-this-key-0000").get_caller_identity)[:2] == (
        "SignatureDoesNotMatch", 403)
    assert aws_error(client(iam_server, "sts", signature_version=UNSIGNED).get_caller_identity)[:2] == (
        "MissingAuthenticationToken", 403)
    open_identity = server.client("sts").get_caller_identity()  # --auth open: any key acts as the root
    assert open_identity["Arn"] == f"arn:aws:iam::{ACCOUNT}:root"
    # --auth open: no trust policy is checked, but the role must exist
    assert aws_error(server.client("sts").assume_role, RoleArn=ROLE + "-missing", RoleSessionName="session")[:2] == (
        "AccessDenied", 403)
    cli = json.loads(aws_cli(iam_server, "sts", "get-caller-identity", credentials=(ROOT_KEY, ROOT_SECRET)).stdout)
    assert cli["Account"] == ACCOUNT


def test_root_keys_are_generated_once_into_a_private_file(tmp_path):
    srv = Server(tmp_path / "data", args=["--auth", "iam"])
    with running(srv):
        stored = json.loads((tmp_path / "data" / "root-credentials").read_text())
        assert stat.S_IMODE(os.stat(tmp_path / "data" / "root-credentials").st_mode) == 0o600
        assert stored["root_secret_access_key"] in srv.log_text()  # shown this once
        key, secret = stored["root_access_key_id"], stored["root_secret_access_key"]
        client(srv, key=key, secret=secret).list_functions()
    shown = srv.log_text().count(secret)
    with running(srv):
        client(srv, key=key, secret=secret).list_functions()  # the same keys after a restart
        assert json.loads((tmp_path / "data" / "root-credentials").read_text()) == stored
    assert srv.log_text().count(secret) == shown  # not shown again


def serve_and_exit(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`lambdalet server` with settings it must refuse: it exits, saying why."""
    return subprocess.run([sys.executable, "-m", "lambdalet", "server", "--port", str(free_port()),
                           "--data-dir", str(tmp_path / "data"), "--sandbox", "process", *args],
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, env={**os.environ, **env})


def test_listening_beyond_loopback_needs_auth_said(tmp_path):
    refused = serve_and_exit(tmp_path, "--host", "0.0.0.0")
    assert refused.returncode != 0
    assert "--auth iam" in refused.stderr and "--auth open" in refused.stderr
    srv = Server(tmp_path / "open", args=["--host", "0.0.0.0", "--auth", "open"])
    srv.url = f"http://127.0.0.1:{srv.port}"
    with running(srv):
        assert "anyone who reaches this port acts as the account's root" in srv.log_text()


def test_unusable_accounts_settings_stop_the_server(tmp_path):
    accounts = tmp_path / "accounts.toml"
    accounts.write_text('[[account]]\nid = "000000000000"\nroot_access_key_id = "AKIAFIRSTACCOUNT0001"\n'
                        'root_secret_access_key = "first-secret-0123456789"\n'
                        '[[account]]\nid = "111111111111"\nroot_access_key_id = "AKIASECONDACCOUNT001"\n'
                        'root_secret_access_key = "second-secret-0123456789"\n')
    refused = serve_and_exit(tmp_path, "--accounts-file", str(accounts))
    assert refused.returncode != 0 and "only --auth iam checks" in refused.stderr
    refused = serve_and_exit(tmp_path, "--auth", "iam", "--accounts-file", str(accounts), "--account-id", "222222222222")
    assert refused.returncode != 0 and "but not --account-id 222222222222" in refused.stderr
    refused = serve_and_exit(tmp_path, "--auth", "iam", LAMBDALET_ROOT_ACCESS_KEY_ID="AKIAONLYHALF00000001")
    assert refused.returncode != 0 and "go together" in refused.stderr


def test_an_accounts_file_gives_the_root_key(tmp_path):
    accounts = tmp_path / "accounts.toml"
    accounts.write_text('[[account]]\nid = "000000000000"\nroot_access_key_id = "AKIAFROMTHEFILE00001"\n'
                        'root_secret_access_key = "secret-from-the-file-0123"\n')
    srv = Server(tmp_path / "data", args=["--auth", "iam", "--accounts-file", str(accounts)])
    with running(srv):
        client(srv, key="AKIAFROMTHEFILE00001", secret="secret-from-the-file-0123").list_functions()
        assert aws_error(client(srv).list_functions)[0] == "UnrecognizedClientException"
