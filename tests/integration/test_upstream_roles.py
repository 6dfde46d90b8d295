"""`--role-credentials upstream`: functions, their dead-letter queues and their event source
mappings act with the function's role, assumed on an upstream STS (issue 18, item 6).

The upstream is a moto server of this module's own that enforces IAM (`INITIAL_NO_AUTH_ACTION_COUNT`:
after the set-up calls, every request must be signed by a key moto knows and be allowed by its
policies). The Lambdalet server's own key may only `sts:AssumeRole`; the function's role may use
SQS and STS. So a function that sees the role's identity, a dead letter that arrives, and a queue
a mapping drains each prove that the role's credentials were used, not the server's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid

import boto3
import pytest

from conftest import Server, free_port, make_zip, running

from .helpers import wait_until

ACCOUNT = "123456789012"  # moto's
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/fn-role"
#: The calls made before moto starts enforcing IAM: exactly the set-up in `upstream` below.
SETUP_CALLS = 7
CODE = make_zip({"app.py": """
import boto3

def handler(event, context):
    if "Records" in event:
        return {"drained": len(event["Records"])}
    if event.get("fail"):
        raise RuntimeError("to the dead-letter queue")
    return boto3.client("sts").get_caller_identity()["Arn"]
"""})


def client(url: str, service: str, key: str = "test", secret: str = "test", token: str | None = None):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", aws_access_key_id=key,
                        aws_secret_access_key=secret, aws_session_token=token)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    """moto enforcing IAM after its set-up: (url, the server's key, the dead-letter and source queue urls)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path_factory.mktemp("moto-iam") / "moto.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_CALLS)}, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _answers(url), timeout=30, what="moto to answer")
        iam, sqs = client(url, "iam"), client(url, "sqs")
        iam.create_user(UserName="lambdalet")  # 1
        iam.put_user_policy(UserName="lambdalet", PolicyName="assume", PolicyDocument=json.dumps({  # 2
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="lambdalet")["AccessKey"]  # 3
        iam.create_role(RoleName="fn-role", AssumeRolePolicyDocument=json.dumps({  # 4
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"},
                                                    "Action": "sts:AssumeRole"}]}))
        iam.put_role_policy(RoleName="fn-role", PolicyName="sqs", PolicyDocument=json.dumps({  # 5
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["sqs:*", "sts:GetCallerIdentity"],
                                                    "Resource": "*"}]}))
        dlq = sqs.create_queue(QueueName="dead-letters")["QueueUrl"]  # 6
        source = sqs.create_queue(QueueName="source")["QueueUrl"]  # 7: from here on, IAM is enforced
        assert _refused(lambda: client(url, "sqs").list_queues()), "moto does not enforce IAM"
        yield url, (key["AccessKeyId"], key["SecretAccessKey"]), dlq, source
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/moto-api/", timeout=1):
            return True
    except OSError:
        return False


def _refused(call) -> bool:
    try:
        call()
    except Exception:
        return True
    return False


@pytest.fixture(scope="module")
def srv(upstream, tmp_path_factory):
    url, (key, secret), _dlq, _source = upstream
    env = {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
    with running(Server(tmp_path_factory.mktemp("upstream-roles"), extra_env=env,
                        args=["--role-credentials", "upstream", "--account-id", ACCOUNT])) as server:
        yield server


def as_role(url: str, server_key: tuple[str, str], service: str):
    credentials = client(url, "sts", *server_key).assume_role(RoleArn=ROLE_ARN, RoleSessionName="test")["Credentials"]
    return client(url, service, credentials["AccessKeyId"], credentials["SecretAccessKey"],
                  credentials["SessionToken"])


def create(srv: Server, name: str) -> None:
    lam = srv.client()
    lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE_ARN, Handler="app.handler",
                        Code={"ZipFile": CODE}, Timeout=30)
    lam.get_waiter("function_active_v2").wait(FunctionName=name)


def test_a_function_gets_its_roles_credentials_from_the_upstream_sts(srv):
    name = f"up-{uuid.uuid4().hex[:8]}"
    create(srv, name)
    reply = srv.client().invoke(FunctionName=name, Payload=b"{}")
    assert "FunctionError" not in reply, reply["Payload"].read()
    assert json.loads(reply["Payload"].read()) == f"arn:aws:sts::{ACCOUNT}:assumed-role/fn-role/{name}"


def test_a_dead_letter_is_sent_with_the_functions_role(srv, upstream):
    url, server_key, dlq, _source = upstream
    name = f"dl-{uuid.uuid4().hex[:8]}"
    create(srv, name)
    lam = srv.client()
    lam.update_function_configuration(FunctionName=name, DeadLetterConfig={
        "TargetArn": f"arn:aws:sqs:us-east-1:{ACCOUNT}:dead-letters"})
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"fail": True, "id": name}))
    sqs = as_role(url, server_key, "sqs")

    def letter() -> dict | None:
        for message in sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1, MessageAttributeNames=["All"]).get(
                "Messages", []):
            if json.loads(message["Body"]).get("id") == name:
                return message
        return None

    message = wait_until(letter, timeout=60, what="the dead letter")
    assert message["MessageAttributes"]["ErrorMessage"]["StringValue"] == "to the dead-letter queue"


def test_an_sqs_mapping_polls_with_the_functions_role(srv, upstream):
    url, server_key, _dlq, source = upstream
    name = f"esm-{uuid.uuid4().hex[:8]}"
    create(srv, name)
    sqs = as_role(url, server_key, "sqs")
    sqs.send_message(QueueUrl=source, MessageBody="hello")
    srv.client().create_event_source_mapping(FunctionName=name, EventSourceArn=f"arn:aws:sqs:us-east-1:{ACCOUNT}:source",
                                             BatchSize=1)

    def drained() -> bool:
        attributes = sqs.get_queue_attributes(QueueUrl=source, AttributeNames=["All"])["Attributes"]
        return attributes["ApproximateNumberOfMessages"] == "0" and attributes["ApproximateNumberOfMessagesNotVisible"] == "0"

    wait_until(drained, timeout=60, interval=0.5, what="the mapping to receive and delete the message")
