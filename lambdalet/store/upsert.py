"""Create-or-replace one row by its primary key, the same way on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Table, insert, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError


def upsert(engine: Engine, table: Table, key: dict[str, object], values: dict[str, object]) -> None:
    """Update the row with primary key `key`, or insert it. Another writer inserting the same row
    between the two makes the insert fail: it is then an update (the last writer wins)."""
    for _ in range(2):
        try:
            with engine.begin() as conn:
                found = conn.execute(update(table).where(*(table.c[column] == value for column, value in key.items()))
                                     .values(**values)).rowcount
                if not found:
                    conn.execute(insert(table).values(**key, **values))
            return
        except IntegrityError:
            continue
