"""Warm pools: the execution environments of one function configuration.

An idle environment is reused last-in first-out (the warmest first); when none is idle a new one
is started (a cold start) for the caller that needs it. A pool belongs to one exact configuration:
when the function's code or configuration changes, its pool is retired — idle environments stop
at once, busy ones when their invocation ends — and the next invoke starts a new pool.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from lambdalet.invoke.environment import Environment, EnvState, InitFailure
from lambdalet.invoke.leases import MemoryBudget
from lambdalet.model import FunctionConfig

EnvironmentFactory = Callable[[FunctionConfig, bool], Environment]  # (configuration, provisioned)


@dataclass
class Provisioning:
    """A provisioned-concurrency config's live state (what Get/ListProvisionedConcurrencyConfigs show)."""

    requested: int
    allocated: int = 0
    status: str = "IN_PROGRESS"
    reason: str | None = None
    task: "asyncio.Task[None] | None" = None


@dataclass
class Census:
    """How many environments one function version has, by state, and how many are provisioned."""

    states: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("starting", "idle", "busy", "stopping"), 0))
    provisioned: int = 0
    provisioned_busy: int = 0


class WarmPool:
    def __init__(self, config: FunctionConfig, factory: EnvironmentFactory, pools: "Pools") -> None:
        self.config = config
        self._factory = factory
        self._pools = pools
        self._idle: deque[Environment] = deque()  # oldest idle on the left, warmest on the right
        self._provisioned_idle: deque[Environment] = deque()  # used first; never reaped
        self.provisioning: Provisioning | None = None
        self._all: set[Environment] = set()
        self.retired = False

    async def acquire(self) -> tuple[Environment, bool]:
        """A BUSY environment for one invocation, and whether it was a cold start."""
        while self._provisioned_idle:
            env = self._provisioned_idle.pop()
            if env.state is EnvState.IDLE:
                env.transition(EnvState.BUSY)
                return env, False
        while self._idle:
            env = self._idle.pop()
            if env.state is EnvState.IDLE:
                env.transition(EnvState.BUSY)
                return env, False
        env = await self._start(provisioned=False)
        if env.state is not EnvState.IDLE:  # it died between finishing init and now
            raise InitFailure(env, "Runtime.ExitError", "Runtime exited before the invocation could start")
        env.transition(EnvState.BUSY)
        return env, True

    async def _start(self, provisioned: bool) -> Environment:
        self._pools.take_memory(self.config.memory_size)  # raises TooManyRequests when the host is full
        try:
            env = self._factory(self.config, provisioned)
        except BaseException:
            self._pools.budget.give_back(self.config.memory_size)
            raise
        env.budgeted_mb = self.config.memory_size
        env.on_gone = self._forget
        self._all.add(env)
        await env.start()  # raises InitFailure; the environment then removes itself
        return env

    def provision(self, requested: int) -> Provisioning:
        """Keep `requested` environments initialised ahead of traffic (replacing any earlier request)."""
        self.unprovision()
        self.provisioning = Provisioning(requested)
        self.provisioning.task = asyncio.get_running_loop().create_task(self._fill(self.provisioning))
        return self.provisioning

    async def _fill(self, provisioning: Provisioning) -> None:
        attempts = 0
        try:
            while self._provisioned_count() < provisioning.requested:
                attempts += 1
                if attempts > 3 * provisioning.requested:
                    raise RuntimeError("provisioned environments keep exiting right after their init")
                env = await self._start(provisioned=True)
                if env.state is EnvState.IDLE:
                    env.idle_since = time.monotonic()
                    self._provisioned_idle.append(env)
                provisioning.allocated = self._provisioned_count()
            provisioning.status = "READY"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # init failed, or the host's memory budget is full
            provisioning.status, provisioning.reason = "FAILED", getattr(exc, "message", None) or str(exc)

    def _provisioned_count(self) -> int:
        return sum(1 for env in self._all if env.provisioned and env.state is not EnvState.GONE
                   and env.state is not EnvState.STOPPING)

    def unprovision(self) -> None:
        """Release provisioned environments: idle ones now, busy ones when their invocation ends."""
        if self.provisioning is not None and self.provisioning.task is not None:
            self.provisioning.task.cancel()
        self.provisioning = None
        while self._provisioned_idle:
            self._stop_idle(self._provisioned_idle.pop())
        for env in self._all:
            env.provisioned = False

    def _refill(self) -> None:
        """Bring provisioned concurrency back to its target, unless a fill is running already."""
        provisioning = self.provisioning
        if provisioning is not None and not self.retired and (provisioning.task is None or provisioning.task.done()):
            provisioning.task = asyncio.get_running_loop().create_task(self._fill(provisioning))

    def release(self, env: Environment) -> None:
        if env.state is not EnvState.BUSY:
            if env.provisioned:
                self._refill()
            return  # timed out, crashed or stopping: it cleans itself up (a provisioned one is replaced)
        if self.retired or (env.retire_at is not None and time.monotonic() >= env.retire_at):
            self._stop_idle(env)
            return
        env.transition(EnvState.IDLE)
        env.idle_since = time.monotonic()
        (self._provisioned_idle if env.provisioned else self._idle).append(env)

    def retire(self) -> None:
        self.retired = True
        self.unprovision()
        while self._idle:
            self._stop_idle(self._idle.pop())

    def reap(self, now: float, keep_alive: float) -> None:
        while self._idle and now - self._idle[0].idle_since >= keep_alive:
            self._stop_idle(self._idle.popleft())
        for idle in (self._idle, self._provisioned_idle):  # credentials about to expire: replaced
            for env in [env for env in idle if env.retire_at is not None and now >= env.retire_at]:
                idle.remove(env)
                self._stop_idle(env)
                if env.provisioned:
                    self._refill()

    def _stop_idle(self, env: Environment) -> None:
        """Stop an idle environment (reaped or retired: its extensions get SHUTDOWN); its memory
        is free for a new one at once, not when its exit is seen."""
        self._pools.release_memory(env)
        env.shut_down()

    def stop_all(self) -> None:
        self.retire()
        for env in list(self._all):
            env.stop()

    def counts(self) -> dict[str, int]:
        counts = {state.value: 0 for state in (EnvState.STARTING, EnvState.IDLE, EnvState.BUSY)}
        for env in self._all:
            if env.state.value in counts:
                counts[env.state.value] += 1
        return counts

    def census(self, into: "Census") -> None:
        """Add this pool's environments to `into` (a scrape-time count; walks every environment)."""
        for env in self._all:
            state = env.state.value
            if state in into.states:
                into.states[state] += 1
            if env.provisioned and env.state is not EnvState.GONE and env.state is not EnvState.STOPPING:
                into.provisioned += 1
                if env.state is EnvState.BUSY:
                    into.provisioned_busy += 1

    def oldest_idle(self) -> Environment | None:
        return self._idle[0] if self._idle else None

    def evict(self, env: Environment) -> None:
        self._idle.remove(env)
        self._stop_idle(env)

    def _forget(self, env: Environment) -> None:
        self._pools.release_memory(env)
        self._all.discard(env)
        for idle in (self._idle, self._provisioned_idle):
            try:
                idle.remove(env)
            except ValueError:
                pass
        if self.provisioning is not None:
            self.provisioning.allocated = self._provisioned_count()

    @property
    def empty(self) -> bool:
        return not self._all


