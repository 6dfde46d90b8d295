"""The invoker: runs an invocation of a resolved function configuration in a warm pool.

Synchronous invokes await the result; asynchronous (Event) invokes are queued in process and run
by a bounded set of workers through the same path. (The durable queue with retries, maximum event
age and destinations replaces the in-process one in its own issue.)
"""

from __future__ import annotations

import asyncio
import logging

from lambdalet.errors import TooManyRequestsException
from lambdalet.invoke.environment import InitFailure
from lambdalet.invoke.leases import ConcurrencyLimiter
from lambdalet.invoke.pool import Pools
from lambdalet.invoke.types import Invocation, InvocationResult
from lambdalet.model import FunctionConfig

log = logging.getLogger(__name__)


class Invoker:
    def __init__(self, pools: Pools, limiter: ConcurrencyLimiter, async_workers: int) -> None:
        self.pools = pools
        self.limiter = limiter
        self._queue: asyncio.Queue[tuple[FunctionConfig, Invocation]] = asyncio.Queue()
        self._async_workers = async_workers
        self._workers: list[asyncio.Task[None]] = []

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

    def enqueue(self, config: FunctionConfig, invocation: Invocation) -> None:
        self._queue.put_nowait((config, invocation))

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._workers = [loop.create_task(self._work()) for _ in range(self._async_workers)]

    async def _work(self) -> None:
        while True:
            config, invocation = await self._queue.get()
            try:
                result = await self.invoke(config, invocation)
                if result.function_error:
                    log.info("async invocation %s of %s failed", invocation.request_id, config.name)
            except TooManyRequestsException:
                self._retry_throttled(config, invocation)
            except Exception:  # keep the worker alive whatever happens to one event
                log.exception("async invocation %s of %s crashed", invocation.request_id, config.name)
            finally:
                self._queue.task_done()

    def _retry_throttled(self, config: FunctionConfig, invocation: Invocation) -> None:
        """Throttled events wait and try again, backing off from 1 s to 5 min, as Lambda's queue does."""
        delay = min(300.0, max(1.0, invocation.throttle_delay * 2))
        invocation.throttle_delay = delay
        asyncio.get_running_loop().call_later(delay, self.enqueue, config, invocation)

    async def shutdown(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
