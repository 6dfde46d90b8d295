"""Tumbling windows of a stream mapping, as pure functions: no AWS, no event loop.

What AWS documents (developer guide, services-kinesis-windows and services-ddb-windows):

* Windows are fixed spans of `TumblingWindowInSeconds` (1–900) whose boundaries follow the
  records' approximate arrival times (Kinesis `approximateArrivalTimestamp`, DynamoDB
  `ApproximateCreationDateTime`). The guide's example window of 120 s runs 07:04:00–07:06:00, so
  windows are aligned on multiples of their length since the epoch (`window_of`).
* Every invocation adds `window` (`{"start", "end"}` as ISO 8601 UTC seconds with `Z`), `state`
  (what the function returned last in this window; `{}` at its start), `shardId`,
  `eventSourceARN`, `isFinalInvokeForWindow` and `isWindowTerminatedEarly` (`Window.members`).
* The function answers `{"state": {...}, "batchItemFailures": [...]}`; an answer without a state
  is a failed invocation (`window_answer`).
* The state is at most 1 MB per shard; past it the window ends early (`oversized`).

What is kept between invocations, and across a restart, is one `Window` per shard, stored with
the shard's checkpoint as JSON (`Window.to_json`, the `window_state` column).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from lambdalet.events.sources.stream_events import StreamRecord, failed_from, iso_time

#: The most state a window keeps (AWS: "a maximum of 1 MB per shard"); more ends the window early.
MAX_STATE = 1024 * 1024


def window_of(arrival: float, seconds: int) -> tuple[float, float]:
    """(start, end) of the window of `seconds` that a record arriving at `arrival` (epoch seconds)
    belongs to: windows are aligned on the epoch, so every shard and every restart agree on them."""
    start = math.floor(arrival / seconds) * seconds
    return float(start), float(start + seconds)


def state_size(state: dict[str, Any]) -> int:
    """Bytes of a state as JSON: what counts against MAX_STATE and the 6 MB payload."""
    return len(json.dumps(state).encode())


@dataclass
class Window:
    """A shard's open window: its span and the state the function returned last in it."""

    start: float
    end: float
    state: dict[str, Any] = field(default_factory=dict)

    def members(self, shard_id: str, source_arn: str, *, final: bool = False, early: bool = False) -> dict[str, Any]:
        """What a tumbling-window invocation adds to `{"Records": [...]}`, in the order AWS's example has them."""
        return {"window": {"start": iso_time(self.start, False), "end": iso_time(self.end, False)},
                "state": self.state, "shardId": shard_id, "eventSourceARN": source_arn,
                "isFinalInvokeForWindow": final, "isWindowTerminatedEarly": early}

    def oversized(self) -> bool:
        return state_size(self.state) > MAX_STATE

    def to_json(self) -> str:
        return json.dumps({"start": self.start, "end": self.end, "state": self.state})

    @classmethod
    def from_json(cls, text: str | None) -> "Window | None":
        """The window a checkpoint kept (None: none was open, or what was kept is unreadable,
        in which case the shard starts a fresh window rather than stopping)."""
        if not text:
            return None
        try:
            kept = json.loads(text)
            window = cls(float(kept["start"]), float(kept["end"]), kept["state"])
        except (ValueError, KeyError, TypeError, RecursionError):
            return None
        return window if isinstance(window.state, dict) else None


def window_answer(answer: bytes, records: Sequence[StreamRecord],
                  report_item_failures: bool) -> tuple[dict[str, Any] | None, int | None]:
    """(state, where the failed part starts) of a windowed invocation's answer.

    The state must be a JSON object under `state` (None: it is not, and the whole invocation
    failed, as AWS counts an answer without a state). `batchItemFailures` is read as for any
    stream batch (`failed_from`), only with ReportBatchItemFailures."""
    try:
        body = json.loads(answer)
    except (ValueError, RecursionError):
        return None, 0
    if not isinstance(body, dict) or not isinstance(body.get("state"), dict):
        return None, 0
    return body["state"], failed_from(answer, records, report_item_failures)
