"""A real serverless framework deploys onto Lambdalet and creates its event source mapping itself.

AWS Chalice (`chalice deploy`) talks to the Lambda API directly, without CloudFormation: an
`@app.on_sqs_message` handler makes it call CreateEventSourceMapping. Its boto3 reaches the Lambdalet
server through botocore's `AWS_ENDPOINT_URL_LAMBDA` and every other service (IAM for the role Chalice
manages, SQS) through `AWS_ENDPOINT_URL`, which is moto in server mode. The server polls the queue in
moto; the deployed function forwards each record it gets to a second queue, where the test reads it.

Chalice's `--debug` output (botocore's own request log) is the capture of what it called: the
operations whose HTTP request went to the Lambdalet server are checked in order.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import Moto, Server

from .helpers import function_arn, wait_until

APP = """\
import json
import os

import boto3
from chalice import Chalice

app = Chalice(app_name={app_name!r})
sqs = boto3.client("sqs")


@app.on_sqs_message(queue={queue!r}, batch_size=1)
def forward(event):
    for record in event:
        print("chalice got", record.body)
        sqs.send_message(QueueUrl=os.environ["SEEN_QUEUE_URL"], MessageBody=json.dumps(record.to_dict()))
"""

#: botocore's debug log: one "Making request" line per API call, then one "Sending http request" per attempt.
OPERATION = re.compile(r"Making request for OperationModel\(name=(\w+)\)")
REQUEST = re.compile(r"Sending http request: <AWSPreparedRequest stream_output=\w+, method=(\w+), url=([^ ,>]+)")


@pytest.fixture(scope="module")
def aws_server(tmp_path_factory, moto) -> Server:
    """A server of this module's own whose AWS services (the SQS it polls) are moto's."""
    srv = Server(tmp_path_factory.mktemp("frameworks"), extra_env={"AWS_ENDPOINT_URL": moto.url})
    srv.start()
    yield srv
    srv.stop()


def chalice_env(srv: Server, moto: Moto, home: Path) -> dict[str, str]:
    """The host's environment without its AWS settings; Lambda is the server, everything else moto."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto.url, "AWS_ENDPOINT_URL_LAMBDA": srv.url,
        # No profile or credentials of the machine's can leak in.
        "AWS_CONFIG_FILE": str(home / "aws-config"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
    })
    return env


def chalice(project: Path, env: dict[str, str], *args: str) -> list[tuple[str, str, str]]:
    """Run `chalice --debug ARGS` in the project; return its HTTP requests as (operation, method, url)."""
    exe = Path(sys.executable).with_name("chalice")
    assert exe.exists(), "chalice is not installed: run `make test` (it installs the test extras)"
    proc = subprocess.run([str(exe), "--debug", *args], cwd=project, env=env, capture_output=True, text=True,
                          timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"chalice {' '.join(args)} failed ({proc.returncode}):\n{output[-6000:]}"
    requests, operation = [], None
    for line in output.splitlines():
        if m := OPERATION.search(line):
            operation = m.group(1)
        elif m := REQUEST.search(line):
            requests.append((operation, m.group(1), m.group(2)))
    return requests


def lambda_operations(requests: list[tuple[str, str, str]], srv: Server) -> list[str]:
    """The operations whose request reached the Lambdalet server, in order (one per attempt)."""
    return [op for op, _, url in requests if url.startswith(srv.url + "/")]


def is_subsequence(wanted: list[str], seen: list[str]) -> bool:
    it = iter(seen)
    return all(op in it for op in wanted)


def receive_one(moto: Moto, url: str) -> dict:
    sqs = moto.client("sqs")

    def probe():
        return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1).get("Messages")
    [message] = wait_until(probe, timeout=30, interval=0, what=f"a message on {url}")
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return message


