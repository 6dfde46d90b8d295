"""Acceptance first during bursts of asynchronous events (lambdalet/events/bursts.py)."""

from __future__ import annotations

from lambdalet.events.bursts import DELIVERY_SHARE, IDLE_S, MAX_S, BurstGate


def arrive(gate: BurstGate, start: float, count: int, every: float) -> float:
    now = start
    for i in range(count):
        now = start + i * every
        gate.accepted(now)
    return now


def test_a_lone_event_and_the_first_of_a_burst_run_at_once():
    gate = BurstGate(16)
    gate.accepted(0.0)
    assert gate.may_start(0.0)
    gate.accepted(10.0)  # long after: a new run of arrivals
    assert gate.may_start(10.0)


def test_a_dense_burst_starts_one_delivery_per_ten_events_and_all_once_it_is_over():
    gate = BurstGate(64)
    now = arrive(gate, 0.0, 200, every=0.0002)  # 5,000 events/s
    started = sum(gate.may_start(now) for _ in range(200))
    assert started == int(1 + 200 * DELIVERY_SHARE)  # the first, then the share
    assert gate.startable(now, 50) == 0
    later = now + IDLE_S
    assert not gate.bursting(later) and gate.may_start(later) and gate.startable(later, 50) == 50
    assert gate.ends_by() == now + IDLE_S


def test_a_steady_stream_the_server_can_deliver_is_never_held_back():
    gate = BurstGate(16)
    now = arrive(gate, 0.0, 1000, every=0.003)  # 333 events/s for 3 s
    assert not gate.bursting(now)
    assert all(gate.may_start(now) for _ in range(100))


def test_an_overload_longer_than_a_burst_is_delivered_at_full_speed():
    gate = BurstGate(16)
    now = arrive(gate, 0.0, int(MAX_S / 0.0002) + 10, every=0.0002)
    assert now > MAX_S
    assert not gate.bursting(now) and gate.startable(now, 40) == 40


def test_credits_never_exceed_the_workers_that_could_use_them():
    gate = BurstGate(4)
    now = arrive(gate, 0.0, 500, every=0.0001)
    assert gate.credits <= 4
    assert gate.startable(now, 100) <= 4
