"""Telemetry API subscriptions checked as Lambda checks them, and the Extensions API's refusals."""

from __future__ import annotations

import asyncio

import pytest

from lambdalet.invoke.extensions import ExtensionRefusal, Extensions
from lambdalet.invoke.telemetry import parse_subscription

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
    {"destination": {"protocol": "HTTP", "URI": "http://example.com:4243"}},
    {"destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain"}},
    {"buffering": {"maxItems": 999}},
    {"buffering": {"maxBytes": 1048577}},
    {"buffering": {"timeoutMs": 24}},
    {"buffering": {"timeoutMs": True}},
], ids=["schema", "no-types", "unknown-type", "tcp", "outside", "no-port", "items", "bytes", "timeout", "bool"])
def test_subscriptions_outside_aws_bounds_are_a_validation_error(change):
    with pytest.raises(ExtensionRefusal) as refused:
        parse_subscription("probe", {**GOOD, **change}, "127.0.0.1")
    assert (refused.value.status, refused.value.error_type) == (400, "ValidationError")


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
