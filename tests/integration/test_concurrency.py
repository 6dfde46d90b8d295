"""Concurrency as Lambda counts it: reserved concurrency, the account pool, throttling, leases."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from conftest import Server, invoke_json, make_zip
from .helpers import aws_error

GATED = """
import socket

def handler(event, context):
    # Stay busy until the test opens the gate: connect to it and wait for its word.
    if "gate" in event:
        with socket.create_connection(("127.0.0.1", event["gate"])) as conn:
            conn.recv(2)
    return "done"
"""


class Gate:
    """Holds invocations busy: each handler connects here and waits until the gate opens."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(30)
        self.port = self.server.getsockname()[1]
        self.held: list[socket.socket] = []

    def wait_for(self, count: int) -> None:
        while len(self.held) < count:
            self.held.append(self.server.accept()[0])

    def open(self) -> None:
        for conn in self.held:
            conn.sendall(b"go")
            conn.close()
        self.held.clear()
        self.server.close()


def hold_busy(client, name: str, count: int):
    """Start `count` invocations that stay busy; returns (gate, futures, pool) once all are running."""
    gate = Gate()
    pool = ThreadPoolExecutor(count)
    futures = [pool.submit(invoke_json, client, name, {"gate": gate.port}) for _ in range(count)]
    gate.wait_for(count)
    return gate, futures, pool


def throttle_details(error: ClientError) -> tuple[int, str, str | None, str | None]:
    meta = error.response["ResponseMetadata"]
    return (meta["HTTPStatusCode"], error.response["Error"]["Code"], error.response.get("Reason"),
            meta["HTTPHeaders"].get("retry-after"))


def test_put_get_delete_function_concurrency(lambda_client, create_function):
    name = create_function()["FunctionName"]
    assert "ReservedConcurrentExecutions" not in lambda_client.get_function_concurrency(FunctionName=name)
    before = lambda_client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]
    assert lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5)[
        "ReservedConcurrentExecutions"] == 5
    assert lambda_client.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 5
    assert lambda_client.get_function(FunctionName=name)["Concurrency"] == {"ReservedConcurrentExecutions": 5}
    settings = lambda_client.get_account_settings()
    assert settings["AccountLimit"]["ConcurrentExecutions"] == 1000
    assert settings["AccountLimit"]["UnreservedConcurrentExecutions"] == before - 5
    assert settings["AccountUsage"]["FunctionCount"] >= 1
    lambda_client.delete_function_concurrency(FunctionName=name)
    assert "ReservedConcurrentExecutions" not in lambda_client.get_function_concurrency(FunctionName=name)
    assert "Concurrency" not in lambda_client.get_function(FunctionName=name)


def test_reservations_must_leave_the_unreserved_minimum(lambda_client, create_function):
    name = create_function()["FunctionName"]
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException) as error:
        lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=901)
    assert "below its minimum value of [100]" in str(error.value)
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.put_function_concurrency(FunctionName=name + "-nope", ReservedConcurrentExecutions=1)


def test_reserved_zero_throttles_every_invoke_with_lambdas_reason(lambda_client, create_function):
    name = create_function()["FunctionName"]
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(lambda_client.exceptions.TooManyRequestsException) as error:
        lambda_client.invoke(FunctionName=name, Payload=b"{}")
    status, code, reason, retry_after = throttle_details(error.value)
    assert (status, code, reason) == (429, "TooManyRequestsException", "ReservedFunctionConcurrentInvocationLimitExceeded")
    assert error.value.response["Error"]["Message"] == "Rate Exceeded."
    assert retry_after is not None
    lambda_client.delete_function_concurrency(FunctionName=name)
    assert invoke_json(lambda_client, name, {"k": 1})[1] == {"k": 1}


def test_reserved_concurrency_caps_parallel_invokes_and_leases_come_back(lambda_client, create_function):
    name = create_function(GATED, Timeout=30)["FunctionName"]
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=2)
    gate, futures, pool = hold_busy(lambda_client, name, 2)
    try:
        with pytest.raises(lambda_client.exceptions.TooManyRequestsException) as error:
            lambda_client.invoke(FunctionName=name, Payload=b"{}")
        assert throttle_details(error.value)[2] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    finally:
        gate.open()
    assert [f.result()[1] for f in futures] == ["done", "done"]
    pool.shutdown()
    gate, futures, pool = hold_busy(lambda_client, name, 2)  # both slots are free again
    gate.open()
    assert [f.result()[1] for f in futures] == ["done", "done"]
    pool.shutdown()


def test_leases_are_released_after_errors_timeouts_and_crashes(lambda_client, create_function):
    code = """
import os, time
def handler(event, context):
    if event.get("raise"):
        raise ValueError("boom")
    if event.get("hang"):
        time.sleep(10)
    if event.get("crash"):
        os._exit(1)
    return "ok"
"""
    name = create_function(code, Timeout=1)["FunctionName"]
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    for event in ({"raise": True}, {"hang": True}, {"crash": True}):
        resp, _ = invoke_json(lambda_client, name, event)
        assert resp["FunctionError"] == "Unhandled"
    assert invoke_json(lambda_client, name, {})[1] == "ok"


