"""Resource policies (of functions and of layer versions): their statements and how they change.

A policy is a list of statements with a RevisionId. Every change is a read-modify-write under the
owning registry's write lock: `adding` and `removing` build the change with Lambda's checks, and
`apply_change` runs one against a dict of policies and the store.
"""

from __future__ import annotations

import asyncio
import json
from typing import Callable

from lambdalet.errors import (
    PolicyLengthExceededException,
    ResourceConflictException,
    ResourceNotFoundException,
    check_revision,
)
from lambdalet.model import new_revision_id

POLICY_LIMIT = 20 * 1024
Policies = dict[str, tuple[list[dict], str]]  # by qualifier or layer version: (statements, RevisionId)
Change = Callable[[list[dict], "str | None"], list[dict]]


def policy_document(statements: list[dict]) -> dict:
    return {"Version": "2012-10-17", "Id": "default", "Statement": statements}


def adding(statement: dict, revision: str | None, read_with: str) -> Change:
    """AddPermission's change: a new statement id, and the policy stays within Lambda's 20 KB."""
    def change(statements: list[dict], current: str | None) -> list[dict]:
        check_revision(revision, current, read_with=read_with)
        if any(existing.get("Sid") == statement["Sid"] for existing in statements):
            raise ResourceConflictException(
                f"The statement id ({statement['Sid']}) provided already exists. Please provide a new statement id, "
                "or remove the existing statement.")
        updated = statements + [statement]
        if len(json.dumps(policy_document(updated))) > POLICY_LIMIT:
            raise PolicyLengthExceededException("The final policy size is bigger than the limit.")
        return updated

    return change


def removing(sid: str, revision: str | None, read_with: str) -> Change:
    """RemovePermission's change: the statement must exist."""
    def change(statements: list[dict], current: str | None) -> list[dict]:
        check_revision(revision, current, read_with=read_with)
        kept = [statement for statement in statements if statement.get("Sid") != sid]
        if len(kept) == len(statements):
            raise ResourceNotFoundException(f"Statement {sid} is not found in resource policy.")
        return kept

    return change


def replacing(statements: list[dict], revision: str | None, read_with: str) -> Change:
    """PutResourcePolicy's change: the whole policy (its size checked by the caller)."""
    def change(_current_statements: list[dict], current: str | None) -> list[dict]:
        check_revision(revision, current, read_with=read_with)
        return statements

    return change


def deleting(revision: str | None, read_with: str) -> Change:
    """DeleteResourcePolicy's change: there must be a policy to delete."""
    def change(statements: list[dict], current: str | None) -> list[dict]:
        if not statements:
            raise ResourceNotFoundException("The resource you requested does not exist.")
        check_revision(revision, current, read_with=read_with)
        return []

    return change


async def apply_change(policies: Policies, key: str, change: Change,
                       save: Callable[[list[dict], str], None]) -> tuple[list[dict], str]:
    """Apply `change` to `policies[key]`, store the result with `save(statements, revision)` (off the
    event loop), then keep it in memory; an empty policy is removed."""
    statements, revision = policies.get(key, ([], None))
    updated = change(list(statements), revision)
    revision_id = new_revision_id()
    await asyncio.to_thread(save, updated, revision_id)
    if updated:
        policies[key] = (updated, revision_id)
    else:
        policies.pop(key, None)
    return updated, revision_id
