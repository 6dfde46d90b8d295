"""Destinations and dead-letter queues of asynchronous invocations, delivered for real.

The AWS services are `moto` in server mode; the Lambdalet server reaches them with boto3 through
`AWS_ENDPOINT_URL`, exactly as it would reach AWS. Functions see the same endpoint (the server
passes it through), so a function records its own attempts in an SQS queue.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROLE, Server, make_zip

from .helpers import function_arn, http_request, wait_until, wait_updated

# Every attempt is recorded in the queue the event names, then the event fails or succeeds.
HANDLER = """
import json, os
import boto3

sqs = boto3.client("sqs")

def handler(event, context):
    if event.get("attempts_queue"):
        sqs.send_message(QueueUrl=event["attempts_queue"], MessageBody=context.aws_request_id)
    if event.get("fail"):
        raise RuntimeError("failing on purpose: " + event.get("why", ""))
    return {"echo": event.get("n"), "version": context.function_version}
"""

# A function destination: forwards the record it is invoked with to a queue.
FORWARDER = """
import json, os
import boto3

def handler(event, context):
    boto3.client("sqs").send_message(QueueUrl=os.environ["FORWARD_TO"], MessageBody=json.dumps(event))
"""

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def aws_server(tmp_path_factory, moto) -> Server:
    """A server whose AWS services are moto's, with asynchronous retries 100 times faster."""
    srv = Server(tmp_path_factory.mktemp("destinations"),
                 extra_env={"AWS_ENDPOINT_URL": moto.url, "LAMBDALET_ASYNC_BACKOFF_SCALE": "0.01"})
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def names():
    suffix = uuid.uuid4().hex[:8]
    return lambda what: f"{what}-{suffix}"


def new_queue(moto, name: str) -> tuple[str, str]:
    """An SQS queue in moto: (URL, ARN)."""
    sqs = moto.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def receive(moto, url: str, count: int = 1, timeout: float = 30) -> list[dict]:
    """Wait for `count` messages on a queue and return them (with their attributes)."""
    sqs = moto.client("sqs")
    got: list[dict] = []

    def more() -> bool:
        got.extend(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                       WaitTimeSeconds=1).get("Messages", []))
        return len(got) >= count

    wait_until(more, timeout=timeout, interval=0, what=f"{count} message(s) on {url}")
    return got


def queued(moto, url: str) -> int:
    attributes = moto.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def create(client, name: str, code: str = HANDLER, **kwargs) -> str:
    return client.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                                  Code={"ZipFile": make_zip({"app.py": code})}, Timeout=10, **kwargs)["FunctionArn"]


def invoke_async(client, name: str, event: dict, **kwargs) -> str:
    resp = client.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps(event), **kwargs)
    assert resp["StatusCode"] == 202
    return resp["ResponseMetadata"]["RequestId"]


@pytest.mark.parametrize("retries", [2, 1, 0])
def test_a_failing_event_lands_in_the_sqs_dead_letter_queue_after_one_plus_retries_attempts(
        aws_server, moto, names, retries):
    client = aws_server.client()
    attempts_url, _ = new_queue(moto, names("attempts"))
    dlq_url, dlq_arn = new_queue(moto, names("dlq"))
    name = names("failing")
    create(client, name, DeadLetterConfig={"TargetArn": dlq_arn})
    assert client.get_function_configuration(FunctionName=name)["DeadLetterConfig"] == {"TargetArn": dlq_arn}
    client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=retries)
    event = {"attempts_queue": attempts_url, "fail": True, "why": "x" * 2000}
    request_id = invoke_async(client, name, event)

    [letter] = receive(moto, dlq_url)
    assert json.loads(letter["Body"]) == event  # the original event, unchanged
    attributes = letter["MessageAttributes"]
    assert attributes["RequestID"] == {"DataType": "String", "StringValue": request_id}
    assert attributes["ErrorCode"] == {"DataType": "Number", "StringValue": "200"}
    message = attributes["ErrorMessage"]["StringValue"]
    assert message.startswith("failing on purpose: xxx") and len(message) == 1024  # the first 1 KB
    attempts = [m["Body"] for m in receive(moto, attempts_url, count=1 + retries)]
    assert attempts == [request_id] * (1 + retries)
    assert queued(moto, attempts_url) == 0 and queued(moto, dlq_url) == 0  # exactly, and only once


def test_on_success_record_reaches_an_sqs_queue_field_by_field(aws_server, moto, names):
    client = aws_server.client()
    url, arn = new_queue(moto, names("success"))
    name = names("succeeding")
    create(client, name, Publish=True)
    client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    config = client.put_function_event_invoke_config(FunctionName=name, Qualifier="live",
                                                     DestinationConfig={"OnSuccess": {"Destination": arn}})
    assert config["DestinationConfig"] == {"OnSuccess": {"Destination": arn}, "OnFailure": {}}
    request_id = invoke_async(client, name, {"n": 7}, Qualifier="live")

    [message] = receive(moto, url)
    record = json.loads(message["Body"])
    assert TIMESTAMP.match(record.pop("timestamp"))
    assert record == {
        "version": "1.0",
        "requestContext": {"requestId": request_id, "functionArn": function_arn(name) + ":live",
                           "condition": "Success", "approximateInvokeCount": 1},
        "requestPayload": {"n": 7},
        "responseContext": {"statusCode": 200, "executedVersion": "1"},
        "responsePayload": {"echo": 7, "version": "1"},
    }


