"""The firing loop of EventBridge Scheduler schedules: each firing is an asynchronous invoke.

A schedule's next time lives in the database (`store/schedules.py`), so firings survive restarts
and several servers can share one database. The loop keeps only the soonest `fire_at` in memory
and sleeps until then; an API write on this server wakes it to read that again, and it also reads
it every `poll_interval` seconds (one indexed query) for schedules other servers wrote.

Firing a scheduled time enqueues Lambda's asynchronous invoke (an `async_events` row, so the
queue runs it with Lambda's async retries, event invoke config and dead-letter queue), in the same
transaction that advances the schedule: once per scheduled time, never twice. Delivery, as AWS
counts it, is that enqueueing; it fails when the target function (or its version or alias) does
not exist, and such a firing goes to the schedule's dead-letter queue, if it has one, at once (AWS
does not retry a missing resource). A firing that comes due while the server is down runs once
it is back, if no older than the RetryPolicy's MaximumEventAgeInSeconds (default 86,400), else it
goes to the dead-letter queue; of a recurring schedule's missed times only the latest runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable

from lambdalet.errors import ResourceNotFoundException
from lambdalet.events.destinations import Deliveries, Target
from lambdalet.model import Arns, parse_function_name
from lambdalet.schedules.expressions import Timing, fire_time
from lambdalet.store.events import QueuedEvent
from lambdalet.store.schedules import Advance, ScheduleStore, StoredSchedule

if TYPE_CHECKING:
    from lambdalet.functions import FunctionRegistry

log = logging.getLogger(__name__)
DEFAULT_MAX_EVENT_AGE_S = 86400
BATCH = 100  # schedules advanced per transaction
LOCKED_RETRY_S = 0.2


def schedule_arn(arns: Arns, group: str, name: str) -> str:
    return f"arn:aws:scheduler:{arns.region}:{arns.account}:schedule/{group}/{name}"


def timing(schedule: StoredSchedule) -> Timing:
    config = schedule.config
    return Timing.of(config["ScheduleExpression"], config.get("ScheduleExpressionTimezone"), config.get("StartDate"),
                     config.get("EndDate"), schedule.anchor)


def window_minutes(config: dict) -> int | None:
    window = config["FlexibleTimeWindow"]
    return window.get("MaximumWindowInMinutes") if window["Mode"] == "FLEXIBLE" else None


def first_times(schedule: StoredSchedule, now: float, draw: Callable[[], float]) -> tuple[float | None, float | None]:
    """A schedule's first scheduled time and when it fires, as written (None, None: disabled or over)."""
    if schedule.config.get("State", "ENABLED") != "ENABLED":
        return None, None
    scheduled = timing(schedule).first(now)
    return scheduled, (fire_time(scheduled, window_minutes(schedule.config), draw) if scheduled is not None else None)