class Pools:
    """Every warm pool, keyed by (function name, version, tenant id); O(1) on the invoke path. A
    PER_TENANT function has a pool per tenant, so an environment never serves two tenants; the
    tenant id is "" for every other function."""

    def __init__(self, factory: EnvironmentFactory, keep_alive: float, budget: MemoryBudget,
                 on_retire: Callable[[FunctionConfig], None] | None = None) -> None:
        self._factory = factory
        self._on_retire = on_retire
        self._pools: dict[tuple[str, str, str], WarmPool] = {}
        self._retired: list[WarmPool] = []
        self.keep_alive = keep_alive
        self.budget = budget
        self._reaper: asyncio.Task[None] | None = None

    def for_config(self, config: FunctionConfig, tenant_id: str = "") -> WarmPool:
        key = (config.name, config.version, tenant_id)
        pool = self._pools.get(key)
        if pool is not None and pool.config is not config and pool.config.runs_as(config):
            pool.config = config  # only its state or RevisionId changed: its environments run it as they are
        elif pool is None or pool.config is not config:
            if pool is not None:
                self._retire(pool)
            pool = self._pools[key] = WarmPool(config, self._factory, self)
        return pool

    def take_memory(self, memory_mb: int) -> None:
        """Budget a new environment, evicting the longest-idle environments if the host is full."""
        while not self.budget.fits(memory_mb):
            candidates = [(env.idle_since, pool, env) for pool in self._pools.values()
                          if (env := pool.oldest_idle()) is not None]
            if not candidates:
                raise self.budget.exhausted(memory_mb)
            _since, pool, env = min(candidates, key=lambda c: c[0])
            pool.evict(env)
        self.budget.take(memory_mb)

    def release_memory(self, env: Environment) -> None:
        if env.budgeted_mb:
            self.budget.give_back(env.budgeted_mb)
            env.budgeted_mb = 0

    def retire_function(self, name: str, version: str | None = None) -> None:
        """A version changed or went away (every version, when `version` is None): its environments
        must not serve again."""
        for key in [k for k in self._pools if k[0] == name and version in (None, k[1])]:
            self._retire(self._pools.pop(key))

    def _retire(self, pool: WarmPool) -> None:
        pool.retire()
        if self._on_retire is not None:
            self._on_retire(pool.config)
        if not pool.empty:
            self._retired.append(pool)

    def counts(self) -> dict[str, dict[str, int]]:
        totals: dict[str, dict[str, int]] = {}
        for pool in [*self._pools.values(), *self._retired]:
            into = totals.setdefault(pool.config.name, {"starting": 0, "idle": 0, "busy": 0})
            for state, n in pool.counts().items():
                into[state] += n
        return totals

    def census(self) -> dict[tuple[str, str], Census]:
        """Environments by (function, version), retired configurations included (for /metrics)."""
        totals: dict[tuple[str, str], Census] = {}
        for pool in [*self._pools.values(), *self._retired]:
            pool.census(totals.setdefault((pool.config.name, pool.config.version), Census()))
        return totals

    def start_reaper(self) -> None:
        self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())

    async def _reap_forever(self) -> None:
        interval = max(0.05, min(self.keep_alive / 4, 5.0))
        while True:
            await asyncio.sleep(interval)
            self.reap()

    def reap(self) -> None:
        now = time.monotonic()
        for pool in self._pools.values():
            pool.reap(now, self.keep_alive)
        self._retired = [pool for pool in self._retired if not pool.empty]

    async def shutdown(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for pool in [*self._pools.values(), *self._retired]:
            pool.stop_all()
        self._pools.clear()
