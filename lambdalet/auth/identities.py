"""Who a request's caller is, and what IAM says it may do, read through caches.

Authentication and authorisation run on every request under `--auth iam`, so neither may read the
database or parse a policy each time: an IAM user's access key, and the compiled identity policies
of a user or role, are read once and kept. Every IAM write bumps the store's generation in the same
transaction (`store/iam.py`); this node drops its caches at once when it made the change
(`changed`), and `follow` sees another node's within a second (IAM itself is eventually
consistent, and says so).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any, Protocol

from lambdalet.iam.documents import MalformedPolicy, Policy, PolicyKind, compile_policy
from lambdalet.iam.evaluation import Principal

log = logging.getLogger(__name__)
#: A role's ARN: its account, an optional path, and its name.
ROLE_ARN = re.compile(r"^arn:aws:iam::(\d{12}):role/(?:[\x21-\x7e]*/)?([\w+=,.@-]{1,64})$")
#: Access keys remembered at once, found or not (a caller trying random keys cannot grow it further).
MAX_CACHED_KEYS = 10_000


@dataclass(frozen=True)
class Caller:
    """An authenticated principal: an account's root, an IAM user, or a role's session."""

    account_id: str
    arn: str
    user_id: str
    access_key_id: str
    kind: str = "root"  # root | user | assumed-role
    name: str = ""  # the user's name, or the role's for a session
    role_arn: str = ""  # a session's role
    session_name: str = ""

    @cached_property  # a root's Caller lives as long as the server: its Principal is made once
    def principal(self) -> Principal:
        return Principal(arn=self.arn, account=self.account_id, user_id=self.user_id, role_arn=self.role_arn,
                         username=self.name if self.kind == "user" else "")


class IdentityStore(Protocol):
    """What this module reads of `store/iam.py`."""

    def access_key(self, access_key_id: str) -> Any: ...
    def user_policy_documents(self, account_id: str, user_name: str) -> list[str]: ...
    def role(self, account_id: str, role_name: str) -> Any: ...
    def role_policy_documents(self, account_id: str, role_name: str) -> list[str]: ...
    def generation(self) -> int: ...


class Identities:
    def __init__(self, store: IdentityStore, poll_interval: float = 1.0) -> None:
        self.store = store
        self._poll_interval = poll_interval
        self._keys: OrderedDict[str, Any] = OrderedDict()
        self._policies: dict[tuple[str, str, str], tuple[Policy, ...]] = {}
        self._roles: dict[tuple[str, str], Any] = {}
        self._generation: int | None = None
        self._epoch = 0  # bumped by every drop: a read that began before one is not kept

    def changed(self) -> None:
        """An IAM write on this node: what was cached may be wrong now."""
        self._epoch += 1
        self._keys.clear()
        self._policies.clear()
        self._roles.clear()

    async def access_key(self, access_key_id: str) -> Any:
        """The stored access key (an IAM user's), or None."""
        if access_key_id in self._keys:
            self._keys.move_to_end(access_key_id)
            return self._keys[access_key_id]
        epoch = self._epoch
        record = await asyncio.to_thread(self.store.access_key, access_key_id)
        if epoch == self._epoch:
            self._keys[access_key_id] = record
            if len(self._keys) > MAX_CACHED_KEYS:
                self._keys.popitem(last=False)
        return record

    async def identity_policies(self, caller: Caller) -> tuple[Policy, ...]:
        """The compiled identity policies of a user or a role session (a root has none)."""
        if caller.kind == "root":
            return ()
        key = (caller.kind, caller.account_id, caller.name)
        found = self._policies.get(key)
        if found is None:
            read = self.store.user_policy_documents if caller.kind == "user" else self.store.role_policy_documents
            epoch = self._epoch
            found = tuple(_compiled(await asyncio.to_thread(read, caller.account_id, caller.name)))
            if epoch == self._epoch:
                self._policies[key] = found
        return found

    async def role(self, account_id: str, role_name: str) -> Any:
        """A role as stored now, kept for `cached_role` too: the Role check of CreateFunction reads
        it off the event loop, so the function's first environment does not read it on the loop."""
        epoch = self._epoch
        role = await asyncio.to_thread(self.store.role, account_id, role_name)
        if epoch == self._epoch:
            self._roles[(account_id, role_name.lower())] = role
        return role

    def cached_role(self, account_id: str, role_name: str) -> Any:
        """A role, for starting an environment (synchronous there): read once, then from memory."""
        key = (account_id, role_name.lower())
        if key not in self._roles:
            self._roles[key] = self.store.role(account_id, role_name)
        return self._roles[key]

    async def follow(self) -> None:
        """Drop the caches whenever another node changes IAM (polls the generation)."""
        while True:
            try:
                generation = await asyncio.to_thread(self.store.generation)
                if self._generation is not None and generation != self._generation:
                    self.changed()
                self._generation = generation
            except Exception:  # a database hiccup: try again next time
                log.exception("reading IAM's generation failed")
            await asyncio.sleep(self._poll_interval)


def parse_role_arn(role_arn: str) -> tuple[str, str] | None:
    """(account, name) of a role's ARN, or None for anything else."""
    match = ROLE_ARN.match(role_arn)
    return (match.group(1), match.group(2)) if match else None


@lru_cache(maxsize=1024)
def trust_policy(document: str) -> Policy | None:
    """A role's trust policy, compiled once; None for one stored before a stricter check, which
    trusts no one."""
    try:
        return compile_policy(document, PolicyKind.TRUST)
    except MalformedPolicy:
        return None


def _compiled(documents: list[str]) -> list[Policy]:
    policies = []
    for document in documents:
        try:
            policies.append(compile_policy(document, PolicyKind.IDENTITY))
        except MalformedPolicy as exc:  # stored before a stricter check: it grants nothing
            log.warning("an identity policy no longer compiles (%s); it grants nothing", exc)
    return policies
