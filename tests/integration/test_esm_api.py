"""The event-source-mapping control plane, field by field against what AWS answers.

Expected values come from AWS's recorded answers (LocalStack's AWS-validated snapshots of
test_lambda_api.py / test_lambda_integration_*.py) and the Lambda developer guide; the sources are
moto (SQS, Kinesis, DynamoDB Streams) in server mode.
"""

from __future__ import annotations

import json

import pytest

from conftest import aws_cli

from .esm_support import (  # noqa: F401 (lam, n, srv: the modules' fixtures)
    lam, n, srv,
    ACCOUNT, REGION, UUID_RE, assert_recent, client_error, create_echo_function, lambda_arn, new_queue,
    new_stream, new_table_stream, wait_gone, wait_state,
)
from .helpers import http_request

SQS_FIELDS = {"BatchSize", "EventSourceArn", "EventSourceMappingArn", "FunctionArn", "FunctionResponseTypes",
              "LastModified", "MaximumBatchingWindowInSeconds", "State", "StateTransitionReason", "UUID"}
STREAM_FIELDS = {"BatchSize", "BisectBatchOnFunctionError", "DestinationConfig", "EventSourceArn",
                 "EventSourceMappingArn", "FunctionArn", "FunctionResponseTypes", "LastModified",
                 "LastProcessingResult", "MaximumBatchingWindowInSeconds", "MaximumRecordAgeInSeconds",
                 "MaximumRetryAttempts", "ParallelizationFactor", "StartingPosition", "State",
                 "StateTransitionReason", "TumblingWindowInSeconds", "UUID"}
NOT_FOUND = "The resource you requested does not exist."


def body(response: dict) -> dict:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def status(response: dict) -> int:
    return response["ResponseMetadata"]["HTTPStatusCode"]


def assert_identity(mapping: dict) -> None:
    assert UUID_RE.match(mapping["UUID"]), mapping["UUID"]
    expected_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:event-source-mapping:{mapping['UUID']}"
    assert mapping["EventSourceMappingArn"] == expected_arn
    assert_recent(mapping["LastModified"])


# --- responses --------------------------------------------------------------------------------------------

def test_sqs_mapping_create_get_list_delete_field_by_field(srv, lam, moto, n):
    _, queue_arn = new_queue(moto, n("q"))
    create_echo_function(lam, n("fn"))
    created = lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=n("fn"))
    assert status(created) == 202
    created = body(created)
    assert_identity(created)
    assert created["State"] == "Creating"
    assert {k: created[k] for k in created if k not in ("UUID", "EventSourceMappingArn", "LastModified")} == {
        "BatchSize": 10, "EventSourceArn": queue_arn, "FunctionArn": lambda_arn(n("fn")), "FunctionResponseTypes": [],
        "MaximumBatchingWindowInSeconds": 0, "State": "Creating", "StateTransitionReason": "USER_INITIATED"}
    assert set(created) == SQS_FIELDS

    got = wait_state(lam, created["UUID"], "Enabled")
    assert status(got) == 200
    assert body(got) == {**created, "State": "Enabled", "LastModified": got["LastModified"]}

    # LastModified is a Date: epoch seconds on the wire (boto3 turns it into a datetime).
    code, _, raw = http_request(f"{srv.url}/2015-03-31/event-source-mappings/{created['UUID']}")
    assert code == 200
    assert isinstance(json.loads(raw)["LastModified"], (int, float)), raw

    listed = lam.list_event_source_mappings(FunctionName=n("fn"))
    assert status(listed) == 200
    assert [m["UUID"] for m in listed["EventSourceMappings"]] == [created["UUID"]]
    assert listed["EventSourceMappings"][0]["FunctionArn"] == lambda_arn(n("fn"))

    deleted = lam.delete_event_source_mapping(UUID=created["UUID"])
    assert status(deleted) == 202
    assert deleted["State"] == "Deleting"
    assert deleted["UUID"] == created["UUID"] and deleted["EventSourceArn"] == queue_arn
    wait_gone(lam, created["UUID"])
    assert lam.list_event_source_mappings(FunctionName=n("fn"))["EventSourceMappings"] == []


