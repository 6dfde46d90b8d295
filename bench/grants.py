#!/usr/bin/env python3
"""What cluster-wide concurrency costs an invoke (lambdalet/invoke/grants.py), in one process.

    scripts/with-postgres sh -c '.venv/bin/python bench/grants.py --database-url "$LAMBDALET_TEST_POSTGRES"'
    .venv/bin/python bench/grants.py            # a SQLite file: the same transactions, without the network

Three numbers, each p50 and p99 in microseconds over N samples (nearest rank):

acquire + release, one node
    The limiter's take and give back of a slot as every invoke does it, without grants (SQLite's
    one-machine server: the baseline) and with a grant that covers it (a node on PostgreSQL in
    steady state). The difference is what the invoke path pays for cluster-wide limits.
grow
    A pool short of slots: the invoker's wait for one grant transaction (lock the pool, add up the
    other nodes' live grants, write this node's), as the first invocation of a burst pays it.
renew
    One node's renewal of its grants (every RENEW_S, off the invoke path), with P pools held.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from lambdalet.invoke.grants import ConcurrencyGrants
from lambdalet.invoke.leases import ConcurrencyLimiter, GrantShort
from lambdalet.store.schema import make_engine


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]


def summary(samples_ns: list[int]) -> dict[str, float]:
    us = [s / 1000 for s in samples_ns]
    return {"p50_us": round(percentile(us, 50), 2), "p99_us": round(percentile(us, 99), 2), "n": len(us)}


def acquire_release(limiter: ConcurrencyLimiter, n: int) -> list[int]:
    samples = []
    clock = time.perf_counter_ns
    for _ in range(n):
        started = clock()
        limiter.acquire("f").release()
        samples.append(clock() - started)
    return samples


async def measure(url: str, n: int, grows: int, pools: int) -> dict[str, object]:
    engine = make_engine(url)
    baseline = ConcurrencyLimiter(account_limit=1000, unreserved_minimum=100)
    limiter = ConcurrencyLimiter(account_limit=1000, unreserved_minimum=0)
    grants = ConcurrencyGrants(engine, "bench-node", limiter.pool_usage)
    limiter.grants = grants
    await grants.start()
    try:
        try:
            limiter.acquire("f")
        except GrantShort as short:
            assert await grants.grow(short.pool)
        limiter.in_flight.clear()
        limiter.unreserved_in_flight = 0
        acquire_release(baseline, n // 10)  # warm both paths alike
        acquire_release(limiter, n // 10)
        results: dict[str, object] = {"database": engine.dialect.name,
                                      "acquire_release_without_grants": summary(acquire_release(baseline, n)),
                                      "acquire_release_with_grant": summary(acquire_release(limiter, n))}
        grow_samples = []
        for i in range(grows):
            pool = f"g{i}"
            limiter.reserve(pool, 1)
            started = time.perf_counter_ns()
            try:
                limiter.acquire(pool)
            except GrantShort as short:
                assert await grants.grow(short.pool)
            grow_samples.append(time.perf_counter_ns() - started)
        results["grow"] = summary(grow_samples)
        for i in range(pools):  # P pools held (each with one slot in flight): what a renewal writes
            name = f"p{i}"
            limiter.reserve(name, 1)
            try:
                limiter.acquire(name)
            except GrantShort as short:
                await grants.grow(short.pool)
                limiter.acquire(name)
        renew_samples = []
        for _ in range(max(10, grows // 2)):
            started = time.perf_counter_ns()
            await grants.renew()
            renew_samples.append(time.perf_counter_ns() - started)
        results["renew"] = {**summary(renew_samples), "pools_held": len(grants.granted)}
        return results
    finally:
        await grants.stop()
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="PostgreSQL (what clusters use); default: a temporary SQLite file")
    parser.add_argument("-n", type=int, default=200_000, help="acquire + release samples per variant")
    parser.add_argument("--grows", type=int, default=200, help="grant transactions timed")
    parser.add_argument("--pools", type=int, default=50, help="pools held while renewals are timed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'grants.db'}"
        results = asyncio.run(measure(url, args.n, args.grows, args.pools))
    for name, value in results.items():
        print(f"{name:34} {value}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
