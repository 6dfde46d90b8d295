"""The live set of functions: an in-memory index over the store.

Every read, including the invoke path, is a dict lookup; writes go to the database first (off the
event loop) and then replace the cached, immutable configuration. One lock serialises writes so
that read-modify-write updates never lose each other's changes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Callable

from lambdalet.errors import InvalidParameterValueException, ResourceNotFoundException
from lambdalet.invoke.leases import ConcurrencyLimiter
from lambdalet.model import Arns, FunctionConfig
from lambdalet.store.functions import FunctionStore


@dataclass
class Function:
    latest: FunctionConfig
    tags: dict[str, str] = field(default_factory=dict)


class FunctionRegistry:
    def __init__(self, store: FunctionStore, arns: Arns, limiter: ConcurrencyLimiter,
                 on_change: Callable[[str], None]) -> None:
        self._store = store
        self._arns = arns
        self._limiter = limiter
        self._on_change = on_change
        self._by_name: dict[str, Function] = {}
        self._write_lock = asyncio.Lock()

    async def load(self) -> None:
        for stored in await asyncio.to_thread(self._store.load_all):
            self._by_name[stored.latest.name] = Function(stored.latest, dict(stored.tags))
            if stored.reserved_concurrency is not None:
                self._limiter.reserved[stored.latest.name] = stored.reserved_concurrency

    def get(self, name: str, qualifier: str | None = None) -> Function:
        function = self._by_name.get(name)
        if function is None:
            raise ResourceNotFoundException(f"Function not found: {self._arns.function(name, qualifier)}")
        return function

    def exists(self, name: str) -> bool:
        return name in self._by_name

    def names(self) -> list[str]:
        return sorted(self._by_name)

    async def create(self, config: FunctionConfig, tags: dict[str, str]) -> Function:
        async with self._write_lock:
            await asyncio.to_thread(self._store.create, config, tags)
            function = self._by_name[config.name] = Function(config, dict(tags))
            return function

    async def update(self, name: str, change: Callable[[FunctionConfig], FunctionConfig]) -> FunctionConfig:
        """Apply `change` to $LATEST under the write lock; `change` may raise to refuse the update."""
        async with self._write_lock:
            function = self.get(name)
            config = change(function.latest)
            await asyncio.to_thread(self._store.update, config)
            function.latest = config
        self._on_change(name)
        return config

    async def delete(self, name: str) -> None:
        async with self._write_lock:
            self.get(name)
            await asyncio.to_thread(self._store.delete, name)
            del self._by_name[name]
            self._limiter.reserved.pop(name, None)
        self._on_change(name)

    def reserved_concurrency(self, name: str) -> int | None:
        self.get(name)
        return self._limiter.reserved.get(name)

    async def set_reserved_concurrency(self, name: str, reserved: int | None) -> None:
        """PutFunctionConcurrency / DeleteFunctionConcurrency, keeping the unreserved minimum."""
        async with self._write_lock:
            self.get(name)
            if reserved is not None and reserved > self._limiter.max_reservable(name):
                raise InvalidParameterValueException(
                    "Specified ReservedConcurrentExecutions for function decreases account's "
                    "UnreservedConcurrentExecution below its minimum value of "
                    f"[{self._limiter.unreserved_minimum}]."
                )
            await asyncio.to_thread(self._store.set_reserved_concurrency, name, reserved)
            if reserved is None:
                self._limiter.reserved.pop(name, None)
            else:
                self._limiter.reserved[name] = reserved

    def total_code_size(self) -> int:
        return sum(function.latest.code_size for function in self._by_name.values())
