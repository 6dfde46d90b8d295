"""An EventBridge Scheduler subset on the Lambda API's port: schedules that invoke this server's functions.

AWS's REST paths (`/schedules/{Name}`, `/schedule-groups/{Name}`), status codes and members, as
botocore's `scheduler` model has them; requests are validated against that model (`service_model.py`).
Errors are the service's own shape: header `x-amzn-ErrorType` and a body `{"Message": ...}`.
Operations: CreateSchedule, GetSchedule, UpdateSchedule (replaces the whole schedule), DeleteSchedule,
ListSchedules, and CreateScheduleGroup, GetScheduleGroup, ListScheduleGroups, DeleteScheduleGroup.

A schedule's target must be a Lambda function of this server (its ARN, or a version's or an alias's):
anything else is refused rather than stored and never run. Firing is `events/scheduler.py`.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import time
from typing import Any

from aiohttp import web

from lambdalet import service_model
from lambdalet.api.common import json_response, lambda_body, services
from lambdalet.errors import LambdaError
from lambdalet.events.scheduler import first_times, schedule_arn
from lambdalet.schedules.expressions import InvalidExpression, Timing
from lambdalet.store.schedules import DEFAULT_GROUP, Group, StoredSchedule

SERVICE = "scheduler"
MAX_RESULTS = 100
MAX_INPUT_BYTES = 262_144  # the event a firing enqueues stays well under Lambda's 1 MB asynchronous payload
DEFAULT_RETRY_POLICY = {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}
#: Target members for targets other than Lambda functions (ECS tasks, SQS queues, ...).
OTHER_TARGET_PARAMETERS = ("EcsParameters", "EventBridgeParameters", "EventBridgePutEventsV2Parameters",
                           "EventBridgePutRawEventsParameters", "KinesisParameters", "SageMakerPipelineParameters",
                           "SqsParameters")
#: What a schedule keeps of its request (GetSchedule answers these, plus its ARN, group and dates).
STORED = ("ScheduleExpression", "ScheduleExpressionTimezone", "StartDate", "EndDate", "Description", "State",
          "Target", "FlexibleTimeWindow", "ActionAfterCompletion")


class SchedulerError(LambdaError):
    """An error in EventBridge Scheduler's shape: the type in `x-amzn-ErrorType`, `{"Message"}`."""

    def body(self) -> dict[str, str]:
        return {"Message": self.message}


class ValidationException(SchedulerError):
    status, error_type = 400, "ValidationException"


class ResourceNotFoundException(SchedulerError):
    status, error_type = 404, "ResourceNotFoundException"


class ConflictException(SchedulerError):
    status, error_type = 409, "ConflictException"


def routes() -> list[web.RouteDef]:
    return [
        web.post("/schedules/{name}", create_schedule),
        web.get("/schedules/{name}", get_schedule),
        web.put("/schedules/{name}", update_schedule),
        web.delete("/schedules/{name}", delete_schedule),
        web.get("/schedules", list_schedules),
        web.post("/schedule-groups/{name}", create_group),
        web.get("/schedule-groups/{name}", get_group),
        web.delete("/schedule-groups/{name}", delete_group),
        web.get("/schedule-groups", list_groups),
    ]


# -- requests ---------------------------------------------------------------------------------------

async def _body(request: web.Request, operation: str) -> dict[str, Any]:
    """The JSON body, validated against the operation's input shape."""
    raw = await lambda_body(request)
    try:
        body = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError):
        raise ValidationException("The request body is not valid JSON.") from None
    _check(service_model.problems(service_model.input_shape(SERVICE, operation), body, ""))
    return body


def _check(found: list[str]) -> None:
    if found:
        raise ValidationException(service_model.message(found))


def _param(operation: str, member: str, value: str | None, path: str) -> str | None:
    """A path or query parameter, validated against its member shape."""
    if value is not None:
        _check(service_model.string_problems(service_model.member(SERVICE, operation, member), value, path))
    return value


def _name(request: web.Request, operation: str) -> str:
    name = _param(operation, "Name", request.match_info["name"], "name")
    assert name is not None
    return name


def _max_results(request: web.Request, operation: str) -> int:
    raw = request.query.get("MaxResults")
    if raw is None:
        return MAX_RESULTS
    try:
        value = int(raw)
    except ValueError:
        raise ValidationException(f"1 validation error detected: Value '{raw}' at 'maxResults' failed to satisfy "
                                  "constraint: Member must be an integer") from None
    _check(service_model.problems(service_model.member(SERVICE, operation, "MaxResults"), value, "maxResults"))
    return value


def _page(keys: list[str], request: web.Request, operation: str) -> tuple[list[str], str | None]:
    """One page of sorted keys after NextToken (the last key of the page before)."""
    token = _param(operation, "NextToken", request.query.get("NextToken"), "nextToken")
    limit = _max_results(request, operation)
    start = next((i for i, key in enumerate(keys) if key > token), len(keys)) if token else 0
    page = keys[start:start + limit]
    return page, page[-1] if start + limit < len(keys) else None


