"""Function logs read back through the CloudWatch Logs API (boto3's `logs` client) and the CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import REPO_ROOT, Server

from .helpers import create_python_function, wait_until, wait_updated

BLOCKING_HANDLER = """\
import socket

def handler(event, context):
    print("before the wait", event["marker"], flush=True)
    with socket.create_connection(("127.0.0.1", event["port"])) as conn:
        conn.recv(1)  # the test sends one byte when it has seen the line above
    print("after the wait", event["marker"])
    return "done"
"""

PRINTING_HANDLER = """\
def handler(event, context):
    for line in event["lines"]:
        print(line)
    return "ok"
"""

LOGGING_HANDLER = """\
import logging
logger = logging.getLogger("app")

def handler(event, context):
    logger.debug("debug " + event["marker"])
    logger.info("info " + event["marker"])
    logger.warning("warning " + event["marker"], extra={"order": 7})
    try:
        raise ValueError("bad " + event["marker"])
    except ValueError:
        logger.exception("failed " + event["marker"])
    print("plain print " + event["marker"])
    return "ok"
"""


@pytest.fixture
def logs_client(server):
    return server.client("logs")


def messages(events) -> list[str]:
    return [e["message"] for e in events]


def test_lines_are_readable_while_the_invocation_runs(server, lambda_client, logs_client, create_function):
    name = create_function(BLOCKING_HANDLER, Timeout=30)["FunctionName"]
    marker = uuid.uuid4().hex
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(20)
    port = listener.getsockname()[1]
    result: dict = {}
    invoker = threading.Thread(target=lambda: result.update(lambda_client.invoke(
        FunctionName=name, Payload=json.dumps({"marker": marker, "port": port}))))
    invoker.start()
    try:
        conn, _ = listener.accept()  # the handler is now waiting for us
        group = f"/aws/lambda/{name}"

        def seen_before():
            try:
                streams = logs_client.describe_log_streams(logGroupName=group)["logStreams"]
            except logs_client.exceptions.ResourceNotFoundException:
                return None
            for stream in streams:
                events = logs_client.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"],
                                                    startFromHead=True)["events"]
                if f"before the wait {marker}\n" in messages(events):
                    return events
            return None

        events = wait_until(seen_before, timeout=10, what="the first line through GetLogEvents")
        assert invoker.is_alive(), "the invocation should still be running"
        assert not any("after the wait" in m for m in messages(events))
        assert not any(m.startswith("REPORT") for m in messages(events))
        conn.sendall(b"x")
        conn.close()
    finally:
        listener.close()
        invoker.join(30)
    assert result["StatusCode"] == 200 and "FunctionError" not in result
    found = logs_client.filter_log_events(logGroupName=f"/aws/lambda/{name}", filterPattern=marker)["events"]
    assert [m for m in messages(found)] == [f"before the wait {marker}\n", f"after the wait {marker}\n"]


def test_groups_streams_and_events(server, lambda_client, logs_client, create_function):
    name = create_function(PRINTING_HANDLER)["FunctionName"]
    group = f"/aws/lambda/{name}"
    lines = [f"line {i} {uuid.uuid4().hex[:6]}" for i in range(7)]
    resp = lambda_client.invoke(FunctionName=name, Payload=json.dumps({"lines": lines}))
    request_id = resp["ResponseMetadata"]["RequestId"]

    groups = logs_client.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert [g["logGroupName"] for g in groups] == [group]
    assert groups[0]["arn"] == f"arn:aws:logs:us-east-1:000000000000:log-group:{group}:*"
    assert "retentionInDays" not in groups[0]
    streams = logs_client.describe_log_streams(logGroupName=group, orderBy="LastEventTime", descending=True)
    (stream,) = streams["logStreams"]
    stream_name = stream["logStreamName"]
    assert stream_name.split("/")[3].startswith("[$LATEST]") and len(stream_name.split("]")[1]) == 32
    assert stream["firstEventTimestamp"] <= stream["lastEventTimestamp"]

    every = logs_client.get_log_events(logGroupName=group, logStreamName=stream_name, startFromHead=True)
    texts = messages(every["events"])
    assert texts[texts.index(f"START RequestId: {request_id} Version: $LATEST\n") + 1:][:7] == [f"{l}\n" for l in lines]
    assert texts[-1].startswith(f"REPORT RequestId: {request_id}\tDuration: ")

    # Forward pages of 3, from the head, until the token comes back unchanged.
    collected, token, pages = [], None, 0
    while True:
        kwargs = {"nextToken": token} if token else {"startFromHead": True}
        page = logs_client.get_log_events(logGroupName=group, logStreamName=stream_name, limit=3, **kwargs)
        collected += messages(page["events"])
        pages += 1
        assert pages < 20
        if page["nextForwardToken"] == token:
            assert page["events"] == []
            break
        token = page["nextForwardToken"]
    assert collected == texts

    # No token, not from the head: the newest events; backward pages reach the head.
    newest = logs_client.get_log_events(logGroupName=group, logStreamName=stream_name, limit=2)
    assert messages(newest["events"]) == texts[-2:]
    back = logs_client.get_log_events(logGroupName=group, logStreamName=stream_name, limit=2,
                                      nextToken=newest["nextBackwardToken"])
    assert messages(back["events"]) == texts[-4:-2]
    # Following the forward token of the newest page sees a later invocation's lines, then stops.
    forward = newest["nextForwardToken"]
    lambda_client.invoke(FunctionName=name, Payload=json.dumps({"lines": ["later line"]}))
    later = logs_client.get_log_events(logGroupName=group, logStreamName=stream_name, nextToken=forward)
    assert "later line\n" in messages(later["events"])
    again = logs_client.get_log_events(logGroupName=group, logStreamName=stream_name,
                                       nextToken=later["nextForwardToken"])
    assert again["events"] == [] and again["nextForwardToken"] == later["nextForwardToken"]

    with pytest.raises(logs_client.exceptions.ResourceNotFoundException):
        logs_client.get_log_events(logGroupName=group, logStreamName="2020/01/01/[$LATEST]" + "0" * 32)
    with pytest.raises(logs_client.exceptions.ResourceNotFoundException):
        logs_client.describe_log_streams(logGroupName="/aws/lambda/no-such-function-" + uuid.uuid4().hex[:8])
    with pytest.raises(logs_client.exceptions.InvalidParameterException):
        logs_client.describe_log_streams(logGroupName=group, orderBy="LastEventTime", logStreamNamePrefix="2")


def test_filter_patterns_streams_and_pagination(server, lambda_client, logs_client, create_function):
    name = create_function(PRINTING_HANDLER)["FunctionName"]
    group = f"/aws/lambda/{name}"
    lines = ["ERROR disk full", "WARN disk slow", "INFO all good", 'ERROR "quoted thing" here', "ERROR net down"]
    lambda_client.invoke(FunctionName=name, Payload=json.dumps({"lines": lines}))

    def found(pattern, **kwargs):
        return [m.rstrip("\n") for m in messages(
            logs_client.filter_log_events(logGroupName=group, filterPattern=pattern, **kwargs)["events"])]

    assert found("ERROR disk") == ["ERROR disk full"]
    assert found("ERROR") == ["ERROR disk full", 'ERROR "quoted thing" here', "ERROR net down"]
    assert found('"disk full"') == ["ERROR disk full"]
    assert found("?WARN ?INFO") == ["WARN disk slow", "INFO all good"]
    assert found("ERROR -disk") == ['ERROR "quoted thing" here', "ERROR net down"]
    assert found("error") == []  # terms are case-sensitive, as on CloudWatch

    paginator = logs_client.get_paginator("filter_log_events")
    pages = list(paginator.paginate(logGroupName=group, filterPattern="ERROR", PaginationConfig={"PageSize": 1}))
    assert [m.rstrip("\n") for p in pages for m in messages(p["events"])] == found("ERROR")
    assert len([p for p in pages if p["events"]]) == 3
    streams = logs_client.describe_log_streams(logGroupName=group)["logStreams"]
    names = [s["logStreamName"] for s in streams]
    assert found("ERROR", logStreamNames=names[:1]) == found("ERROR")
    events = logs_client.filter_log_events(logGroupName=group, filterPattern="ERROR")["events"]
    assert len({e["eventId"] for e in events}) == 3 and all(e["logStreamName"] in names for e in events)
    first_ts = events[0]["timestamp"]
    assert all(e["timestamp"] >= first_ts for e in
               logs_client.filter_log_events(logGroupName=group, startTime=first_ts)["events"])


def test_delete_log_group_and_recreate_on_next_line(server, lambda_client, logs_client, create_function):
    name = create_function(PRINTING_HANDLER)["FunctionName"]
    group = f"/aws/lambda/{name}"
    lambda_client.invoke(FunctionName=name, Payload=json.dumps({"lines": ["first"]}))
    logs_client.delete_log_group(logGroupName=group)
    assert logs_client.describe_log_groups(logGroupNamePrefix=group)["logGroups"] == []
    with pytest.raises(logs_client.exceptions.ResourceNotFoundException):
        logs_client.filter_log_events(logGroupName=group)
    with pytest.raises(logs_client.exceptions.ResourceNotFoundException):
        logs_client.delete_log_group(logGroupName=group)
    lambda_client.invoke(FunctionName=name, Payload=json.dumps({"lines": ["second"]}))  # same warm environment
    texts = messages(logs_client.filter_log_events(logGroupName=group)["events"])
    assert "second\n" in texts and "first\n" not in texts


def test_dot_named_log_groups_are_groups_not_the_data_directory(server, lambda_client, logs_client, create_function):
    """"." and ".." are valid log group names; deleting them must not delete the logs or data directory."""
    name = create_function(PRINTING_HANDLER)["FunctionName"]
    lambda_client.invoke(FunctionName=name, Payload=json.dumps({"lines": ["kept"]}))
    for group in (".", ".."):
        logs_client.create_log_group(logGroupName=group)
        assert [g["logGroupName"] for g in logs_client.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
                if g["logGroupName"] == group] == [group]
        logs_client.delete_log_group(logGroupName=group)
    assert (server.data_dir / "lambdalet.db").is_file()
    assert "kept\n" in messages(logs_client.filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"])
    assert lambda_client.get_function(FunctionName=name)["Configuration"]["FunctionName"] == name


def test_log_group_names_longer_than_a_file_name(server, lambda_client, logs_client, create_function):
    """Valid names run to 512 characters, each "/" three on disk: past the 255 bytes of a file name.
    They are groups like any other; an unknown one is not found (it was a 500)."""
    group = "/long/" + "/".join(["abcdefg"] * 63)  # 510 characters, ~750 bytes percent-encoded
    name = create_function(PRINTING_HANDLER, LoggingConfig={"LogFormat": "Text", "LogGroup": group})["FunctionName"]
    lambda_client.invoke(FunctionName=name, Payload=json.dumps({"lines": ["in a long group"]}))
    assert "in a long group\n" in messages(logs_client.filter_log_events(logGroupName=group)["events"])
    assert group in [g["logGroupName"] for g in logs_client.describe_log_groups(logGroupNamePrefix="/long/")["logGroups"]]
    logs_client.put_retention_policy(logGroupName=group, retentionInDays=7)
    assert logs_client.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]["retentionInDays"] == 7
    other = "/long/" + "x" * 500
    logs_client.create_log_group(logGroupName=other)
    with pytest.raises(logs_client.exceptions.ResourceAlreadyExistsException):
        logs_client.create_log_group(logGroupName=other)
    logs_client.delete_log_group(logGroupName=other)
    for missing in (other, "/" * 512, "9" * 400):
        with pytest.raises(logs_client.exceptions.ResourceNotFoundException):
            logs_client.filter_log_events(logGroupIdentifier=missing)
        with pytest.raises(logs_client.exceptions.ResourceNotFoundException):
            logs_client.get_log_events(logGroupName=missing, logStreamName="s" * 512)
    with pytest.raises(logs_client.exceptions.ResourceNotFoundException):
        logs_client.get_log_events(logGroupName=group, logStreamName="\ud800" + "s" * 500)


def test_retention_policy_validation(server, lambda_client, logs_client, create_function):
    name = create_function(PRINTING_HANDLER)["FunctionName"]
    group = f"/aws/lambda/{name}"
    lambda_client.invoke(FunctionName=name, Payload=json.dumps({"lines": ["x"]}))
    with pytest.raises(logs_client.exceptions.InvalidParameterException):
        logs_client.put_retention_policy(logGroupName=group, retentionInDays=2)
    logs_client.put_retention_policy(logGroupName=group, retentionInDays=7)
    assert logs_client.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]["retentionInDays"] == 7
    logs_client.delete_retention_policy(logGroupName=group)
    assert "retentionInDays" not in logs_client.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]
    with pytest.raises(logs_client.exceptions.ResourceNotFoundException):
        logs_client.put_retention_policy(logGroupName=group + "-missing", retentionInDays=1)


def test_retention_is_enforced(tmp_path):
    srv = Server(tmp_path / "data", extra_env={"LAMBDALET_LOG_RETENTION_SWEEP_INTERVAL": "0.2"})
    srv.start()
    try:
        lam, logs = srv.client("lambda"), srv.client("logs")
        create_python_function(lam, "kept", PRINTING_HANDLER)
        lam.invoke(FunctionName="kept", Payload=json.dumps({"lines": ["fresh line"]}))
        group = "/aws/lambda/kept"
        # Reading flushes the environment's lines: the group's directory exists from then on (the
        # server writes files from its flush timer, not on the invoke path).
        assert "fresh line\n" in messages(logs.filter_log_events(logGroupName=group)["events"])
        group_dir = Path(srv.data_dir) / "logs" / quote(group, safe="")
        now = int(time.time() * 1000)
        old, mixed = group_dir / "old.log", group_dir / "mixed.log"
        old.write_text(f"{now - 3 * 86_400_000} ancient line\n")
        mixed.write_text(f"{now - 3 * 86_400_000} stale line\n{now} recent line\n")
        texts = messages(logs.filter_log_events(logGroupName=group)["events"])
        assert "ancient line\n" in texts and "stale line\n" in texts

        logs.put_retention_policy(logGroupName=group, retentionInDays=1)
        texts = messages(logs.filter_log_events(logGroupName=group)["events"])
        assert "ancient line\n" not in texts and "stale line\n" not in texts  # never read, even before the sweep
        assert "recent line\n" in texts and "fresh line\n" in texts
        wait_until(lambda: not old.exists() and "stale" not in mixed.read_text(), timeout=10,
                   what="the retention sweep to remove the old events")
        assert "recent line" in mixed.read_text()
        assert "fresh line\n" in messages(logs.filter_log_events(logGroupName=group)["events"])
    finally:
        srv.stop()


def test_logging_config_json_records_and_levels(server, lambda_client, logs_client, create_function):
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException):
        create_function(LOGGING_HANDLER, LoggingConfig={"LogFormat": "Text", "ApplicationLogLevel": "DEBUG"})
    custom_group = f"/custom/{uuid.uuid4().hex[:8]}"
    config = create_function(LOGGING_HANDLER, LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "WARN",
                                                              "LogGroup": custom_group})
    assert config["LoggingConfig"] == {"LogFormat": "JSON", "ApplicationLogLevel": "WARN",
                                       "SystemLogLevel": "INFO", "LogGroup": custom_group}
    name = config["FunctionName"]
    marker = uuid.uuid4().hex[:8]
    resp = lambda_client.invoke(FunctionName=name, Payload=json.dumps({"marker": marker}))
    request_id = resp["ResponseMetadata"]["RequestId"]
    texts = messages(logs_client.filter_log_events(logGroupName=custom_group)["events"])
    records = [json.loads(t) for t in texts]
    by_type = {r.get("type"): r for r in records if "type" in r}
    assert by_type["platform.start"]["record"] == {"requestId": request_id, "version": "$LATEST"}
    report = by_type["platform.report"]["record"]
    assert report["status"] == "success" and report["metrics"]["memorySizeMB"] == 128
    assert "initDurationMs" in report["metrics"]
    app = [r for r in records if "level" in r]
    assert [r["message"] for r in app] == [f"warning {marker}", f"failed {marker}"]  # INFO, DEBUG, print dropped
    warning, error = app
    assert warning["level"] == "WARNING" and warning["logger"] == "app" and warning["requestId"] == request_id
    assert warning["order"] == 7 and warning["timestamp"].endswith("Z")
    assert error["level"] == "ERROR" and error["errorType"] == "ValueError"
    assert error["errorMessage"] == f"bad {marker}" and error["stackTrace"]
    assert not any(t.startswith(("START", "END", "REPORT")) for t in texts)

    # SystemLogLevel WARN drops the platform records; DEBUG keeps every application record.
    lambda_client.update_function_configuration(FunctionName=name, LoggingConfig={
        "SystemLogLevel": "WARN", "ApplicationLogLevel": "DEBUG"})
    marker = uuid.uuid4().hex[:8]
    lambda_client.invoke(FunctionName=name, Payload=json.dumps({"marker": marker}))
    texts = messages(logs_client.filter_log_events(logGroupName=custom_group, filterPattern=marker)["events"])
    assert len(texts) == 5 and f"plain print {marker}\n" in texts
    assert [json.loads(t)["level"] for t in texts if t.startswith("{")] == ["DEBUG", "INFO", "WARNING", "ERROR"]
    recent = messages(logs_client.get_log_events(
        logGroupName=custom_group, logStreamName=logs_client.describe_log_streams(
            logGroupName=custom_group, orderBy="LastEventTime", descending=True)["logStreams"][0]["logStreamName"],
        limit=6)["events"])
    assert not any('"type":"platform.' in t for t in recent)
    wait_updated(lambda_client, name)
    lambda_client.update_function_configuration(FunctionName=name, LoggingConfig={"LogFormat": "Text"})
    assert lambda_client.get_function_configuration(FunctionName=name)["LoggingConfig"] == {
        "LogFormat": "Text", "LogGroup": custom_group}


def _cli(server, *args, **kwargs):
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    return subprocess.run([sys.executable, "-m", "lambdalet", *args, "--endpoint-url", server.url], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=60, **kwargs)


def test_cli_logs_filter_since_and_errors(server, lambda_client, create_function):
    name = create_function(PRINTING_HANDLER)["FunctionName"]
    marker = uuid.uuid4().hex[:8]
    lambda_client.invoke(FunctionName=name, Payload=json.dumps({"lines": [f"alpha {marker}", f"beta {marker}"]}))
    out = _cli(server, "logs", name)
    assert out.returncode == 0, out.stderr
    assert f"alpha {marker}" in out.stdout and "REPORT RequestId" in out.stdout
    out = _cli(server, "logs", name, "--filter", f"beta {marker}")
    assert out.returncode == 0 and out.stdout.count("\n") == 1 and f"beta {marker}" in out.stdout
    out = _cli(server, "logs", name, "--since", "2099-01-01T00:00:00")
    assert out.returncode == 0 and out.stdout == ""
    out = _cli(server, "logs", "no-such-function-" + marker)
    assert out.returncode == 1 and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    out = _cli(server, "logs", name, "--since", "yesterday-ish")
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_cli_logs_follow_picks_up_new_lines(server, lambda_client, create_function):
    name = create_function(PRINTING_HANDLER)["FunctionName"]
    lambda_client.invoke(FunctionName=name, Payload=json.dumps({"lines": ["already there"]}))
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "lambdalet", "logs", name, "-f", "--poll", "0.1",
                             "--endpoint-url", server.url], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: [lines.append(line) for line in proc.stdout], daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("already there" in l for l in lines), timeout=20, what="the existing line")
        marker = uuid.uuid4().hex
        lambda_client.invoke(FunctionName=name, Payload=json.dumps({"lines": [f"new {marker}"]}))
        wait_until(lambda: any(marker in l for l in lines), timeout=20, what="the new line in `logs -f`")
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "Traceback" not in proc.stderr.read()
    assert sum("already there" in l for l in lines) == 1  # nothing printed twice
