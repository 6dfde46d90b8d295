"""Secrets the nodes of one database share (a table of `store/schema.py`)."""

from __future__ import annotations

import secrets

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from lambdalet.store.schema import server_keys as table


def shared_key(engine: Engine, name: str, size: int = 32) -> bytes:
    """The key called `name`, made (random, `size` bytes) by the first node that asks: when two
    ask at once, the one whose insert loses reads the winner's."""
    with engine.begin() as conn:
        value = conn.execute(select(table.c.value).where(table.c.name == name)).scalar()
    if value is not None:
        return bytes(value)
    try:
        with engine.begin() as conn:
            conn.execute(insert(table).values(name=name, value=secrets.token_bytes(size)))
    except IntegrityError:
        pass
    with engine.begin() as conn:
        return bytes(conn.execute(select(table.c.value).where(table.c.name == name)).scalar_one())
