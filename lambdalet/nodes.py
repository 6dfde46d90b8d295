"""The nodes of one platform: the servers that share one database.

Each server keeps a row of its own in the `nodes` table: its name (`--node-name`), the URL others
reach it at (`--advertise-url`), when it started, and a heartbeat written every HEARTBEAT_S with
its load (invocations in flight, environments, host memory in use). A node whose heartbeat is
older than LIVE_S is dead: it drops out of `live()` without anyone deleting its row, and a
server that stops cleanly deletes its own. `lambdalet nodes` shows `live()` through
`GET /_lambdalet/nodes`. With SQLite there is one node; with PostgreSQL as many as share it.
Each beat also reads who is live into `peers`, so that placement (`placement.py`) knows the nodes
without a database read per invoke.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Callable

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from lambdalet.store.schema import nodes as table
from lambdalet.store.upsert import upsert

log = logging.getLogger(__name__)
HEARTBEAT_S = 2.0
LIVE_S = 10.0


class NodeRegistry:
    def __init__(self, engine: Engine, name: str, url: str, load: Callable[[], dict[str, Any]]) -> None:
        self.engine, self.name, self.url = engine, name, url
        self._load = load
        self._started = time.time()
        self._task: asyncio.Task[None] | None = None
        #: The live nodes (this one included) as of the last heartbeat: (name, url), by name.
        self.peers: tuple[tuple[str, str], ...] = ((name, url),)

    async def start(self) -> None:
        await asyncio.to_thread(self._beat)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Leave: the row goes, so the others see this node gone at once rather than after LIVE_S."""
        if self._task is not None:
            self._task.cancel()
        await asyncio.to_thread(self._leave)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await asyncio.to_thread(self._beat)
            except SQLAlchemyError as exc:  # the database is away a moment: the next beat tries again
                log.warning("node %s: heartbeat not written: %s", self.name, exc)

    def _beat(self) -> None:
        upsert(self.engine, table, {"name": self.name}, {"url": self.url, "started": self._started,
                                                          "heartbeat": time.time(), "load": json.dumps(self._load())})
        self.peers = tuple((node["name"], node["url"]) for node in self.live())

    def _leave(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(table).where(table.c.name == self.name))

    def live(self, now: float | None = None) -> list[dict[str, Any]]:
        """The nodes that heartbeat within LIVE_S, by name."""
        now = time.time() if now is None else now
        with self.engine.connect() as conn:
            rows = conn.execute(select(table).where(table.c.heartbeat >= now - LIVE_S).order_by(table.c.name)).fetchall()
        return [{"name": row.name, "url": row.url, "started": row.started, "lastHeartbeat": row.heartbeat,
                 "load": json.loads(row.load), "self": row.name == self.name} for row in rows]
