"""Cluster-wide concurrency: each node runs invocations only within slots granted to it by the database.

With several nodes on one PostgreSQL, Lambda's limits (the account's unreserved pool, each
function's reserved concurrency) hold for the cluster, not per node. A node holds a *grant* per
pool: a number of slots, in a `concurrency_grants` row with an expiry. The limiter
(`leases.py`) checks every acquire against the local grant, a counter, so the invoke path reads
and writes no database while a grant covers it; only when a pool needs more slots than this node
holds does one transaction (under a lock of that pool) add up the other nodes' live grants and
take what is free. The sum of every live grant of a pool never exceeds its limit.

Every RENEW_S a node renews its grants (their expiry moves to GRANT_S from now) and gives back
what it did not use: a pool keeps the most it had in flight at once since the last renewal, so a
steady load keeps its slots and an idle pool's go back within a second or two. A node that dies
stops renewing: its grants lapse after GRANT_S and the others may take the slots. A node that
cannot reach the database renews nothing either, and treats its own grants as void after the same
time (it then throttles until the database is back), so no two nodes ever count the same slot.
Expiries are wall-clock times written and compared by the nodes themselves: their clocks must
agree (NTP), as heartbeats already require (`nodes.py`).

A throttle can come early: up to what other nodes hold beyond their in-flight invocations, which
they give back within RENEW_S. Grants are asked in blocks (at most BLOCK_MAX) so that a burst does
not cost one transaction per invocation.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from typing import Callable

from sqlalchemy import and_, delete, func, insert, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from lambdalet.store.schema import concurrency_grants as table

log = logging.getLogger(__name__)

GRANT_S = 6.0
RENEW_S = 1.0
BLOCK_MAX = 8
#: The advisory-lock class of grant transactions (PostgreSQL's two-key form: class, pool).
LOCK_CLASS = 0x4C4C47  # "LLG"

#: A pool's (slots in flight on this node, its limit now; None: the pool is gone, e.g. a removed reservation).
Usage = Callable[[str], tuple[int, int | None]]


class ConcurrencyGrants:
    def __init__(self, engine: Engine, node: str, usage: Usage) -> None:
        self.engine, self.node = engine, node
        self._usage = usage
        #: Slots this node may have in flight, by pool; valid while time.monotonic() < valid_until.
        self.granted: dict[str, int] = {}
        self.valid_until = 0.0
        #: The most in flight at once per pool since the last renewal: what a renewal keeps.
        self._peak: dict[str, int] = {}
        self._waiting: dict[str, int] = {}
        self._growing: dict[str, asyncio.Task[bool]] = {}
        self._serial = asyncio.Lock()  # one grant change of this node at a time: grows, renewals
        self._task: asyncio.Task[None] | None = None

    # -- the invoke path -------------------------------------------------------------------------

    def covers(self, pool: str, in_flight: int) -> bool:
        """Whether this node may have `in_flight` invocations of `pool` at once (counted if so)."""
        if in_flight > self.granted.get(pool, 0) or time.monotonic() >= self.valid_until:
            return False
        if in_flight > self._peak.get(pool, 0):
            self._peak[pool] = in_flight
        return True

    async def grow(self, pool: str) -> bool:
        """Ask the database for more of `pool`'s slots; whether this node has room for one more now.
        Callers short of the same pool at once share one transaction, which asks for all of them."""
        self._waiting[pool] = self._waiting.get(pool, 0) + 1
        try:
            task = self._growing.get(pool)
            if task is None:
                task = asyncio.get_running_loop().create_task(self._grow(pool))
                self._growing[pool] = task
                task.add_done_callback(lambda _done: self._growing.pop(pool, None))
            return await asyncio.shield(task)
        finally:
            self._waiting[pool] -= 1
            if not self._waiting[pool]:
                del self._waiting[pool]

    async def _grow(self, pool: str) -> bool:
        await asyncio.sleep(0)  # the rest of this burst joins before the transaction asks
        async with self._serial:
            in_use, limit = self._usage(pool)
            if limit is None or time.monotonic() >= self.valid_until:
                return False
            block = max(1, min(BLOCK_MAX, limit // 16))
            wanted = min(limit, in_use + self._waiting.get(pool, 1) + block - 1)
            held = self.granted.get(pool, 0)
            if wanted <= held:
                return in_use < held
            try:
                slots = await asyncio.to_thread(self._take, pool, held, wanted, limit)
            except SQLAlchemyError as exc:
                log.warning("concurrency grant for %s not taken: the database did not answer: %s", pool, exc)
                return False
            self.granted[pool] = slots  # raised only now that the database has it
            return self._usage(pool)[0] < slots

    # -- the database ----------------------------------------------------------------------------

    def _take(self, pool: str, held: int, wanted: int, limit: int) -> int:
        """This node's new grant of `pool`: up to `wanted` as far as the other nodes' live grants
        leave room under `limit`, and never less than it `held` (a renewal lowers grants, not this)."""
        now = time.time()
        with self.engine.begin() as conn:
            self._lock_pool(conn, pool)
            others = conn.execute(select(func.coalesce(func.sum(table.c.slots), 0)).where(
                table.c.pool == pool, table.c.node != self.node, table.c.expires > now)).scalar_one()
            slots = max(held, min(wanted, limit - int(others)))
            if slots != held:
                self._write(conn, pool, slots, now + GRANT_S)
        return slots

    def _lock_pool(self, conn: Connection, pool: str) -> None:
        """Serialise the grant transactions of one pool across nodes. PostgreSQL: an advisory lock
        held to the end of the transaction; SQLite: the first write takes the database's write lock."""
        if conn.dialect.name == "postgresql":
            key = zlib.crc32(pool.encode()) - 2**31  # int4
            conn.execute(text("SELECT pg_advisory_xact_lock(:cls, :key)"), {"cls": LOCK_CLASS, "key": key})
        else:
            conn.execute(update(table).where(table.c.node == self.node, table.c.pool == pool)
                         .values(expires=table.c.expires))

    def _write(self, conn: Connection, pool: str, slots: int, expires: float) -> None:
        mine = and_(table.c.pool == pool, table.c.node == self.node)
        if not conn.execute(update(table).where(mine).values(slots=slots, expires=expires)).rowcount:
            conn.execute(insert(table).values(pool=pool, node=self.node, slots=slots, expires=expires))

    async def renew(self) -> None:
        """Move every grant's expiry on and give back what was not used since the last renewal.
        The lower grants apply here first, on the event loop (where acquires count), before the
        database is told: this node never has more in flight than its rows say."""
        async with self._serial:
            started = time.monotonic()
            keep: dict[str, int] = {}
            for pool, slots in self.granted.items():
                in_use, limit = self._usage(pool)
                kept = min(slots, max(self._peak.get(pool, 0), in_use), limit or 0)
                if kept or in_use:
                    keep[pool] = kept
            changed = {pool: slots for pool, slots in keep.items() if slots != self.granted[pool]}
            gone = self.granted.keys() - keep.keys()
            self.granted = keep
            self._peak = {pool: self._usage(pool)[0] for pool in keep}
            if keep or gone:  # an idle node holds no rows: nothing to write
                await asyncio.to_thread(self._renew, changed, gone)
            self.valid_until = started + GRANT_S

    def _renew(self, changed: dict[str, int], gone: set[str]) -> None:
        with self.engine.begin() as conn:
            for pool in gone:
                conn.execute(delete(table).where(table.c.node == self.node, table.c.pool == pool))
            for pool, slots in changed.items():
                conn.execute(update(table).where(table.c.node == self.node, table.c.pool == pool).values(slots=slots))
            conn.execute(update(table).where(table.c.node == self.node).values(expires=time.time() + GRANT_S))

    async def give_back(self, pool: str) -> None:
        """Return at once what this node holds of `pool` beyond what it runs: an invocation that
        took a slot could not run here (no room for its environment) and goes to another node."""
        async with self._serial:
            in_use = self._usage(pool)[0]
            if self.granted.get(pool, 0) <= in_use:
                return
            self.granted[pool] = self._peak[pool] = in_use
            await asyncio.to_thread(self._renew, {pool: in_use}, set())

    async def _forget(self) -> None:
        async with self._serial:
            self.granted, self._peak = {}, {}
            await asyncio.to_thread(self._delete_mine)

    def _delete_mine(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(table).where(table.c.node == self.node))

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Drop what this node held before a restart (it runs nothing now), then renew every RENEW_S."""
        await self._forget()
        await self.renew()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(RENEW_S)
            try:
                await self.renew()
            except SQLAlchemyError as exc:  # the database is away a moment: grants hold until they lapse
                log.warning("concurrency grants of node %s not renewed: %s", self.node, exc)

    async def stop(self) -> None:
        """Give every slot back at once (after the node has finished what it ran)."""
        if self._task is not None:
            self._task.cancel()
        try:
            await self._forget()
        except SQLAlchemyError as exc:
            log.warning("concurrency grants of node %s not given back (they lapse in %.0f s): %s",
                        self.node, GRANT_S, exc)
