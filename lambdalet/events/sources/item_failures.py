"""Partial batch responses (`ReportBatchItemFailures`), read the same way for queues and streams.

A function that reports item failures answers `{"batchItemFailures": [{"itemIdentifier": id}, ...]}`
(a message id for SQS, a sequence number for streams). As recorded against AWS: an empty answer,
`""`, `null`, `[]`, `{}`, and an empty or null `batchItemFailures` are complete successes; an item
that is not an object, or whose `itemIdentifier` is missing, null, empty or not a string, makes the
answer unreadable and the whole batch fails, as does an answer that is not JSON or not of that shape (a number, a string, a non-empty list: what a JSON
reader that accepts an empty string or array for a missing object cannot read as the response).
"""

from __future__ import annotations

import json


def reported_failures(answer: bytes) -> list[str] | None:
    """The identifiers the answer names as failed ([]: none), or None when it cannot be read (the
    whole batch failed). Whether each identifier is one of the batch's is the caller's to check."""
    try:
        body = json.loads(answer) if answer.strip() else None
    except (ValueError, RecursionError):
        return None
    if body is None or body == "" or body == []:
        return []
    if not isinstance(body, dict):
        return None
    items = body.get("batchItemFailures")
    if items is None:
        return []
    if not isinstance(items, list):
        return None
    identifiers: list[str] = []
    for item in items:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or not identifier:
            return None
        identifiers.append(identifier)
    return identifiers
