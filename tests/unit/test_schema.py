"""The store's schema: a database written by an earlier version gets the columns added since."""

from __future__ import annotations

import sqlite3

from sqlalchemy import inspect

from lambdalet.store.events import EventStore, QueuedEvent
from lambdalet.store.schema import make_engine

OLD_ASYNC_EVENTS = """CREATE TABLE async_events (
    request_id VARCHAR(64) PRIMARY KEY, function_name VARCHAR(64) NOT NULL, qualifier VARCHAR(128),
    invoked_arn VARCHAR(256) NOT NULL, payload BLOB NOT NULL, enqueued_at FLOAT NOT NULL,
    attempts INTEGER NOT NULL, next_attempt_at FLOAT NOT NULL, claimed INTEGER NOT NULL)"""


def test_an_older_async_queue_gets_its_trace_column_and_keeps_its_events(tmp_path):
    path = tmp_path / "lambdalet.db"
    with sqlite3.connect(path) as conn:
        conn.execute(OLD_ASYNC_EVENTS)
        conn.execute("INSERT INTO async_events VALUES ('old', 'f', NULL, 'arn', x'7b7d', 1.0, 0, 1.0, 0)")
    engine = make_engine(f"sqlite:///{path}")
    assert "trace_id" in {c["name"] for c in inspect(engine).get_columns("async_events")}
    store = EventStore(engine)
    store.apply([QueuedEvent("new", "f", None, "arn", b"{}", 2.0, trace_id="Root=1-abc")], [])
    claimed = {event.request_id: event.trace_id for event in store.claim_due(now=10.0, limit=10)}
    assert claimed == {"old": "", "new": "Root=1-abc"}
    store.close()
    make_engine(f"sqlite:///{path}")  # again: nothing left to add
