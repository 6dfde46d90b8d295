"""What the firing loop decides for a due schedule (no database, no loop: an injected clock)."""

from __future__ import annotations

import json

from lambdalet.errors import ResourceNotFoundException
from lambdalet.events.scheduler import ScheduleRunner
from lambdalet.model import Arns
from lambdalet.store.schedules import StoredSchedule

ARNS = Arns("000000000000", "us-east-1")
FUNCTION = "arn:aws:lambda:us-east-1:000000000000:function:fn"
DLQ = "arn:aws:sqs:us-east-1:000000000000:dlq"


class Functions:
    def __init__(self, *names: str) -> None:
        self.names = names

    def config(self, name: str, qualifier: str | None = None) -> object:
        if name not in self.names:
            raise ResourceNotFoundException(f"Function not found: {ARNS.function(name, qualifier)}")
        return object()


def runner(now: float, *functions: str) -> ScheduleRunner:
    return ScheduleRunner(None, Functions(*functions), ARNS, poll_interval=1, clock=lambda: now,  # type: ignore[arg-type]
                          draw=lambda: 0.5)


def schedule(expression: str, due: float, **target) -> StoredSchedule:
    config = {"ScheduleExpression": expression, "State": "ENABLED", "FlexibleTimeWindow": {"Mode": "OFF"},
              "ActionAfterCompletion": "DELETE", "Target": {"Arn": FUNCTION, "RoleArn": "r", **target}}
    return StoredSchedule("default", "s", config, 0.0, 0.0, 0.0, 3, due, due)


def test_a_due_firing_enqueues_the_input_and_moves_on():
    advance, letter = runner(120.5, "fn")._decide(schedule("rate(1 minute)", 120.0, Input='{"x": 1}'))
    assert letter is None and (advance.scheduled_at, advance.fire_at, advance.delete) == (180.0, 180.0, False)
    assert advance.event is not None and json.loads(advance.event.payload) == {"x": 1}
    assert (advance.event.function_name, advance.event.qualifier) == ("fn", None)


def test_a_one_time_schedule_is_deleted_after_its_firing():
    advance, _ = runner(1_900_000_000.0, "fn")._decide(schedule("at(2030-03-17T17:46:40)", 1_900_000_000.0))
    assert advance.delete and advance.event is not None


def test_missed_recurring_times_skip_to_the_latest_first():
    advance, letter = runner(3600.0 * 5 + 10, "fn")._decide(schedule("rate(1 hour)", 3600.0))
    assert (advance.scheduled_at, advance.event, letter) == (3600.0 * 5, None, None)


def test_a_firing_older_than_its_maximum_age_is_dead_lettered():
    due = 1_900_000_000.0
    advance, letter = runner(due + 61, "fn")._decide(schedule(
        "at(2030-03-17T17:46:40)", due, Input="{}", RetryPolicy={"MaximumEventAgeInSeconds": 60},
        DeadLetterConfig={"Arn": DLQ}))
    assert advance.event is None and letter is not None and letter.queue_arn == DLQ
    assert letter.attributes["EXHAUSTED_RETRY_CONDITION"] == "MaximumEventAgeInSeconds"
    assert letter.attributes["ERROR_CODE"] == "EventAgeExceeded"
    assert letter.attributes["SCHEDULED_TIME"] == "2030-03-17T17:46:40Z"


def test_a_missing_function_is_dead_lettered_without_a_retry_condition():
    advance, letter = runner(120.0)._decide(schedule("rate(1 minute)", 120.0, DeadLetterConfig={"Arn": DLQ}))
    assert advance.event is None and advance.scheduled_at == 180.0 and letter is not None
    assert letter.attributes["ERROR_CODE"] == "ResourceNotFoundException"
    assert "EXHAUSTED_RETRY_CONDITION" not in letter.attributes
    assert json.loads(letter.body)["source"] == "aws.scheduler"
