"""The identity caches of auth/identities.py: what the event loop reads without a database read."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from lambdalet.auth.identities import Identities


class CountingStore:
    """An IdentityStore holding one role, counting its reads."""

    def __init__(self) -> None:
        self.reads = 0

    def role(self, account_id: str, role_name: str):
        self.reads += 1
        return SimpleNamespace(arn=f"arn:aws:iam::{account_id}:role/{role_name}") if role_name.lower() == "r" else None

    def generation(self) -> int:
        return 0


def test_the_role_check_warms_what_a_first_environment_reads():
    store = CountingStore()
    identities = Identities(store)  # type: ignore[arg-type]
    role = asyncio.run(identities.role("000000000000", "R"))  # CreateFunction's Role check, off the loop
    assert store.reads == 1
    assert identities.cached_role("000000000000", "r") is role and store.reads == 1  # a cold start: no read
    identities.changed()  # an IAM write: the next cold start reads the role again
    assert identities.cached_role("000000000000", "R") is not None and store.reads == 2
    assert asyncio.run(identities.role("000000000000", "gone")) is None
    assert identities.cached_role("000000000000", "gone") is None and store.reads == 3
