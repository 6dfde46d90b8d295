"""Telemetry API and Logs API subscriptions checked as Lambda checks them, the Logs API's schema,
TCP delivery, and the Extensions API's refusals."""

from __future__ import annotations

import asyncio
import json

import pytest

from lambdalet.invoke import telemetry_delivery
from lambdalet.invoke.extensions import ExtensionRefusal, Extensions
from lambdalet.invoke.logs_api import LOGS, logs_event
from lambdalet.invoke.telemetry import Telemetry, parse_subscription
from lambdalet.invoke.telemetry_delivery import Delivery, TcpDestination

GOOD = {"schemaVersion": "2022-12-13", "types": ["platform", "function"],
        "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:4243/logs"}}


def test_a_subscription_resolves_sandbox_localdomain_and_takes_aws_defaults():
    subscription = parse_subscription("probe", GOOD, "127.0.0.1")
    assert subscription.url == "http://127.0.0.1:4243/logs"
    assert (subscription.max_items, subscription.max_bytes, subscription.timeout_s) == (1000, 262144, 1.0)
    assert subscription.types == {"platform", "function"}


@pytest.mark.parametrize("change", [
    {"schemaVersion": "2020-08-15"},
    {"types": []},
    {"types": ["platform", "spans"]},
    {"destination": {"protocol": "TCP", "URI": "tcp://sandbox.localdomain:4243"}},
    {"destination": {"protocol": "TCP", "port": 65536}},
    {"destination": {"protocol": "HTTP", "URI": "http://example.com:4243"}},
    {"destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain"}},
    {"buffering": {"maxItems": 999}},
    {"buffering": {"maxBytes": 1048577}},
    {"buffering": {"timeoutMs": 24}},
    {"buffering": {"timeoutMs": True}},
], ids=["schema", "no-types", "unknown-type", "tcp", "tcp-port", "outside", "no-port", "items", "bytes", "timeout", "bool"])
def test_subscriptions_outside_aws_bounds_are_a_validation_error(change):
    with pytest.raises(ExtensionRefusal) as refused:
        parse_subscription("probe", {**GOOD, **change}, "127.0.0.1")
    assert (refused.value.status, refused.value.error_type) == (400, "ValidationError")


def test_a_tcp_subscription_names_a_port_on_the_environments_loopback():
    subscription = parse_subscription("probe", {**GOOD, "destination": {"protocol": "TCP", "port": 4243}}, "127.0.0.1")
    assert (subscription.protocol, subscription.port) == ("TCP", 4243)


def test_a_logs_api_subscription_has_its_own_defaults_and_error_type():
    body = {"types": ["platform"], "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:4243",
                                                   "method": "PUT"}}
    subscription = parse_subscription("probe", body, "127.0.0.1", LOGS)
    assert (subscription.schema_version, subscription.max_items, subscription.method) == ("2020-08-15", 10000, "PUT")
    for change in ({"schemaVersion": "2022-12-13"}, {"types": ["logs"]},
                   {"destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:4243", "method": "GET"}}):
        with pytest.raises(ExtensionRefusal) as refused:
            parse_subscription("probe", {**body, **change}, "127.0.0.1", LOGS)
        assert (refused.value.status, refused.value.error_type) == (400, "Logs.ValidationError")


def _made(event_type, record):
    return {"time": "2020-08-20T12:31:32.123Z", "type": event_type, "record": record}


def test_the_logs_api_renders_the_telemetry_apis_events_in_its_own_schema():
    start = _made("platform.start", {"requestId": "r", "version": "$LATEST", "tracing": {"type": "X-Amzn-Trace-Id"}})
    assert logs_event(start, "2020-08-15") == [_made("platform.start", {"requestId": "r", "version": "$LATEST"})]
    done = _made("platform.runtimeDone", {"requestId": "r", "status": "error", "errorType": "Runtime.ExitError",
                                          "metrics": {"durationMs": 1.0, "producedBytes": 0}})
    assert logs_event(done, "2020-08-15") == [_made("platform.end", {"requestId": "r"})]
    assert logs_event(done, "2021-03-18") == [_made("platform.runtimeDone", {"requestId": "r", "status": "failure"}),
                                              _made("platform.end", {"requestId": "r"})]
    metrics = {"durationMs": 1.5, "billedDurationMs": 2, "memorySizeMB": 128, "maxMemoryUsedMB": 30,
               "initDurationMs": 90.0}
    report = _made("platform.report", {"requestId": "r", "status": "success", "metrics": metrics})
    assert logs_event(report, "2020-08-15") == [_made("platform.report", {"requestId": "r", "metrics": metrics})]
    fault = _made("platform.fault", "RequestId: r Error: Runtime exited with error: exit status 1\nRuntime.ExitError")
    assert logs_event(fault, "2020-08-15") == [fault]
    assert logs_event(_made("function", "hello"), "2020-08-15") == [_made("function", "hello")]
    for init_only in ("platform.initStart", "platform.initReport", "platform.telemetrySubscription"):
        assert logs_event(_made(init_only, {}), "2021-03-18") == []


def test_an_extension_subscribes_with_one_api_and_the_same_subscription_again_changes_nothing():
    async def scenario() -> None:
        telemetry = Telemetry()
        body = {"types": ["platform"], "destination": {"protocol": "TCP", "port": 9}}
        first = telemetry.subscribe("probe", body, LOGS)
        assert telemetry.subscribe("probe", body, LOGS) is first
        with pytest.raises(ExtensionRefusal) as refused:
            telemetry.subscribe("probe", {**GOOD, "types": ["platform"]})
        assert (refused.value.status, refused.value.error_type) == (400, "ValidationError")
        assert [event["type"] for event in first.batch] == ["platform.logsSubscription"]
        await telemetry.close()

    asyncio.run(scenario())


