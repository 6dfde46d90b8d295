"""The durable queue of asynchronous invocations (SQLite or PostgreSQL through SQLAlchemy Core).

An event is inserted (and committed) before its 202 is answered and deleted once it is done with;
a worker claims due events, so one event is run by one worker at a time. A claim names the node
that holds it and lasts as long as that node is live (its heartbeat in the `nodes` table, nodes.py):
the claims of a node that died are released by the nodes still live, and a restarted node releases
its own at start-up, so whatever was claimed when a server died is due again (at-least-once).
On PostgreSQL the claim uses FOR UPDATE SKIP LOCKED so that several servers can share the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import Engine

from lambdalet.store.schema import async_events, nodes


SQLITE_INSERT = ("INSERT INTO async_events (request_id, function_name, qualifier, invoked_arn, payload, enqueued_at,"
                 " attempts, next_attempt_at, claimed, claimed_by, trace, tenant_id)"
                 " VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)")
SQLITE_DELETE_CHUNK = 500  # ids per DELETE ... IN (...), well under SQLite's limit on bound parameters


@dataclass(frozen=True)
class QueuedEvent:
    request_id: str
    function_name: str
    qualifier: str | None
    invoked_arn: str
    payload: bytes
    enqueued_at: float
    attempts: int = 0
    #: The trace header it came with (its Lineage counts recursion: invoke/recursion.py), if any.
    trace: str | None = None
    #: A PER_TENANT function's tenant id (X-Amz-Tenant-Id), which the invocation runs for; else None.
    tenant_id: str | None = None


def event_row(e: QueuedEvent, claimed_by: str | None = None) -> dict[str, Any]:
    """The async_events row of a new event, due at once, claimed by node `claimed_by`. Unclaimed,
    any server's poller claims it: that is how other writers (the schedules' firing loop) hand
    events to the queue in their own transaction."""
    return {"request_id": e.request_id, "function_name": e.function_name, "qualifier": e.qualifier,
            "invoked_arn": e.invoked_arn, "payload": e.payload, "enqueued_at": e.enqueued_at,
            "attempts": 0, "next_attempt_at": e.enqueued_at, "claimed": int(claimed_by is not None),
            "claimed_by": claimed_by, "trace": e.trace, "tenant_id": e.tenant_id}


class EventStore:
    """Synchronous repository; callers run it off the event loop, except `apply` on SQLite
    (`inline_commits`)."""

    def __init__(self, engine: Engine, node: str) -> None:
        """`node`: this server's name among the nodes, which its claims carry."""
        self.engine = engine
        self.node = node
        self._sqlite = engine.dialect.name == "sqlite"
        self._raw: Any = None  # SQLite: the DBAPI connection of apply(), opened on first use

    @property
    def inline_commits(self) -> bool:
        """Whether `apply` may run on the event loop itself. On SQLite a group commit takes about
        0.1 ms (WAL, synchronous=NORMAL, no fsync, and no checkpoint: see `checkpoint`), less than
        handing it to a thread cost the loop; and on a thread it waited for the GIL that the busy
        loop holds, which is what every 202 waited for. PostgreSQL is a network round trip away."""
        return self._sqlite

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file (SQLite), never on the event loop:
        `apply`'s own connection has automatic checkpoints off, since one can take milliseconds."""
        if self._sqlite:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def apply(self, new: list[QueuedEvent], done: list[str], claimed: bool = False) -> None:
        """One transaction for a batch of new events (the group commit behind many 202s) and of
        events that are done with. `claimed`: the new events are claimed by this server already
        (it runs them from memory), so no poller claims them from the database."""
        if self._sqlite:
            self._apply_sqlite(new, done, claimed)
            return
        with self.engine.begin() as conn:
            if done:
                conn.execute(delete(async_events).where(async_events.c.request_id.in_(done)))
            if not new:
                return
            claimed_by = self.node if claimed else None
            conn.execute(insert(async_events), [event_row(e, claimed_by) for e in new])

    def _apply_sqlite(self, new: list[QueuedEvent], done: list[str], claimed: bool) -> None:
        """apply() straight on one DBAPI connection: SQLAlchemy's per-call work (pool checkout,
        IN-list expansion, parameter processing) was two thirds of each group commit, all of it
        holding the GIL that the event loop needs."""
        if self._raw is None:
            self._raw = self.engine.raw_connection()  # with the engine's pragmas (WAL, synchronous=NORMAL)
            self._raw.execute("PRAGMA wal_autocheckpoint=0")  # see checkpoint()
        cursor = self._raw.cursor()
        try:
            for start in range(0, len(done), SQLITE_DELETE_CHUNK):
                chunk = done[start:start + SQLITE_DELETE_CHUNK]
                cursor.execute(f"DELETE FROM async_events WHERE request_id IN ({', '.join('?' * len(chunk))})", chunk)
            if new:
                claimed_by = self.node if claimed else None
                cursor.executemany(SQLITE_INSERT, [
                    (e.request_id, e.function_name, e.qualifier, e.invoked_arn, e.payload, e.enqueued_at, e.enqueued_at,
                     int(claimed), claimed_by, e.trace, e.tenant_id) for e in new])
            self._raw.commit()
        except BaseException:
            self._raw.rollback()
            raise
        finally:
            cursor.close()

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()
            self._raw = None

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
                             .values(claimed=1, claimed_by=self.node))
            return [QueuedEvent(r.request_id, r.function_name, r.qualifier, r.invoked_arn, r.payload,
                                r.enqueued_at, r.attempts, r.trace, r.tenant_id) for r in rows]

    def retry_later(self, request_id: str, attempts: int, at: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(async_events).where(async_events.c.request_id == request_id)
                         .values(claimed=0, claimed_by=None, attempts=attempts, next_attempt_at=at))

    def release_own(self) -> int:
        """At start-up, and when stopping: the events this node claimed and did not finish are due
        again (any node's poller claims them). Claims that name no node (written before claims
        named one) are released too."""
        with self.engine.begin() as conn:
            return conn.execute(update(async_events).where(async_events.c.claimed == 1)
                                .where(or_(async_events.c.claimed_by == self.node, async_events.c.claimed_by.is_(None)))
                                .values(claimed=0, claimed_by=None)).rowcount

    def release_orphans(self, live_since: float) -> int:
        """The claims of other nodes that have not heartbeat since `live_since` (dead, or stopped
        without handing them back): due again. A read first, so that when there are none (nearly
        always) no write lock is taken."""
        orphaned = (async_events.c.claimed == 1, async_events.c.claimed_by != self.node,
                    async_events.c.claimed_by.not_in(select(nodes.c.name).where(nodes.c.heartbeat >= live_since)))
        with self.engine.connect() as conn:
            if conn.execute(select(async_events.c.request_id).where(*orphaned).limit(1)).first() is None:
                return 0
        with self.engine.begin() as conn:
            return conn.execute(update(async_events).where(*orphaned).values(claimed=0, claimed_by=None)).rowcount

    def depth(self) -> dict[str, tuple[int, float | None]]:
        """Per function: queued events and the oldest one's enqueue time."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(async_events.c.function_name, func.count(), func.min(async_events.c.enqueued_at))
                                .group_by(async_events.c.function_name)).fetchall()
            return {name: (count, oldest) for name, count, oldest in rows}
