"""Event source mappings as Lambda describes them: the record kept in the database, the answer of
the API, and what a poller needs to know.

A mapping names a source (an SQS queue, a Kinesis stream, a DynamoDB stream) and a function
(optionally qualified). Its `settings` are the API's own members, stored exactly as Lambda echoes
them, with per-source defaults filled in at creation; its state moves as on Lambda:
`Creating → Enabled | Disabled`, `Enabled → Disabling → Disabled`, `Disabled → Enabling → Enabled`,
`Updating → Enabled | Disabled`, and `Deleting` until the poller is gone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

SQS, KINESIS, DYNAMODB = "sqs", "kinesis", "dynamodb"
STREAMS = (KINESIS, DYNAMODB)

CREATING, ENABLING, ENABLED = "Creating", "Enabling", "Enabled"
DISABLING, DISABLED, UPDATING, DELETING = "Disabling", "Disabled", "Updating", "Deleting"
#: States a poller moves on from by itself, once it has acted on them.
TRANSITIONAL = (CREATING, ENABLING, DISABLING, UPDATING)

#: StateTransitionReason as Lambda words it: SQS mappings say USER_INITIATED, stream mappings
#: "User action"; a change Lambda made itself (a source gone) says what happened.
USER_REASON = {SQS: "USER_INITIATED", KINESIS: "User action", DYNAMODB: "User action"}
NO_RECORDS = "No records processed"

#: Members a poller acts on: a change to any of them restarts the mapping's poller.
POLLER_MEMBERS = (
    "BatchSize", "MaximumBatchingWindowInSeconds", "FilterCriteria", "FunctionResponseTypes", "ScalingConfig",
    "StartingPosition", "StartingPositionTimestamp", "ParallelizationFactor", "BisectBatchOnFunctionError",
    "MaximumRetryAttempts", "MaximumRecordAgeInSeconds", "TumblingWindowInSeconds", "DestinationConfig",
)


def source_kind(arn: str) -> str | None:
    """Which poller reads this ARN (None: a source Lambdalet does not poll)."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return None
    service, resource = parts[2], parts[5]
    if service == "sqs" and resource and "/" not in resource:
        return SQS
    if service == "kinesis" and resource.startswith("stream/"):
        return KINESIS
    if service == "dynamodb" and "/stream/" in resource:
        return DYNAMODB
    return None


@dataclass(frozen=True)
class EventSourceMapping:
    uuid: str
    function_name: str
    #: As the caller named it: None (unqualified), "$LATEST", a version or an alias.
    qualifier: str | None
    #: FunctionArn as Lambda echoes it (qualified only when the caller qualified it).
    function_arn: str
    source_arn: str
    kind: str
    settings: dict[str, Any]
    enabled: bool
    state: str
    state_reason: str
    last_result: str
    last_modified: float
    tags: dict[str, str] = field(default_factory=dict)
    revision: int = 0

    @property
    def arn(self) -> str:
        region, account = self.function_arn.split(":")[3:5]
        return f"arn:aws:lambda:{region}:{account}:event-source-mapping:{self.uuid}"

    @property
    def is_stream(self) -> bool:
        return self.kind in STREAMS

    def poller_fingerprint(self) -> str:
        """What the poller depends on; equal fingerprints need no restart."""
        basis = {"function": [self.function_name, self.qualifier], "source": self.source_arn,
                 **{name: self.settings.get(name) for name in POLLER_MEMBERS}}
        return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()

    def with_state(self, state: str, reason: str | None = None, last_result: str | None = None) -> "EventSourceMapping":
        return replace(self, state=state, state_reason=self.state_reason if reason is None else reason,
                       last_result=self.last_result if last_result is None else last_result)

    def to_api(self) -> dict[str, Any]:
        """The EventSourceMappingConfiguration Lambda answers with (keys in its order)."""
        answer: dict[str, Any] = {"UUID": self.uuid}
        if self.is_stream:
            answer["StartingPosition"] = self.settings["StartingPosition"]
            if "StartingPositionTimestamp" in self.settings:
                answer["StartingPositionTimestamp"] = self.settings["StartingPositionTimestamp"]
        answer["BatchSize"] = self.settings["BatchSize"]
        answer["MaximumBatchingWindowInSeconds"] = self.settings["MaximumBatchingWindowInSeconds"]
        if self.is_stream:
            answer["ParallelizationFactor"] = self.settings["ParallelizationFactor"]
        answer["EventSourceArn"] = self.source_arn
        if self.settings.get("FilterCriteria"):
            answer["FilterCriteria"] = self.settings["FilterCriteria"]
        answer["FunctionArn"] = self.function_arn
        answer["LastModified"] = self.last_modified
        if self.is_stream:
            answer["LastProcessingResult"] = self.last_result
        answer["State"] = self.state
        answer["StateTransitionReason"] = self.state_reason
        if self.is_stream:
            answer["DestinationConfig"] = self.settings.get("DestinationConfig") or {"OnFailure": {}}
            answer["MaximumRecordAgeInSeconds"] = self.settings["MaximumRecordAgeInSeconds"]
            answer["BisectBatchOnFunctionError"] = self.settings["BisectBatchOnFunctionError"]
            answer["MaximumRetryAttempts"] = self.settings["MaximumRetryAttempts"]
            answer["TumblingWindowInSeconds"] = self.settings["TumblingWindowInSeconds"]
        answer["FunctionResponseTypes"] = list(self.settings.get("FunctionResponseTypes", []))
        if self.settings.get("ScalingConfig"):
            answer["ScalingConfig"] = self.settings["ScalingConfig"]
        answer["EventSourceMappingArn"] = self.arn
        return answer

    def to_record(self) -> dict[str, Any]:
        return {"FunctionName": self.function_name, "Qualifier": self.qualifier, "FunctionArn": self.function_arn,
                "EventSourceArn": self.source_arn, "Kind": self.kind, "Settings": self.settings,
                "Enabled": self.enabled, "State": self.state, "StateTransitionReason": self.state_reason,
                "LastProcessingResult": self.last_result, "LastModified": self.last_modified}

    @classmethod
    def from_record(cls, uuid: str, record: dict[str, Any], tags: dict[str, str], revision: int) -> "EventSourceMapping":
        return cls(uuid, record["FunctionName"], record["Qualifier"], record["FunctionArn"], record["EventSourceArn"],
                   record["Kind"], record["Settings"], record["Enabled"], record["State"],
                   record["StateTransitionReason"], record["LastProcessingResult"], record["LastModified"],
                   tags, revision)
