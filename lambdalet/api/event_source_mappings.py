"""Event source mappings: Create/Get/Update/Delete/ListEventSourceMappings.

Validation runs in Lambda's order and words: the service model's constraints first
(`service_model.check_input`, ValidationException), then the rules of each kind of source
(InvalidParameterValueException), then the function, then the source itself (it must exist; an SQS
queue's visibility timeout must cover the function's timeout). Members a poller here cannot honour
are refused with a message saying so, never stored and ignored.
"""

from __future__ import annotations

import time
import uuid as uuids
from typing import Any, Awaitable, Callable

from aiohttp import web

from lambdalet import service_model, validation
from lambdalet.api.common import json_body, json_response, paginate, services
from lambdalet.errors import (
    InvalidParameterValueException, ResourceConflictException, ResourceNotFoundException, ValidationException,
)
from lambdalet.events.filtering import parse_filter_criteria
from lambdalet.events.mappings import (
    CREATING, DELETING, DISABLED, DISABLING, DYNAMODB, ENABLING, KINESIS, NO_RECORDS, SQS, UPDATING,
    USER_REASON, EventSourceMapping, source_kind,
)
from lambdalet.events.sources.base import client_error_code
from lambdalet.model import LATEST, parse_function_name
from lambdalet.validation import Body
from lambdalet.tenancy import refuse_with_tenancy

PATH = "/2015-03-31/event-source-mappings"
NOT_FOUND = "The resource you requested does not exist."
SQS_MAX_BATCH, STREAM_MAX_BATCH, FIFO_MAX_BATCH = 10000, 10000, 10
#: Members of sources Lambdalet does not poll (Kafka, MSK, Amazon MQ, DocumentDB).
OTHER_SOURCE_MEMBERS = ("Topics", "Queues", "SourceAccessConfigurations", "SelfManagedEventSource",
                        "AmazonManagedKafkaEventSourceConfig", "SelfManagedKafkaEventSourceConfig",
                        "DocumentDBEventSourceConfig")
#: Members for features not built: refused unless empty.
UNSUPPORTED = {"KMSKeyArn": "KMS is not modelled", "MetricsConfig": "its metrics are always on at /metrics",
               "LoggingConfig": "mapping logs are not modelled",
               "ProvisionedPollerConfig": "provisioned pollers are not modelled"}
STREAM_ONLY = ("ParallelizationFactor", "BisectBatchOnFunctionError", "MaximumRetryAttempts",
               "MaximumRecordAgeInSeconds", "TumblingWindowInSeconds", "StartingPositionTimestamp")
UNPOLLED_SERVICES = {"kafka": "Amazon MSK", "mq": "Amazon MQ", "rds": "Amazon DocumentDB", "docdb": "Amazon DocumentDB"}


def routes() -> list[web.RouteDef]:
    return [web.post(PATH, create_mapping), web.get(PATH, list_mappings), web.get(PATH + "/{uuid}", get_mapping),
            web.put(PATH + "/{uuid}", update_mapping), web.delete(PATH + "/{uuid}", delete_mapping)]


def _unsupported(member: str) -> InvalidParameterValueException:
    return InvalidParameterValueException(f"Unsupported {member} parameter for given event source mapping type.")


def _refuse_unbuilt(body: Body) -> None:
    for member, why in UNSUPPORTED.items():
        body.refuse_unless_default(member, issue=why)
    for member in OTHER_SOURCE_MEMBERS:
        if body.has(member):
            raise InvalidParameterValueException(
                f"{member} belongs to Kafka, Amazon MQ or DocumentDB event sources, which this Lambdalet server "
                "does not poll yet; it polls SQS queues, Kinesis streams and DynamoDB streams.")


def _kind(arn: str | None) -> str:
    if not arn:
        raise InvalidParameterValueException("Unrecognized event source.")
    kind = source_kind(arn)
    if kind is None:
        service = arn.split(":")[2] if arn.count(":") >= 5 else ""
        if service in UNPOLLED_SERVICES:
            raise InvalidParameterValueException(
                f"{UNPOLLED_SERVICES[service]} event sources are not polled by this Lambdalet server yet; it polls "
                "SQS queues, Kinesis streams and DynamoDB streams.")
        raise InvalidParameterValueException("Unrecognized event source.")
    return kind


