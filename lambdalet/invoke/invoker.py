"""The invoker: runs an invocation of a resolved function configuration in a warm pool.

Synchronous invokes await it directly; asynchronous ones reach it through the durable queue
(`lambdalet/events/async_queue.py`), so both share the concurrency limits and the warm pools.
Every outcome is counted here, where it is known (`lambdalet/metrics.py`): a throttle, a cold
start and its init, the invocation itself with its duration and whether it was a function error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from lambdalet.errors import InvalidParameterValueException, RecursiveInvocationException, TooManyRequestsException
from lambdalet.invoke.environment import Environment, InitFailure
from lambdalet.invoke.leases import ConcurrencyLease, ConcurrencyLimiter, GrantShort
from lambdalet.invoke.pool import Pools, WarmPool
from lambdalet.invoke.recursion import RecursionGuard
from lambdalet.invoke.types import Invocation, InvocationResult
from lambdalet.metrics import Metrics
from lambdalet.model import FunctionConfig
from lambdalet.tenancy import TENANT_MISSING

log = logging.getLogger(__name__)


class Invoker:
    def __init__(self, pools: Pools, limiter: ConcurrencyLimiter, metrics: Metrics | None = None,
                 recursion: RecursionGuard | None = None) -> None:
        self.pools = pools
        self.limiter = limiter
        self.metrics = metrics or Metrics()
        self.recursion = recursion or RecursionGuard()
        self._settling: set[asyncio.Task[None]] = set()

    async def invoke(self, config: FunctionConfig, invocation: Invocation) -> InvocationResult:
        """Run one invocation; raises TooManyRequestsException when a limit throttles it, and
        RecursiveInvocationException when its trace says it is one loop too many."""
        try:
            invocation.trace_id = self.recursion.enter(config.name, invocation.trace_id)
        except RecursiveInvocationException:
            self.metrics.recursive_dropped.labels(config.name).inc()
            raise
        if config.tenant_isolation and not invocation.tenant_id:  # a URL, a mapping, a schedule, a destination
            raise InvalidParameterValueException(TENANT_MISSING)
        counted = self.metrics.of(config, invocation.alias)
        pool = self.pools.for_config(config, invocation.tenant_id)
        provisioning = pool.provisioning
        try:
            lease = await self._lease(config, provisioning.requested if provisioning is not None else 0)
        except TooManyRequestsException:
            counted.throttles.inc()
            raise
        counted.concurrent.inc()
        held = False  # still held after the answer, while extensions finish the invocation
        try:
            try:
                env, cold = await pool.acquire()
            except InitFailure as failure:
                counted.cold_start(failure.env.init_ms)
                result = failure.result_for(invocation)
                counted.finished(result, 0.0)
                return result
            except TooManyRequestsException:  # no room in the host's memory budget for a new environment
                counted.throttles.inc()
                lease.release()
                if self.limiter.grants is not None:  # it may run on another node: the slot goes back first
                    await self.limiter.grants.give_back(lease.pool)
                raise
            if cold:
                counted.cold_start(env.init_ms)
            try:
                result = await env.invoke(invocation)
            except BaseException:
                pool.release(env)
                raise
            settled = env.settled()
            if settled is None:
                pool.release(env)
            else:
                held = True
                task = asyncio.get_running_loop().create_task(
                    self._release_when_settled(env, pool, settled, invocation, lambda: (
                        counted.concurrent.dec(), lease.release())))
                self._settling.add(task)
                task.add_done_callback(self._settling.discard)
            counted.finished(result, invocation.duration_ms)
            return result
        finally:
            if not held:
                counted.concurrent.dec()
                lease.release()

    async def _lease(self, config: FunctionConfig, provisioned: int) -> ConcurrencyLease:
        """A concurrency slot; with several nodes, more of this node's share first when it is short."""
        while True:
            try:
                return self.limiter.acquire(config.name, config.version, provisioned)
            except GrantShort as short:
                if self.limiter.grants is None or not await self.limiter.grants.grow(short.pool):
                    raise

    @staticmethod
    async def _release_when_settled(env: Environment, pool: WarmPool, settled: "asyncio.Future[None]",
                                    invocation: Invocation, release: Callable[[], object]) -> None:
        """The caller has its answer; the environment (and its concurrency) is free once every
        extension is done with the invocation, as on Lambda, or stopped at the invocation's deadline."""
        try:
            remaining = max(0.0, invocation.deadline_ms / 1000 - time.time())
            try:
                await asyncio.wait_for(asyncio.shield(settled), remaining)
            except asyncio.TimeoutError:
                log.warning("%r: its extensions were still busy with %s at its deadline: stopped", env,
                            invocation.request_id)
                env.stop()
        finally:
            pool.release(env)
            release()