def _deleted(svc: Any, deleted: bool, what: str) -> web.Response:
    """A Delete* answer; the firing loop re-reads the soonest due time."""
    if not deleted:
        raise ResourceNotFoundException(f"{what} does not exist.")
    svc.schedules.changed()
    return json_response({})


def _listed(field: str, items: list[dict[str, Any]], token: str | None) -> web.Response:
    result: dict[str, Any] = {field: items}
    if token is not None:
        result["NextToken"] = token
    return json_response(result)


async def _db(function: Any, *args: Any) -> Any:
    return await asyncio.to_thread(function, *args)


# -- schedules --------------------------------------------------------------------------------------

def _target(svc: Any, target: dict[str, Any]) -> dict[str, Any]:
    """Refuse what this server cannot deliver to; fill in AWS's default RetryPolicy."""
    arns = svc.arns
    arn = target["Arn"]
    function = re.fullmatch(rf"arn:aws:lambda:{re.escape(arns.region)}:{re.escape(arns.account)}:function:"
                            r"[a-zA-Z0-9-_]{1,64}(:(\$LATEST|[a-zA-Z0-9-_]{1,128}))?", arn)
    if function is None:
        raise ValidationException(
            f"Invalid target {arn}: Lambdalet's schedules invoke Lambda functions of this server, "
            f"arn:aws:lambda:{arns.region}:{arns.account}:function:NAME (or NAME:VERSION, NAME:ALIAS).")
    for other in OTHER_TARGET_PARAMETERS:
        if target.get(other) is not None:
            raise ValidationException(f"{other} is not valid for a Lambda function target.")
    if "Input" in target:
        if len(target["Input"].encode()) > MAX_INPUT_BYTES:
            raise ValidationException(f"The Input of a target must be at most {MAX_INPUT_BYTES} bytes.")
        try:
            json.loads(target["Input"])
        except (ValueError, RecursionError):
            raise ValidationException("The Input of a Lambda function target must be well-formed JSON.") from None
    kept = {key: target[key] for key in ("Arn", "RoleArn", "Input", "DeadLetterConfig") if key in target}
    kept["RetryPolicy"] = {**DEFAULT_RETRY_POLICY, **target.get("RetryPolicy", {})}
    return kept


def _config(svc: Any, body: dict[str, Any]) -> dict[str, Any]:
    """The schedule a Create/UpdateSchedule request describes, with AWS's defaults, validated."""
    if body.get("KmsKeyArn") is not None:
        raise ValidationException("KmsKeyArn is not supported: Lambdalet does not encrypt schedules with KMS keys.")
    window = body["FlexibleTimeWindow"]
    if (window["Mode"] == "FLEXIBLE") != (window.get("MaximumWindowInMinutes") is not None):
        raise ValidationException("MaximumWindowInMinutes must be set when the Mode of FlexibleTimeWindow is "
                                  "FLEXIBLE, and only then.")
    config: dict[str, Any] = {key: body[key] for key in STORED if body.get(key) is not None}
    for key in ("StartDate", "EndDate"):
        if key in config:
            try:
                config[key] = service_model.timestamp(config[key], key[0].lower() + key[1:])
            except ValueError as exc:
                raise ValidationException(str(exc)) from None
    if "StartDate" in config and "EndDate" in config and config["EndDate"] <= config["StartDate"]:
        raise ValidationException("The EndDate must be after the StartDate.")
    config.setdefault("State", "ENABLED")
    config.setdefault("ActionAfterCompletion", "NONE")
    config["Target"] = _target(svc, body["Target"])
    try:
        Timing.of(config["ScheduleExpression"], config.get("ScheduleExpressionTimezone"), config.get("StartDate"),
                  config.get("EndDate"), 0)
    except InvalidExpression as exc:
        raise ValidationException(str(exc)) from None
    return config


async def _require_group(svc: Any, group: str) -> None:
    if await _db(svc.schedule_store.group, group) is None:
        raise ResourceNotFoundException(f"Schedule group {group} does not exist.")


def _written(group: str, name: str, config: dict, created: float, now: float) -> StoredSchedule:
    """A schedule as written now, with its first time (a rate counts from StartDate, else from now,
    whole seconds: without a StartDate it fires at once)."""
    start = config.get("StartDate")
    second = float(math.floor(now))
    schedule = StoredSchedule(group, name, config, created, now, start if start is not None else second)
    scheduled_at, fire_at = first_times(schedule, second, random.random)
    return StoredSchedule(group, name, config, created, now, schedule.anchor, 0, scheduled_at, fire_at)


async def _schedule_request(request: web.Request, operation: str) -> tuple[Any, str, str, dict[str, Any]]:
    """A Create/UpdateSchedule request: the services, name, group and the schedule it describes."""
    svc = services(request)
    name = _name(request, operation)
    body = await _body(request, operation)
    return svc, name, body.get("GroupName", DEFAULT_GROUP), _config(svc, body)


