"""The durable queue of asynchronous invocations (SQLite or PostgreSQL through SQLAlchemy Core).

An event is inserted (and committed) before its 202 is answered and deleted once it is done with;
a worker claims due events, so one event is run by one worker at a time. Claims do not survive a
restart: whatever was claimed when the server died is due again at start-up (at-least-once).
On PostgreSQL the claim uses FOR UPDATE SKIP LOCKED so that several servers can share the queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Engine

from lambdalet.store.schema import async_events


@dataclass(frozen=True)
class QueuedEvent:
    request_id: str
    function_name: str
    qualifier: str | None
    invoked_arn: str
    payload: bytes
    enqueued_at: float
    attempts: int = 0


class EventStore:
    """Synchronous repository; callers run it off the event loop."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def apply(self, new: list[QueuedEvent], done: list[str]) -> None:
        """One transaction for a batch of new events (the group commit behind many 202s) and of
        events that are done with."""
        with self.engine.begin() as conn:
            if done:
                conn.execute(delete(async_events).where(async_events.c.request_id.in_(done)))
            if not new:
                return
            conn.execute(insert(async_events), [
                {"request_id": e.request_id, "function_name": e.function_name, "qualifier": e.qualifier,
                 "invoked_arn": e.invoked_arn, "payload": e.payload, "enqueued_at": e.enqueued_at,
                 "attempts": 0, "next_attempt_at": e.enqueued_at, "claimed": 0} for e in new])

    def claim_due(self, now: float, limit: int) -> list[QueuedEvent]:
        with self.engine.begin() as conn:
            query = (select(async_events).where(async_events.c.claimed == 0)
                     .where(async_events.c.next_attempt_at <= now)
                     .order_by(async_events.c.next_attempt_at).limit(limit))
            if self.engine.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = conn.execute(query).fetchall()
            if rows:
                conn.execute(update(async_events).where(async_events.c.request_id.in_([r.request_id for r in rows]))
                             .values(claimed=1))
            return [QueuedEvent(r.request_id, r.function_name, r.qualifier, r.invoked_arn, r.payload,
                                r.enqueued_at, r.attempts) for r in rows]

    def retry_later(self, request_id: str, attempts: int, at: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(async_events).where(async_events.c.request_id == request_id)
                         .values(claimed=0, attempts=attempts, next_attempt_at=at))

    def release_claims(self) -> int:
        """At start-up: events claimed by a server that died are due again."""
        with self.engine.begin() as conn:
            return conn.execute(update(async_events).where(async_events.c.claimed == 1).values(claimed=0)).rowcount

    def depth(self) -> dict[str, tuple[int, float | None]]:
        """Per function: queued events and the oldest one's enqueue time."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(async_events.c.function_name, func.count(), func.min(async_events.c.enqueued_at))
                                .group_by(async_events.c.function_name)).fetchall()
            return {name: (count, oldest) for name, count, oldest in rows}
