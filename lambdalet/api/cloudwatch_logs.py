"""A CloudWatch Logs subset on the Lambda API's port: AWS's JSON 1.1 protocol, routed by target.

`POST /` with `X-Amz-Target: Logs_20140328.<Operation>` and a JSON body, as botocore's `logs` client
sends it; errors are `{"__type": ..., "message": ...}` with status 400 (CloudWatch Logs' shape, not
Lambda's). Operations: DescribeLogGroups, DescribeLogStreams, GetLogEvents, FilterLogEvents,
CreateLogGroup, DeleteLogGroup, PutRetentionPolicy, DeleteRetentionPolicy. The data is
`log_groups.LogReader` over the files environments write (`logs.py`); in a cluster,
`cluster_logs.ClusterLogReader` over every live node's, which a node reads of another at
`/_lambdalet/peer/logs` (`peer_logs`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import uuid
from typing import Any, Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from lambdalet import cluster_logs, node_auth
from lambdalet.api.authentication import caller
from lambdalet.api.authorization import require
from lambdalet.api.common import read_body, services
from lambdalet.api.permissions import Permission
from lambdalet.cluster_logs import ClusterLogReader, PeerLogs
from lambdalet.errors import AccessDeniedException, UnknownOperationException
from lambdalet.log_groups import (
    RETENTION_DAYS,
    GroupNotFound,
    LogReader,
    StreamNotFound,
    cloudwatch_message,
    compile_pattern,
    event_id,
)

log = logging.getLogger(__name__)
TARGET_PREFIX = "Logs_20140328."
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_EVENTS = 10_000
MAX_RESPONSE_BYTES = 1_048_576
GROUP_NAME = re.compile(r"^[\.\-_/#A-Za-z0-9]{1,512}$")
GROUP_ARN = re.compile(r"^arn:[^:]+:logs:[^:]*:[^:]*:log-group:(.+?)(?::\*)?$")


class LogsError(Exception):
    def __init__(self, error_type: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.error_type, self.message, self.status = error_type, message, status


def invalid(message: str) -> LogsError:
    return LogsError("InvalidParameterException", message)


def _response(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type=CONTENT_TYPE,
                        headers={"x-amzn-RequestId": str(uuid.uuid4())})


def access_denied(message: str) -> web.Response:
    """CloudWatch Logs' AccessDeniedException: a 400, as its common errors say (not Lambda's 403)."""
    return _response({"__type": "AccessDeniedException", "message": message}, 400)


def group_of(identifier: str) -> str:
    """The group a logGroupIdentifier names: a name, or a log group ARN (with or without `:*`)."""
    match = GROUP_ARN.match(identifier)
    return match.group(1) if match else identifier


def group_arn(region: str, account: str, group: str, stream: str | None = None) -> str:
    base = f"arn:aws:logs:{region}:{account}:log-group:{group}"
    return f"{base}:log-stream:{stream}" if stream is not None else base


def required_permission(operation: str, body: dict[str, Any], region: str, account: str) -> Permission:
    """`logs:<Operation>` on the log group it names (`…:log-group:NAME:*`, the ARN DescribeLogGroups
    shows and basic execution roles name), a stream for GetLogEvents, every group for
    DescribeLogGroups."""
    name = body.get("logGroupName") or body.get("logGroupIdentifier")
    if operation == "DescribeLogGroups" or not isinstance(name, str) or not name:
        return Permission(f"logs:{operation}", group_arn(region, account, "*"), account)
    stream = body.get("logStreamName")
    if operation == "GetLogEvents" and isinstance(stream, str):
        return Permission(f"logs:{operation}", group_arn(region, account, group_of(name), stream), account)
    return Permission(f"logs:{operation}", group_arn(region, account, group_of(name)) + ":*", account)


def _other_account(operation: str, account: str, server_account: str) -> web.Response:
    """Another account of the accounts file asking about its own logs, which this server does not
    keep (api/other_accounts.py): it has no log groups, and may not make any here."""
    if operation == "DescribeLogGroups":
        return _response({"logGroups": []})
    if operation == "CreateLogGroup":
        return _response({"__type": "InvalidParameterException", "message":
                          f"This server keeps the logs of account {server_account} only; account {account} has "
                          "IAM users, roles and policies here (docs/security.md)."}, 400)
    return _response({"__type": "ResourceNotFoundException", "message": "The specified log group does not exist."},
                     400)


async def dispatch(request: web.Request) -> web.StreamResponse:
    target = request.headers.get("X-Amz-Target", "")
    if request.method != "POST" or not target.startswith(TARGET_PREFIX):  # as any unknown Lambda route
        raise UnknownOperationException(f"No operation is served at {request.method} {request.path}")
    operation = OPERATIONS.get(target[len(TARGET_PREFIX):])
    if operation is None:
        return _response({"__type": "UnknownOperationException", "message": f"Unknown operation {target}"}, 400)
    try:
        try:
            body = json.loads(await read_body(request) or b"{}")
        except (ValueError, RecursionError, HttpProcessingError, RequestPayloadError):
            raise LogsError("SerializationException", "The request body is not JSON.") from None
        except asyncio.TimeoutError:
            raise LogsError("SerializationException", "The request body was not received in time.", status=408) from None
        except web.HTTPRequestEntityTooLarge:
            raise LogsError("SerializationException", "The request body is larger than this server accepts.",
                            status=413) from None
        if not isinstance(body, dict):
            raise LogsError("SerializationException", "The request body must be a JSON object.")
        svc = services(request)
        who = caller(request)
        account = who.account_id if who is not None else svc.arns.account
        name = target[len(TARGET_PREFIX):]
        try:
            await require(request, required_permission(name, body, svc.arns.region, account))
        except AccessDeniedException as denied:
            return access_denied(denied.message)
        if account != svc.arns.account:
            return _other_account(name, account, svc.arns.account)
        svc.logs.flush_all()  # read what environments wrote up to now
        return _response(await operation(Call(body, reader_for(svc), svc)))
    except LogsError as error:
        response = _response({"__type": error.error_type, "message": error.message}, error.status)
        if error.status == 408:  # the rest of a body that never came: not waited for
            response.force_close()
        return response
    except GroupNotFound:
        return _response({"__type": "ResourceNotFoundException",
                          "message": "The specified log group does not exist."}, 400)
    except StreamNotFound:
        return _response({"__type": "ResourceNotFoundException",
                          "message": "The specified log stream does not exist."}, 400)
    except Exception:
        log.exception("unexpected error serving %s", target)
        return _response({"__type": "ServiceUnavailableException",
                          "message": "An internal error occurred; see the server log."}, 500)


def reader_for(svc: Any) -> LogReader | ClusterLogReader:
    """This node's files, and in a cluster every live peer's too (cluster_logs.py)."""
    local = LogReader(svc.logs)
    if svc.nodes is None or len(svc.nodes.peers) < 2:
        return local
    return ClusterLogReader(local, [PeerLogs(name, url, svc.node_key) for name, url in svc.nodes.peers
                                    if name != svc.nodes.name])


async def peer_logs(request: web.Request) -> web.Response:
    """A peer's read of this node's own log files (cluster_logs.py), signed with the nodes' key."""
    svc = services(request)
    call = await node_auth.signed_call(request, svc.node_key)
    if isinstance(call, web.Response):
        return call
    try:
        op, args = str(call["op"]), dict(call["args"])
    except (ValueError, KeyError, TypeError):
        return web.json_response({"message": "The request body is not a logs call."}, status=400)
    svc.logs.flush_all()
    if op == "delete_group":
        svc.logs.detach_group(args.get("name", ""))
    try:
        result = await asyncio.to_thread(cluster_logs.answer, LogReader(svc.logs), op, args)
    except (GroupNotFound, StreamNotFound) as missing:
        return web.json_response({"error": type(missing).__name__})
    except (ValueError, KeyError, TypeError) as exc:
        return web.json_response({"message": f"Not a logs call: {exc}"}, status=400)
    return web.json_response({"result": result})


