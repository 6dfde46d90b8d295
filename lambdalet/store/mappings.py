"""Event source mappings, their stream checkpoints, and leases (SQLite or PostgreSQL).

Every method is blocking; callers run them off the event loop. The database is the one truth for
mappings: the API reads and writes it, and each node's poller manager reconciles with it, so that
nodes sharing one PostgreSQL see each other's changes (`revision` tells what changed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from lambdalet.store.schema import event_source_mappings, leases, stream_checkpoints


@dataclass(frozen=True)
class StoredMapping:
    uuid: str
    record: dict
    tags: dict[str, str]
    revision: int


@dataclass(frozen=True)
class Checkpoint:
    sequence_number: str | None
    closed: bool
    window_state: str | None
    #: A shard the mapping started at LATEST, before its first sequence number: when it started.
    started_at: float | None = None


class MappingStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- mappings -------------------------------------------------------------------------------

    def create(self, uuid: str, function_name: str, source_arn: str, record: dict, tags: dict[str, str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(event_source_mappings).values(
                uuid=uuid, function_name=function_name, source_arn=source_arn, config=json.dumps(record),
                tags=json.dumps(tags), revision=1))

    def get(self, uuid: str) -> StoredMapping | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(event_source_mappings).where(event_source_mappings.c.uuid == uuid)).first()
        return _stored(row) if row is not None else None

    def all(self) -> list[StoredMapping]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(event_source_mappings).order_by(event_source_mappings.c.uuid)).fetchall()
        return [_stored(row) for row in rows]

    def revisions(self) -> dict[str, int]:
        """Every mapping's revision: what a reconciliation compares, without reading configs."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(event_source_mappings.c.uuid, event_source_mappings.c.revision)).fetchall()
        return {uuid: revision for uuid, revision in rows}

    def find(self, function_name: str | None = None, source_arn: str | None = None) -> list[StoredMapping]:
        query = select(event_source_mappings).order_by(event_source_mappings.c.uuid)
        if function_name is not None:
            query = query.where(event_source_mappings.c.function_name == function_name)
        if source_arn is not None:
            query = query.where(event_source_mappings.c.source_arn == source_arn)
        with self.engine.connect() as conn:
            return [_stored(row) for row in conn.execute(query).fetchall()]

    def update(self, uuid: str, record: dict, expected_revision: int | None = None) -> bool:
        """Replace a mapping's record; with `expected_revision`, only if nobody changed it since
        (False then, and nothing is written)."""
        query = update(event_source_mappings).where(event_source_mappings.c.uuid == uuid)
        if expected_revision is not None:
            query = query.where(event_source_mappings.c.revision == expected_revision)
        with self.engine.begin() as conn:
            done = conn.execute(query.values(
                function_name=record["FunctionName"], config=json.dumps(record),
                revision=event_source_mappings.c.revision + 1)).rowcount
        return bool(done)

    def set_tags(self, uuid: str, tags: dict[str, str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(event_source_mappings).where(event_source_mappings.c.uuid == uuid)
                         .values(tags=json.dumps(tags)))

    def delete(self, uuid: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(stream_checkpoints).where(stream_checkpoints.c.mapping_uuid == uuid))
            conn.execute(delete(event_source_mappings).where(event_source_mappings.c.uuid == uuid))
            conn.execute(delete(leases).where(leases.c.name == mapping_lease(uuid)))

    # -- stream checkpoints ---------------------------------------------------------------------

    def checkpoints(self, uuid: str) -> dict[str, Checkpoint]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(stream_checkpoints).where(stream_checkpoints.c.mapping_uuid == uuid)).fetchall()
        return {row.shard_id: Checkpoint(row.sequence_number, bool(row.closed), row.window_state, row.started_at)
                for row in rows}

    def save_checkpoint(self, uuid: str, shard_id: str, sequence_number: str | None, *, closed: bool = False,
                        window_state: str | None = None, started_at: float | None = None) -> None:
        """Record that everything up to `sequence_number` of a shard is done with (an upsert)."""
        values = {"sequence_number": sequence_number, "closed": int(closed), "window_state": window_state,
                  "started_at": started_at}
        with self.engine.begin() as conn:
            changed = conn.execute(update(stream_checkpoints).where(and_(
                stream_checkpoints.c.mapping_uuid == uuid, stream_checkpoints.c.shard_id == shard_id)).values(**values))
            if not changed.rowcount:
                conn.execute(insert(stream_checkpoints).values(mapping_uuid=uuid, shard_id=shard_id, **values))

    # -- leases ---------------------------------------------------------------------------------

    def acquire(self, name: str, owner: str, now: float, ttl: float) -> bool:
        """Take or renew the lease `name` for `owner` until now + ttl: True if `owner` holds it now.
        Free, expired or already ours: taken; another live owner's: not."""
        with self.engine.begin() as conn:
            taken = conn.execute(update(leases).where(leases.c.name == name).where(
                or_(leases.c.owner == owner, leases.c.expires_at < now)).values(owner=owner, expires_at=now + ttl))
            if taken.rowcount:
                return True
            return _insert_lease(conn, name, owner, now + ttl)

    def acquire_all(self, names: list[str], owner: str, now: float, ttl: float) -> set[str]:
        """`acquire` for many leases in one transaction (a node's periodic renewal): the ones
        `owner` holds now."""
        if not names:
            return set()
        held: set[str] = set()
        with self.engine.begin() as conn:
            query = select(leases).where(leases.c.name.in_(names))
            if self.engine.dialect.name == "postgresql":
                query = query.with_for_update()
            current = {row.name: row for row in conn.execute(query).fetchall()}
            takeable = [name for name, row in current.items() if row.owner == owner or row.expires_at < now]
            if takeable:
                conn.execute(update(leases).where(leases.c.name.in_(takeable)).values(owner=owner,
                                                                                       expires_at=now + ttl))
                held.update(takeable)
            for name in names:
                if name not in current and _insert_lease(conn, name, owner, now + ttl):
                    held.add(name)
        return held

    def release_all(self, names: list[str], owner: str) -> None:
        if names:
            with self.engine.begin() as conn:
                conn.execute(delete(leases).where(leases.c.name.in_(names)).where(leases.c.owner == owner))


def mapping_lease(uuid: str) -> str:
    """The lease whose holder polls mapping `uuid`."""
    return f"event-source-mapping:{uuid}"


def _insert_lease(conn: Connection, name: str, owner: str, expires_at: float) -> bool:
    """Insert a lease row nobody holds yet; False when another node inserted it first."""
    if conn.execute(select(leases.c.name).where(leases.c.name == name)).first() is not None:
        return False
    try:
        with conn.begin_nested():
            conn.execute(insert(leases).values(name=name, owner=owner, expires_at=expires_at))
    except IntegrityError:
        return False
    return True


def _stored(row) -> StoredMapping:  # type: ignore[no-untyped-def]
    return StoredMapping(row.uuid, json.loads(row.config), json.loads(row.tags), row.revision)
