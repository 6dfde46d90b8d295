"""IAM's users, access keys, roles and policies in the database (the tables `iam_*` of store/schema.py).

Every method is blocking (callers run them off the event loop) and scoped by account. The
database is the one truth, shared by the nodes on one PostgreSQL: each write bumps
`generation()` in its own transaction, first, so that a node caching compiled policies sees any
change, and so that IAM's writes are serialised (a quota checked in a write holds when it commits).
Names are matched case-insensitively, as IAM matches them; a check and the write it guards share a
transaction, and raise IAM's errors (`lambdalet/iam_errors.py`) from there.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

from sqlalchemy import Table, and_, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from lambdalet.iam_errors import (
    DeleteConflict, EntityAlreadyExists, IamError, LimitExceeded, no_such_access_key, no_such_inline_policy,
    no_such_role, no_such_user, policy_not_attachable, policy_not_found,
)
from lambdalet.store.schema import (
    iam_access_keys, iam_generation, iam_policies, iam_role_policies, iam_role_policy_attachments, iam_roles,
    iam_user_policies, iam_user_policy_attachments, iam_users,
)

#: IAM's quota of access keys per user.
ACCESS_KEYS_PER_USER = 2


def iam_arn(account_id: str, kind: str, path: str, name: str) -> str:
    """`arn:aws:iam::ACCOUNT:user/PATH/NAME` (kind user, role or policy; path begins and ends with /)."""
    return f"arn:aws:iam::{account_id}:{kind}{path}{name}"


@dataclass(frozen=True)
class UserRecord:
    account_id: str
    name: str
    user_id: str
    path: str
    created: str

    @property
    def arn(self) -> str:
        return iam_arn(self.account_id, "user", self.path, self.name)


@dataclass(frozen=True)
class AccessKeyRecord:
    account_id: str
    access_key_id: str
    user_name: str
    user_arn: str
    user_id: str
    secret_access_key: str
    status: str
    created: str


@dataclass(frozen=True)
class RoleRecord:
    account_id: str
    name: str
    role_id: str
    path: str
    created: str
    assume_role_policy_document: str
    description: str | None
    max_session_duration: int

    @property
    def arn(self) -> str:
        return iam_arn(self.account_id, "role", self.path, self.name)


@dataclass(frozen=True)
class PolicyRecord:
    account_id: str
    name: str
    policy_id: str
    path: str
    description: str | None
    document: str
    default_version_id: str
    created: str
    updated: str
    attachment_count: int

    @property
    def arn(self) -> str:
        return iam_arn(self.account_id, "policy", self.path, self.name)


@dataclass(frozen=True)
class _Principal:
    """What users and roles share: inline policies and attached managed policies."""

    kind: str  # "user" or "role"
    table: Table
    id_column: str
    inline: Table
    attachments: Table
    missing: Callable[[str], IamError]


_USER = _Principal("user", iam_users, "user_id", iam_user_policies, iam_user_policy_attachments, no_such_user)
_ROLE = _Principal("role", iam_roles, "role_id", iam_role_policies, iam_role_policy_attachments, no_such_role)
PRINCIPALS = {"user": _USER, "role": _ROLE}


def _user(row) -> UserRecord:  # type: ignore[no-untyped-def]
    return UserRecord(row.account_id, row.name, row.user_id, row.path, row.created)


def _role(row) -> RoleRecord:  # type: ignore[no-untyped-def]
    return RoleRecord(row.account_id, row.name, row.role_id, row.path, row.created,
                      row.assume_role_policy_document, row.description, row.max_session_duration)


class IamStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        with contextlib.suppress(IntegrityError), engine.begin() as conn:
            if conn.execute(select(iam_generation.c.value).where(iam_generation.c.id == 1)).first() is None:
                conn.execute(insert(iam_generation).values(id=1, value=0))

    # -- the seams for authentication and authorisation --------------------------------------

    def generation(self) -> int:
        """A counter every IAM write bumps in its own transaction: a cache of compiled policies is
        current while this has not moved."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(iam_generation.c.value).where(iam_generation.c.id == 1)).scalar_one())

    def access_key(self, access_key_id: str) -> AccessKeyRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(iam_access_keys, iam_users.c.name, iam_users.c.path)
                               .join(iam_users, iam_users.c.user_id == iam_access_keys.c.user_id)
                               .where(iam_access_keys.c.access_key_id == access_key_id)).first()
        if row is None:
            return None
        return AccessKeyRecord(row.account_id, row.access_key_id, row.name,
                               iam_arn(row.account_id, "user", row.path, row.name), row.user_id,
                               row.secret_access_key, row.status, row.created)

    def user_policy_documents(self, account_id: str, user_name: str) -> list[str]:
        """The user's inline policies and attached managed policies, as JSON text."""
        return self._documents(_USER, account_id, user_name)

    def role_policy_documents(self, account_id: str, role_name: str) -> list[str]:
        return self._documents(_ROLE, account_id, role_name)

    def _documents(self, who: _Principal, account_id: str, name: str) -> list[str]:
        with self.engine.connect() as conn:
            owner = self._owner_id(conn, who, account_id, name)
            if owner is None:
                return []
            inline = conn.execute(select(who.inline.c.document).where(who.inline.c[who.id_column] == owner)
                                  .order_by(who.inline.c.name_key)).scalars().all()
            managed = conn.execute(select(iam_policies.c.document)
                                   .join(who.attachments, who.attachments.c.policy_id == iam_policies.c.policy_id)
                                   .where(who.attachments.c[who.id_column] == owner)
                                   .order_by(iam_policies.c.name_key)).scalars().all()
        return [*inline, *managed]

    # -- transactions --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """One IAM write: the generation is bumped first (taking the write lock), then the change;
        a unique key raced by another writer is IAM's EntityAlreadyExists."""
        try:
            with self.engine.begin() as conn:
                conn.execute(update(iam_generation).where(iam_generation.c.id == 1)
                             .values(value=iam_generation.c.value + 1))
                yield conn
        except IntegrityError:
            raise EntityAlreadyExists("The entity already exists.") from None

    @staticmethod
    def _owner_row(conn: Connection, who: _Principal, account_id: str, name: str):  # type: ignore[no-untyped-def]
        return conn.execute(select(who.table).where(who.table.c.account_id == account_id,
                                                    who.table.c.name_key == name.lower())).first()

    def _owner_id(self, conn: Connection, who: _Principal, account_id: str, name: str) -> str | None:
        row = self._owner_row(conn, who, account_id, name)
        return None if row is None else row._mapping[who.id_column]

    def _require_owner(self, conn: Connection, who: _Principal, account_id: str, name: str) -> str:
        owner = self._owner_id(conn, who, account_id, name)
        if owner is None:
            raise who.missing(name)
        return owner

    # -- users -----------------------------------------------------------------------------------

    def create_user(self, account_id: str, name: str, path: str, user_id: str, created: str) -> UserRecord:
        with self._write() as conn:
            if self._owner_row(conn, _USER, account_id, name) is not None:
                raise EntityAlreadyExists(f"User with name {name} already exists.")
            conn.execute(insert(iam_users).values(account_id=account_id, name_key=name.lower(), name=name,
                                                  user_id=user_id, path=path, created=created))
        return UserRecord(account_id, name, user_id, path, created)

    def user(self, account_id: str, name: str) -> UserRecord | None:
        with self.engine.connect() as conn:
            row = self._owner_row(conn, _USER, account_id, name)
        return None if row is None else _user(row)

    def users(self, account_id: str, path_prefix: str = "/") -> list[UserRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(iam_users).where(iam_users.c.account_id == account_id)
                                .order_by(iam_users.c.name_key)).fetchall()
        return [_user(row) for row in rows if row.path.startswith(path_prefix)]

    def update_user(self, account_id: str, name: str, new_name: str | None, new_path: str | None) -> None:
        with self._write() as conn:
            row = self._owner_row(conn, _USER, account_id, name)
            if row is None:
                raise no_such_user(name)
            if new_name is not None and new_name.lower() != row.name_key \
                    and self._owner_row(conn, _USER, account_id, new_name) is not None:
                raise EntityAlreadyExists(f"User with name {new_name} already exists.")
            values: dict[str, str] = {}
            if new_name is not None:
                values.update(name=new_name, name_key=new_name.lower())
            if new_path is not None:
                values["path"] = new_path
            if values:
                conn.execute(update(iam_users).where(iam_users.c.user_id == row.user_id).values(**values))

    def delete_user(self, account_id: str, name: str) -> None:
        """IAM refuses while the user has access keys or policies (DeleteConflict)."""
        with self._write() as conn:
            user_id = self._require_owner(conn, _USER, account_id, name)
            if _count(conn, iam_access_keys, iam_access_keys.c.user_id == user_id):
                raise DeleteConflict("Cannot delete entity, must delete access keys first.")
            self._refuse_while_it_has_policies(conn, _USER, user_id)
            conn.execute(delete(iam_users).where(iam_users.c.user_id == user_id))

    @staticmethod
    def _refuse_while_it_has_policies(conn: Connection, who: _Principal, owner: str) -> None:
        if _count(conn, who.attachments, who.attachments.c[who.id_column] == owner):
            raise DeleteConflict("Cannot delete entity, must detach all policies first.")
        if _count(conn, who.inline, who.inline.c[who.id_column] == owner):
            raise DeleteConflict("Cannot delete entity, must delete policies first.")

    # -- access keys -------------------------------------------------------------------------

    def create_access_key(self, account_id: str, user_name: str, access_key_id: str, secret: str,
                          created: str) -> AccessKeyRecord:
        with self._write() as conn:
            row = self._owner_row(conn, _USER, account_id, user_name)
            if row is None:
                raise no_such_user(user_name)
            if _count(conn, iam_access_keys, iam_access_keys.c.user_id == row.user_id) >= ACCESS_KEYS_PER_USER:
                raise LimitExceeded(f"Cannot exceed quota for AccessKeysPerUser: {ACCESS_KEYS_PER_USER}")
            conn.execute(insert(iam_access_keys).values(access_key_id=access_key_id, account_id=account_id,
                                                        user_id=row.user_id, secret_access_key=secret,
                                                        status="Active", created=created))
        return AccessKeyRecord(account_id, access_key_id, row.name, iam_arn(account_id, "user", row.path, row.name),
                               row.user_id, secret, "Active", created)

    def access_keys(self, account_id: str, user_name: str) -> list[AccessKeyRecord]:
        with self.engine.connect() as conn:
            row = self._owner_row(conn, _USER, account_id, user_name)
            if row is None:
                raise no_such_user(user_name)
            keys = conn.execute(select(iam_access_keys).where(iam_access_keys.c.user_id == row.user_id)
                                .order_by(iam_access_keys.c.created, iam_access_keys.c.access_key_id)).fetchall()
        arn = iam_arn(account_id, "user", row.path, row.name)
        return [AccessKeyRecord(account_id, key.access_key_id, row.name, arn, row.user_id, key.secret_access_key,
                                key.status, key.created) for key in keys]

    def _user_key(self, conn: Connection, account_id: str, user_name: str, access_key_id: str):  # type: ignore[no-untyped-def]
        user_id = self._require_owner(conn, _USER, account_id, user_name)
        where = and_(iam_access_keys.c.access_key_id == access_key_id, iam_access_keys.c.user_id == user_id)
        if not _count(conn, iam_access_keys, where):
            raise no_such_access_key(access_key_id)
        return where

    def update_access_key(self, account_id: str, user_name: str, access_key_id: str, status: str) -> None:
        with self._write() as conn:
            where = self._user_key(conn, account_id, user_name, access_key_id)
            conn.execute(update(iam_access_keys).where(where).values(status=status))

    def delete_access_key(self, account_id: str, user_name: str, access_key_id: str) -> None:
        with self._write() as conn:
            conn.execute(delete(iam_access_keys).where(self._user_key(conn, account_id, user_name, access_key_id)))

    # -- roles -------------------------------------------------------------------------------

    def create_role(self, role: RoleRecord) -> None:
        with self._write() as conn:
            if self._owner_row(conn, _ROLE, role.account_id, role.name) is not None:
                raise EntityAlreadyExists(f"Role with name {role.name} already exists.")
            conn.execute(insert(iam_roles).values(
                account_id=role.account_id, name_key=role.name.lower(), name=role.name, role_id=role.role_id,
                path=role.path, created=role.created, assume_role_policy_document=role.assume_role_policy_document,
                description=role.description, max_session_duration=role.max_session_duration))

    def role(self, account_id: str, role_name: str) -> RoleRecord | None:
        with self.engine.connect() as conn:
            row = self._owner_row(conn, _ROLE, account_id, role_name)
        return None if row is None else _role(row)

    def roles(self, account_id: str, path_prefix: str = "/") -> list[RoleRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(iam_roles).where(iam_roles.c.account_id == account_id)
                                .order_by(iam_roles.c.name_key)).fetchall()
        return [_role(row) for row in rows if row.path.startswith(path_prefix)]

    def update_assume_role_policy(self, account_id: str, role_name: str, document: str) -> None:
        with self._write() as conn:
            role_id = self._require_owner(conn, _ROLE, account_id, role_name)
            conn.execute(update(iam_roles).where(iam_roles.c.role_id == role_id)
                         .values(assume_role_policy_document=document))

    def delete_role(self, account_id: str, role_name: str) -> None:
        with self._write() as conn:
            role_id = self._require_owner(conn, _ROLE, account_id, role_name)
            self._refuse_while_it_has_policies(conn, _ROLE, role_id)
            conn.execute(delete(iam_roles).where(iam_roles.c.role_id == role_id))

    # -- inline policies (kind "user" or "role") -----------------------------------------------

    def put_inline_policy(self, kind: str, account_id: str, owner_name: str, policy_name: str, document: str,
                          quota: Callable[[list[str]], None]) -> None:
        """Create or replace one inline policy; `quota` is given every document the owner would then
        have (this one included) and raises when they are too large together."""
        who = PRINCIPALS[kind]
        with self._write() as conn:
            owner = self._require_owner(conn, who, account_id, owner_name)
            others = conn.execute(select(who.inline.c.document).where(
                who.inline.c[who.id_column] == owner, who.inline.c.name_key != policy_name.lower())).scalars().all()
            quota([*others, document])
            key = and_(who.inline.c[who.id_column] == owner, who.inline.c.name_key == policy_name.lower())
            if _count(conn, who.inline, key):
                conn.execute(update(who.inline).where(key).values(name=policy_name, document=document))
            else:
                conn.execute(insert(who.inline).values(**{who.id_column: owner}, name_key=policy_name.lower(),
                                                       account_id=account_id, name=policy_name, document=document))

    def inline_policy(self, kind: str, account_id: str, owner_name: str, policy_name: str) -> tuple[str, str, str]:
        """(owner's name, policy's name, document) as stored."""
        who = PRINCIPALS[kind]
        with self.engine.connect() as conn:
            row = self._owner_row(conn, who, account_id, owner_name)
            if row is None:
                raise who.missing(owner_name)
            policy = conn.execute(select(who.inline).where(who.inline.c[who.id_column] == row._mapping[who.id_column],
                                                           who.inline.c.name_key == policy_name.lower())).first()
        if policy is None:
            raise no_such_inline_policy(kind, policy_name)
        return row.name, policy.name, policy.document

    def inline_policy_names(self, kind: str, account_id: str, owner_name: str) -> list[str]:
        who = PRINCIPALS[kind]
        with self.engine.connect() as conn:
            owner = self._require_owner(conn, who, account_id, owner_name)
            return list(conn.execute(select(who.inline.c.name).where(who.inline.c[who.id_column] == owner)
                                     .order_by(who.inline.c.name_key)).scalars())

    def delete_inline_policy(self, kind: str, account_id: str, owner_name: str, policy_name: str) -> None:
        who = PRINCIPALS[kind]
        with self._write() as conn:
            owner = self._require_owner(conn, who, account_id, owner_name)
            if not conn.execute(delete(who.inline).where(who.inline.c[who.id_column] == owner,
                                                         who.inline.c.name_key == policy_name.lower())).rowcount:
                raise no_such_inline_policy(kind, policy_name)

    # -- managed policies --------------------------------------------------------------------------

    def create_policy(self, policy: PolicyRecord) -> None:
        with self._write() as conn:
            if conn.execute(select(iam_policies.c.name).where(iam_policies.c.account_id == policy.account_id,
                                                              iam_policies.c.name_key == policy.name.lower())).first():
                raise EntityAlreadyExists(f"A policy called {policy.name} already exists. "
                                          "Duplicate names are not allowed.")
            conn.execute(insert(iam_policies).values(
                account_id=policy.account_id, name_key=policy.name.lower(), name=policy.name,
                policy_id=policy.policy_id, path=policy.path, description=policy.description,
                document=policy.document, default_version_id=policy.default_version_id, created=policy.created,
                updated=policy.updated))

    def policy(self, account_id: str, arn: str) -> PolicyRecord | None:
        """The customer managed policy of this ARN (its path and name as stored), or None."""
        with self.engine.connect() as conn:
            return self._policy(conn, account_id, arn)

    def _policy(self, conn: Connection, account_id: str, arn: str) -> PolicyRecord | None:
        prefix = f"arn:aws:iam::{account_id}:policy/"
        if not arn.startswith(prefix):
            return None
        name = arn.rsplit("/", 1)[1]
        rows = conn.execute(self._policies_query(account_id).where(iam_policies.c.name_key == name.lower())).fetchall()
        found = [record for record in map(_policy, rows) if record.arn == arn]
        return found[0] if found else None

    @staticmethod
    def _policies_query(account_id: str):  # type: ignore[no-untyped-def]
        users = (select(func.count()).select_from(iam_user_policy_attachments)
                 .where(iam_user_policy_attachments.c.policy_id == iam_policies.c.policy_id).scalar_subquery())
        roles = (select(func.count()).select_from(iam_role_policy_attachments)
                 .where(iam_role_policy_attachments.c.policy_id == iam_policies.c.policy_id).scalar_subquery())
        return select(iam_policies, (users + roles).label("attachment_count")).where(
            iam_policies.c.account_id == account_id)

    def policies(self, account_id: str, path_prefix: str = "/", only_attached: bool = False) -> list[PolicyRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(self._policies_query(account_id).order_by(iam_policies.c.name_key)).fetchall()
        return [record for record in map(_policy, rows)
                if record.path.startswith(path_prefix) and (record.attachment_count or not only_attached)]

    def delete_policy(self, account_id: str, arn: str) -> None:
        with self._write() as conn:
            policy = self._policy(conn, account_id, arn)
            if policy is None:
                raise policy_not_found(arn)
            if policy.attachment_count:
                raise DeleteConflict("Cannot delete a policy attached to entities.")
            conn.execute(delete(iam_policies).where(iam_policies.c.policy_id == policy.policy_id))

    def attach_policy(self, kind: str, account_id: str, owner_name: str, arn: str) -> None:
        """Attach a customer managed policy (attaching it again changes nothing, as in IAM)."""
        who = PRINCIPALS[kind]
        with self._write() as conn:
            owner = self._require_owner(conn, who, account_id, owner_name)
            policy = self._policy(conn, account_id, arn)
            if policy is None:
                raise policy_not_attachable(arn)
            key = and_(who.attachments.c[who.id_column] == owner, who.attachments.c.policy_id == policy.policy_id)
            if not _count(conn, who.attachments, key):
                conn.execute(insert(who.attachments).values(**{who.id_column: owner}, policy_id=policy.policy_id,
                                                            account_id=account_id))

    def detach_policy(self, kind: str, account_id: str, owner_name: str, arn: str) -> None:
        who = PRINCIPALS[kind]
        with self._write() as conn:
            owner = self._require_owner(conn, who, account_id, owner_name)
            policy = self._policy(conn, account_id, arn)
            if policy is None or not conn.execute(delete(who.attachments).where(
                    who.attachments.c[who.id_column] == owner,
                    who.attachments.c.policy_id == policy.policy_id)).rowcount:
                raise policy_not_found(arn)

    def attached_policies(self, kind: str, account_id: str, owner_name: str,
                          path_prefix: str = "/") -> list[PolicyRecord]:
        who = PRINCIPALS[kind]
        with self.engine.connect() as conn:
            owner = self._require_owner(conn, who, account_id, owner_name)
            attached = select(who.attachments.c.policy_id).where(who.attachments.c[who.id_column] == owner)
            rows = conn.execute(self._policies_query(account_id).where(iam_policies.c.policy_id.in_(attached))
                                .order_by(iam_policies.c.name_key)).fetchall()
        return [record for record in map(_policy, rows) if record.path.startswith(path_prefix)]


def _policy(row) -> PolicyRecord:  # type: ignore[no-untyped-def]
    return PolicyRecord(row.account_id, row.name, row.policy_id, row.path, row.description, row.document,
                        row.default_version_id, row.created, row.updated, int(row.attachment_count or 0))


def _count(conn: Connection, table: Table, where) -> int:  # type: ignore[no-untyped-def]
    return int(conn.execute(select(func.count()).select_from(table).where(where)).scalar_one())
