"""Concurrency leases: Lambda's account and reserved-concurrency limits, and the host memory budget.

Every invocation holds a `ConcurrencyLease` from before it asks for an environment until its
result is in; the invoker releases it in a `finally`, so success, function error, timeout, crash,
client disconnect and server shutdown all give the slot back. All checks are counters: O(1).

- A function with reserved concurrency R runs at most R invocations at once (R = 0 throttles
  everything), whatever the rest of the account does. Its provisioned concurrency P (every
  version's and alias's, at most R) is set aside within R, as AWS does: an invocation of a
  provisioned version takes one of that version's provisioned slots while one is free, and every
  other invocation shares the R - P left.
- Functions without a reservation share the unreserved pool: the account limit less every
  reservation (which may never leave fewer than the unreserved minimum, 100 by default).

On PostgreSQL, where several nodes may share the limits, each pool (the unreserved one, each
reservation) is also capped by the slots this node holds of it (`grants.py`): an acquire beyond
them raises `GrantShort`, and the invoker asks the database for more before it throttles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from lambdalet.errors import TooManyRequestsException

if TYPE_CHECKING:
    from lambdalet.invoke.grants import ConcurrencyGrants

RATE_EXCEEDED = "Rate Exceeded."
RESERVED_LIMIT = "ReservedFunctionConcurrentInvocationLimitExceeded"
ACCOUNT_LIMIT = "ConcurrentInvocationLimitExceeded"
#: The pool of functions without a reservation; a reservation's pool is RESERVED_POOL + its function.
UNRESERVED_POOL = "unreserved"
RESERVED_POOL = "reserved:"


class GrantShort(TooManyRequestsException):
    """Within the limit, but beyond the slots this node holds of `pool`: the invoker asks the
    database for more (`ConcurrencyGrants.grow`), and throttles with this if there are none."""

    def __init__(self, reason: str, pool: str) -> None:
        super().__init__(RATE_EXCEEDED, reason)
        self.pool = pool


@dataclass
class ConcurrencyLease:
    limiter: "ConcurrencyLimiter"
    function: str
    reserved: bool
    released: bool = False
    #: The (function, version) whose provisioned slot it holds, or None (an on-demand slot).
    provisioned_slot: tuple[str, str] | None = None

    @property
    def pool(self) -> str:
        """The pool it counts in (grants.py)."""
        return RESERVED_POOL + self.function if self.reserved else UNRESERVED_POOL

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.limiter._release(self)


@dataclass
class ConcurrencyLimiter:
    account_limit: int
    unreserved_minimum: int
    reserved: dict[str, int] = field(default_factory=dict)  # change it with reserve(), which keeps the total
    in_flight: dict[str, int] = field(default_factory=dict)
    unreserved_in_flight: int = 0
    total_reserved: int = field(init=False, default=0)  # sum(reserved.values()), kept: acquire() reads it
    #: Per function with a reservation: its provisioned concurrency in all (set aside within it).
    provisioned: dict[str, int] = field(default_factory=dict)
    #: Provisioned slots in use, by (function, version); and their sum by function.
    provisioned_in_flight: dict[tuple[str, str], int] = field(default_factory=dict)
    provisioned_in_flight_total: dict[str, int] = field(default_factory=dict)
    #: Told of every released slot (function, whether it was a reserved one): the asynchronous
    #: queue retries an event throttled for want of that slot at once.
    on_release: Callable[[str, bool], None] | None = field(default=None, compare=False, repr=False)
    #: With several nodes: the slots of each pool this node holds (None: this node's limits are the limits).
    grants: "ConcurrencyGrants | None" = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.total_reserved = sum(self.reserved.values())

    def reserve(self, function: str, concurrency: int | None) -> None:
        """Set (or with None, remove) `function`'s reserved concurrency."""
        self.total_reserved -= self.reserved.pop(function, 0)
        if concurrency is not None:
            self.reserved[function] = concurrency
            self.total_reserved += concurrency

    @property
    def unreserved_limit(self) -> int:
        return self.account_limit - self.total_reserved

    @property
    def total_in_flight(self) -> int:
        return sum(self.in_flight.values())

    def set_provisioned(self, function: str, total: int) -> None:
        """The function's provisioned concurrency in all (0: none)."""
        if total:
            self.provisioned[function] = total
        else:
            self.provisioned.pop(function, None)

    def acquire(self, function: str, version: str = "", provisioned: int = 0) -> ConcurrencyLease:
        """A slot for one invocation of `function` (its `version` keeping `provisioned` environments)."""
        running = self.in_flight.get(function, 0)
        reservation = self.reserved.get(function)
        if reservation is not None:
            if provisioned:
                key = (function, version)
                if (self.provisioned_in_flight.get(key, 0) < provisioned  # a provisioned slot: set aside
                        and (self.grants is None or self.grants.covers(RESERVED_POOL + function, running + 1))):
                    self.provisioned_in_flight[key] = self.provisioned_in_flight.get(key, 0) + 1
                    self.provisioned_in_flight_total[function] = self.provisioned_in_flight_total.get(function, 0) + 1
                    self.in_flight[function] = running + 1
                    return ConcurrencyLease(self, function, reserved=True, provisioned_slot=key)
            on_demand = running - self.provisioned_in_flight_total.get(function, 0)
            if on_demand >= reservation - self.provisioned.get(function, 0):
                raise TooManyRequestsException(RATE_EXCEEDED, RESERVED_LIMIT)
            if self.grants is not None and not self.grants.covers(RESERVED_POOL + function, running + 1):
                raise GrantShort(RESERVED_LIMIT, RESERVED_POOL + function)
        elif self.unreserved_in_flight >= self.unreserved_limit:
            raise TooManyRequestsException(RATE_EXCEEDED, ACCOUNT_LIMIT)
        elif self.grants is not None and not self.grants.covers(UNRESERVED_POOL, self.unreserved_in_flight + 1):
            raise GrantShort(ACCOUNT_LIMIT, UNRESERVED_POOL)
        else:
            self.unreserved_in_flight += 1
        self.in_flight[function] = running + 1
        return ConcurrencyLease(self, function, reserved=reservation is not None)

    def _release(self, lease: ConcurrencyLease) -> None:
        remaining = self.in_flight.get(lease.function, 1) - 1
        if remaining:
            self.in_flight[lease.function] = remaining
        else:
            self.in_flight.pop(lease.function, None)
        if not lease.reserved:
            self.unreserved_in_flight -= 1
        if lease.provisioned_slot is not None:
            key = lease.provisioned_slot
            self.provisioned_in_flight[key] -= 1
            if not self.provisioned_in_flight[key]:
                del self.provisioned_in_flight[key]
            self.provisioned_in_flight_total[lease.function] -= 1
            if not self.provisioned_in_flight_total[lease.function]:
                del self.provisioned_in_flight_total[lease.function]
        if self.on_release is not None:
            self.on_release(lease.function, lease.reserved)

    def pool_usage(self, pool: str) -> tuple[int, int | None]:
        """A pool's (invocations in flight here, its limit now; None: no such pool any more)."""
        if pool == UNRESERVED_POOL:
            return self.unreserved_in_flight, self.unreserved_limit
        function = pool.removeprefix(RESERVED_POOL)
        return self.in_flight.get(function, 0), self.reserved.get(function)

    def max_reservable(self, function: str) -> int:
        """The largest reservation `function` may hold while leaving the unreserved minimum."""
        others = self.total_reserved - self.reserved.get(function, 0)
        return self.account_limit - self.unreserved_minimum - others


