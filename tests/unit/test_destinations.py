"""Invocation records and destination ARN checks, without a server."""

from __future__ import annotations

import pytest

from lambdalet.errors import InvalidParameterValueException
from lambdalet.events.destinations import Failure, check_dead_letter, check_destination, invocation_record
from lambdalet.invoke.types import InvocationResult

ARN = "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST"


def test_an_event_too_old_to_run_has_no_response_in_its_record():
    record = invocation_record(request_id="r", function_arn=ARN, condition="EventAgeExceeded", attempts=0,
                               payload=b'{"a": 1}', result=None, at=0.0)
    assert record == {"version": "1.0", "timestamp": "1970-01-01T00:00:00.000Z",
                      "requestContext": {"requestId": "r", "functionArn": ARN, "condition": "EventAgeExceeded",
                                         "approximateInvokeCount": 0},
                      "requestPayload": {"a": 1}}


def test_a_non_json_response_is_kept_as_text():
    result = InvocationResult(payload=b"plain text", function_error=False)
    record = invocation_record(request_id="r", function_arn=ARN, condition="Success", attempts=1, payload=b"{}",
                               result=result, at=1.5)
    assert record["responsePayload"] == "plain text"
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}


def test_failure_of_a_platform_error_uses_its_type_when_there_is_no_message():
    result = InvocationResult(payload=b"", function_error=True, error_type="Sandbox.Timedout")
    assert Failure.of_result(result) == Failure(200, "Sandbox.Timedout")


@pytest.mark.parametrize("arn", ["arn:aws:s3:::bucket/key", "arn:aws:dynamodb:us-east-1:000000000000:table/t",
                                 "arn:aws:events:us-east-1:000000000000:rule/r",
                                 "arn:aws:lambda:us-east-1:000000000000:layer:l"])
def test_destinations_lambdalet_cannot_deliver_to_are_refused(arn):
    with pytest.raises(InvalidParameterValueException, match="is invalid"):
        check_destination(arn, "destinationConfig.onFailure.destination")


def test_an_empty_destination_or_dead_letter_arn_means_none():
    assert check_destination("", "destinationConfig.onSuccess.destination") is None
    assert check_dead_letter("") == ""
    with pytest.raises(InvalidParameterValueException, match="must start with 'arn:'"):
        check_dead_letter("queue")
