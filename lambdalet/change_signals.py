"""Other nodes' changes, pushed: PostgreSQL's LISTEN/NOTIFY on the function change log.

Each change a node writes commits a row of `function_changes` and, on PostgreSQL, a `NOTIFY` on
CHANNEL with the writer's node name (`store/functions.py`). Every node keeps one connection of
its own LISTENing, and a notification from another node wakes its change follower
(`FunctionRegistry.follow_changes`) at once, which then reads the log as it does on its periodic
poll. The log stays the truth: a notification carries no data, so a missed one (the listening
connection was down) costs only the wait until the next poll; a lost connection is opened again
and wakes the follower once, to catch up.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)
CHANNEL = "lambdalet_changes"
RECONNECT_S = 1.0


class ChangeSignals:
    def __init__(self, engine: Engine, node: str) -> None:
        # psycopg's own URL: the engine's without SQLAlchemy's driver name
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._node = node
        self.changed = asyncio.Event()  # set by another node's notification; the follower clears it
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _listen(self) -> None:
        import psycopg  # the PostgreSQL driver: there only when the database is PostgreSQL

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.changed.set()  # whatever was missed while not listening
                    async for notification in conn.notifies():
                        if notification.payload != self._node:
                            self.changed.set()
            except psycopg.Error as exc:  # the database is away a moment: the poll carries on meanwhile
                log.warning("listening for other nodes' changes: %s; again in %.0f s", exc, RECONNECT_S)
            await asyncio.sleep(RECONNECT_S)