@pytest.fixture
def small_account(tmp_path):
    srv = Server(tmp_path / "data", args=["--account-concurrency", "3", "--unreserved-concurrency-min", "1"])
    srv.start()
    yield srv
    srv.stop()


def test_account_limit_throttles_unreserved_functions(small_account):
    client = small_account.client()
    for name in ("busy", "other", "reserved"):
        create_gated(client, name)
    client.put_function_concurrency(FunctionName="reserved", ReservedConcurrentExecutions=1)
    assert client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == 2
    gate, futures, pool = hold_busy(client, "busy", 2)
    try:
        with pytest.raises(client.exceptions.TooManyRequestsException) as error:
            client.invoke(FunctionName="other", Payload=b"{}")
        assert throttle_details(error.value)[2] == "ConcurrentInvocationLimitExceeded"
        assert invoke_json(client, "reserved", {})[1] == "done"  # a reservation is a guarantee
    finally:
        gate.open()
    assert [f.result()[1] for f in futures] == ["done", "done"]
    pool.shutdown()
    assert invoke_json(client, "other", {})[1] == "done"


def create_gated(client, name: str, **kwargs) -> None:
    client.create_function(FunctionName=name, Runtime="python3.12", Role="arn:aws:iam::000000000000:role/r",
                           Handler="app.handler", Code={"ZipFile": make_zip({"app.py": GATED})}, Timeout=30,
                           **kwargs)


def test_host_memory_budget_evicts_idle_environments_then_throttles(tmp_path):
    srv = Server(tmp_path / "data", args=["--memory-budget-mb", "600"])
    srv.start()
    try:
        client = srv.client()
        for name in ("a", "b", "c"):
            create_gated(client, name, MemorySize=256)
        assert invoke_json(client, "a", {})[1] == "done"  # a idle: 256 of 600 MB
        gate_b, futures_b, pool_b = hold_busy(client, "b", 1)  # b busy: 512 of 600
        gate_c, futures_c, pool_c = hold_busy(client, "c", 1)  # c fits only by evicting idle a
        try:
            with pytest.raises(client.exceptions.TooManyRequestsException) as error:
                client.invoke(FunctionName="a", Payload=b"{}")  # nothing idle left to evict
            assert throttle_details(error.value)[2] == "ConcurrentInvocationLimitExceeded"
            assert "memory budget" in error.value.response["Error"]["Message"]
        finally:
            gate_b.open()
            gate_c.open()
        assert futures_b[0].result()[1] == futures_c[0].result()[1] == "done"
        pool_b.shutdown()
        pool_c.shutdown()
        assert invoke_json(client, "a", {})[1] == "done"  # idle b or c is evicted for it
    finally:
        srv.stop()


def test_reserved_concurrency_refusals_in_aws_words(lambda_client, create_function):
    """As AWS answers (LocalStack's test_function_concurrency_exceptions/_limits, recorded against AWS)."""
    created = create_function()
    name, arn = created["FunctionName"], created["FunctionArn"]
    put = lambda_client.put_function_concurrency
    assert aws_error(put, FunctionName=name + "-nope", ReservedConcurrentExecutions=1) == (
        "ResourceNotFoundException", 404, f"Function not found: {arn}-nope:$LATEST")
    assert aws_error(put, FunctionName=arn + ":1", ReservedConcurrentExecutions=1) == (
        "InvalidParameterValueException", 400,
        "This operation is permitted on Lambda functions only. Aliases and versions do not support this operation. "
        "Please specify either a function name or an unqualified function ARN.")
    below_minimum = ("InvalidParameterValueException", 400,
                     "Specified ReservedConcurrentExecutions for function decreases account's "
                     "UnreservedConcurrentExecution below its minimum value of [100].")
    assert aws_error(put, FunctionName=name, ReservedConcurrentExecutions=1001) == below_minimum  # past the account's
    assert aws_error(put, FunctionName=name, ReservedConcurrentExecutions=100_000) == below_minimum


def test_a_function_of_another_region_in_aws_words(lambda_client, create_function):
    """As AWS answers (LocalStack's test_get_function_wrong_region, recorded against AWS), for every
    operation that names a function."""
    arn = create_function()["FunctionArn"].replace(":us-east-1:", ":eu-central-1:")
    expected = ("ResourceNotFoundException", 404,
                "Functions from 'eu-central-1' are not reachable in this region ('us-east-1')")
    for call in (lambda_client.get_function_concurrency, lambda_client.get_function_url_config,
                 lambda_client.get_function_event_invoke_config, lambda_client.get_function, lambda_client.invoke):
        assert aws_error(call, FunctionName=arn) == expected