def test_on_failure_record_reaches_an_sns_topic_and_the_dead_letter_queue_is_sns_too(aws_server, moto, names):
    client = aws_server.client()
    sns = moto.client("sns")
    topic_arn = sns.create_topic(Name=names("failures"))["TopicArn"]
    dlq_topic_arn = sns.create_topic(Name=names("dlq"))["TopicArn"]
    records_url, records_arn = new_queue(moto, names("records"))
    letters_url, letters_arn = new_queue(moto, names("letters"))
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=records_arn)
    sns.subscribe(TopicArn=dlq_topic_arn, Protocol="sqs", Endpoint=letters_arn)
    name = names("failing")
    create(client, name, DeadLetterConfig={"TargetArn": dlq_topic_arn})
    client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1,
                                            DestinationConfig={"OnFailure": {"Destination": topic_arn}})
    request_id = invoke_async(client, name, {"fail": True, "why": "sns"})

    [message] = receive(moto, records_url)
    envelope = json.loads(message["Body"])  # SNS's own envelope around the record
    assert envelope["TopicArn"] == topic_arn
    record = json.loads(envelope["Message"])
    assert record["requestContext"] == {"requestId": request_id, "functionArn": function_arn(name) + ":$LATEST",
                                        "condition": "RetriesExhausted", "approximateInvokeCount": 2}
    assert record["requestPayload"] == {"fail": True, "why": "sns"}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    assert record["responsePayload"]["errorMessage"] == "failing on purpose: sns"

    [letter] = receive(moto, letters_url)
    envelope = json.loads(letter["Body"])
    assert json.loads(envelope["Message"]) == {"fail": True, "why": "sns"}
    assert envelope["MessageAttributes"]["RequestID"] == {"Type": "String", "Value": request_id}
    assert envelope["MessageAttributes"]["ErrorCode"] == {"Type": "Number", "Value": "200"}


def test_on_failure_record_reaches_an_s3_bucket_under_lambdas_key(aws_server, moto, names):
    client = aws_server.client()
    s3 = moto.client("s3")
    bucket = names("failures")
    s3.create_bucket(Bucket=bucket)
    name = names("failing")
    create(client, name)
    client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0,
                                            DestinationConfig={"OnFailure": {"Destination": f"arn:aws:s3:::{bucket}"}})
    request_id = invoke_async(client, name, {"fail": True, "why": "s3"})

    prefix = f"aws/lambda/async/{name}/"
    [listed] = wait_until(lambda: s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents"),
                          timeout=30, what="the failure record in the bucket")
    key = listed["Key"][len(prefix):]
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\d{4}-\d\d-\d\dT\d\d\.\d\d\.\d\d-[0-9a-f-]{36}", key), key
    record = json.loads(s3.get_object(Bucket=bucket, Key=listed["Key"])["Body"].read())
    assert record["requestContext"] == {"requestId": request_id, "functionArn": function_arn(name) + ":$LATEST",
                                        "condition": "RetriesExhausted", "approximateInvokeCount": 1}
    assert record["requestPayload"] == {"fail": True, "why": "s3"}
    assert record["responsePayload"]["errorMessage"] == "failing on purpose: s3"


def test_records_reach_an_eventbridge_bus(aws_server, moto, names):
    client = aws_server.client()
    events = moto.client("events")
    bus_arn = events.create_event_bus(Name=names("bus"))["EventBusArn"]
    url, queue_arn = new_queue(moto, names("bus-target"))
    rule = names("rule")
    events.put_rule(Name=rule, EventBusName=bus_arn, EventPattern=json.dumps({"source": ["lambda"]}))
    events.put_targets(Rule=rule, EventBusName=bus_arn, Targets=[{"Id": "queue", "Arn": queue_arn}])
    name = names("both")
    create(client, name)
    client.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=0,
        DestinationConfig={"OnSuccess": {"Destination": bus_arn}, "OnFailure": {"Destination": bus_arn}})
    ok = invoke_async(client, name, {"n": 1})
    failed = invoke_async(client, name, {"fail": True})

    by_request = {}
    for message in receive(moto, url, count=2):
        event = json.loads(message["Body"])
        by_request[event["detail"]["requestContext"]["requestId"]] = event
    assert by_request[ok]["source"] == "lambda"
    assert by_request[ok]["detail-type"] == "Lambda Function Invocation Result - Success"
    assert by_request[ok]["resources"] == [function_arn(name) + ":$LATEST", bus_arn]
    assert by_request[ok]["detail"]["responsePayload"] == {"echo": 1, "version": "$LATEST"}
    assert by_request[failed]["detail-type"] == "Lambda Function Invocation Result - Failure"
    assert by_request[failed]["detail"]["requestContext"]["condition"] == "RetriesExhausted"