def iso_seconds(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class DeadLetter:
    """A firing that could not be delivered, for the schedule's dead-letter queue (sent after the
    transaction that advanced the schedule commits: at most once)."""

    queue_arn: str
    body: str
    attributes: dict[str, str]


class ScheduleRunner:
    def __init__(self, store: ScheduleStore, functions: "FunctionRegistry", arns: Arns, *, poll_interval: float,
                 clock: Callable[[], float] = time.time, draw: Callable[[], float] = random.random) -> None:
        self._store = store
        self._functions = functions
        self._arns = arns
        self._poll_interval = poll_interval
        self._clock = clock
        self._draw = draw
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lambdalet-schedules-db")
        self._deliveries = Deliveries(self._no_function_destination, threads=2)

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def changed(self) -> None:
        """A schedule was written on this server: read the soonest due time again now."""
        self._wake.set()

    async def _db_call(self, function: Callable, *args):  # type: ignore[no-untyped-def]
        return await asyncio.get_running_loop().run_in_executor(self._db, function, *args)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            soonest: float | None = None
            try:
                soonest = await self._db_call(self._store.soonest)
                while soonest is not None and soonest <= self._clock():
                    letters = await self._db_call(self._store.fire_due, self._clock(), BATCH, self._decide)
                    for letter in filter(None, letters):
                        await self._deliveries.send_to_queue(letter.queue_arn, letter.body, letter.attributes,
                                                             "a schedule's dead letter")
                    soonest = await self._db_call(self._store.soonest)
                    if not letters:  # due but not ours (another server holds it, or it changed): look again soon
                        soonest = self._clock() + LOCKED_RETRY_S
                        break
            except Exception:  # the database is away: try again at the next poll
                log.exception("the schedules' firing loop could not read or write the database")
                soonest = None
            timeout = self._poll_interval if soonest is None else min(self._poll_interval,
                                                                       max(0.0, soonest - self._clock()))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    # -- on the database thread, inside fire_due's transaction ----------------------------------

    def _decide(self, schedule: StoredSchedule) -> tuple[Advance, DeadLetter | None]:
        """What a due schedule does now: skip to its latest missed time, or fire (enqueue the invoke,
        or dead-letter it) and move on to its next time."""
        now = self._clock()
        plan = timing(schedule)
        config = schedule.config
        window = window_minutes(config)
        due = schedule.scheduled_at
        assert due is not None and schedule.fire_at is not None
        if not plan.expression.one_time:
            latest, skipped = plan.catch_up(due, now)
            if skipped:
                log.warning("schedule %s/%s missed %d scheduled time(s) while the server was down; only the "
                            "latest (%s) runs", schedule.group, schedule.name, skipped, iso_seconds(latest))
                return Advance(latest, fire_time(latest, window, self._draw)), None
        following = plan.after(due)
        advance = Advance(following, fire_time(following, window, self._draw) if following is not None else None,
                          delete=following is None and config.get("ActionAfterCompletion") == "DELETE")
        target = config["Target"]
        arn = schedule_arn(self._arns, schedule.group, schedule.name)
        execution_id = str(uuid.uuid4())
        payload = self._payload(target.get("Input"), arn, due, execution_id)
        ref = parse_function_name(target["Arn"])
        max_age = target.get("RetryPolicy", {}).get("MaximumEventAgeInSeconds", DEFAULT_MAX_EVENT_AGE_S)
        failure: tuple[str, str, str | None] | None = None
        if now - schedule.fire_at > max_age:
            failure = ("EventAgeExceeded", f"The firing of {iso_seconds(due)} is older than MaximumEventAgeInSeconds "
                       f"({max_age}): the server was down when it came due", "MaximumEventAgeInSeconds")
        else:
            try:
                self._functions.config(ref.name, ref.qualifier)
            except ResourceNotFoundException as exc:
                failure = ("ResourceNotFoundException", exc.message, None)
        if failure is None:
            event = QueuedEvent(execution_id, ref.name, ref.qualifier, self._arns.function(ref.name, ref.qualifier),
                                payload.encode(), now)
            return Advance(advance.scheduled_at, advance.fire_at, advance.delete, event), None
        code, message, condition = failure
        dead_letter = target.get("DeadLetterConfig", {}).get("Arn")
        log.warning("schedule %s/%s could not invoke %s for %s: %s%s", schedule.group, schedule.name, target["Arn"],
                    iso_seconds(due), message, f"; sent to {dead_letter}" if dead_letter else "; dropped")
        if not dead_letter:
            return advance, None
        attributes = {"ERROR_CODE": code, "ERROR_MESSAGE": message, "EXECUTION_ID": execution_id,
                      "IS_PAYLOAD_TRUNCATED": "false", "RETRY_ATTEMPTS": "0", "SCHEDULED_TIME": iso_seconds(due),
                      "SCHEDULE_ARN": arn, "TARGET_ARN": target["Arn"]}
        if condition is not None:
            attributes["EXHAUSTED_RETRY_CONDITION"] = condition
        return advance, DeadLetter(dead_letter, payload, attributes)

    def _payload(self, given: str | None, arn: str, scheduled: float, execution_id: str) -> str:
        """The event the function receives: the target's Input with the context attributes filled
        in, or, without one, the default notification AWS sends."""
        if given is not None:
            for name, value in (("schedule-arn", arn), ("scheduled-time", iso_seconds(scheduled)),
                                ("execution-id", execution_id), ("attempt-number", "1")):
                given = given.replace(f"<aws.scheduler.{name}>", value)
            return given
        return json.dumps({"version": "0", "id": execution_id, "detail-type": "Scheduled Event",
                           "source": "aws.scheduler", "account": self._arns.account, "time": iso_seconds(scheduled),
                           "region": self._arns.region, "resources": [arn], "detail": "{}"})

    @staticmethod
    async def _no_function_destination(target: Target, payload: bytes, trace: str | None = None) -> None:
        raise ValueError("a schedule's dead-letter queue is an SQS queue")

    async def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._db.shutdown(wait=True)
        self._deliveries.close()