def _settings(body: Body, kind: str, source_arn: str, base: dict[str, Any]) -> dict[str, Any]:
    """The mapping's settings: `base` (defaults, or the current settings on update) with the body's
    members applied, checked against the rules of this kind of source."""
    settings = dict(base)
    for member in ("BatchSize", "MaximumBatchingWindowInSeconds", "FunctionResponseTypes", "ScalingConfig",
                   "ParallelizationFactor", "BisectBatchOnFunctionError", "MaximumRetryAttempts",
                   "MaximumRecordAgeInSeconds", "TumblingWindowInSeconds", "StartingPosition"):
        if member in body.data and body.data[member] is not None:
            settings[member] = body.data[member]
    if kind == SQS:
        for member in (*STREAM_ONLY, "StartingPosition"):
            if body.has(member):
                if member == "StartingPosition":
                    raise InvalidParameterValueException(f"Unsupported starting position for arn type: {source_arn}")
                raise _unsupported(member)
        if body.has("DestinationConfig") and not _empty(body.data["DestinationConfig"]):
            raise _unsupported("DestinationConfig")
        if settings["BatchSize"] > 10 and not settings["MaximumBatchingWindowInSeconds"]:
            raise InvalidParameterValueException(
                "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10")
        if source_arn.endswith(".fifo") and settings["BatchSize"] > FIFO_MAX_BATCH:
            raise InvalidParameterValueException("Batch size for FIFO queues must be less than or equal to 10.")
    else:
        if body.has("ScalingConfig") and not _empty(body.data["ScalingConfig"]):
            raise _unsupported("ScalingConfig")
        _stream_settings(body, kind, source_arn, settings)
    if body.has("FilterCriteria"):
        criteria = parse_filter_criteria(body.data["FilterCriteria"], source=kind)
        settings["FilterCriteria"] = criteria.to_api() if criteria is not None else {}
    return settings


def _stream_settings(body: Body, kind: str, source_arn: str, settings: dict[str, Any]) -> None:
    if not settings.get("StartingPosition"):
        raise InvalidParameterValueException("1 validation error detected: Value null at 'startingPosition' failed "
                                             "to satisfy constraint: Member must not be null.")
    if settings["StartingPosition"] == "AT_TIMESTAMP":
        if kind == DYNAMODB:
            raise InvalidParameterValueException(f"Unsupported starting position for arn type: {source_arn}")
        if body.has("StartingPositionTimestamp"):
            try:
                settings["StartingPositionTimestamp"] = service_model.timestamp(body.data["StartingPositionTimestamp"],
                                                                                "startingPositionTimestamp")
            except ValueError as exc:
                raise ValidationException(str(exc)) from None
        if "StartingPositionTimestamp" not in settings:
            raise InvalidParameterValueException(
                "StartingPositionTimestamp is required when StartingPosition is AT_TIMESTAMP.")
    elif body.has("StartingPositionTimestamp"):
        raise InvalidParameterValueException(
            "StartingPositionTimestamp is only allowed when StartingPosition is AT_TIMESTAMP.")
    age = settings["MaximumRecordAgeInSeconds"]
    if age != -1 and age < 60:
        raise InvalidParameterValueException(
            "MaximumRecordAgeInSeconds must be -1 (records never expire) or between 60 and 604800.")
    destinations = body.data.get("DestinationConfig")
    if destinations is not None:
        if destinations.get("OnSuccess") and not _empty(destinations["OnSuccess"]):
            raise _unsupported("DestinationConfig")
        target = (destinations.get("OnFailure") or {}).get("Destination", "")
        if target and target.split(":")[2:3] not in (["sqs"], ["sns"], ["s3"]):
            raise InvalidParameterValueException(
                f"The destination {target} is not supported by this Lambdalet server: an on-failure destination of "
                "a stream is an SQS queue, an SNS topic or an S3 bucket.")
        settings["DestinationConfig"] = {"OnFailure": {"Destination": target} if target else {}}


def _empty(value: Any) -> bool:
    return not value or (isinstance(value, dict) and all(_empty(v) for v in value.values()))