def test_a_function_destination_is_invoked_asynchronously_with_the_record(aws_server, moto, names):
    client = aws_server.client()
    url, _ = new_queue(moto, names("forwarded"))
    target = names("target")
    target_arn = create(client, target, code=FORWARDER, Environment={"Variables": {"FORWARD_TO": url}})
    name = names("source")
    create(client, name)
    client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0,
                                            DestinationConfig={"OnFailure": {"Destination": target_arn}})
    request_id = invoke_async(client, name, {"fail": True, "why": "to a function"})

    [message] = receive(moto, url)
    record = json.loads(message["Body"])
    assert record["requestContext"]["requestId"] == request_id
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestPayload"] == {"fail": True, "why": "to a function"}


def test_destination_and_dead_letter_validation(aws_server, names):
    client = aws_server.client()
    name = names("validated")
    create(client, name)
    bad = {
        "arn:aws:lambda:us-east-1:000000000000:function:no-such-function": "is invalid.",  # AWS: 400, not 404
        "arn:aws:lambda:eu-west-1:000000000000:function:elsewhere": "this server is account",
        "not-an-arn": "failed to satisfy constraint",
    }
    for arn, message in bad.items():
        with pytest.raises(client.exceptions.ClientError) as caught:
            client.put_function_event_invoke_config(FunctionName=name,
                                                    DestinationConfig={"OnFailure": {"Destination": arn}})
        assert message in str(caught.value), arn
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 404)

    # An S3 bucket takes failure records only: on success it is AWS's refusal of the whole config.
    with pytest.raises(client.exceptions.ClientError) as refused:
        client.put_function_event_invoke_config(FunctionName=name,
                                                DestinationConfig={"OnSuccess": {"Destination": "arn:aws:s3:::bucket"}})
    assert refused.value.response["Error"] == {
        "Code": "InvalidParameterValueException",
        "Message": "The provided destination config DestinationConfig(onSuccess=OnSuccess(destination="
                   "arn:aws:s3:::bucket), onFailure=null) is invalid."}

    # Not an ARN at all breaks the model's pattern (Coral's ValidationException, checked first); an ARN
    # of something that is neither a queue nor a topic is Lambda's own refusal.
    for arn, refusal in (("arn:aws:lambda:us-east-1:000000000000:function:x", "InvalidParameterValueException"),
                         ("queue", "ValidationException")):
        with pytest.raises(client.exceptions.ClientError) as refused:
            client.update_function_configuration(FunctionName=name, DeadLetterConfig={"TargetArn": arn})
        assert refused.value.response["Error"]["Code"] == refusal, arn
    queue_arn = "arn:aws:sqs:us-east-1:123456789012:some-queue"
    client.update_function_configuration(FunctionName=name, DeadLetterConfig={"TargetArn": queue_arn})
    assert wait_updated(client, name)["DeadLetterConfig"]["TargetArn"] == queue_arn
    client.update_function_configuration(FunctionName=name, DeadLetterConfig={"TargetArn": ""})
    assert "DeadLetterConfig" not in client.get_function_configuration(FunctionName=name)

    # Update patches one outcome at a time; an empty destination removes it.
    topic = "arn:aws:sns:us-east-1:123456789012:topic"
    client.put_function_event_invoke_config(FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": topic}})
    updated = client.update_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnFailure": {"Destination": queue_arn}})
    assert updated["DestinationConfig"] == {"OnSuccess": {"Destination": topic},
                                           "OnFailure": {"Destination": queue_arn}}
    updated = client.update_function_event_invoke_config(FunctionName=name,
                                                         DestinationConfig={"OnSuccess": {"Destination": ""}})
    assert updated["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {"Destination": queue_arn}}


def test_undeliverable_outcomes_are_counted_in_metrics(aws_server, moto, names):
    """Lambda's AsyncEventsDropped, DeadLetterErrors and DestinationDeliveryFailures, as /metrics series."""
    client = aws_server.client()
    name = names("undeliverable")
    create(client, name, DeadLetterConfig={"TargetArn": "arn:aws:sqs:us-east-1:123456789012:no-such-queue"})
    client.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": "arn:aws:sns:us-east-1:123456789012:no-such-topic"}})
    invoke_async(client, name, {"fail": True})

    def counted() -> dict[str, float] | None:
        _status, _headers, body = http_request(aws_server.url + "/metrics")
        values = {sample.name: sample.value for family in text_string_to_metric_families(body.decode())
                  for sample in family.samples if sample.labels.get("function") == name}
        wanted = ("lambdalet_async_events_dropped_total", "lambdalet_dead_letter_errors_total",
                  "lambdalet_destination_delivery_failures_total")
        return values if all(key in values for key in wanted) else None

    values = wait_until(counted, timeout=30, interval=0.1, what="the undeliverable outcome to be counted")
    assert values["lambdalet_async_events_dropped_total"] == 1
    assert values["lambdalet_dead_letter_errors_total"] == 1
    assert values["lambdalet_destination_delivery_failures_total"] == 1
