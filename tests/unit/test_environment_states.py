"""The execution environment's state machine refuses every transition it does not list."""

import itertools

import pytest

from lambdalet.invoke.environment import TRANSITIONS, EnvState, InvalidTransition


class Machine:
    """The transition rule of Environment, without a process behind it."""

    from lambdalet.invoke.environment import Environment

    transition = Environment.transition

    def __init__(self, state: EnvState) -> None:
        self.state = state


ALLOWED = {
    (EnvState.STARTING, EnvState.IDLE), (EnvState.STARTING, EnvState.STOPPING),
    (EnvState.IDLE, EnvState.BUSY), (EnvState.IDLE, EnvState.STOPPING),
    (EnvState.BUSY, EnvState.IDLE), (EnvState.BUSY, EnvState.STOPPING),
    (EnvState.STOPPING, EnvState.GONE),
}


@pytest.mark.parametrize("old, new", list(itertools.product(EnvState, EnvState)))
def test_only_listed_transitions_are_allowed(old, new):
    machine = Machine(old)
    if (old, new) in ALLOWED:
        machine.transition(new)
        assert machine.state is new
    else:
        with pytest.raises(InvalidTransition):
            machine.transition(new)
        assert machine.state is old


def test_table_matches_the_documented_diagram():
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == ALLOWED
    assert TRANSITIONS[EnvState.GONE] == frozenset()