@pytest.mark.parametrize("source", ["kinesis", "dynamodb"])
def test_stream_mapping_defaults_field_by_field(lam, moto, n, source):
    if source == "kinesis":
        stream_arn, _ = new_stream(moto, n("stream"))
        position = "LATEST"
    else:
        stream_arn = new_table_stream(moto, n("table"))
        position = "TRIM_HORIZON"
    create_echo_function(lam, n("fn"))
    created = lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=n("fn"),
                                              StartingPosition=position)
    assert status(created) == 202
    created = body(created)
    assert_identity(created)
    assert {k: created.get(k) for k in STREAM_FIELDS - {"UUID", "EventSourceMappingArn", "LastModified"}} == {
        "BatchSize": 100, "BisectBatchOnFunctionError": False, "DestinationConfig": {"OnFailure": {}},
        "EventSourceArn": stream_arn, "FunctionArn": lambda_arn(n("fn")), "FunctionResponseTypes": [],
        "LastProcessingResult": "No records processed", "MaximumBatchingWindowInSeconds": 0,
        "MaximumRecordAgeInSeconds": -1, "MaximumRetryAttempts": -1, "ParallelizationFactor": 1,
        "StartingPosition": position, "State": "Creating", "StateTransitionReason": "User action",
        "TumblingWindowInSeconds": 0}
    assert set(created) == STREAM_FIELDS

    got = wait_state(lam, created["UUID"], "Enabled")
    assert got["StateTransitionReason"] == "User action"
    assert set(body(got)) == STREAM_FIELDS
    listed = lam.list_event_source_mappings(EventSourceArn=stream_arn)["EventSourceMappings"]
    assert [m["UUID"] for m in listed] == [created["UUID"]]
    assert listed[0]["State"] == "Enabled"
    lam.delete_event_source_mapping(UUID=created["UUID"])


def test_every_setting_is_echoed(lam, moto, n):
    _, queue_arn = new_queue(moto, n("q"))
    _, dlq_arn = new_queue(moto, n("dlq"))
    stream_arn, _ = new_stream(moto, n("stream"))
    create_echo_function(lam, n("fn"))
    pattern = json.dumps({"body": {"kind": ["keep"]}})
    sqs = lam.create_event_source_mapping(
        EventSourceArn=queue_arn, FunctionName=n("fn"), BatchSize=50, MaximumBatchingWindowInSeconds=5,
        FunctionResponseTypes=["ReportBatchItemFailures"], FilterCriteria={"Filters": [{"Pattern": pattern}]},
        ScalingConfig={"MaximumConcurrency": 2}, Enabled=False)
    assert (sqs["BatchSize"], sqs["MaximumBatchingWindowInSeconds"]) == (50, 5)
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert [json.loads(f["Pattern"]) for f in sqs["FilterCriteria"]["Filters"]] == [json.loads(pattern)]
    assert sqs["ScalingConfig"] == {"MaximumConcurrency": 2}
    got = wait_state(lam, sqs["UUID"], "Disabled")
    assert got["FilterCriteria"] == sqs["FilterCriteria"] and got["ScalingConfig"] == {"MaximumConcurrency": 2}

    stream = lam.create_event_source_mapping(
        EventSourceArn=stream_arn, FunctionName=n("fn"), StartingPosition="TRIM_HORIZON", BatchSize=7,
        MaximumBatchingWindowInSeconds=1, MaximumRetryAttempts=3, MaximumRecordAgeInSeconds=120,
        BisectBatchOnFunctionError=True, ParallelizationFactor=2,
        FunctionResponseTypes=["ReportBatchItemFailures"],
        DestinationConfig={"OnFailure": {"Destination": dlq_arn}}, Enabled=False)
    expected = {"BatchSize": 7, "MaximumBatchingWindowInSeconds": 1, "MaximumRetryAttempts": 3,
                "MaximumRecordAgeInSeconds": 120, "BisectBatchOnFunctionError": True, "ParallelizationFactor": 2,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
                "DestinationConfig": {"OnFailure": {"Destination": dlq_arn}}, "StartingPosition": "TRIM_HORIZON"}
    assert {k: stream[k] for k in expected} == expected
    got = wait_state(lam, stream["UUID"], "Disabled")
    assert {k: got[k] for k in expected} == expected
    for uuid_ in (sqs["UUID"], stream["UUID"]):
        lam.delete_event_source_mapping(UUID=uuid_)


