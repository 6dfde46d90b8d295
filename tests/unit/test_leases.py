"""ConcurrencyLimiter: reserved concurrency with provisioned concurrency set aside within it."""

from __future__ import annotations

import pytest

from lambdalet.errors import TooManyRequestsException
from lambdalet.invoke.leases import ConcurrencyLimiter


def limiter(reserved: int, provisioned: int) -> ConcurrencyLimiter:
    limits = ConcurrencyLimiter(account_limit=1000, unreserved_minimum=100)
    limits.reserve("f", reserved)
    limits.set_provisioned("f", provisioned)
    return limits


def test_provisioned_slots_are_set_aside_within_the_reservation():
    limits = limiter(reserved=3, provisioned=2)
    on_demand = limits.acquire("f")  # R - P = 1 on-demand slot
    with pytest.raises(TooManyRequestsException):
        limits.acquire("f", "$LATEST")
    first, second = limits.acquire("f", "1", provisioned=2), limits.acquire("f", "1", provisioned=2)
    with pytest.raises(TooManyRequestsException):  # version 1's provisioned slots are taken; no on-demand left
        limits.acquire("f", "1", provisioned=2)
    on_demand.release()
    spill = limits.acquire("f", "1", provisioned=2)  # spills over into the on-demand slot
    assert limits.in_flight["f"] == 3
    for lease in (first, second, spill):
        lease.release()
    assert limits.in_flight == {} and limits.provisioned_in_flight == {} and limits.provisioned_in_flight_total == {}


def test_a_released_provisioned_slot_is_free_again_and_release_is_idempotent():
    limits = limiter(reserved=1, provisioned=1)
    lease = limits.acquire("f", "1", provisioned=1)
    with pytest.raises(TooManyRequestsException):
        limits.acquire("f")
    lease.release()
    lease.release()
    limits.acquire("f", "1", provisioned=1).release()
    with pytest.raises(TooManyRequestsException):  # $LATEST never gets the set-aside slot
        limits.acquire("f")
