"""Lambda's Logs API (2020-08-15), which the Telemetry API superseded and extensions still use:
`PUT /2020-08-15/logs` subscribes as `PUT /2022-07-01/telemetry` does, with the older schema.

Subscriptions, buffering and delivery are the Telemetry API's (`telemetry.py`); what differs is
here: `schemaVersion` is optional (`2020-08-15`, or `2021-03-18` for `platform.runtimeDone`),
maxItems defaults to 10000, an HTTP destination may ask for `PUT`, refusals are
`Logs.ValidationError`, and the events are rendered in the Logs API's shapes, as AWS documents
them: `platform.start` and `platform.end` carry the request id, `platform.report` the request id
and metrics, `platform.fault` the text Lambda logs for an error it reports itself, and
`platform.logsSubscription` answers a subscription; init's events have no Logs API form.
"""

from __future__ import annotations

from lambdalet.invoke.telemetry import MAX_ITEMS, Api, Event

SCHEMA_VERSIONS = ("2020-08-15", "2021-03-18")
WITH_RUNTIME_DONE = "2021-03-18"
#: Events that pass as they are made (their record has the same shape in both APIs).
AS_MADE = frozenset({"function", "extension", "platform.extension", "platform.logsSubscription", "platform.fault"})
#: platform.runtimeDone's status in the Logs API: it has no `error` (a function error is a failure).
STATUS = {"success": "success", "timeout": "timeout"}
REPORT_METRICS = ("durationMs", "billedDurationMs", "memorySizeMB", "maxMemoryUsedMB", "initDurationMs")


def _event(made: Event, event_type: str, record: object) -> Event:
    return {"time": made["time"], "type": event_type, "record": record}


def logs_event(made: Event, schema_version: str) -> list[Event]:
    """An event made in the Telemetry API's schema, in the Logs API's (none when it has no such event)."""
    event_type, record = made["type"], made["record"]
    if event_type in AS_MADE:
        return [made]
    if event_type == "platform.start":
        return [_event(made, event_type, {"requestId": record["requestId"], "version": record["version"]})]
    if event_type == "platform.runtimeDone":
        end = _event(made, "platform.end", {"requestId": record["requestId"]})
        if schema_version != WITH_RUNTIME_DONE:
            return [end]
        status = STATUS.get(record["status"], "failure")
        return [_event(made, event_type, {"requestId": record["requestId"], "status": status}), end]
    if event_type == "platform.report":
        metrics = {key: value for key, value in record["metrics"].items() if key in REPORT_METRICS}
        return [_event(made, event_type, {"requestId": record["requestId"], "metrics": metrics})]
    return []


LOGS = Api("Logs", "Logs.ValidationError", SCHEMA_VERSIONS, SCHEMA_VERSIONS[0], MAX_ITEMS[1],
           "platform.logsSubscription", ("POST", "PUT"), logs_event)