def test_tumbling_window_is_accepted_and_echoed(lam, moto, n):
    stream_arn, _ = new_stream(moto, n("stream"))
    create_echo_function(lam, n("fn"))
    created = lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=n("fn"),
                                              StartingPosition="LATEST", TumblingWindowInSeconds=30, Enabled=False)
    assert created["TumblingWindowInSeconds"] == 30
    assert wait_state(lam, created["UUID"], "Disabled")["TumblingWindowInSeconds"] == 30


def test_state_machine_disable_enable_update_delete(lam, moto, n):
    _, queue_arn = new_queue(moto, n("q"))
    create_echo_function(lam, n("fn"))
    create_echo_function(lam, n("other"))
    created = lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=n("fn"), Enabled=False)
    assert created["State"] in ("Creating", "Disabled")  # AWS answered Disabled for Enabled=False
    uuid_ = created["UUID"]
    first = wait_state(lam, uuid_, "Disabled")

    enabling = lam.update_event_source_mapping(UUID=uuid_, Enabled=True)
    assert status(enabling) == 202
    assert enabling["State"] == "Enabling"
    assert enabling["StateTransitionReason"] == "USER_INITIATED"
    wait_state(lam, uuid_, "Enabled")

    updating = lam.update_event_source_mapping(UUID=uuid_, FunctionName=n("other"), BatchSize=5)
    assert (status(updating), updating["State"]) == (202, "Updating")
    assert updating["FunctionArn"] == lambda_arn(n("other"))
    assert updating["BatchSize"] == 5
    after = wait_state(lam, uuid_, "Enabled")
    assert (after["FunctionArn"], after["BatchSize"]) == (lambda_arn(n("other")), 5)
    assert after["LastModified"] >= first["LastModified"]

    disabling = lam.update_event_source_mapping(UUID=uuid_, Enabled=False)
    assert (status(disabling), disabling["State"]) == (202, "Disabling")
    wait_state(lam, uuid_, "Disabled")

    deleting = lam.delete_event_source_mapping(UUID=uuid_)
    assert (status(deleting), deleting["State"]) == (202, "Deleting")
    wait_gone(lam, uuid_)
    code, http, message, _ = client_error(lam, lambda: lam.delete_event_source_mapping(UUID=uuid_))
    assert (code, http, message) == ("ResourceNotFoundException", 404, NOT_FOUND)


def test_unknown_uuid_is_resource_not_found(lam):
    unknown = "3d1e8f7c-0000-4000-8000-000000000000"
    for call in (lambda: lam.get_event_source_mapping(UUID=unknown),
                 lambda: lam.delete_event_source_mapping(UUID=unknown),
                 lambda: lam.update_event_source_mapping(UUID=unknown, Enabled=False)):
        code, http, message, response = client_error(lam, call)
        assert (code, http, message) == ("ResourceNotFoundException", 404, NOT_FOUND)
        assert response.get("Type") == "User"
    # List does not care whether the filters name anything.
    assert lam.list_event_source_mappings(FunctionName="does-not-exist")["EventSourceMappings"] == []
    assert lam.list_event_source_mappings(
        EventSourceArn="arn:aws:sqs:us-east-1:111111111111:somequeue")["EventSourceMappings"] == []


def test_deleting_the_function_keeps_the_mapping(lam, moto, n):
    _, queue_arn = new_queue(moto, n("q"))
    create_echo_function(lam, n("fn"))
    uuid_ = lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=n("fn"))["UUID"]
    wait_state(lam, uuid_, "Enabled")
    lam.delete_function(FunctionName=n("fn"))
    assert lam.get_event_source_mapping(UUID=uuid_)["FunctionArn"] == lambda_arn(n("fn"))
    assert lam.delete_event_source_mapping(UUID=uuid_)["State"] == "Deleting"


# --- validation ---------------------------------------------------------------------------------------------

def expect_invalid(lam, message: str | None = None, code: str = "InvalidParameterValueException",
                   http: int = 400, **params):
    got_code, got_http, got_message, response = client_error(lam, lambda: lam.create_event_source_mapping(**params))
    assert (got_code, got_http) == (code, http), (params, got_code, got_http, got_message)
    if message is not None:
        assert got_message == message, params
    return got_message