def _defaults(kind: str) -> dict[str, Any]:
    if kind == SQS:
        return {"BatchSize": 10, "MaximumBatchingWindowInSeconds": 0, "FunctionResponseTypes": []}
    return {"BatchSize": 100, "MaximumBatchingWindowInSeconds": 0, "FunctionResponseTypes": [],
            "ParallelizationFactor": 1, "BisectBatchOnFunctionError": False, "MaximumRetryAttempts": -1,
            "MaximumRecordAgeInSeconds": -1, "TumblingWindowInSeconds": 0, "DestinationConfig": {"OnFailure": {}}}


def _function(request: web.Request, raw: str) -> tuple[str, str | None, str]:
    """(name, qualifier, FunctionArn as Lambda echoes it) of a FunctionName; the function (and the
    version or alias it names) must exist."""
    svc = services(request)
    ref = parse_function_name(raw)
    if (ref.account and ref.account != svc.arns.account) or (ref.region and ref.region != svc.arns.region):
        raise InvalidParameterValueException("Function does not exist")
    if not svc.functions.exists(ref.name):
        raise InvalidParameterValueException("Function does not exist")
    config = svc.functions.config(ref.name, ref.qualifier)  # Lambda's 404 for a version or alias that is not there
    refuse_with_tenancy(config, "Event source mappings")
    return ref.name, ref.qualifier, svc.arns.function(ref.name, ref.qualifier)


async def _check_source(request: web.Request, kind: str, arn: str, function_timeout: int, function: str) -> None:
    """The source must exist and answer (to `function`'s role, as the poller will read it); an SQS
    queue's visibility timeout must cover the function's."""
    pollers = services(request).mappings.context
    parts = arn.split(":")
    region = parts[3]
    try:
        if kind == SQS:
            url = (await pollers.aws("sqs", region, "get_queue_url", function_name=function, QueueName=parts[5],
                                     QueueOwnerAWSAccountId=parts[4]))["QueueUrl"]
            attributes = (await pollers.aws("sqs", region, "get_queue_attributes", function_name=function,
                                            QueueUrl=url, AttributeNames=["VisibilityTimeout"]))["Attributes"]
            visibility = int(attributes.get("VisibilityTimeout", 30))
            if function_timeout > visibility:
                raise InvalidParameterValueException(
                    f"Queue visibility timeout: {visibility} seconds is less than Function timeout: "
                    f"{function_timeout} seconds")
        elif kind == KINESIS:
            await pollers.aws("kinesis", region, "describe_stream_summary", function_name=function, StreamARN=arn)
        else:
            await pollers.aws("dynamodbstreams", region, "describe_stream", function_name=function, StreamArn=arn,
                              Limit=1)
    except InvalidParameterValueException:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure of the source is the caller's to see
        code = client_error_code(exc)
        if kind == SQS and code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            raise InvalidParameterValueException(
                "Error occurred while ReceiveMessage. SQS Error Code: AWS.SimpleQueueService.NonExistentQueue. "
                "SQS Error Message: The specified queue does not exist.") from None
        if code == "ResourceNotFoundException":
            raise InvalidParameterValueException(f"Stream not found: {arn}") from None
        raise InvalidParameterValueException(f"Lambdalet could not reach the event source {arn}: {exc}") from None


def _duplicate(existing: list[EventSourceMapping], function_arn: str, function_name: str, kind: str,
               arn: str) -> None:
    for other in existing:
        if other.function_arn == function_arn and other.state != DELETING:
            if kind == SQS:
                raise ResourceConflictException(
                    f'An event source mapping with SQS arn (" {arn} ") and function (" {function_name} ") already '
                    f"exists. Please update or delete the existing mapping with UUID {other.uuid}")
            raise ResourceConflictException(
                f'The event source arn (" {arn} ") and function (" {function_name} ") provided mapping already '
                f"exists. Please update or delete the existing mapping with UUID {other.uuid}")


