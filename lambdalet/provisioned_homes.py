"""Which nodes keep a provisioned version's environments, and how many each.

Provisioned concurrency is stored once for the cluster (`provisioned_concurrency`). Its N
environments are spread over the first min(N, live nodes) nodes of the function's ranking
(placement.py: its home first), as evenly as they divide (`shares`), and the invokes of that
version or alias are sent to those nodes in turn (Placement.spread), so the environments kept warm
are the ones invokes find, and a node that dies takes only its share with it. Every node
reconciles what it keeps with what it should (`reconcile`, each heartbeat and after every change):
it provisions its share of each config and releases what is no longer its own, so when a node
joins, stops or dies (dropping out of the live nodes within nodes.LIVE_S), the shares are dealt
again and the next node of the ranking makes the dead one's share. Each node's heartbeat load
carries the state of what it keeps (`states`), from which GetProvisionedConcurrencyConfig adds up
the cluster's.
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

    @property
    def node(self) -> str:
        return self._placement.node

    def shares(self, name: str, requested: int) -> list[tuple[str, int]]:
        """(node, how many it keeps) of `requested` provisioned environments of function `name`."""
        ranked = self._placement.ranking(name)
        width = min(requested, len(ranked))
        return [(node, requested // width + (1 if i < requested % width else 0))
                for i, (node, _url) in enumerate(ranked[:width])]

    def reconcile(self) -> None:
        """Provision this node's share of each config that it is not keeping yet (or keeps for
        another count or an older pool), release what it keeps and should not."""
        wanted: dict[str, tuple[int, WarmPool]] = {}
        for name in self._registry.names():
            function = self._registry.get(name)
            for qualifier, (requested, _modified) in function.provisioned.items():
                mine = dict(self.shares(name, requested)).get(self.node, 0)
                if mine:
                    pool = self._pools.for_config(self._registry.provisioned_target(name, qualifier))
                    wanted[key(name, qualifier)] = (mine, pool)
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
