"""Environments are retired before their role credentials expire (invoke/pool.py, auth/execution_roles.py)."""

from __future__ import annotations

import time

from lambdalet.invoke.environment import EnvState
from lambdalet.invoke.leases import MemoryBudget
from lambdalet.invoke.pool import Pools, WarmPool
from lambdalet.model import FunctionConfig


class FakeEnvironment:
    """What the pool reads and calls of an Environment when it releases, reaps or stops one."""

    def __init__(self, retire_at: float | None) -> None:
        self.state = EnvState.BUSY
        self.retire_at = retire_at
        self.provisioned = False
        self.idle_since = 0.0
        self.budgeted_mb = 0
        self.shut = False

    def transition(self, new: EnvState) -> None:
        self.state = new

    def shut_down(self) -> None:
        self.shut = True
        self.state = EnvState.STOPPING


def pool() -> WarmPool:
    pools = Pools(lambda config, provisioned: None, keep_alive=600, budget=MemoryBudget(1024))  # type: ignore[arg-type, return-value]
    config = FunctionConfig(name="f", runtime="python3.12", handler="app.handler", role="r", code_sha256="", code_size=0)
    return WarmPool(config, pools._factory, pools)  # type: ignore[arg-type]


def test_an_environment_past_its_retirement_is_stopped_when_released_not_reused():
    warm = pool()
    due, fresh = FakeEnvironment(time.monotonic() - 1), FakeEnvironment(time.monotonic() + 3600)
    warm.release(due)  # type: ignore[arg-type]
    warm.release(fresh)  # type: ignore[arg-type]
    assert due.shut and due not in warm._idle
    assert not fresh.shut and fresh.state is EnvState.IDLE and list(warm._idle) == [fresh]


def test_an_idle_environment_is_reaped_once_its_retirement_comes():
    warm = pool()
    soon = FakeEnvironment(time.monotonic() + 60)
    warm.release(soon)  # type: ignore[arg-type]
    warm.reap(time.monotonic(), keep_alive=600)
    assert not soon.shut
    warm.reap(time.monotonic() + 61, keep_alive=600)  # before its keep-alive ends, for its credentials
    assert soon.shut and not warm._idle


def test_environments_without_credentials_are_never_retired_for_them():
    warm = pool()
    forever = FakeEnvironment(None)
    warm.release(forever)  # type: ignore[arg-type]
    warm.reap(time.monotonic() + 10**6, keep_alive=10**7)
    assert not forever.shut