def test_chalice_deploys_an_sqs_handler_whose_mapping_delivers_and_chalice_delete_removes_it(
        aws_server, moto, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    app_name, queue = f"fw-{suffix}", f"fw-jobs-{suffix}"
    sqs = moto.client("sqs")
    queue_url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    seen_url = sqs.create_queue(QueueName=f"fw-seen-{suffix}")["QueueUrl"]

    project = tmp_path / app_name
    (project / ".chalice").mkdir(parents=True)
    (project / "app.py").write_text(APP.format(app_name=app_name, queue=queue))
    (project / "requirements.txt").write_text("")  # nothing to download: Chalice packages app.py and itself
    (project / ".chalice" / "config.json").write_text(json.dumps({
        "version": "2.0", "app_name": app_name,
        # Chalice's default Lambda timeout (60 s) exceeds the queue's visibility timeout (30 s), which
        # Lambda refuses for a mapping, as AWS does.
        "stages": {"dev": {"lambda_timeout": 10, "environment_variables": {"SEEN_QUEUE_URL": seen_url}}},
    }))
    env = chalice_env(aws_server, moto, tmp_path)
    lam = aws_server.client()
    function = f"{app_name}-dev-forward"

    # Deploy: Chalice manages its IAM role in moto, then creates the function and the mapping on Lambdalet.
    deployed = chalice(project, env, "deploy")
    ops = lambda_operations(deployed, aws_server)
    assert is_subsequence(["CreateFunction", "CreateEventSourceMapping"], ops), ops
    assert "CreateRole" in [op for op, _, url in deployed if url.startswith(moto.url + "/")]
    assert not [r for r in deployed if not r[2].startswith((aws_server.url + "/", moto.url + "/"))], deployed

    record = json.loads((project / ".chalice" / "deployed" / "dev.json").read_text())
    [event_source] = [r for r in record["resources"] if r["resource_type"] == "sqs_event"]
    # Chalice builds the queue ARN from the function ARN's account (Lambdalet's); moto finds it by name.
    source_arn = f"arn:aws:sqs:us-east-1:000000000000:{queue}"
    assert event_source["queue_arn"] == source_arn
    [mapping] = lam.list_event_source_mappings(FunctionName=function)["EventSourceMappings"]
    assert mapping["UUID"] == event_source["event_uuid"]
    assert mapping["FunctionArn"] == function_arn(function)
    assert mapping["EventSourceArn"] == source_arn
    assert mapping["BatchSize"] == 1
    assert lam.get_function_configuration(FunctionName=function)["Timeout"] == 10

    # The mapping works: a message sent to the queue reaches the deployed function as an SQS record.
    sqs.send_message(QueueUrl=queue_url, MessageBody=f"hello from {suffix}")
    got = json.loads(receive_one(moto, seen_url)["Body"])
    assert got["body"] == f"hello from {suffix}"
    assert got["eventSource"] == "aws:sqs" and got["eventSourceARN"] == source_arn
    logs = aws_server.client("logs")
    wait_until(lambda: logs.filter_log_events(logGroupName=f"/aws/lambda/{function}",
                                              filterPattern=f'"chalice got hello from {suffix}"')["events"],
               timeout=10, what="the handler's print in CloudWatch Logs")

    # Deploying again finds the mapping (GetEventSourceMapping) and updates it in place.
    redeployed = lambda_operations(chalice(project, env, "deploy"), aws_server)
    assert is_subsequence(["GetEventSourceMapping", "UpdateEventSourceMapping"], redeployed), redeployed
    assert "CreateEventSourceMapping" not in redeployed, redeployed
    [mapping] = lam.list_event_source_mappings(FunctionName=function)["EventSourceMappings"]
    assert mapping["UUID"] == event_source["event_uuid"]
    sqs.send_message(QueueUrl=queue_url, MessageBody=f"again from {suffix}")
    assert json.loads(receive_one(moto, seen_url)["Body"])["body"] == f"again from {suffix}"

    # Delete: the mapping and the function are gone.
    deleted = lambda_operations(chalice(project, env, "delete"), aws_server)
    assert is_subsequence(["DeleteEventSourceMapping", "DeleteFunction"], deleted), deleted
    # The mapping stays Deleting until its poller's last long poll has ended (seconds, as on AWS).
    wait_until(lambda: not [m for m in lam.list_event_source_mappings()["EventSourceMappings"]
                            if m["UUID"] == event_source["event_uuid"]],
               timeout=30, what="the mapping to be deleted")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_event_source_mapping(UUID=event_source["event_uuid"])
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=function)
