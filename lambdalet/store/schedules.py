"""The schedules' repository: schedule groups, schedules, and firing them (SQLAlchemy Core).

Synchronous; callers run it off the event loop. Firing is exactly once per scheduled time: in one
transaction the schedule is advanced — conditionally on the revision that was read, so a schedule
updated, deleted or fired by anyone else meanwhile is left alone — and the asynchronous event is
inserted into `async_events`, unclaimed and due, for the queue's poller. On PostgreSQL the due rows
are also read `FOR UPDATE SKIP LOCKED`, so servers sharing the database fire different schedules
instead of queueing behind one another.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError

from lambdalet.store.events import QueuedEvent, event_row
from lambdalet.store.schema import async_events, schedule_groups, schedules

DEFAULT_GROUP = "default"
T = TypeVar("T")


@dataclass(frozen=True)
class Group:
    name: str
    created: float
    modified: float


@dataclass(frozen=True)
class StoredSchedule:
    group: str
    name: str
    config: dict[str, Any]  # the schedule as GetSchedule describes it, less the ARN and dates
    created: float
    modified: float
    anchor: float
    revision: int = 0
    scheduled_at: float | None = None
    fire_at: float | None = None


@dataclass(frozen=True)
class Advance:
    """What firing (or skipping) a due schedule does: its next times, or its deletion
    (ActionAfterCompletion DELETE), and the event to enqueue, if any."""

    scheduled_at: float | None
    fire_at: float | None
    delete: bool = False
    event: QueuedEvent | None = None


def _schedule(row: Row) -> StoredSchedule:
    return StoredSchedule(row.group_name, row.name, json.loads(row.config), row.created, row.modified, row.anchor,
                          row.revision, row.scheduled_at, row.fire_at)


def _values(schedule: StoredSchedule) -> dict[str, Any]:
    return {"group_name": schedule.group, "name": schedule.name, "config": json.dumps(schedule.config),
            "created": schedule.created, "modified": schedule.modified, "anchor": schedule.anchor,
            "revision": schedule.revision, "scheduled_at": schedule.scheduled_at, "fire_at": schedule.fire_at}


class ScheduleStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._postgres = engine.dialect.name == "postgresql"

    # -- groups ---------------------------------------------------------------------------------

    def ensure_group(self, name: str, now: float) -> None:
        """Create the group unless it exists (the `default` group always does)."""
        self.create_group(name, now)

    def create_group(self, name: str, now: float) -> bool:
        """False when a group of that name exists already."""
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(schedule_groups).values(name=name, created=now, modified=now))
            return True
        except IntegrityError:
            return False

    def group(self, name: str) -> Group | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(schedule_groups).where(schedule_groups.c.name == name)).first()
        return Group(row.name, row.created, row.modified) if row is not None else None

    def groups(self) -> list[Group]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(schedule_groups).order_by(schedule_groups.c.name)).fetchall()
        return [Group(row.name, row.created, row.modified) for row in rows]

    def delete_group(self, name: str) -> bool:
        """Delete a group and its schedules; False when there was none."""
        with self.engine.begin() as conn:
            conn.execute(delete(schedules).where(schedules.c.group_name == name))
            return conn.execute(delete(schedule_groups).where(schedule_groups.c.name == name)).rowcount > 0

    # -- schedules ------------------------------------------------------------------------------

    def get(self, group: str, name: str) -> StoredSchedule | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(schedules).where(schedules.c.group_name == group)
                               .where(schedules.c.name == name)).first()
        return _schedule(row) if row is not None else None

    def create(self, schedule: StoredSchedule) -> bool:
        """False when the group already has a schedule of that name."""
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(schedules).values(**_values(schedule)))
            return True
        except IntegrityError:
            return False

    def replace(self, schedule: StoredSchedule) -> bool:
        """Replace a schedule whole (UpdateSchedule), keeping its creation date; False when it is gone."""
        values = _values(schedule)
        del values["created"], values["revision"]
        with self.engine.begin() as conn:
            return conn.execute(update(schedules).where(schedules.c.group_name == schedule.group)
                                .where(schedules.c.name == schedule.name)
                                .values(**values, revision=schedules.c.revision + 1)).rowcount > 0

    def delete(self, group: str, name: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(schedules).where(schedules.c.group_name == group)
                                .where(schedules.c.name == name)).rowcount > 0

    def list(self, group: str | None = None, prefix: str | None = None, state: str | None = None
             ) -> list[StoredSchedule]:
        """Schedules by group and name; `state` filters on ENABLED/DISABLED."""
        query = select(schedules).order_by(schedules.c.group_name, schedules.c.name)
        if group is not None:
            query = query.where(schedules.c.group_name == group)
        if prefix:
            query = query.where(func.substr(schedules.c.name, 1, len(prefix)) == prefix)
        with self.engine.connect() as conn:
            found = [_schedule(row) for row in conn.execute(query)]
        return [s for s in found if state is None or s.config.get("State") == state]

    # -- firing ---------------------------------------------------------------------------------

    def soonest(self) -> float | None:
        """When the next schedule fires (the index's first entry), None when none will."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.min(schedules.c.fire_at))).scalar()

    def fire_due(self, now: float, limit: int, decide: Callable[[StoredSchedule], tuple[Advance, T]]
                 ) -> list[T]:
        """Advance up to `limit` schedules due at `now`, one transaction for all: `decide` says what
        each does (and returns something for the caller, e.g. a dead letter to send once committed).
        Returns what `decide` returned for the schedules it advanced."""
        query = (select(schedules).where(schedules.c.fire_at.is_not(None)).where(schedules.c.fire_at <= now)
                 .order_by(schedules.c.fire_at).limit(limit))
        if self._postgres:
            query = query.with_for_update(skip_locked=True)
        done: list[T] = []
        with self.engine.begin() as conn:
            for row in conn.execute(query).fetchall():
                schedule = _schedule(row)
                advance, result = decide(schedule)
                if self._advance(conn, schedule, advance):
                    done.append(result)
        return done

    def _advance(self, conn: Connection, schedule: StoredSchedule, advance: Advance) -> bool:
        where = ((schedules.c.group_name == schedule.group) & (schedules.c.name == schedule.name)
                 & (schedules.c.revision == schedule.revision))
        if advance.delete:
            changed = conn.execute(delete(schedules).where(where)).rowcount
        else:
            changed = conn.execute(update(schedules).where(where).values(
                scheduled_at=advance.scheduled_at, fire_at=advance.fire_at, revision=schedule.revision + 1)).rowcount
        if changed and advance.event is not None:
            conn.execute(insert(async_events).values(**event_row(advance.event)))
        return bool(changed)
