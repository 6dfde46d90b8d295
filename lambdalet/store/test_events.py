"""The console's saved test events, in the database (a table of `store/schema.py`)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine

from lambdalet.store.schema import console_test_events as table
from lambdalet.store.upsert import upsert


class TestEventStore:
    __test__ = False  # not a pytest class, whatever its name

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list(self, function: str) -> list[tuple[str, str]]:
        """(name, event JSON) of the function's saved events, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(table.c.name, table.c.event).where(table.c.function_name == function)
                                .order_by(table.c.name)).fetchall()
        return [(row.name, row.event) for row in rows]

    def names(self, function: str) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(table.c.name).where(table.c.function_name == function)).scalars())

    def save(self, function: str, name: str, event: str, modified: float) -> None:
        """Create or replace one event (another node creating the same one at once: last one wins)."""
        upsert(self.engine, table, {"function_name": function, "name": name}, {"event": event, "modified": modified})

    def delete(self, function: str, name: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(table).where(table.c.function_name == function, table.c.name == name))
                        .rowcount)