def test_create_validation_messages_as_aws_answers(lam, moto, n):
    fn = n("fn")
    create_echo_function(lam, fn)
    _, queue_arn = new_queue(moto, n("q"))
    stream_arn, _ = new_stream(moto, n("stream"))
    table_stream_arn = new_table_stream(moto, n("table"))

    expect_invalid(lam, "Unrecognized event source.", FunctionName=fn)
    # AWS answers a missing function on CreateEventSourceMapping with a 400, not a 404.
    expect_invalid(lam, "Function does not exist", FunctionName=n("missing"), EventSourceArn=queue_arn)
    missing_queue = f"arn:aws:sqs:{REGION}:123456789012:{n('no-such-queue')}"
    expect_invalid(lam, "Error occurred while ReceiveMessage. SQS Error Code: AWS.SimpleQueueService.NonExistentQueue."
                        " SQS Error Message: The specified queue does not exist.",
                   FunctionName=fn, EventSourceArn=missing_queue)
    missing_stream = f"arn:aws:kinesis:{REGION}:123456789012:stream/{n('no-such-stream')}"
    expect_invalid(lam, f"Stream not found: {missing_stream}", FunctionName=fn, EventSourceArn=missing_stream,
                   StartingPosition="LATEST")
    missing_table_stream = f"arn:aws:dynamodb:{REGION}:123456789012:table/{n('nt')}/stream/2025-02-22T03:03:25.490"
    expect_invalid(lam, f"Stream not found: {missing_table_stream}", FunctionName=fn,
                   EventSourceArn=missing_table_stream, StartingPosition="LATEST")

    null_position = ("1 validation error detected: Value null at 'startingPosition' failed to satisfy constraint: "
                     "Member must not be null.")
    expect_invalid(lam, null_position, FunctionName=fn, EventSourceArn=stream_arn)
    expect_invalid(lam, null_position, FunctionName=fn, EventSourceArn=table_stream_arn)
    expect_invalid(lam, "1 validation error detected: Value 'invalid' at 'startingPosition' failed to satisfy "
                        "constraint: Member must satisfy enum value set: [LATEST, AT_TIMESTAMP, TRIM_HORIZON]",
                   code="ValidationException", FunctionName=fn, EventSourceArn=stream_arn, StartingPosition="invalid")
    expect_invalid(lam, f"Unsupported starting position for arn type: {table_stream_arn}", FunctionName=fn,
                   EventSourceArn=table_stream_arn, StartingPosition="AT_TIMESTAMP",
                   StartingPositionTimestamp=1741010802)
    # StartingPosition is a stream setting: refused for SQS.
    expect_invalid(lam, FunctionName=fn, EventSourceArn=queue_arn, StartingPosition="LATEST")

    window = "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10"
    expect_invalid(lam, window, FunctionName=fn, EventSourceArn=queue_arn, BatchSize=11)
    expect_invalid(lam, "Unsupported DestinationConfig parameter for given event source mapping type.",
                   FunctionName=fn, EventSourceArn=queue_arn,
                   DestinationConfig={"OnSuccess": {"Destination": f"arn:aws:sqs:{REGION}:123456789012:other"}})
    for bad in ("simple string", json.dumps({"eventSource": "aws:sqs"}), json.dumps({"eventSource": []})):
        expect_invalid(lam, "Invalid filter pattern definition.", FunctionName=fn, EventSourceArn=queue_arn,
                       MaximumBatchingWindowInSeconds=1, FilterCriteria={"Filters": [{"Pattern": bad}]})
    assert lam.list_event_source_mappings(FunctionName=fn)["EventSourceMappings"] == []  # nothing was created


@pytest.mark.parametrize("params", [
    {"BatchSize": 10001, "MaximumBatchingWindowInSeconds": 1},
    {"MaximumBatchingWindowInSeconds": 301},
    {"stream": True, "BatchSize": 10001},
    {"stream": True, "ParallelizationFactor": 11},
    {"stream": True, "MaximumRetryAttempts": 10001},
    {"stream": True, "MaximumRecordAgeInSeconds": 604801},
    {"stream": True, "MaximumRecordAgeInSeconds": 59},
    {"stream": True, "FunctionResponseTypes": ["Foo"]},
    {"stream": True, "TumblingWindowInSeconds": 901},
    {"ScalingConfig": {"MaximumConcurrency": 1001}},
    {"fifo": True, "BatchSize": 11, "MaximumBatchingWindowInSeconds": 1},
], ids=["sqs-batch-10001", "window-301", "stream-batch-10001", "parallelization-11", "retries-10001",
        "record-age-604801", "record-age-59", "response-type-foo", "tumbling-901", "max-concurrency-1001", "fifo-batch-11"])