def test_tcp_delivery_writes_ndjson_and_connects_again_after_the_extension_closed():
    async def scenario() -> None:
        connections: asyncio.Queue[list[bytes]] = asyncio.Queue()

        async def extension(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            lines = [await reader.readline(), await reader.readline()]
            writer.close()  # done after one batch: the next must come on a new connection
            await connections.put(lines)

        server = await asyncio.start_server(extension, "127.0.0.1", 0)
        delivery = Delivery("probe", TcpDestination("127.0.0.1", server.sockets[0].getsockname()[1]))
        delivery.put([_made("function", "one"), _made("function", "two\nlines")])
        assert await asyncio.wait_for(connections.get(), 5) == [
            b'{"time":"2020-08-20T12:31:32.123Z","type":"function","record":"one"}\n',
            b'{"time":"2020-08-20T12:31:32.123Z","type":"function","record":"two\\nlines"}\n']
        await asyncio.wait_for(delivery.task, 5)
        stream = delivery.destination._stream
        while not stream.lost:  # the platform sees the extension's close before the next batch
            await asyncio.sleep(0.01)
        delivery.put([_made("function", "three"), _made("function", "four")])
        lines = await asyncio.wait_for(connections.get(), 5)
        assert [json.loads(line)["record"] for line in lines] == ["three", "four"]
        delivery.close()
        server.close()

    asyncio.run(scenario())


def test_a_delivery_drops_what_a_slow_destination_leaves_waiting():
    class Stuck:
        def __init__(self) -> None:
            self.sent: list[list[dict]] = []
            self.release = asyncio.Event()

        async def send(self, batch):
            self.sent.append(batch)
            await self.release.wait()

        def close(self):
            pass

    async def scenario() -> None:
        stuck = Stuck()
        delivery = Delivery("probe", stuck, report_drops=True)
        for n in range(telemetry_delivery.MAX_QUEUED + 3):
            delivery.put([_made("function", str(n))])
            await asyncio.sleep(0)  # the first is taken at once; the rest wait, up to MAX_QUEUED
        stuck.release.set()
        await asyncio.wait_for(delivery.task, 5)
        assert [batch[0]["record"] for batch in stuck.sent] == [str(n) for n in range(telemetry_delivery.MAX_QUEUED + 1)]
        # a subscriber of platform events hears of the drops in the next batch that goes out
        delivery.put([_made("function", "after")])
        await asyncio.wait_for(delivery.task, 5)
        dropped, after = stuck.sent[-1]
        assert dropped["type"] == "platform.logsDropped" and after["record"] == "after"
        assert dropped["record"] == {"reason": telemetry_delivery.DROPPED_REASON, "droppedRecords": 2,
                                     "droppedBytes": 2 * len(json.dumps(_made("function", "5"), separators=(",", ":")))}
        delivery.put([_made("function", "later")])  # told once
        await asyncio.wait_for(delivery.task, 5)
        assert [event["record"] for event in stuck.sent[-1]] == ["later"]

    asyncio.run(scenario())


def _extensions(expected=frozenset()) -> Extensions:
    return Extensions(frozenset(expected), "fn", "$LATEST", "app.handler", "000000000000", changed=lambda: None)


def test_registration_refusals_are_the_emulators():
    extensions = _extensions({"external"})
    identifier, answer = extensions.register("external", {"events": ["INVOKE", "SHUTDOWN"]}, "accountId")
    assert answer == {"functionName": "fn", "functionVersion": "$LATEST", "handler": "app.handler",
                      "accountId": "000000000000"}
    assert extensions.find(identifier).external
    cases = [
        (("", {"events": []}), "Extension.InvalidExtensionName"),
        (("internal", {"events": ["SHUTDOWN"]}), "Extension.InvalidEventType"),
        (("internal", {"events": ["LATER"]}), "Extension.InvalidEventType"),
        (("external", {"events": []}), "Extension.InvalidExtensionState"),
    ]
    for (name, body), error_type in cases:
        with pytest.raises(ExtensionRefusal) as refused:
            extensions.register(name, body)
        assert refused.value.error_type == error_type
    for n in range(9):
        extensions.register(f"internal-{n}", {"events": ["INVOKE"]})
    with pytest.raises(ExtensionRefusal) as refused:
        extensions.register("eleventh", {"events": []})
    assert refused.value.error_type == "Extension.TooManyExtensions"
    extensions.close_registration()
    with pytest.raises(ExtensionRefusal) as refused:
        extensions.register("late", {"events": []})
    assert refused.value.error_type == "Extension.RegistrationClosed"


def test_init_waits_for_every_external_extension_to_ask_for_its_first_event():
    async def scenario() -> None:
        extensions = _extensions({"a", "b"})
        a, _ = extensions.register("a", {"events": ["INVOKE"]})
        assert not extensions.init_done
        waiting = extensions.next_event(extensions.find(a))
        assert isinstance(waiting, asyncio.Future) and not extensions.init_done  # b has not registered
        b, _ = extensions.register("b", {"events": []})
        assert not extensions.init_done  # b registered, but has not asked for an event
        extensions.next_event(extensions.find(b))
        assert extensions.init_done
        extensions.invoke({"eventType": "INVOKE", "requestId": "r"})
        assert (await waiting)["requestId"] == "r" and not extensions.idle
        extensions.next_event(extensions.find(a))
        assert extensions.idle

    asyncio.run(scenario())