class Call:
    """One request: its validated members, the reader, and the server's services."""

    def __init__(self, body: dict[str, Any], reader: LogReader | ClusterLogReader, svc: Any) -> None:
        self.body, self.reader, self.svc = body, reader, svc

    def string(self, name: str, required: bool = False) -> str | None:
        value = self.body.get(name)
        if value is None:
            if required:
                raise invalid(f"1 validation error detected: Value null at '{name}' failed to satisfy "
                              "constraint: Member must not be null")
            return None
        if not isinstance(value, str):
            raise LogsError("SerializationException", f"{name} must be a string.")
        return value

    def integer(self, name: str, low: int | None = None, high: int | None = None) -> int | None:
        value = self.body.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise LogsError("SerializationException", f"{name} must be a number.")
        if low is not None and value < low:
            raise invalid(f"1 validation error detected: Value '{value}' at '{name}' failed to satisfy "
                          f"constraint: Member must have value greater than or equal to {low}")
        if high is not None and value > high:
            raise invalid(f"1 validation error detected: Value '{value}' at '{name}' failed to satisfy "
                          f"constraint: Member must have value less than or equal to {high}")
        return value

    def group_name(self) -> str:
        """logGroupName, or logGroupIdentifier (a name or a log group ARN)."""
        name = self.string("logGroupName")
        identifier = self.string("logGroupIdentifier")
        if name and identifier:
            raise invalid("LogGroup name and LogGroup ARN are mutually exclusive parameters.")
        if identifier:
            name = group_of(identifier)
        if not name:
            raise invalid("Either logGroupName or logGroupIdentifier must be specified.")
        if not GROUP_NAME.match(name):
            raise invalid(f"1 validation error detected: Value '{name}' at 'logGroupName' failed to satisfy "
                          "constraint: Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+")
        return name

    def arn(self, group: str, stream: str | None = None) -> str:
        return group_arn(self.svc.arns.region, self.svc.arns.account, group, stream)


