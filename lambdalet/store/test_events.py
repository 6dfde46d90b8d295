"""The console's saved test events, in the database (a table of `store/schema.py`)."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from lambdalet.store.schema import console_test_events as table


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

    def save(self, function: str, name: str, event: str, modified: float) -> None:
        """Create or replace one event (another node creating the same one at once: last one wins)."""
        for _ in range(2):
            try:
                with self.engine.begin() as conn:
                    changed = conn.execute(update(table).where(table.c.function_name == function, table.c.name == name)
                                           .values(event=event, modified=modified)).rowcount
                    if not changed:
                        conn.execute(insert(table).values(function_name=function, name=name, event=event,
                                                          modified=modified))
                return
            except IntegrityError:
                continue  # inserted meanwhile: now it is an update

    def delete(self, function: str, name: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(table).where(table.c.function_name == function, table.c.name == name))
                        .rowcount)
