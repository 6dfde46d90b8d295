"""Asynchronous invocation: durable queue, retries, configuration, and no event lost to SIGKILL."""

from __future__ import annotations

import json
import signal
import socketserver
import threading
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import ROLE, Server, make_zip

from .helpers import aws_error, wait_until

REPORTER = """
import json, socket

def handler(event, context):
    with socket.create_connection(("127.0.0.1", event["collector"])) as conn:
        conn.sendall((json.dumps({"id": context.aws_request_id, "n": event.get("n")}) + "\\n").encode())
    if event.get("fail"):
        raise RuntimeError("failing on purpose")
    return "ok"
"""


class Collector(socketserver.ThreadingTCPServer):
    """Counts what functions report: one JSON line per attempt."""

    daemon_threads = True
    allow_reuse_address = True
    # Up to --async-workers environments report at once; socketserver's default backlog of 5 drops
    # connections (the sender, its handshake done, cannot tell), which would look like lost events.
    request_queue_size = 1024

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.lock = threading.Lock()

        class Handler(socketserver.StreamRequestHandler):
            def handle(inner) -> None:
                for line in inner.rfile:
                    with self.lock:
                        self.seen[json.loads(line)["id"]] += 1

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server_address[1]


@pytest.fixture
def collector():
    server = Collector()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def fast_retries(tmp_path):
    srv = Server(tmp_path / "data", extra_env={"LAMBDALET_ASYNC_BACKOFF_SCALE": "0.01"})
    srv.start()
    yield srv
    srv.stop()


def queue_depth(server: Server, name: str) -> int:
    with urllib.request.urlopen(server.url + "/_lambdalet/status") as resp:
        return json.load(resp)["functions"][name]["async_queue"]["depth"]


def create(client, name: str) -> None:
    client.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                           Code={"ZipFile": make_zip({"app.py": REPORTER})}, Timeout=10)


@pytest.mark.parametrize("retries", [None, 1, 0])
def test_a_failing_event_is_tried_exactly_one_plus_retries_times(fast_retries, collector, retries):
    client = fast_retries.client()
    create(client, "failing")
    if retries is not None:
        client.put_function_event_invoke_config(FunctionName="failing", MaximumRetryAttempts=retries)
    resp = client.invoke(FunctionName="failing", InvocationType="Event",
                         Payload=json.dumps({"collector": collector.port, "fail": True}))
    assert resp["StatusCode"] == 202
    request_id = resp["ResponseMetadata"]["RequestId"]
    expected = 1 + (2 if retries is None else retries)
    wait_until(lambda: queue_depth(fast_retries, "failing") == 0, timeout=20, what="the queue to drain")
    wait_until(lambda: collector.seen[request_id] >= expected, timeout=10, what="every attempt's report")
    assert collector.seen[request_id] == expected


