"""store/iam.py: what authentication and authorisation will read, and the generation they compare."""

import json

import pytest
import sqlalchemy

from lambdalet.iam_errors import EntityAlreadyExists, LimitExceeded
from lambdalet.store.iam import IamStore, PolicyRecord, RoleRecord
from lambdalet.store.schema import make_engine

A = "000000000000"
DOC = json.dumps({"Version": "2012-10-17", "Statement": []})


@pytest.fixture
def store(tmp_path):
    return IamStore(make_engine(f"sqlite:///{tmp_path / 'iam.db'}"))


def test_every_write_bumps_the_generation_and_a_refused_one_does_not(store):
    start = store.generation()
    store.create_user(A, "alice", "/", "AIDAALICE", "2024-01-01T00:00:00Z")
    assert store.generation() == start + 1
    with pytest.raises(EntityAlreadyExists):
        store.create_user(A, "ALICE", "/", "AIDAOTHER", "2024-01-01T00:00:00Z")
    assert store.generation() == start + 1  # rolled back with the write it came with
    store.user_policy_documents(A, "alice")
    assert store.generation() == start + 1  # reads do not count


def test_access_keys_and_policy_documents_as_the_authorizer_reads_them(store):
    store.create_user(A, "alice", "/dev/", "AIDAALICE", "t")
    key = store.create_access_key(A, "Alice", "AKIAKEY1", "s" * 40, "t")
    store.create_access_key(A, "alice", "AKIAKEY2", "s" * 40, "t")
    with pytest.raises(LimitExceeded):
        store.create_access_key(A, "alice", "AKIAKEY3", "s" * 40, "t")
    assert store.access_key("AKIAKEY1") == key
    assert (key.user_arn, key.user_id, key.status) == (f"arn:aws:iam::{A}:user/dev/alice", "AIDAALICE", "Active")
    assert store.access_key("AKIAMISSING") is None

    store.create_policy(PolicyRecord(A, "managed", "ANPAM", "/", None, DOC, "v1", "t", "t", 0))
    store.put_inline_policy("user", A, "alice", "inline", '{"Id": "inline"}', lambda documents: None)
    store.attach_policy("user", A, "alice", f"arn:aws:iam::{A}:policy/managed")
    assert store.user_policy_documents(A, "ALICE") == ['{"Id": "inline"}', DOC]
    assert store.user_policy_documents(A, "nobody") == []

    store.create_role(RoleRecord(A, "runner", "AROAR", "/", "t", DOC, None, 3600))
    store.attach_policy("role", A, "runner", f"arn:aws:iam::{A}:policy/managed")
    role = store.role(A, "RUNNER")
    assert role is not None and (role.arn, role.assume_role_policy_document) == (f"arn:aws:iam::{A}:role/runner", DOC)
    assert store.role_policy_documents(A, "runner") == [DOC]
    assert store.role("111111111111", "runner") is None  # another account's


def test_a_database_made_before_iam_gets_its_tables(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = sqlalchemy.create_engine(url)
    with old.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE functions (name VARCHAR(64) PRIMARY KEY, created VARCHAR(32) NOT NULL, "
                             "tags TEXT NOT NULL)")
    old.dispose()
    store = IamStore(make_engine(url))
    assert store.generation() == 0
    IamStore(make_engine(url))  # a second start keeps the counter's one row
    assert store.generation() == 0
