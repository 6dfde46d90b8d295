"""The invoker: runs an invocation of a resolved function configuration in a warm pool.

Synchronous invokes await it directly; asynchronous ones reach it through the durable queue
(`lambdalet/events/async_queue.py`), so both share the concurrency limits and the warm pools.
"""

from __future__ import annotations

import logging

from lambdalet.invoke.environment import InitFailure
from lambdalet.invoke.leases import ConcurrencyLimiter
from lambdalet.invoke.pool import Pools
from lambdalet.invoke.types import Invocation, InvocationResult
from lambdalet.model import FunctionConfig

log = logging.getLogger(__name__)


class Invoker:
    def __init__(self, pools: Pools, limiter: ConcurrencyLimiter) -> None:
        self.pools = pools
        self.limiter = limiter

    async def invoke(self, config: FunctionConfig, invocation: Invocation) -> InvocationResult:
        """Run one invocation; raises TooManyRequestsException when a limit throttles it."""
        lease = self.limiter.acquire(config.name)
        try:
            pool = self.pools.for_config(config)
            try:
                env, _cold = await pool.acquire()
            except InitFailure as failure:
                return failure.result_for(invocation)
            try:
                return await env.invoke(invocation)
            finally:
                pool.release(env)
        finally:
            lease.release()
