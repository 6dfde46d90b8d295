"""EventBridge Scheduler schedules on a real server, through boto3's `scheduler` client and the AWS CLI.

Firing tests use `at()` a few seconds ahead (rate and cron timing is unit-tested); what a function
received is read back from its log through the CloudWatch Logs client. Dead letters go to moto's SQS.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from conftest import ROLE, Server, aws_cli, make_zip

from .helpers import error_code_and_status, function_arn, wait_until

SCHEDULER_ROLE = "arn:aws:iam::000000000000:role/scheduler"
MARKER = "SCHEDULED-EVENT "
HANDLER = f"import json\n\ndef handler(event, context):\n    print({MARKER!r} + json.dumps(event))\n    return event\n"


@pytest.fixture(scope="module")
def srv(tmp_path_factory, moto) -> Server:
    """A server of this module's own (the restart test restarts it), reaching moto's SQS for DLQs."""
    server = Server(tmp_path_factory.mktemp("schedules"), extra_env={"AWS_ENDPOINT_URL": moto.url},
                    args=["--schedule-poll-interval", "1"])
    server.start()
    yield server
    server.stop()


@pytest.fixture
def scheduler(srv):
    return srv.client("scheduler")


@pytest.fixture
def name():
    return f"s-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def function(srv, name) -> str:
    """A function that prints the event it gets; its name."""
    fn = f"fn-{name}"
    srv.client().create_function(FunctionName=fn, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                                 Code={"ZipFile": make_zip({"app.py": HANDLER})})
    return fn


def at(seconds: float) -> str:
    return "at(" + (datetime.now(timezone.utc) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S") + ")"


def target(arn: str, **extra) -> dict:
    return {"Arn": arn, "RoleArn": SCHEDULER_ROLE, **extra}


def received(srv: Server, fn: str) -> list[dict]:
    """The events the function printed, oldest first."""
    try:
        events = srv.client("logs").filter_log_events(logGroupName=f"/aws/lambda/{fn}")["events"]
    except srv.client("logs").exceptions.ResourceNotFoundException:
        return []
    return [json.loads(e["message"].split(MARKER, 1)[1]) for e in events if MARKER in e["message"]]


def test_create_get_update_list_delete(scheduler, name):
    arn = function_arn("not-yet")
    start = datetime(2099, 1, 1, tzinfo=timezone.utc)
    created = scheduler.create_schedule(
        Name=name, ScheduleExpression="cron(0 9 ? * MON-FRI *)", ScheduleExpressionTimezone="Europe/Paris",
        StartDate=start, Description="weekdays", FlexibleTimeWindow={"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 5},
        Target=target(arn, Input='{"a": 1}', RetryPolicy={"MaximumRetryAttempts": 3}))
    schedule_arn = f"arn:aws:scheduler:us-east-1:000000000000:schedule/default/{name}"
    assert created["ScheduleArn"] == schedule_arn
    got = scheduler.get_schedule(Name=name)
    got.pop("ResponseMetadata")
    assert got.pop("CreationDate") == got.pop("LastModificationDate")
    assert got == {
        "Arn": schedule_arn, "GroupName": "default", "Name": name, "ScheduleExpression": "cron(0 9 ? * MON-FRI *)",
        "ScheduleExpressionTimezone": "Europe/Paris", "StartDate": start.astimezone(got["StartDate"].tzinfo),
        "Description": "weekdays", "State": "ENABLED", "ActionAfterCompletion": "NONE",
        "FlexibleTimeWindow": {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 5},
        "Target": {"Arn": arn, "RoleArn": SCHEDULER_ROLE, "Input": '{"a": 1}',
                   "RetryPolicy": {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 3}}}

    # UpdateSchedule replaces the whole schedule: what it does not name is gone
    scheduler.update_schedule(Name=name, ScheduleExpression="rate(7 days)", State="DISABLED",
                              FlexibleTimeWindow={"Mode": "OFF"}, Target=target(arn))
    updated = scheduler.get_schedule(Name=name)
    assert updated["ScheduleExpression"] == "rate(7 days)" and updated["State"] == "DISABLED"
    assert "Description" not in updated and "StartDate" not in updated and "Input" not in updated["Target"]
    assert updated["LastModificationDate"] > updated["CreationDate"]

    for i in range(3):
        scheduler.create_schedule(Name=f"{name}-{i}", ScheduleExpression="rate(1 day)", State="DISABLED",
                                  FlexibleTimeWindow={"Mode": "OFF"}, Target=target(arn))
    listed = scheduler.list_schedules(NamePrefix=name, MaxResults=2)
    assert [s["Name"] for s in listed["Schedules"]] == [name, f"{name}-0"]
    assert listed["Schedules"][0] == {"Arn": schedule_arn, "Name": name, "GroupName": "default", "State": "DISABLED",
                                      "CreationDate": updated["CreationDate"],
                                      "LastModificationDate": updated["LastModificationDate"], "Target": {"Arn": arn}}
    rest = scheduler.list_schedules(NamePrefix=name, MaxResults=2, NextToken=listed["NextToken"])
    assert [s["Name"] for s in rest["Schedules"]] == [f"{name}-1", f"{name}-2"] and "NextToken" not in rest
    assert scheduler.list_schedules(NamePrefix=name, State="ENABLED")["Schedules"] == []
    for i in range(3):
        scheduler.delete_schedule(Name=f"{name}-{i}")
    scheduler.delete_schedule(Name=name)
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException) as info:
        scheduler.get_schedule(Name=name)
    assert error_code_and_status(info.value) == ("ResourceNotFoundException", 404)
    assert info.value.response["Error"]["Message"] == f"Schedule {name} does not exist."


@pytest.mark.parametrize("change, message", [
    ({"ScheduleExpression": "cron(0 9 * * * *)"}, "Invalid Schedule Expression cron(0 9 * * * *)."),
    ({"ScheduleExpression": "rate(1 week)"}, "Invalid Schedule Expression rate(1 week)."),
    ({"ScheduleExpressionTimezone": "Nowhere/Land"}, "Invalid ScheduleExpressionTimezone Nowhere/Land."),
    ({"Target": target("arn:aws:sqs:us-east-1:000000000000:queue")}, "Invalid target arn:aws:sqs:"),
    ({"Target": target("arn:aws:lambda:eu-west-1:000000000000:function:f")}, "Invalid target arn:aws:lambda:eu-west-1"),
    ({"Target": target(function_arn("f"), Input="not json")}, "must be well-formed JSON"),
    ({"Target": target(function_arn("f"), RetryPolicy={"MaximumEventAgeInSeconds": 10})},
     "Value '10' at 'target.retryPolicy.maximumEventAgeInSeconds' failed to satisfy constraint: "
     "Member must have value greater than or equal to 60"),
    ({"FlexibleTimeWindow": {"Mode": "FLEXIBLE"}}, "MaximumWindowInMinutes must be set"),
    ({"GroupName": "no-such-group"}, "Schedule group no-such-group does not exist."),
])
def test_invalid_requests_are_refused(srv, name, change, message):
    scheduler = srv.client("scheduler", parameter_validation=False)  # the server's own checks
    request = {"Name": name, "ScheduleExpression": "rate(1 hour)", "FlexibleTimeWindow": {"Mode": "OFF"},
               "Target": target(function_arn("f")), **change}
    with pytest.raises(scheduler.exceptions.ClientError) as info:
        scheduler.create_schedule(**request)
    code = "ResourceNotFoundException" if "GroupName" in change else "ValidationException"
    assert error_code_and_status(info.value) == (code, 404 if "GroupName" in change else 400)
    assert message in info.value.response["Error"]["Message"]
    assert scheduler.list_schedules(NamePrefix=name)["Schedules"] == []


def test_conflict_and_name_pattern(scheduler, name):
    request = {"ScheduleExpression": "rate(1 hour)", "State": "DISABLED", "FlexibleTimeWindow": {"Mode": "OFF"},
               "Target": target(function_arn("f"))}
    scheduler.create_schedule(Name=name, **request)
    with pytest.raises(scheduler.exceptions.ConflictException) as info:
        scheduler.create_schedule(Name=name, **request)
    assert error_code_and_status(info.value) == ("ConflictException", 409)
    with pytest.raises(scheduler.exceptions.ValidationException) as info:
        scheduler.create_schedule(Name="bad name!", **request)
    assert "at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern" in str(info.value)
    scheduler.delete_schedule(Name=name)


def test_schedule_groups(scheduler, name):
    default = scheduler.get_schedule_group(Name="default")
    assert default["Arn"] == "arn:aws:scheduler:us-east-1:000000000000:schedule-group/default"
    assert default["State"] == "ACTIVE"
    group = f"g-{name}"
    assert scheduler.create_schedule_group(Name=group)["ScheduleGroupArn"].endswith(f":schedule-group/{group}")
    scheduler.create_schedule(Name=name, GroupName=group, ScheduleExpression="rate(1 hour)", State="DISABLED",
                              FlexibleTimeWindow={"Mode": "OFF"}, Target=target(function_arn("f")))
    assert scheduler.get_schedule(Name=name, GroupName=group)["Arn"].endswith(f":schedule/{group}/{name}")
    assert [s["Name"] for s in scheduler.list_schedules(GroupName=group)["Schedules"]] == [name]
    assert [g["Name"] for g in scheduler.list_schedule_groups(NamePrefix=group)["ScheduleGroups"]] == [group]
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule(Name=name)  # not in the default group
    with pytest.raises(scheduler.exceptions.ValidationException):
        scheduler.delete_schedule_group(Name="default")
    scheduler.delete_schedule_group(Name=group)
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule(Name=name, GroupName=group)


def test_aws_cli(srv, name):
    arn = function_arn("cli-target")
    out = aws_cli(srv, "scheduler", "create-schedule", "--name", name, "--schedule-expression", "rate(5 minutes)",
                  "--state", "DISABLED", "--flexible-time-window", '{"Mode": "OFF"}',
                  "--target", json.dumps({"Arn": arn, "RoleArn": SCHEDULER_ROLE}))
    assert json.loads(out.stdout)["ScheduleArn"].endswith(f":schedule/default/{name}")
    got = json.loads(aws_cli(srv, "scheduler", "get-schedule", "--name", name).stdout)
    assert got["ScheduleExpression"] == "rate(5 minutes)" and got["Target"]["Arn"] == arn
    listed = json.loads(aws_cli(srv, "scheduler", "list-schedules", "--name-prefix", name).stdout)
    assert [s["Name"] for s in listed["Schedules"]] == [name]
    aws_cli(srv, "scheduler", "delete-schedule", "--name", name)
    missing = aws_cli(srv, "scheduler", "get-schedule", "--name", name, check=False)
    assert missing.returncode != 0 and b"(ResourceNotFoundException)" in missing.stderr
    bad = aws_cli(srv, "scheduler", "create-schedule", "--name", name, "--schedule-expression", "at(2030-02-30T00:00:00)",
                  "--flexible-time-window", '{"Mode": "OFF"}', "--target", json.dumps({"Arn": arn, "RoleArn": SCHEDULER_ROLE}),
                  check=False)
    assert b"Invalid Schedule Expression at(2030-02-30T00:00:00)." in bad.stderr


def test_at_fires_once_with_input_and_deletes_itself(srv, scheduler, name, function):
    scheduler.create_schedule(
        Name=name, ScheduleExpression=at(2), FlexibleTimeWindow={"Mode": "OFF"}, ActionAfterCompletion="DELETE",
        Target=target(function_arn(function), Input='{"hello": "world", "from": "<aws.scheduler.schedule-arn>"}'))
    events = wait_until(lambda: received(srv, function), timeout=30, what="the scheduled invocation")
    assert events == [{"hello": "world", "from": f"arn:aws:scheduler:us-east-1:000000000000:schedule/default/{name}"}]
    # deleted in the transaction that enqueued the invoke: it cannot fire again
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule(Name=name)


def test_without_input_the_function_gets_the_default_notification(srv, scheduler, name, function):
    when = at(2)
    scheduler.create_schedule(Name=name, ScheduleExpression=when, FlexibleTimeWindow={"Mode": "OFF"},
                              Target=target(function_arn(function)))
    (event,) = wait_until(lambda: received(srv, function), timeout=30, what="the scheduled invocation")
    assert event["source"] == "aws.scheduler" and event["detail-type"] == "Scheduled Event"
    assert event["resources"] == [f"arn:aws:scheduler:us-east-1:000000000000:schedule/default/{name}"]
    assert event["detail"] == "{}" and event["time"] == when[3:-1] + "Z"
    assert scheduler.get_schedule(Name=name)["Name"] == name  # ActionAfterCompletion NONE: it stays
    scheduler.delete_schedule(Name=name)


def test_a_firing_due_while_the_server_was_down_runs_once_after_restart(srv, scheduler, name, function):
    scheduler.create_schedule(Name=name, ScheduleExpression=at(3), FlexibleTimeWindow={"Mode": "OFF"},
                              Target=target(function_arn(function), Input='{"after": "restart"}'))
    due = time.time() + 3
    srv.stop()
    try:
        wait_until(lambda: time.time() > due + 1, timeout=10, what="the scheduled time to pass")
    finally:
        srv.start()
    events = wait_until(lambda: received(srv, function), timeout=30, what="the invocation after the restart")
    assert events == [{"after": "restart"}]
    srv.restart()  # nothing left to fire: still exactly one invocation
    srv.client().invoke(FunctionName=function, Payload=b'{"probe": 1}')
    wait_until(lambda: len(received(srv, function)) == 2, timeout=30, what="the probe")
    assert received(srv, function) == [{"after": "restart"}, {"probe": 1}]
    scheduler.delete_schedule(Name=name)


def test_a_missing_target_function_goes_to_the_dead_letter_queue(srv, scheduler, moto, name):
    sqs = moto.client("sqs")
    url = sqs.create_queue(QueueName=f"dlq-{name}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    missing = function_arn(f"missing-{name}")
    scheduler.create_schedule(Name=name, ScheduleExpression=at(1), FlexibleTimeWindow={"Mode": "OFF"},
                              Target=target(missing, Input='{"lost": true}', DeadLetterConfig={"Arn": queue_arn}))
    messages = wait_until(lambda: sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"],
                                                      WaitTimeSeconds=1).get("Messages"),
                          timeout=30, what="the dead letter")
    (message,) = messages
    assert json.loads(message["Body"]) == {"lost": True}
    attributes = {key: value["StringValue"] for key, value in message["MessageAttributes"].items()}
    assert attributes["ERROR_CODE"] == "ResourceNotFoundException"
    assert attributes["ERROR_MESSAGE"] == f"Function not found: {missing}"
    assert attributes["SCHEDULE_ARN"] == f"arn:aws:scheduler:us-east-1:000000000000:schedule/default/{name}"
    assert attributes["TARGET_ARN"] == missing and attributes["RETRY_ATTEMPTS"] == "0"
    scheduler.delete_schedule(Name=name)