async def create_mapping(request: web.Request) -> web.Response:
    svc = services(request)
    body = await json_body(request)
    service_model.check_input("CreateEventSourceMapping", body.data)
    _refuse_unbuilt(body)
    destinations = body.data.get("DestinationConfig") or {}
    if destinations.get("OnSuccess") and not _empty(destinations["OnSuccess"]):
        raise _unsupported("DestinationConfig")
    source_arn = body.data.get("EventSourceArn")
    kind = _kind(source_arn)
    settings = _settings(body, kind, source_arn, _defaults(kind))
    name, qualifier, function_arn = _function(request, body.string("FunctionName", required=True) or "")
    tags = validation.tags(body) or {}
    _duplicate(await svc.mappings.find(source_arn=source_arn), function_arn, body.data["FunctionName"], kind,
               source_arn)
    await _check_source(request, kind, source_arn, svc.functions.config(name, qualifier).timeout, name)
    enabled = body.boolean("Enabled", True)
    mapping = EventSourceMapping(str(uuids.uuid4()), name, qualifier, function_arn, source_arn, kind, settings,
                                 enabled, CREATING, USER_REASON[kind], NO_RECORDS, time.time(), tags)
    await svc.mappings.create(mapping)
    return json_response(mapping.to_api(), status=202)


async def get_mapping(request: web.Request) -> web.Response:
    return json_response((await _existing(request)).to_api())


async def _existing(request: web.Request) -> EventSourceMapping:
    mapping = await services(request).mappings.get(request.match_info["uuid"])
    if mapping is None:
        raise ResourceNotFoundException(NOT_FOUND)
    return mapping


async def update_mapping(request: web.Request) -> web.Response:
    svc = services(request)
    body = await json_body(request)
    service_model.check_input("UpdateEventSourceMapping", body.data)
    _refuse_unbuilt(body)

    async def change(mapping: EventSourceMapping) -> EventSourceMapping:
        if mapping.state == DELETING:
            raise ResourceNotFoundException(NOT_FOUND)
        settings = _settings(body, mapping.kind, mapping.source_arn, mapping.settings)
        name, qualifier, function_arn = mapping.function_name, mapping.qualifier, mapping.function_arn
        if body.has("FunctionName"):
            name, qualifier, function_arn = _function(request, body.string("FunctionName") or "")
        if mapping.kind == SQS and (body.has("FunctionName") or body.has("BatchSize")):
            await _check_source(request, SQS, mapping.source_arn, svc.functions.config(name, qualifier).timeout,
                                name)
        enabled = body.boolean("Enabled", mapping.enabled)
        if enabled != mapping.enabled:
            state = ENABLING if enabled else DISABLING
        else:
            state = UPDATING if enabled or mapping.state != DISABLED else DISABLED
        return EventSourceMapping(mapping.uuid, name, qualifier, function_arn, mapping.source_arn, mapping.kind,
                                  settings, enabled, state, USER_REASON[mapping.kind], mapping.last_result,
                                  time.time(), mapping.tags, mapping.revision)

    return await _change(request, change)


async def delete_mapping(request: web.Request) -> web.Response:
    async def change(mapping: EventSourceMapping) -> EventSourceMapping:
        return mapping.with_state(DELETING, USER_REASON[mapping.kind])

    return await _change(request, change)


async def _change(request: web.Request, change: Callable[[EventSourceMapping], Awaitable[EventSourceMapping]]
                  ) -> web.Response:
    """Update or Delete: the changed mapping, answered with 202 as Lambda answers both."""
    mapping = await services(request).mappings.update(request.match_info["uuid"], change)
    if mapping is None:
        raise ResourceNotFoundException(NOT_FOUND)
    return json_response(mapping.to_api(), status=202)


async def list_mappings(request: web.Request) -> web.Response:
    svc = services(request)
    source_arn = request.query.get("EventSourceArn")
    function = request.query.get("FunctionName")
    name = qualifier = None
    if function:
        ref = parse_function_name(function)
        name, qualifier = ref.name, ref.qualifier
    found = await svc.mappings.find(function_name=name, source_arn=source_arn)
    if qualifier is not None:
        found = [m for m in found if (m.qualifier or LATEST) == qualifier]
    by_uuid = {mapping.uuid: mapping for mapping in found}
    page, next_marker = paginate(request, sorted(by_uuid))
    answer: dict[str, Any] = {"EventSourceMappings": [by_uuid[key].to_api() for key in page]}
    if next_marker is not None:
        answer["NextMarker"] = next_marker
    return json_response(answer)