def _encode_token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def _decode_token(token: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise invalid("The specified nextToken is invalid.") from None


def _page(items: list[Any], call: Call, default_limit: int, high: int) -> tuple[list[Any], str | None]:
    """An index-token page of a sorted list."""
    limit = call.integer("limit", 1, high) or default_limit
    token = call.string("nextToken")
    start = 0
    if token:
        start = _decode_token(token)
        if not isinstance(start, int) or start < 0:
            raise invalid("The specified nextToken is invalid.")
    page = items[start:start + limit]
    return page, _encode_token(start + limit) if start + limit < len(items) else None


# -- groups ----------------------------------------------------------------------------------------

async def describe_log_groups(call: Call) -> dict[str, Any]:
    prefix = call.string("logGroupNamePrefix")
    pattern = call.string("logGroupNamePattern")
    if prefix and pattern:
        raise invalid("logGroupNamePrefix and logGroupNamePattern are mutually exclusive parameters.")

    def work() -> tuple[list[Any], str | None]:
        names = [n for n in call.reader.group_names()
                 if (not prefix or n.startswith(prefix)) and (not pattern or pattern.lower() in n.lower())]
        page, token = _page(names, call, 50, 50)
        groups = []
        for name in page:
            try:
                groups.append(call.reader.group(name))
            except GroupNotFound:  # deleted meanwhile
                continue
        return groups, token

    groups, token = await asyncio.to_thread(work)
    result: dict[str, Any] = {"logGroups": []}
    for group in groups:
        item: dict[str, Any] = {"logGroupName": group.name, "creationTime": group.creation_time,
                                "metricFilterCount": 0, "arn": call.arn(group.name) + ":*",
                                "storedBytes": group.stored_bytes, "logGroupClass": "STANDARD",
                                "logGroupArn": call.arn(group.name)}
        if group.retention_days:
            item["retentionInDays"] = group.retention_days
        result["logGroups"].append(item)
    if token:
        result["nextToken"] = token
    return result


async def create_log_group(call: Call) -> dict[str, Any]:
    name = call.group_name()
    if (await asyncio.to_thread(call.reader.has_group, name)  # on any node
            or not await asyncio.to_thread(call.svc.logs.ensure_group, name)):
        raise LogsError("ResourceAlreadyExistsException", "The specified log group already exists")
    return {}


async def delete_log_group(call: Call) -> dict[str, Any]:
    name = call.group_name()
    call.svc.logs.detach_group(name)  # running environments create it again with their next line, as on AWS
    await asyncio.to_thread(call.reader.delete_group, name)
    return {}


async def put_retention_policy(call: Call) -> dict[str, Any]:
    name = call.group_name()
    days = call.integer("retentionInDays")
    if days is None:
        raise invalid("1 validation error detected: Value null at 'retentionInDays' failed to satisfy "
                      "constraint: Member must not be null")
    if days not in RETENTION_DAYS:
        raise invalid(f"1 validation error detected: Value '{days}' at 'retentionInDays' failed to satisfy "
                      f"constraint: Member must satisfy enum value set: [{', '.join(map(str, RETENTION_DAYS))}]")
    await asyncio.to_thread(call.reader.set_retention, name, days)
    return {}


async def delete_retention_policy(call: Call) -> dict[str, Any]:
    await asyncio.to_thread(call.reader.set_retention, call.group_name(), None)
    return {}


# -- streams ---------------------------------------------------------------------------------------

async def describe_log_streams(call: Call) -> dict[str, Any]:
    group = call.group_name()
    prefix = call.string("logStreamNamePrefix")
    order = call.string("orderBy") or "LogStreamName"
    if order not in ("LogStreamName", "LastEventTime"):
        raise invalid(f"1 validation error detected: Value '{order}' at 'orderBy' failed to satisfy constraint: "
                      "Member must satisfy enum value set: [LogStreamName, LastEventTime]")
    if prefix and order == "LastEventTime":
        raise invalid("Cannot order by LastEventTime with a logStreamNamePrefix.")
    descending = bool(call.body.get("descending"))

    def work() -> tuple[list[Any], str | None]:
        names = [n for n in call.reader.stream_names(group) if not prefix or n.startswith(prefix)]
        if order == "LogStreamName":
            names.sort(reverse=descending)
            page, token = _page(names, call, 50, 50)
            return call.reader.streams(group, page), token
        every = call.reader.streams(group, names)
        every.sort(key=lambda s: (s.last_event or 0, s.name), reverse=descending)
        return _page(every, call, 50, 50)

    streams, token = await asyncio.to_thread(work)
    result: dict[str, Any] = {"logStreams": []}
    for stream in streams:
        item: dict[str, Any] = {"logStreamName": stream.name, "creationTime": stream.creation_time,
                                "arn": call.arn(group, stream.name), "storedBytes": 0}
        if stream.first_event is not None:
            item.update(firstEventTimestamp=stream.first_event, lastEventTimestamp=stream.last_event,
                        lastIngestionTime=stream.last_ingestion)
        result["logStreams"].append(item)
    if token:
        result["nextToken"] = token
    return result


# -- events ----------------------------------------------------------------------------------------

def _stream_token(token: str) -> tuple[str, int]:
    direction, _, offset = token.partition("/")
    if direction not in ("f", "b") or not offset.isdigit():
        raise invalid("The specified nextToken is invalid.")
    return direction, int(offset)


def _fit(events: list[Any], limit: int, size: Callable[[Any], int], from_end: bool = False) -> list[Any]:
    """At most `limit` events and about 1 MB of messages (CloudWatch's response size)."""
    chosen: list[Any] = []
    total = 0
    for event in (reversed(events) if from_end else events):
        total += size(event) + 26
        if len(chosen) >= limit or (chosen and total > MAX_RESPONSE_BYTES):
            break
        chosen.append(event)
    return chosen[::-1] if from_end else chosen


async def get_log_events(call: Call) -> dict[str, Any]:
    group = call.group_name()
    stream = call.string("logStreamName", required=True)
    start_time = call.integer("startTime", 0)
    end_time = call.integer("endTime", 0)
    limit = call.integer("limit", 1, MAX_EVENTS) or MAX_EVENTS
    token = call.string("nextToken")
    from_head = bool(call.body.get("startFromHead"))
    direction, position = _stream_token(token) if token else ("f" if from_head else "b", -1)

    def in_range(event: Any) -> bool:
        return (start_time is None or event.timestamp >= start_time) and (end_time is None or event.timestamp < end_time)

    def work() -> dict[str, Any]:
        assert stream is not None
        if direction == "f":
            events = [e for e in call.reader.events(group, stream, start=max(position, 0)) if in_range(e)]
            chosen = _fit(events, limit, lambda e: len(e.message))
            forward = chosen[-1].end if chosen else max(position, 0)
            backward = chosen[0].offset if chosen else max(position, 0)
        else:
            end = call.reader.size(group, stream) if position < 0 else position
            events = [e for e in call.reader.events(group, stream, until=end) if in_range(e)]
            chosen = _fit(events, limit, lambda e: len(e.message), from_end=True)
            forward = chosen[-1].end if chosen else end
            backward = chosen[0].offset if chosen else end
            if position < 0:  # the newest events: following forward continues after everything read
                forward = end
        return {
            "events": [{"timestamp": e.timestamp, "message": cloudwatch_message(e.message),
                        "ingestionTime": e.timestamp} for e in chosen],
            "nextForwardToken": f"f/{forward:020d}",
            "nextBackwardToken": f"b/{backward:020d}",
        }

    return await asyncio.to_thread(work)




async def filter_log_events(call: Call) -> dict[str, Any]:
    group = call.group_name()
    names = call.body.get("logStreamNames")
    prefix = call.string("logStreamNamePrefix")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise LogsError("SerializationException", "logStreamNames must be a list of strings.")
    if names and prefix:
        raise invalid("logStreamNames and logStreamNamePrefix are mutually exclusive parameters.")
    if names is not None and not 1 <= len(names) <= 100:
        raise invalid("1 validation error detected: Value at 'logStreamNames' failed to satisfy constraint: "
                      "Member must have length between 1 and 100")
    start_time = call.integer("startTime", 0)
    end_time = call.integer("endTime", 0)
    limit = call.integer("limit", 1, MAX_EVENTS) or MAX_EVENTS
    pattern = call.string("filterPattern")
    try:
        compile_pattern(pattern)  # refused before any stream is read
    except ValueError as exc:
        raise invalid(str(exc)) from None
    token = call.string("nextToken")
    after = None
    if token:
        decoded = _decode_token(token)
        if not (isinstance(decoded, list) and len(decoded) == 3):
            raise invalid("The specified nextToken is invalid.")
        after = (int(decoded[0]), str(decoded[1]), int(decoded[2]))

    def work() -> dict[str, Any]:
        every = call.reader.stream_names(group)
        streams = [n for n in every if n in set(names)] if names else [n for n in every if not prefix or n.startswith(prefix)]
        found, more = call.reader.filter(group, streams, start_time, end_time, pattern, after, limit)
        fitted = _fit(found, limit, lambda item: len(item[1].message))
        more, found = more or len(fitted) < len(found), fitted
        result: dict[str, Any] = {
            "events": [{"logStreamName": stream, "timestamp": e.timestamp, "message": cloudwatch_message(e.message),
                        "ingestionTime": e.timestamp, "eventId": event_id(stream, e)} for stream, e in found],
            "searchedLogStreams": [{"logStreamName": n, "searchedCompletely": True} for n in streams],
        }
        if more and found:
            stream, last = found[-1]
            result["nextToken"] = _encode_token([last.timestamp, stream, last.offset])
        return result

    return await asyncio.to_thread(work)


OPERATIONS: dict[str, Callable[[Call], Awaitable[dict[str, Any]]]] = {
    "DescribeLogGroups": describe_log_groups,
    "DescribeLogStreams": describe_log_streams,
    "GetLogEvents": get_log_events,
    "FilterLogEvents": filter_log_events,
    "CreateLogGroup": create_log_group,
    "DeleteLogGroup": delete_log_group,
    "PutRetentionPolicy": put_retention_policy,
    "DeleteRetentionPolicy": delete_retention_policy,
}
