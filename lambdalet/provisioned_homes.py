"""Which node keeps a provisioned version's environments: its function's home.

Provisioned concurrency is stored once for the cluster (`provisioned_concurrency`), and its
environments are kept by one node: the function's home (placement.py), where its synchronous
invokes are sent, so the environments kept warm are the ones invokes find. Every node reconciles
what it keeps with what it should (`reconcile`, each heartbeat and after every change): it
provisions the configs of functions it is home to and releases the others, so when a node joins,
stops or dies (dropping out of the live nodes within nodes.LIVE_S), the new home creates the
environments and the old one, if alive, releases its own. Each node's heartbeat load carries the
state of what it keeps (`states`), from which a node that is not the home answers
GetProvisionedConcurrencyConfig.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from lambdalet.functions import FunctionRegistry
from lambdalet.invoke.pool import Pools, WarmPool
from lambdalet.nodes import HEARTBEAT_S
from lambdalet.placement import Placement

log = logging.getLogger(__name__)


def key(name: str, qualifier: str) -> str:
    return f"{name}:{qualifier}"


class ProvisionedHomes:
    def __init__(self, registry: FunctionRegistry, pools: Pools, placement: Placement) -> None:
        self._registry, self._pools, self._placement = registry, pools, placement
        self._kept: dict[str, tuple[int, WarmPool]] = {}  # key → (requested, the pool provisioned for it)
        self._task: asyncio.Task[None] | None = None

    def is_home(self, name: str) -> bool:
        return self._placement.ranking(name)[0][0] == self._placement.node

    def home_of(self, name: str) -> str:
        return self._placement.ranking(name)[0][0]

    def reconcile(self) -> None:
        """Provision what this node is home to and is not keeping yet (or keeps for another count
        or an older pool), release what it keeps and should not."""
        wanted: dict[str, tuple[int, WarmPool]] = {}
        for name in self._registry.names():
            function = self._registry.get(name)
            if not function.provisioned or not self.is_home(name):
                continue
            for qualifier, (requested, _modified) in function.provisioned.items():
                pool = self._pools.for_config(self._registry.provisioned_target(name, qualifier))
                wanted[key(name, qualifier)] = (requested, pool)
        for kept_key, (requested, pool) in wanted.items():
            kept = self._kept.get(kept_key)
            if kept is None or kept[0] != requested or kept[1] is not pool or pool.provisioning is None:
                pool.provision(requested)
        for kept_key, (_requested, pool) in self._kept.items():
            if kept_key not in wanted and all(pool is not other for _n, other in wanted.values()):
                log.info("provisioned concurrency %s: no longer this node's to keep", kept_key)
                pool.unprovision()
        self._kept = wanted

    def states(self) -> dict[str, dict[str, Any]]:
        """What this node keeps, for its heartbeat load: status and environments allocated."""
        return {kept_key: {"status": pool.provisioning.status, "allocated": pool.provisioning.allocated,
                           **({"reason": pool.provisioning.reason} if pool.provisioning.reason else {})}
                for kept_key, (_requested, pool) in self._kept.items() if pool.provisioning is not None}

    def start(self) -> None:
        self.reconcile()
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)  # the live nodes are read again with each heartbeat
            try:
                self.reconcile()
            except Exception:  # never lose the loop: the next round tries again
                log.exception("reconciling provisioned concurrency failed")