def test_out_of_range_settings_are_refused(lam, moto, n, params):
    """botocore only checks minimums; the maximums are the server's to refuse (with a 400)."""
    params = dict(params)
    fn = n("fn")
    create_echo_function(lam, fn)
    if params.pop("stream", False):
        source, _ = new_stream(moto, n("stream"))
        params["StartingPosition"] = "TRIM_HORIZON"
    elif params.pop("fifo", False):
        _, source = new_queue(moto, n("q") + ".fifo", FifoQueue="true")
    else:
        _, source = new_queue(moto, n("q"))
    code, http, message, _ = client_error(
        lam, lambda: lam.create_event_source_mapping(FunctionName=fn, EventSourceArn=source, **params))
    assert http == 400 and code in ("InvalidParameterValueException", "ValidationException"), (code, http, message)
    assert lam.list_event_source_mappings(FunctionName=fn)["EventSourceMappings"] == []


def test_update_is_validated_too(lam, moto, n):
    fn = n("fn")
    create_echo_function(lam, fn)
    _, queue_arn = new_queue(moto, n("q"))
    uuid_ = lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=fn)["UUID"]
    wait_state(lam, uuid_, "Enabled")
    code, http, message, _ = client_error(lam, lambda: lam.update_event_source_mapping(UUID=uuid_, BatchSize=11))
    assert (code, http, message) == ("InvalidParameterValueException", 400, "Maximum batch window in seconds must be "
                                     "greater than 0 if maximum batch size is greater than 10")
    assert lam.get_event_source_mapping(UUID=uuid_)["BatchSize"] == 10  # unchanged
    lam.delete_event_source_mapping(UUID=uuid_)


def test_visibility_timeout_shorter_than_function_timeout_is_refused(lam, moto, n):
    fn = n("fn")
    create_echo_function(lam, fn, Timeout=10)
    _, queue_arn = new_queue(moto, n("q"), VisibilityTimeout="5")
    expect_invalid(lam, "Queue visibility timeout: 5 seconds is less than Function timeout: 10 seconds",
                   FunctionName=fn, EventSourceArn=queue_arn)
    _, ok_arn = new_queue(moto, n("ok"), VisibilityTimeout="10")
    created = lam.create_event_source_mapping(EventSourceArn=ok_arn, FunctionName=fn)
    lam.delete_event_source_mapping(UUID=created["UUID"])


def test_duplicate_sqs_mapping_is_a_conflict(lam, moto, n):
    fn = n("fn")
    create_echo_function(lam, fn)
    _, queue_arn = new_queue(moto, n("q"))
    uuid_ = lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=fn)["UUID"]
    code, http, message, _ = client_error(
        lam, lambda: lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=fn))
    assert (code, http) == ("ResourceConflictException", 409)
    assert message == (f'An event source mapping with SQS arn (" {queue_arn} ") and function (" {fn} ") already '
                       f"exists. Please update or delete the existing mapping with UUID {uuid_}")
    lam.delete_event_source_mapping(UUID=uuid_)