async def create_schedule(request: web.Request) -> web.Response:
    svc, name, group, config = await _schedule_request(request, "CreateSchedule")
    await _require_group(svc, group)
    now = time.time()
    if not await _db(svc.schedule_store.create, _written(group, name, config, now, now)):
        raise ConflictException(f"Schedule {name} already exists.")
    svc.schedules.changed()
    return json_response({"ScheduleArn": schedule_arn(svc.arns, group, name)})


async def _existing(svc: Any, group: str, name: str) -> StoredSchedule:
    schedule = await _db(svc.schedule_store.get, group, name)
    if schedule is None:
        raise ResourceNotFoundException(f"Schedule {name} does not exist.")
    return schedule


async def get_schedule(request: web.Request) -> web.Response:
    svc = services(request)
    name = _name(request, "GetSchedule")
    group = _param("GetSchedule", "GroupName", request.query.get("groupName"), "groupName") or DEFAULT_GROUP
    schedule = await _existing(svc, group, name)
    return json_response({"Arn": schedule_arn(svc.arns, group, name), "GroupName": group, "Name": name,
                          **schedule.config, "CreationDate": schedule.created,
                          "LastModificationDate": schedule.modified})


async def update_schedule(request: web.Request) -> web.Response:
    svc, name, group, config = await _schedule_request(request, "UpdateSchedule")
    existing = await _existing(svc, group, name)
    if not await _db(svc.schedule_store.replace, _written(group, name, config, existing.created, time.time())):
        raise ResourceNotFoundException(f"Schedule {name} does not exist.")
    svc.schedules.changed()
    return json_response({"ScheduleArn": schedule_arn(svc.arns, group, name)})


async def delete_schedule(request: web.Request) -> web.Response:
    svc = services(request)
    name = _name(request, "DeleteSchedule")
    group = _param("DeleteSchedule", "GroupName", request.query.get("groupName"), "groupName") or DEFAULT_GROUP
    return _deleted(svc, await _db(svc.schedule_store.delete, group, name), f"Schedule {name}")


async def list_schedules(request: web.Request) -> web.Response:
    svc = services(request)
    group = _param("ListSchedules", "GroupName", request.query.get("ScheduleGroup"), "groupName")
    prefix = _param("ListSchedules", "NamePrefix", request.query.get("NamePrefix"), "namePrefix")
    state = _param("ListSchedules", "State", request.query.get("State"), "state")
    if group is not None:
        await _require_group(svc, group)
    found = {f"{s.group}/{s.name}": s for s in await _db(svc.schedule_store.list, group, prefix, state)}
    page, token = _page(sorted(found), request, "ListSchedules")
    return _listed("Schedules", [
        {"Arn": schedule_arn(svc.arns, s.group, s.name), "Name": s.name, "GroupName": s.group,
         "State": s.config["State"], "CreationDate": s.created, "LastModificationDate": s.modified,
         "Target": {"Arn": s.config["Target"]["Arn"]}} for s in (found[key] for key in page)], token)


# -- schedule groups --------------------------------------------------------------------------------

def _group_arn(svc: Any, name: str) -> str:
    return f"arn:aws:scheduler:{svc.arns.region}:{svc.arns.account}:schedule-group/{name}"


def _describe_group(svc: Any, group: Group) -> dict[str, Any]:
    return {"Arn": _group_arn(svc, group.name), "Name": group.name, "State": "ACTIVE",
            "CreationDate": group.created, "LastModificationDate": group.modified}


async def create_group(request: web.Request) -> web.Response:
    svc = services(request)
    name = _name(request, "CreateScheduleGroup")
    body = await _body(request, "CreateScheduleGroup")
    if body.get("Tags"):
        raise ValidationException("Tags are not supported: Lambdalet does not tag schedule groups.")
    if not await _db(svc.schedule_store.create_group, name, time.time()):
        raise ConflictException(f"Schedule group {name} already exists.")
    return json_response({"ScheduleGroupArn": _group_arn(svc, name)})


async def get_group(request: web.Request) -> web.Response:
    svc = services(request)
    name = _name(request, "GetScheduleGroup")
    group = await _db(svc.schedule_store.group, name)
    if group is None:
        raise ResourceNotFoundException(f"Schedule group {name} does not exist.")
    return json_response(_describe_group(svc, group))


async def delete_group(request: web.Request) -> web.Response:
    svc = services(request)
    name = _name(request, "DeleteScheduleGroup")
    if name == DEFAULT_GROUP:
        raise ValidationException("The default schedule group cannot be deleted.")
    return _deleted(svc, await _db(svc.schedule_store.delete_group, name), f"Schedule group {name}")


async def list_groups(request: web.Request) -> web.Response:
    svc = services(request)
    prefix = _param("ListScheduleGroups", "NamePrefix", request.query.get("NamePrefix"), "namePrefix")
    groups = {g.name: g for g in await _db(svc.schedule_store.groups) if not prefix or g.name.startswith(prefix)}
    page, token = _page(sorted(groups), request, "ListScheduleGroups")
    return _listed("ScheduleGroups", [_describe_group(svc, groups[name]) for name in page], token)