@dataclass
class MemoryBudget:
    """The sum of MemorySize of every environment that exists may not exceed the host's budget."""

    limit_mb: int
    used_mb: int = 0

    def fits(self, memory_mb: int) -> bool:
        return self.used_mb + memory_mb <= self.limit_mb

    def take(self, memory_mb: int) -> None:
        self.used_mb += memory_mb

    def give_back(self, memory_mb: int) -> None:
        self.used_mb -= memory_mb

    def exhausted(self, memory_mb: int) -> "HostMemoryExhausted":
        return HostMemoryExhausted(
            f"Rate Exceeded. The host's memory budget for execution environments ({self.limit_mb} MB) is in "
            f"use ({self.used_mb} MB by running environments); this {memory_mb} MB environment does not fit.",
            "ConcurrentInvocationLimitExceeded",
        )


class HostMemoryExhausted(TooManyRequestsException):
    """A throttle for want of host memory (Lambdalet's budget, not a Lambda limit): the same 429 to
    callers; the asynchronous queue waits for memory instead of backing off as from a Lambda throttle."""


def default_memory_budget_mb(margin_mb: int = 1024) -> int:
    """The host's RAM less a margin for the server and the rest of the system."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    total_mb = int(line.split()[1]) // 1024
                    return max(512, total_mb - max(margin_mb, total_mb // 10))
    except OSError:
        pass
    return 8192