@pytest.mark.parametrize("kind", ["self-managed-kafka", "msk", "mq", "documentdb"])
def test_unsupported_sources_are_refused_clearly(lam, n, kind):
    fn = n("fn")
    create_echo_function(lam, fn)
    secret = [{"Type": "BASIC_AUTH", "URI": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:s"}]
    params = {
        "self-managed-kafka": {"Topics": ["orders"], "StartingPosition": "LATEST",
                               "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["kafka:9092"]}},
                               "SourceAccessConfigurations": secret},
        "msk": {"EventSourceArn": f"arn:aws:kafka:{REGION}:{ACCOUNT}:cluster/c/0b1f6a2e-1111-2222-3333-444444444444-1",
                "Topics": ["orders"], "StartingPosition": "LATEST"},
        "mq": {"EventSourceArn": f"arn:aws:mq:{REGION}:{ACCOUNT}:broker:b:b-0b1f6a2e-1111-2222-3333-444444444444",
               "Queues": ["q"],
               "SourceAccessConfigurations": secret},
        "documentdb": {"EventSourceArn": f"arn:aws:rds:{REGION}:{ACCOUNT}:cluster:docdb",
                       "StartingPosition": "LATEST",
                       "DocumentDBEventSourceConfig": {"DatabaseName": "db"}},
    }[kind]
    code, http, message, _ = client_error(lam, lambda: lam.create_event_source_mapping(FunctionName=fn, **params))
    assert (code, http) == ("InvalidParameterValueException", 400), (code, http, message)
    assert message, "the refusal says why"
    assert lam.list_event_source_mappings(FunctionName=fn)["EventSourceMappings"] == []


# --- listing, targets, tags ---------------------------------------------------------------------------------

def test_list_filters_and_pagination(lam, moto, n):
    fn_a, fn_b = n("a"), n("b")
    create_echo_function(lam, fn_a)
    create_echo_function(lam, fn_b)
    queues = [new_queue(moto, n(f"q{i}"))[1] for i in range(3)]
    by_queue = {q: lam.create_event_source_mapping(EventSourceArn=q, FunctionName=fn_a)["UUID"] for q in queues}
    mine = set(by_queue.values())
    other = lam.create_event_source_mapping(EventSourceArn=queues[0], FunctionName=fn_b)["UUID"]

    def uuids(**kw):
        return {m["UUID"] for m in lam.list_event_source_mappings(**kw)["EventSourceMappings"]}

    assert uuids(FunctionName=fn_a) == mine
    assert uuids(FunctionName=lambda_arn(fn_a)) == mine
    assert uuids(EventSourceArn=queues[0]) == {other, by_queue[queues[0]]}
    assert uuids(EventSourceArn=queues[1], FunctionName=fn_a) == {by_queue[queues[1]]}
    assert uuids(EventSourceArn=queues[0], FunctionName=fn_b) == {other}

    page = lam.list_event_source_mappings(FunctionName=fn_a, MaxItems=2)
    assert len(page["EventSourceMappings"]) == 2 and page.get("NextMarker")
    rest = lam.list_event_source_mappings(FunctionName=fn_a, MaxItems=2, Marker=page["NextMarker"])
    assert len(rest["EventSourceMappings"]) == 1 and not rest.get("NextMarker")
    assert {m["UUID"] for m in page["EventSourceMappings"] + rest["EventSourceMappings"]} == mine
    paged = lam.get_paginator("list_event_source_mappings").paginate(
        FunctionName=fn_a, PaginationConfig={"PageSize": 1}).build_full_result()["EventSourceMappings"]
    assert sorted(m["UUID"] for m in paged) == sorted(mine)
    for uuid_ in mine | {other}:
        lam.delete_event_source_mapping(UUID=uuid_)


def test_qualified_targets_echo_the_qualifier(lam, moto, n):
    fn = n("fn")
    arn = create_echo_function(lam, fn)
    version = lam.publish_version(FunctionName=fn)
    alias = lam.create_alias(FunctionName=fn, Name="live", FunctionVersion=version["Version"])
    cases = {
        fn: lambda_arn(fn),
        f"{fn}:$LATEST": lambda_arn(fn) + ":$LATEST",
        f"{fn}:{version['Version']}": lambda_arn(fn) + ":1",
        f"{fn}:live": lambda_arn(fn) + ":live",
        arn: lambda_arn(fn),
        version["FunctionArn"]: lambda_arn(fn) + ":1",
        alias["AliasArn"]: lambda_arn(fn) + ":live",
    }
    for i, (target, expected) in enumerate(cases.items()):
        _, queue_arn = new_queue(moto, n(f"q{i}"))
        created = lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=target)
        assert created["FunctionArn"] == expected, target
        assert lam.get_event_source_mapping(UUID=created["UUID"])["FunctionArn"] == expected, target
        lam.delete_event_source_mapping(UUID=created["UUID"])
    _, queue_arn = new_queue(moto, n("q-missing-alias"))
    code, http, _, _ = client_error(lam, lambda: lam.create_event_source_mapping(EventSourceArn=queue_arn,
                                                                                 FunctionName=f"{fn}:nope"))
    assert http in (400, 404) and code in ("InvalidParameterValueException", "ResourceNotFoundException")


def test_tags_on_mappings(lam, moto, n):
    fn = n("fn")
    create_echo_function(lam, fn)
    _, queue_arn = new_queue(moto, n("q"))
    created = lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=fn, Tags={"team": "core"})
    esm_arn = created["EventSourceMappingArn"]
    assert lam.list_tags(Resource=esm_arn)["Tags"] == {"team": "core"}
    tagged = lam.tag_resource(Resource=esm_arn, Tags={"A": "tag-a", "team": "edge"})
    assert status(tagged) == 204
    assert lam.list_tags(Resource=esm_arn)["Tags"] == {"team": "edge", "A": "tag-a"}
    assert status(lam.untag_resource(Resource=esm_arn, TagKeys=["team", "nonexisting"])) == 204
    assert lam.list_tags(Resource=esm_arn)["Tags"] == {"A": "tag-a"}

    unknown = f"arn:aws:lambda:{REGION}:{ACCOUNT}:event-source-mapping:3d1e8f7c-0000-4000-8000-000000000000"
    for call in (lambda: lam.tag_resource(Resource=unknown, Tags={"A": "b"}),
                 lambda: lam.untag_resource(Resource=unknown, TagKeys=["A"]),
                 lambda: lam.list_tags(Resource=unknown)):
        code, http, message, _ = client_error(lam, call)
        assert (code, http, message) == ("ResourceNotFoundException", 404, f"Event source mapping not found: {unknown}")
    lam.delete_event_source_mapping(UUID=created["UUID"])


