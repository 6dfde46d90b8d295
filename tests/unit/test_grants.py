"""ConcurrencyGrants: two nodes' limiters sharing one database never run more than the limit.

The nodes here are two limiters in one process over one SQLite file (the grant transactions are
the same SQL on PostgreSQL, plus an advisory lock); tests/integration/test_concurrency_nodes.py
runs real servers on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import update

from lambdalet.errors import TooManyRequestsException
from lambdalet.invoke.grants import ConcurrencyGrants
from lambdalet.invoke.leases import ConcurrencyLease, ConcurrencyLimiter, GrantShort
from lambdalet.store.schema import concurrency_grants, make_engine


async def lease(limiter: ConcurrencyLimiter, function: str = "f") -> ConcurrencyLease:
    """As the invoker takes one (Invoker._lease)."""
    while True:
        try:
            return limiter.acquire(function)
        except GrantShort as short:
            assert limiter.grants is not None
            if not await limiter.grants.grow(short.pool):
                raise


async def node(engine, name: str, account_limit: int) -> ConcurrencyLimiter:
    limiter = ConcurrencyLimiter(account_limit=account_limit, unreserved_minimum=0)
    limiter.grants = ConcurrencyGrants(engine, name, limiter.pool_usage)
    await limiter.grants.start()
    return limiter


@pytest.fixture
def engine(tmp_path):
    return make_engine(f"sqlite:///{tmp_path / 'shared.db'}")


def test_two_nodes_share_the_account_limit_and_unused_slots_go_back_at_renewal(engine):
    async def scenario() -> None:
        a, b = await node(engine, "a", 4), await node(engine, "b", 4)
        on_a = [await lease(a) for _ in range(3)]
        on_b = await lease(b)
        with pytest.raises(TooManyRequestsException) as throttled:
            await lease(b)
        assert throttled.value.extra["Reason"] == "ConcurrentInvocationLimitExceeded"
        for held in on_a[:2]:
            held.release()
        await a.grants.renew()  # the most a ran at once since its last renewal was 3: it keeps 3
        with pytest.raises(TooManyRequestsException):
            await lease(b)
        await a.grants.renew()  # since then, 1: two slots go back
        assert a.grants.granted == {"unreserved": 1}
        more = [await lease(b), await lease(b)]
        with pytest.raises(TooManyRequestsException):
            await lease(a)
        for held in [on_a[2], on_b, *more]:
            held.release()
        await a.grants.stop()
        await b.grants.stop()

    asyncio.run(scenario())


def test_a_reservation_holds_across_nodes(engine):
    async def scenario() -> None:
        a, b = await node(engine, "a", 100), await node(engine, "b", 100)
        for limiter in (a, b):
            limiter.reserve("f", 2)
        held = [await lease(a, "f"), await lease(b, "f")]
        for limiter in (a, b):
            with pytest.raises(TooManyRequestsException) as throttled:
                await lease(limiter, "f")
            assert throttled.value.extra["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
        assert a.grants.granted["reserved:f"] == 1 and b.grants.granted["reserved:f"] == 1
        other = await lease(b, "g")  # the unreserved pool is another pool
        for one in [*held, other]:
            one.release()

    asyncio.run(scenario())


def test_a_burst_on_one_node_shares_few_transactions_and_gets_every_slot(engine):
    async def scenario() -> None:
        a = await node(engine, "a", 20)
        leases = await asyncio.gather(*(lease(a) for _ in range(20)))
        assert a.grants.granted == {"unreserved": 20} and a.unreserved_in_flight == 20
        with pytest.raises(TooManyRequestsException):
            await lease(a)
        for one in leases:
            one.release()

    asyncio.run(scenario())


def test_the_grants_of_a_node_that_stopped_renewing_lapse(engine):
    async def scenario() -> None:
        a, b = await node(engine, "a", 2), await node(engine, "b", 2)
        stuck = [await lease(a), await lease(a)]  # a then dies: it renews no more
        a.grants._task.cancel()
        with pytest.raises(TooManyRequestsException):
            await lease(b)
        with engine.begin() as conn:  # as if GRANT_S had passed since a's last renewal
            conn.execute(update(concurrency_grants).where(concurrency_grants.c.node == "a")
                         .values(expires=time.time() - 1))
        taken = [await lease(b), await lease(b)]
        for one in [*stuck, *taken]:
            one.release()

    asyncio.run(scenario())


def test_a_node_whose_grants_were_not_renewed_in_time_throttles_until_they_are(engine):
    async def scenario() -> None:
        a = await node(engine, "a", 10)
        first = await lease(a)
        a.grants.valid_until = time.monotonic() - 1  # its renewals failed for GRANT_S: the others may take them
        with pytest.raises(TooManyRequestsException):
            await lease(a)
        await a.grants.renew()
        second = await lease(a)
        first.release()
        second.release()

    asyncio.run(scenario())


def test_a_slot_that_could_not_run_here_goes_back_at_once(engine):
    async def scenario() -> None:
        a, b = await node(engine, "a", 2), await node(engine, "b", 2)
        taken = [await lease(a), await lease(a)]
        taken[1].release()  # as the invoker does when no environment fits here
        await a.grants.give_back(taken[1].pool)
        assert a.grants.granted == {"unreserved": 1}
        elsewhere = await lease(b)  # without waiting for a's renewal
        for one in (taken[0], elsewhere):
            one.release()

    asyncio.run(scenario())
