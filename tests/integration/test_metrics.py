"""/metrics: Prometheus exposition scraped over HTTP and checked against the invokes made."""

from __future__ import annotations

import socket
import urllib.request
from urllib.parse import urlparse

from prometheus_client.parser import text_string_to_metric_families

from conftest import Server, invoke_json
from .helpers import http_request, server_status, wait_until

FAILING = """
def handler(event, context):
    if event.get("fail"):
        raise ValueError("asked to fail")
    return event
"""


class Scrape:
    """One scrape of /metrics, parsed with prometheus_client's own parser."""

    def __init__(self, server: Server) -> None:
        status, headers, body = http_request(server.url + "/metrics")
        assert status == 200, body[:500]
        assert headers["Content-Type"].startswith("text/plain")
        self.samples = [sample for family in text_string_to_metric_families(body.decode())
                        for sample in family.samples]

    def value(self, name: str, **labels: str) -> float | None:
        """The one sample called `name` whose labels include `labels`; None when there is none."""
        found = [s.value for s in self.samples if s.name == name and labels.items() <= s.labels.items()]
        assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
        return found[0] if found else None

    def of_function(self, function: str) -> list:
        return [s for s in self.samples if s.labels.get("function") == function]


def latest(function: str, **more: str) -> dict[str, str]:
    return {"function": function, "version": "$LATEST", "alias": "", **more}


def test_invocations_errors_durations_and_cold_starts(server, lambda_client, create_function):
    name = create_function(FAILING)["FunctionName"]
    for payload in ({}, {"fail": True}, {}, {"fail": True}, {}):
        invoke_json(lambda_client, name, payload)

    scrape = Scrape(server)
    labels = latest(name)
    assert scrape.value("lambdalet_invocations_total", **labels) == 5
    assert scrape.value("lambdalet_errors_total", **labels) == 2
    assert scrape.value("lambdalet_throttles_total", **labels) == 0
    assert scrape.value("lambdalet_duration_seconds_count", **labels) == 5
    assert scrape.value("lambdalet_duration_seconds_bucket", **labels, le="+Inf") == 5
    assert 0 < scrape.value("lambdalet_duration_seconds_sum", **labels) < 5
    assert scrape.value("lambdalet_cold_starts_total", **labels) == 1
    assert scrape.value("lambdalet_init_duration_seconds_count", **labels) == 1
    assert scrape.value("lambdalet_init_duration_seconds_sum", **labels) > 0
    assert scrape.value("lambdalet_concurrent_executions", **labels) == 0
    # each node labels what it reports (--node-name, by default <host name>:<port>)
    node = f"{socket.gethostname()}:{urlparse(server.url).port}"
    assert scrape.samples and all(sample.labels.get("node") == node for sample in scrape.samples)


def test_a_throttled_invoke_counts_as_a_throttle_not_an_invocation(server, lambda_client, create_function):
    name = create_function()["FunctionName"]
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    # One raw request: boto3 retries a throttle (the fixture's client allows one retry).
    status, headers, _ = http_request(f"{server.url}/2015-03-31/functions/{name}/invocations", "POST", b"{}")
    assert (status, headers["x-amzn-ErrorType"]) == (429, "TooManyRequestsException")

    scrape = Scrape(server)
    assert scrape.value("lambdalet_throttles_total", **latest(name)) == 1
    assert scrape.value("lambdalet_invocations_total", **latest(name)) == 0
    assert scrape.value("lambdalet_reserved_concurrency", function=name) == 0


def test_throttled_async_events_count_and_wait_in_the_queue(server, lambda_client, create_function):
    name = create_function()["FunctionName"]
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    assert lambda_client.invoke(FunctionName=name, InvocationType="Event", Payload=b"{}")["StatusCode"] == 202

    # The queue's worker tries the event after the 202: poll for its first (throttled) attempt.
    scrape = wait_until(lambda: (s := Scrape(server)).value("lambdalet_throttles_total", **latest(name)) and s,
                        what="the asynchronous attempt to be throttled")
    assert scrape.value("lambdalet_invocations_total", **latest(name)) == 0
    assert scrape.value("lambdalet_async_queue_depth", function=name) == 1
    assert scrape.value("lambdalet_async_queue_oldest_age_seconds", function=name) >= 0


def test_alias_invokes_are_labelled_with_the_alias_and_the_executed_version(server, lambda_client,
                                                                           create_function):
    name = create_function()["FunctionName"]
    version = lambda_client.publish_version(FunctionName=name)["Version"]
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    for _ in range(2):
        resp, _ = invoke_json(lambda_client, name, Qualifier="live")
        assert resp["ExecutedVersion"] == version
    invoke_json(lambda_client, name, Qualifier=version)

    scrape = Scrape(server)
    assert scrape.value("lambdalet_invocations_total", function=name, version=version, alias="live") == 2
    assert scrape.value("lambdalet_invocations_total", function=name, version=version, alias="") == 1
    assert scrape.value("lambdalet_duration_seconds_count", function=name, version=version, alias="live") == 2
    assert scrape.value("lambdalet_invocations_total", **latest(name)) is None  # $LATEST never ran

    lambda_client.delete_alias(FunctionName=name, Name="live")
    scrape = Scrape(server)
    assert scrape.value("lambdalet_invocations_total", function=name, version=version, alias="live") is None
    assert scrape.value("lambdalet_invocations_total", function=name, version=version, alias="") == 1


def test_environment_gauges_match_the_status_endpoint(server, lambda_client, create_function):
    name = create_function()["FunctionName"]
    for _ in range(3):
        invoke_json(lambda_client, name)

    scrape = Scrape(server)
    environments = server_status(server)["functions"][name]["environments"]
    assert environments == {"starting": 0, "idle": 1, "busy": 0}
    for state, count in environments.items():
        assert scrape.value("lambdalet_execution_environments", function=name, version="$LATEST", state=state) == count
    assert scrape.value("lambdalet_execution_environments", function=name, state="stopping") == 0
    assert scrape.value("lambdalet_environments", state="idle") >= 1
    backend = server_status(server)["sandbox"]
    assert scrape.value("lambdalet_sandbox_starts_total", backend=backend) >= 1
    assert scrape.value("lambdalet_sandbox_start_failures_total", backend=backend) == 0


def test_function_url_requests_are_counted(server, lambda_client, create_function):
    name = create_function()["FunctionName"]
    url = lambda_client.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
    for _ in range(2):
        status, _, body = http_request(url, method="POST", data=b'{"a": 1}')
        assert status == 200, body

    scrape = Scrape(server)
    assert scrape.value("lambdalet_function_url_requests_total", function=name, alias="", code="200") == 2
    assert scrape.value("lambdalet_invocations_total", **latest(name)) == 2


def test_a_deleted_function_s_series_disappear(server, lambda_client, create_function):
    name = create_function()["FunctionName"]
    invoke_json(lambda_client, name)
    assert Scrape(server).of_function(name)

    lambda_client.delete_function(FunctionName=name)
    assert Scrape(server).of_function(name) == []

    # A new function of the same name starts from zero.
    create_function(name=name)
    invoke_json(lambda_client, name)
    assert Scrape(server).value("lambdalet_invocations_total", **latest(name)) == 1


def test_openmetrics_is_served_to_scrapers_that_ask_for_it(server):
    request = urllib.request.Request(server.url + "/metrics",
                                     headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
        assert resp.read().rstrip().endswith(b"# EOF")