def test_mappings_survive_a_restart(fresh_server, moto, n):
    fresh_server.extra_env["AWS_ENDPOINT_URL"] = moto.url
    fresh_server.start()
    lam = fresh_server.client()
    fn = n("fn")
    create_echo_function(lam, fn)
    _, queue_arn = new_queue(moto, n("q"))
    stream_arn, _ = new_stream(moto, n("stream"))
    sqs = lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=fn, BatchSize=3,
                                          Tags={"keep": "me"})
    stream = lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=fn, StartingPosition="LATEST",
                                             MaximumRetryAttempts=2, Enabled=False)
    before = {u: body(wait_state(lam, u, s)) for u, s in ((sqs["UUID"], "Enabled"), (stream["UUID"], "Disabled"))}

    fresh_server.restart()
    lam = fresh_server.client()
    for uuid_, mapping in before.items():
        got = body(wait_state(lam, uuid_, mapping["State"]))
        got.pop("LastProcessingResult", None), mapping.pop("LastProcessingResult", None)
        assert got == mapping
    assert {m["UUID"] for m in lam.list_event_source_mappings(FunctionName=fn)["EventSourceMappings"]} == set(before)
    assert lam.list_tags(Resource=sqs["EventSourceMappingArn"])["Tags"] == {"keep": "me"}


# --- the AWS CLI --------------------------------------------------------------------------------------------

def test_aws_cli_event_source_mapping_commands(srv, lam, moto, n):
    fn = n("fn")
    create_echo_function(lam, fn)
    _, queue_arn = new_queue(moto, n("q"))
    created = json.loads(aws_cli(srv, "lambda", "create-event-source-mapping", "--function-name", fn,
                                 "--event-source-arn", queue_arn, "--batch-size", "5", "--no-enabled").stdout)
    assert UUID_RE.match(created["UUID"])
    assert (created["FunctionArn"], created["EventSourceArn"], created["BatchSize"]) == (lambda_arn(fn), queue_arn, 5)
    assert created["State"] in ("Creating", "Disabled")
    assert isinstance(created["LastModified"], (int, float, str))

    listed = json.loads(aws_cli(srv, "lambda", "list-event-source-mappings", "--function-name", fn).stdout)
    assert [m["UUID"] for m in listed["EventSourceMappings"]] == [created["UUID"]]
    got = json.loads(aws_cli(srv, "lambda", "get-event-source-mapping", "--uuid", created["UUID"]).stdout)
    assert got["UUID"] == created["UUID"] and got["BatchSize"] == 5
    assert got["EventSourceMappingArn"] == created["EventSourceMappingArn"]
    wait_state(lam, created["UUID"], "Disabled")
    updated = json.loads(aws_cli(srv, "lambda", "update-event-source-mapping", "--uuid", created["UUID"],
                                 "--batch-size", "7").stdout)
    assert updated["State"] in ("Updating", "Disabled") and updated["BatchSize"] == 7
    wait_state(lam, created["UUID"], "Disabled")
    deleted = json.loads(aws_cli(srv, "lambda", "delete-event-source-mapping", "--uuid", created["UUID"]).stdout)
    assert deleted["State"] == "Deleting" and deleted["UUID"] == created["UUID"]
    wait_gone(lam, created["UUID"])
    missing = aws_cli(srv, "lambda", "get-event-source-mapping", "--uuid", created["UUID"], check=False)
    assert missing.returncode != 0 and b"ResourceNotFoundException" in missing.stderr
