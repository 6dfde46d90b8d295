"""Event filtering (lambdalet.events.filtering): Lambda's FilterCriteria checks, operators and source views.

Expectations marked "recorded" come from LocalStack's tests recorded against AWS (their snapshots and
EventBridge's event_pattern_templates); the rest from the Lambda and EventBridge developer guides.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from lambdalet.errors import InvalidParameterValueException
from lambdalet.events import filtering
from lambdalet.events.filtering import FilterCriteria, parse_filter_criteria


def criteria(*patterns: object, source: str | None = None) -> FilterCriteria:
    parsed = parse_filter_criteria(
        {"Filters": [{"Pattern": p if isinstance(p, str) else json.dumps(p)} for p in patterns]}, source=source)
    assert parsed is not None
    return parsed


def sqs(body: object, **extra: Any) -> dict[str, Any]:
    text = body if isinstance(body, str) else json.dumps(body)
    return {"messageId": "059f36b4", "receiptHandle": "AQEB", "body": text,
            "attributes": {"ApproximateReceiveCount": "1", "SenderId": "AIDAIENQZJOLO23YVJ4VO"},
            "messageAttributes": {}, "md5OfBody": "e4e6", "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1", **extra}


def kinesis(data: object, partition_key: str = "1") -> dict[str, Any]:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return {"kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": partition_key,
                        "sequenceNumber": "4959", "data": base64.b64encode(raw).decode(),
                        "approximateArrivalTimestamp": 1545084650.987},
            "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": "shardId-000000000006:4959",
            "eventName": "aws:kinesis:record", "awsRegion": "us-east-2",
            "eventSourceARN": "arn:aws:kinesis:us-east-2:123456789012:stream/s"}


def dynamodb(event_name: str, new_image: dict[str, Any]) -> dict[str, Any]:
    return {"eventID": "1", "eventName": event_name, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {"ApproximateCreationDateTime": 1733418659.0, "Keys": {"id": new_image["id"]},
                         "NewImage": new_image, "SequenceNumber": "111", "SizeBytes": 26,
                         "StreamViewType": "NEW_AND_OLD_IMAGES"},
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/s"}


# The DynamoDB view is the record itself, so EventBridge's operators are exercised through it.
OPERATORS = [
    ("equals string", {"s": ["a"]}, {"s": "a"}, True),
    ("equals string is exact", {"s": ["a"]}, {"s": "A"}, False),
    ("equals keeps whitespace and emoji", {"s": ["x 🚀 "]}, {"s": "x 🚀 "}, True),
    ("or of values", {"s": ["a", "b"]}, {"s": "b"}, True),
    ("and of fields", {"s": ["a"], "t": ["b"]}, {"s": "a", "t": "c"}, False),
    ("keys are case sensitive", {"S": ["a"]}, {"s": "a"}, False),
    ("missing field", {"s": ["a"]}, {"t": "a"}, False),
    ("number", {"n": [300]}, {"n": 300}, True),
    ("number equals its float (recorded)", {"n": [300]}, {"n": 300.0}, True),
    ("number is not its string", {"n": [300]}, {"n": "300"}, False),
    ("boolean", {"b": [False]}, {"b": False}, True),
    ("boolean differs", {"b": [False]}, {"b": True}, False),
    ("boolean is not a number", {"b": [True]}, {"b": 1}, False),
    ("null (recorded)", {"v": [None]}, {"v": None}, True),
    ("null is not the string null (recorded)", {"v": [None]}, {"v": "null"}, False),
    ("null is not missing", {"v": [None]}, {}, False),
    ("empty string (recorded)", {"v": [""]}, {"v": ""}, True),
    ("empty string is not null", {"v": [""]}, {"v": None}, False),
    ("nested keys", {"a": {"b": ["x"]}}, {"a": {"b": "x"}}, True),
    ("dotted event key joins (recorded)", {"a": {"b": ["x"]}}, {"a.b": "x"}, True),
    ("dotted pattern key joins (recorded)", {"a.b": ["x"]}, {"a": {"b": "x"}}, True),
    ("array element matches (recorded)", {"r": ["y"]}, {"r": ["x", "y"]}, True),
    ("array without the value (recorded)", {"r": ["z"]}, {"r": ["x", "y"]}, False),
    ("empty array is not null (recorded)", {"r": [None]}, {"r": []}, False),
    ("array of objects (recorded)", {"a": {"id": [{"exists": True}]}}, {"a": [{"k": 1}, {"id": "m"}]}, True),
    ("prefix", {"s": [{"prefix": "us-"}]}, {"s": "us-east-1"}, True),
    ("prefix misses", {"s": [{"prefix": "us-"}]}, {"s": "eu-west-1"}, False),
    ("empty prefix matches any string (recorded)", {"s": [{"prefix": ""}]}, {"s": "x"}, True),
    ("prefix is for strings", {"s": [{"prefix": "1"}]}, {"s": 12}, False),
    ("prefix ignoring case (recorded)", {"s": [{"prefix": {"equals-ignore-case": "EventB"}}]}, {"s": "EvEnTb"}, True),
    ("suffix", {"f": [{"suffix": ".png"}]}, {"f": "image.png"}, True),
    ("suffix is case sensitive (recorded)", {"f": [{"suffix": ".PNG"}]}, {"f": "image.png"}, False),
    ("suffix ignoring case (recorded)", {"f": [{"suffix": {"equals-ignore-case": ".png"}}]}, {"f": "a.PNG"}, True),
    ("suffix ignoring case misses", {"f": [{"suffix": {"equals-ignore-case": ".png"}}]}, {"f": "a.jpg"}, False),
    ("equals-ignore-case", {"s": [{"equals-ignore-case": "alice"}]}, {"s": "ALICE"}, True),
    ("equals-ignore-case misses", {"s": [{"equals-ignore-case": "alice"}]}, {"s": "bob"}, False),
    ("equals-ignore-case on array (recorded)", {"s": [{"equals-ignore-case": "ec2 x"}]}, {"s": ["EC2 X"]}, True),
    ("equals-ignore-case empty (recorded)", {"s": [{"equals-ignore-case": ""}]}, {"s": "v"}, False),
    ("anything-but string", {"s": [{"anything-but": "init"}]}, {"s": "pending"}, True),
    ("anything-but string misses", {"s": [{"anything-but": "init"}]}, {"s": "init"}, False),
    ("anything-but list", {"s": [{"anything-but": ["a", "b"]}]}, {"s": "b"}, False),
    ("anything-but number", {"n": [{"anything-but": 123}]}, {"n": 789}, True),
    ("anything-but number misses", {"n": [{"anything-but": [100, 200]}]}, {"n": 100}, False),
    ("anything-but null value (recorded)", {"s": [{"anything-but": "init"}]}, {"s": None}, True),
    ("anything-but missing field (recorded)", {"s": [{"anything-but": "init"}]}, {}, False),
    ("anything-but prefix", {"s": [{"anything-but": {"prefix": "init"}}]}, {"s": "post-init"}, True),
    ("anything-but prefix misses", {"s": [{"anything-but": {"prefix": "init"}}]}, {"s": "init-x"}, False),
    ("anything-but prefix on number (recorded)", {"s": [{"anything-but": {"prefix": "init"}}]}, {"s": 12}, True),
    ("anything-but prefix list (recorded)", {"s": [{"anything-but": {"prefix": ["a", "post"]}}]}, {"s": "post-x"},
     False),
    ("anything-but suffix", {"f": [{"anything-but": {"suffix": ".txt"}}]}, {"f": "a.txt.bak"}, True),
    ("anything-but suffix misses", {"f": [{"anything-but": {"suffix": [".txt", ".jpg"]}}]}, {"f": "a.jpg"}, False),
    ("anything-but ignoring case", {"s": [{"anything-but": {"equals-ignore-case": "init"}}]}, {"s": "INIT"}, False),
    ("anything-but wildcard", {"p": [{"anything-but": {"wildcard": "*/init/*"}}]}, {"p": "dir/post/f"}, True),
    ("anything-but wildcard misses", {"p": [{"anything-but": {"wildcard": "*/init/*"}}]}, {"p": "d/init/f"}, False),
    ("numeric >", {"n": [{"numeric": [">", 100]}]}, {"n": 101}, True),
    ("numeric > misses", {"n": [{"numeric": [">", 100]}]}, {"n": 100}, False),
    ("numeric on a float (recorded)", {"n": [{"numeric": [">", 100]}]}, {"n": 101.0}, True),
    ("numeric <", {"n": [{"numeric": ["<", 100]}]}, {"n": 99}, True),
    ("numeric <=", {"n": [{"numeric": ["<=", 100]}]}, {"n": 100}, True),
    ("numeric >=", {"n": [{"numeric": [">=", 100]}]}, {"n": 99.5}, False),
    ("numeric =", {"n": [{"numeric": ["=", 3.018e2]}]}, {"n": 301.8}, True),
    ("numeric range low end", {"n": [{"numeric": [">=", 100, "<", 200]}]}, {"n": 100}, True),
    ("numeric range high end", {"n": [{"numeric": [">=", 100, "<", 200]}]}, {"n": 200}, False),
    ("numeric range upper first", {"n": [{"numeric": ["<=", 5, ">", 0]}]}, {"n": 5}, True),
    ("numeric is for numbers (recorded)", {"n": [{"numeric": [">", 100]}]}, {"n": "300"}, False),
    ("numeric on null (recorded)", {"n": [{"numeric": [">", 100]}]}, {"n": None}, False),
    ("numeric is not for booleans", {"n": [{"numeric": [">", 0]}]}, {"n": True}, False),
    ("exists", {"s": [{"exists": True}]}, {"s": "x"}, True),
    ("exists misses", {"s": [{"exists": True}]}, {"t": "x"}, False),
    ("exists on an object is false (recorded)", {"s": [{"exists": True}]}, {"s": {"c": 1}}, False),
    ("exists on an empty array is false (recorded)", {"r": [{"exists": True}]}, {"r": []}, False),
    ("does not exist", {"s": [{"exists": False}]}, {"t": "x"}, True),
    ("does not exist misses", {"s": [{"exists": False}]}, {"s": "x"}, False),
    ("does not exist on a deeper path (recorded)", {"a": {"b:": {"c": [{"exists": False}]}}}, {"a": {"b": 1}}, True),
    ("wildcard", {"a": [{"wildcard": "arn:aws:events:*:event-bus/*"}]}, {"a": "arn:aws:events:us-1:event-bus/b"},
     True),
    ("wildcard spans slashes (recorded)", {"f": [{"wildcard": "/Users/*/doc.txt"}]}, {"f": "/Users/u/d/d/doc.txt"},
     True),
    ("wildcard misses (recorded)", {"f": [{"wildcard": "/Users/*/doc.txt"}]}, {"f": "/Users/u/notdoc.tx"}, False),
    ("wildcard empty matches only empty (recorded)", {"f": [{"wildcard": ""}]}, {"f": "x"}, False),
    ("wildcard escaped star", {"f": [{"wildcard": "a\\*b"}]}, {"f": "a*b"}, True),
    ("wildcard escaped star is literal", {"f": [{"wildcard": "a\\*b"}]}, {"f": "axb"}, False),
    ("several operators are alternatives (recorded)", {"k": [{"exists": True}, {"prefix": "NO"}]}, {"k": "v"}, True),
    ("value or not-exists, value absent (recorded)", {"h": {"S": [{"anything-but": ["roses"]}, {"exists": False}]}},
     {"h": {"N": "789"}}, True),
    ("$or one branch (recorded)", {"d": {"$or": [{"c": [{"numeric": [">", 0]}]}, {"x": [{"numeric": ["<", 10]}]}]}},
     {"d": {"c": 0, "x": 0}}, True),
    ("$or no branch (recorded)", {"d": {"$or": [{"c": [{"numeric": [">", 0]}]}, {"x": [{"numeric": ["<", 10]}]}]}},
     {"d": {"c": 0, "x": 10}}, False),
    ("$or at the top with other fields", {"e": ["I"], "$or": [{"a": ["1"]}, {"b": ["2"]}]}, {"e": "I", "b": "2"}, True),
    ("empty pattern matches everything", {}, {"anything": 1}, True),
]


@pytest.mark.parametrize("pattern, event, expected", [c[1:] for c in OPERATORS], ids=[c[0] for c in OPERATORS])
def test_eventbridge_operators(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert criteria(pattern).matches(event, "dynamodb") is expected


INVALID = [
    ("null pattern (recorded)", "null"),
    ("not JSON (recorded)", "simple string"),
    ("broken JSON (recorded)", '[{"eventName": ["INSERT"=123}]'),
    ("a JSON array", '[{"eventName": ["INSERT"]}]'),
    ("NaN is not JSON", '{"n": [NaN]}'),
    ("value not in a list (recorded)", {"eventSource": "aws:sqs"}),
    ("number not in a list (recorded)", {"n": 42}),
    ("empty list (recorded)", {"eventSource": []}),
    ("nested list", {"s": [["a"]]}),
    ("empty nested object", {"s": {}}),
    ("unknown operator", {"s": [{"contains": "a"}]}),
    ("operators are case sensitive (recorded)", {"s": [{"EXISTS": True}]}),
    ("two operators in one object", {"s": [{"prefix": "a", "suffix": "b"}]}),
    ("exists takes a boolean", {"s": [{"exists": "true"}]}),
    ("prefix takes a string (recorded)", {"s": [{"prefix": 123}]}),
    ("prefix takes no list (recorded)", {"s": [{"prefix": ["a"]}]}),
    ("suffix takes no list (recorded)", {"s": [{"suffix": [".png"]}]}),
    ("prefix ignoring case takes a string", {"s": [{"prefix": {"equals-ignore-case": 1}}]}),
    ("equals-ignore-case takes no list (recorded)", {"s": [{"equals-ignore-case": ["a"]}]}),
    ("equals-ignore-case takes no operator (recorded)", {"s": [{"equals-ignore-case": {"prefix": "a"}}]}),
    ("wildcard takes a string (recorded)", {"s": [{"wildcard": 123}]}),
    ("wildcard takes no list (recorded)", {"s": [{"wildcard": ["a*"]}]}),
    ("wildcard refuses ** (recorded)", {"s": [{"wildcard": "arn:**:bus/*"}]}),
    ("wildcard refuses unknown escapes", {"s": [{"wildcard": "a\\b"}]}),
    ("numeric takes a list (recorded)", {"n": [{"numeric": 10}]}),
    ("numeric missing operand (recorded)", {"n": [{"numeric": [">", 0, "<"]}]}),
    ("numeric two lower bounds (recorded)", {"n": [{"numeric": [">", 0, ">", 0]}]}),
    ("numeric = with a bound", {"n": [{"numeric": ["=", 1, "<", 2]}]}),
    ("numeric unknown operator", {"n": [{"numeric": ["!=", 1]}]}),
    ("numeric string operand", {"n": [{"numeric": [">", "1"]}]}),
    ("anything-but null (recorded)", {"s": [{"anything-but": None}]}),
    ("anything-but list with null (recorded)", {"s": [{"anything-but": ["a", None]}]}),
    ("anything-but mixed list", {"s": [{"anything-but": ["a", 1]}]}),
    ("anything-but empty list", {"s": [{"anything-but": []}]}),
    ("anything-but empty prefix (recorded)", {"s": [{"anything-but": {"prefix": ""}}]}),
    ("anything-but empty suffix (recorded)", {"s": [{"anything-but": {"suffix": ""}}]}),
    ("anything-but prefix number (recorded)", {"s": [{"anything-but": {"prefix": 123}}]}),
    ("anything-but prefix list with number (recorded)", {"s": [{"anything-but": {"prefix": [123, "a"]}}]}),
    ("anything-but suffix list with null (recorded)", {"s": [{"anything-but": {"suffix": [None, ".t"]}}]}),
    ("anything-but prefix ignoring case (recorded)",
     {"s": [{"anything-but": {"prefix": {"equals-ignore-case": "f"}}}]}),
    ("anything-but ignoring case number (recorded)", {"s": [{"anything-but": {"equals-ignore-case": 123}}]}),
    ("anything-but ignoring case numbers (recorded)", {"s": [{"anything-but": {"equals-ignore-case": [1, 2]}}]}),
    ("anything-but wildcard number (recorded)", {"s": [{"anything-but": {"wildcard": 123}}]}),
    ("anything-but unknown operator", {"s": [{"anything-but": {"numeric": [">", 1]}}]}),
    ("$or takes a list", {"$or": {"a": ["1"]}}),
    ("$or takes objects", {"$or": [["a"]]}),
    ("unsupported cidr", {"ip": [{"cidr": "10.0.0.0/24"}]}),
]


@pytest.mark.parametrize("pattern", [c[1] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_patterns_get_lambdas_message(pattern: object) -> None:
    text = pattern if isinstance(pattern, str) else json.dumps(pattern)
    with pytest.raises(InvalidParameterValueException) as raised:
        parse_filter_criteria({"Filters": [{"Pattern": text}]})
    assert raised.value.message == "Invalid filter pattern definition."
    assert raised.value.status == 400


def test_a_filter_without_pattern_is_invalid() -> None:
    with pytest.raises(InvalidParameterValueException, match="^Invalid filter pattern definition.$"):
        parse_filter_criteria({"Filters": [{}]})


@pytest.mark.parametrize("value", [None, {}, {"Filters": None}, {"Filters": []}])
def test_nothing_to_filter_parses_to_none(value: object) -> None:
    # AWS echoes no FilterCriteria for {"Filters": []} (recorded), and "{}" clears filters on update.
    assert parse_filter_criteria(value) is None


def test_to_api_echoes_the_patterns_as_given() -> None:
    patterns = ['{ "body" : { "a" : [ 1, 2 ] } }', '{"eventName": ["INSERT"]}']
    parsed = parse_filter_criteria({"Filters": [{"Pattern": p} for p in patterns]})
    assert parsed is not None
    assert parsed.to_api() == {"Filters": [{"Pattern": patterns[0]}, {"Pattern": patterns[1]}]}


def test_at_most_five_filters() -> None:
    five = [{"Pattern": json.dumps({"n": [i]})} for i in range(filtering.MAX_FILTERS)]
    assert parse_filter_criteria({"Filters": five}) is not None
    with pytest.raises(InvalidParameterValueException, match="quota of 5 filters"):
        parse_filter_criteria({"Filters": [*five, {"Pattern": "{}"}]})


def test_pattern_length_is_the_models_and_uses_coral_wording() -> None:
    import botocore.session

    shape = botocore.session.get_session().get_service_model("lambda").shape_for("Pattern")
    assert filtering.MAX_PATTERN_LENGTH == shape.metadata["max"]
    long = json.dumps({"s": ["x" * filtering.MAX_PATTERN_LENGTH]})
    with pytest.raises(InvalidParameterValueException,
                       match=r"at 'filterCriteria.filters.1.member.pattern' .*less than or equal to 4096"):
        parse_filter_criteria({"Filters": [{"Pattern": long}]})


@pytest.mark.parametrize("value", ["x", {"Filters": "x"}, {"Filters": ["x"]}, {"Filters": [{"Pattern": 1}]}])
def test_malformed_members_are_refused(value: object) -> None:
    with pytest.raises(InvalidParameterValueException, match="1 validation error detected"):
        parse_filter_criteria(value)


def test_filters_are_ored() -> None:
    fc = criteria({"body": {"k": ["a"]}}, {"body": {"n": [{"numeric": [">", 5]}]}})
    assert fc.matches(sqs({"k": "a"}), "sqs")
    assert fc.matches(sqs({"n": 6}), "sqs")
    assert not fc.matches(sqs({"k": "b", "n": 5}), "sqs")


SQS = [
    # test_sqs_event_filter (recorded): the matching item arrives, the other is dropped.
    ("single", {"body": {"my-key": ["my-value"]}}, {"my-key": "my-value"}, {"my-key": "other-value"}),
    ("or", {"body": {"my-key": ["v1", "v2"]}}, {"my-key": "v2"}, {"my-key": "other-value"}),
    ("and", {"body": {"k1": ["other", "v1"], "k2": ["v2"]}}, {"k1": "v1", "k2": "v2"}, {"k1": "x", "k2": "v2"}),
    ("exists", {"body": {"my-key": [{"exists": True}]}}, {"my-key": "any"}, {"other-key": "any"}),
    ("numeric-bigger", {"body": {"n": [{"numeric": [">", 100]}]}}, {"n": 101}, {"n": 100}),
    ("numeric-smaller", {"body": {"n": [{"numeric": ["<", 100]}]}}, {"n": 99}, {"n": 100}),
    ("numeric-range", {"body": {"n": [{"numeric": [">=", 100, "<", 200]}]}}, {"n": 100}, {"n": 200}),
    ("numeric-vs-plain", {"body": {"test2": [{"numeric": [">", 100]}]}}, {"test2": 105}, "this is a test string"),
    ("prefix", {"body": {"my-key": [{"prefix": "yes"}]}}, {"my-key": "yes-value"}, {"my-key": "no-value"}),
    ("valid-json-filter", {"body": {"my-key": ["my-value"]}}, {"my-key": "my-value"}, "plain-string"),
    # with-sqs-filtering: a plain-string pattern on body filters plain bodies and drops JSON ones.
    ("plain-string", {"body": ["plain-string"]}, "plain-string", "plain-string-not-matching"),
    ("plain-string-vs-json", {"body": ["plain-string"]}, "plain-string", {"valid-json-key": "plain-string"}),
    ("plain-prefix", {"body": [{"prefix": "ERROR"}]}, "ERROR: disk full", "INFO: fine"),
    ("json-exists-false-drops-plain", {"body": {"k": [{"exists": False}]}}, {"other": 1}, "no json here"),
    ("value-pattern-drops-json", {"body": [{"anything-but": "x"}, {"exists": False}]}, "plain", {"k": 1}),
    ("a body with NaN is not JSON", {"body": [{"prefix": "{"}]}, '{"a": NaN}', {"a": 1}),
    ("a JSON array body is a plain string", {"body": [{"prefix": "["}]}, "[1, 2]", {"k": "["}),
    ("metadata", {"attributes": {"ApproximateReceiveCount": ["1"]}}, "plain", None),
    ("poller fields are not filterable", {"eventSource": [{"exists": False}]}, "plain", None),
]


@pytest.mark.parametrize("pattern, matching, dropped", [c[1:] for c in SQS], ids=[c[0] for c in SQS])
def test_sqs_body_view(pattern: dict[str, Any], matching: object, dropped: object) -> None:
    fc = criteria(pattern)
    assert fc.matches(sqs(matching), "sqs")
    if dropped is not None:
        assert not fc.matches(sqs(dropped), "sqs")


def test_sqs_metadata_pattern_ignores_the_body_format() -> None:
    fc = criteria({"attributes": {"SenderId": [{"prefix": "AIDA"}]}})
    assert fc.matches(sqs("plain"), "sqs") and fc.matches(sqs({"k": 1}), "sqs")
    assert not fc.matches(sqs("plain", attributes={"SenderId": "X"}), "sqs")


KINESIS = [
    # test_kinesis_event_filtering_json_pattern (recorded): each function gets only its event type.
    ("json data", {"data": {"event_type": ["function_1"]}}, {"event_type": "function_1", "message": "foo"},
     {"event_type": "function_2", "message": "bar"}),
    ("nested json data", {"data": {"session": {"duration": [{"numeric": [">", 100]}]}}},
     {"session": {"duration": 162}}, {"session": {"duration": 99}}),
    ("partition key and data", {"partitionKey": ["1"], "data": {"Location": ["Los Angeles"]}},
     {"Location": "Los Angeles"}, {"Location": "Seattle"}),
    ("non-JSON data is dropped by a data pattern", {"data": {"k": [{"exists": False}]}}, {"j": 1}, b"not json"),
    ("non-UTF-8 data is dropped by a data pattern", {"data": {"k": [{"exists": False}]}}, {"j": 1}, b"\xff\xfe"),
    ("metadata only keeps non-JSON data", {"partitionKey": ["1"]}, b"not json", None),
    ("poller fields are not filterable", {"eventName": [{"exists": False}]}, {"j": 1}, None),
]


@pytest.mark.parametrize("pattern, matching, dropped", [c[1:] for c in KINESIS], ids=[c[0] for c in KINESIS])
def test_kinesis_data_view(pattern: dict[str, Any], matching: object, dropped: object) -> None:
    fc = criteria(pattern, source="kinesis")
    assert fc.matches(kinesis(matching), "kinesis")
    if dropped is not None:
        assert not fc.matches(kinesis(dropped), "kinesis")


def test_kinesis_partition_key_is_matched_with_data() -> None:
    fc = criteria({"partitionKey": ["1"], "data": {"Location": ["Los Angeles"]}})
    assert not fc.matches(kinesis({"Location": "Los Angeles"}, partition_key="2"), "kinesis")


@pytest.mark.parametrize("source, pattern", [("kinesis", {"data": ["plain"]}),
                                             ("dynamodb", {"dynamodb": [{"exists": True}]})])
def test_stream_payload_patterns_must_be_json(source: str, pattern: dict[str, Any]) -> None:
    # invocation-eventfiltering: a non-JSON pattern for data properties fails at create/update.
    with pytest.raises(InvalidParameterValueException, match="Invalid filter pattern definition."):
        criteria(pattern, source=source)


def test_plain_kinesis_data_is_matched_as_text_when_the_source_was_not_given() -> None:
    assert criteria({"data": [{"prefix": "ERR"}]}).matches(kinesis(b"ERR 1"), "kinesis")
    assert not criteria({"data": [{"prefix": "ERR"}]}).matches(kinesis({"ERR": 1}), "kinesis")


DYNAMODB = [
    # test_dynamodb_event_filter (recorded): first image delivered, second dropped (or delivered).
    ("insert only", {"eventName": ["INSERT"]}, ("INSERT", {"id": {"S": "v"}}), ("MODIFY", {"id": {"S": "v"}}), False),
    ("insert or modify", {"eventName": ["INSERT", "MODIFY"]}, ("INSERT", {"id": {"S": "v"}}),
     ("MODIFY", {"id": {"S": "v"}, "id2": {"S": "new"}}), True),
    ("event name and source", {"eventName": ["INSERT"], "eventSource": ["aws:dynamodb"]},
     ("INSERT", {"id": {"S": "v"}}), ("MODIFY", {"id": {"S": "v"}}), False),
    ("content with type", {"dynamodb": {"NewImage": {"presentKey": {"S": ["presentValue"]}}}},
     ("INSERT", {"id": {"S": "1"}, "presentKey": {"S": "presentValue"}}), ("INSERT", {"id": {"S": "2"}}), False),
    ("exists with type", {"dynamodb": {"NewImage": {"presentKey": {"S": [{"exists": True}]}}}},
     ("INSERT", {"id": {"S": "1"}, "presentKey": {"S": "presentValue"}}), ("INSERT", {"id": {"S": "2"}}), False),
    ("exists false", {"dynamodb": {"NewImage": {"presentKey": [{"exists": False}]}}},
     ("INSERT", {"id": {"S": "1"}}), ("INSERT", {"id": {"S": "2"}, "presentKey": {"S": "presentValue"}}), True),
    ("N values are strings", {"dynamodb": {"NewImage": {"numericFilter": {"N": [{"numeric": [">", 100]},
                                                                                {"anything-but": "101"}]}}}},
     ("INSERT", {"id": {"S": "1"}, "numericFilter": {"N": "42"}}),
     ("INSERT", {"id": {"S": "2"}, "numericFilter": {"N": "101"}}), False),
    ("prefix", {"dynamodb": {"NewImage": {"prefix": {"S": [{"prefix": "us-1"}]}}}},
     ("INSERT", {"id": {"S": "1"}, "prefix": {"S": "us-1-other-suffix"}}),
     ("INSERT", {"id": {"S": "1"}, "prefix": {"S": "other-suffix"}}), False),
    ("creation time is a number", {"dynamodb": {"ApproximateCreationDateTime": [{"numeric": [">", 0]}]}},
     ("INSERT", {"id": {"S": "1"}}), ("INSERT", {"id": {"S": "2"}}), True),
]


@pytest.mark.parametrize("pattern, first, second, second_matches", [c[1:] for c in DYNAMODB],
                         ids=[c[0] for c in DYNAMODB])
def test_dynamodb_record_view(pattern: dict[str, Any], first: tuple[str, dict[str, Any]],
                              second: tuple[str, dict[str, Any]], second_matches: bool) -> None:
    fc = criteria(pattern, source="dynamodb")
    assert fc.matches(dynamodb(*first), "dynamodb")
    assert fc.matches(dynamodb(*second), "dynamodb") is second_matches


def test_dynamodb_attribute_values_sit_under_their_type() -> None:
    # Recorded note in test_dynamodb_event_filter: omitting the "S" does not match.
    untyped = criteria({"dynamodb": {"NewImage": {"presentKey": ["presentValue"]}}})
    assert not untyped.matches(dynamodb("INSERT", {"id": {"S": "1"}, "presentKey": {"S": "presentValue"}}),
                               "dynamodb")


def test_unknown_source_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown event source"):
        criteria({"a": ["b"]}).matches({}, "s3")