def test_event_invoke_config_api(lambda_client, create_function):
    name = create_function(Publish=True)["FunctionName"]
    put = lambda_client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1,
                                                         MaximumEventAgeInSeconds=120)
    assert put["MaximumRetryAttempts"] == 1 and put["MaximumEventAgeInSeconds"] == 120
    updated = lambda_client.update_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    assert updated["MaximumRetryAttempts"] == 0 and updated["MaximumEventAgeInSeconds"] == 120
    lambda_client.put_function_event_invoke_config(FunctionName=name, Qualifier="1", MaximumRetryAttempts=2)
    listed = lambda_client.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
    assert sorted(c["FunctionArn"].rsplit(":", 1)[-1] for c in listed) == ["$LATEST", "1"]  # AWS names $LATEST
    assert lambda_client.get_function_event_invoke_config(FunctionName=name)["MaximumRetryAttempts"] == 0
    lambda_client.delete_function_event_invoke_config(FunctionName=name)
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_function_event_invoke_config(FunctionName=name)
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException):  # S3 takes failures only
        lambda_client.put_function_event_invoke_config(
            FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": "arn:aws:s3:::bucket"}})


def test_no_accepted_event_is_lost_when_the_server_is_killed(fresh_server, collector):
    fresh_server.start()
    client = fresh_server.client()
    create(client, "durable")
    total = 1000

    def send(n: int) -> str:
        resp = client.invoke(FunctionName="durable", InvocationType="Event",
                             Payload=json.dumps({"collector": collector.port, "n": n}))
        assert resp["StatusCode"] == 202
        return resp["ResponseMetadata"]["RequestId"]

    with ThreadPoolExecutor(8) as pool:
        accepted = list(pool.map(send, range(total)))
    wait_until(lambda: sum(collector.seen.values()) > 0, timeout=20, what="the first events to run")
    fresh_server.stop(signal.SIGKILL)  # mid-flight: some events ran, some are running, most are queued
    fresh_server.start()
    wait_until(lambda: queue_depth(fresh_server, "durable") == 0, timeout=120, what="the queue to drain")

    def missing() -> list[str]:  # the collector may still be reading the last reports
        return [request_id for request_id in accepted if collector.seen[request_id] == 0]

    try:
        wait_until(lambda: not missing(), timeout=10, what="every accepted event's report")
    except AssertionError:
        pass
    assert not missing(), f"{len(missing())} of {total} accepted events never ran"
    duplicates = sum(count - 1 for count in collector.seen.values() if count > 1)
    print(f"\n{total} events, SIGKILL mid-flight: 0 lost, {duplicates} run twice (at-least-once)")


SLOW_REPORTER = REPORTER.replace('    return "ok"', '    import time\n    time.sleep(0.2)\n    return "ok"')


def test_events_wait_for_host_memory_instead_of_backing_off_as_if_throttled(tmp_path, collector):
    """More events at once than the host's memory budget has environments for: Lambdalet's own
    capacity is not a Lambda throttle, so each event waits in memory for an environment to be free
    and runs exactly once, with no throttle backoff (which starts at a second and doubles)."""
    small = Server(tmp_path / "data", args=["--memory-budget-mb", "256"])  # two 128 MB environments
    small.start()
    try:
        client = small.client()
        client.create_function(FunctionName="slow", Runtime="python3.12", Role=ROLE, Handler="app.handler",
                               Code={"ZipFile": make_zip({"app.py": SLOW_REPORTER})}, Timeout=10,
                               MemorySize=128)
        ids = [client.invoke(FunctionName="slow", InvocationType="Event",
                             Payload=json.dumps({"collector": collector.port, "n": n}))["ResponseMetadata"]["RequestId"]
               for n in range(8)]
        wait_until(lambda: all(collector.seen[i] for i in ids), timeout=30, what="every event's report")
        wait_until(lambda: queue_depth(small, "slow") == 0, timeout=10, what="the queue to drain")
        assert [collector.seen[i] for i in ids] == [1] * 8
        log = small.log_path.read_text()
        assert "trying again" not in log, [line for line in log.splitlines() if "trying again" in line][:3]
    finally:
        small.stop()


def test_event_invoke_config_refusals_in_aws_words(lambda_client, create_function):
    """As AWS answers (LocalStack's test_lambda_eventinvokeconfig_exceptions, recorded against AWS)."""
    created = create_function(Publish=True)
    name, arn = created["FunctionName"], created["FunctionArn"]
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    put, update = lambda_client.put_function_event_invoke_config, lambda_client.update_function_event_invoke_config
    no_function = ("ResourceNotFoundException", 404, "The function doesn't exist.")
    assert aws_error(put, FunctionName=name + "-nope", MaximumRetryAttempts=1) == no_function
    assert aws_error(put, FunctionName=name, Qualifier="nope", MaximumRetryAttempts=1) == no_function
    assert aws_error(update, FunctionName=name + "-nope", MaximumRetryAttempts=1) == no_function
    assert aws_error(lambda_client.list_function_event_invoke_configs, FunctionName=name + "-nope") == no_function
    assert aws_error(put, FunctionName=name) == (
        "InvalidParameterValueException", 400, "You must specify at least one of error handling or destination setting.")
    missing = arn + "-nope"
    assert aws_error(put, FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": missing}}) == (
        "InvalidParameterValueException", 400, f"The destination ARN {missing} is invalid.")
    assert aws_error(put, FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": arn}}) == (
        "InvalidParameterValueException", 400, "You can't specify the function as a destination for itself.")
    iam = arn.replace(":lambda:", ":iam:")
    assert aws_error(put, FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": iam}}) == (
        "InvalidParameterValueException", 400,
        f"The provided destination config DestinationConfig(onSuccess=OnSuccess(destination={iam}), "
        "onFailure=null) is invalid.")
    for call in (lambda_client.get_function_event_invoke_config, lambda_client.delete_function_event_invoke_config):
        assert aws_error(call, FunctionName=name + "-nope") == (
            "ResourceNotFoundException", 404, f"The function {missing}:$LATEST doesn't have an EventInvokeConfig")
        assert aws_error(call, FunctionName=name, Qualifier="nope") == (
            "ResourceNotFoundException", 404, f"The function {arn}:nope doesn't have an EventInvokeConfig")
        assert aws_error(call, FunctionName=name) == (
            "ResourceNotFoundException", 404, f"The function {arn}:$LATEST doesn't have an EventInvokeConfig")
    assert aws_error(update, FunctionName=name, Qualifier="live", MaximumRetryAttempts=1) == (
        "ResourceNotFoundException", 404, f"The function {arn}:live doesn't have an EventInvokeConfig")
    assert aws_error(update, FunctionName=name, MaximumRetryAttempts=1) == (
        "ResourceNotFoundException", 404, f"The function {arn}:$LATEST doesn't have an EventInvokeConfig")

