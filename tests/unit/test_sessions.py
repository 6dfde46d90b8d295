"""Temporary credentials minted and checked without a stored row (auth/sessions.py)."""

from __future__ import annotations

import pytest

from lambdalet.auth.sessions import SessionMinter, SessionTokenInvalid

ROLE = "arn:aws:iam::000000000000:role/service/runner"


def test_a_minted_session_is_read_back_from_its_token():
    minter = SessionMinter(b"k" * 32)
    credentials = minter.mint("000000000000", ROLE, "AROAEXAMPLEROLEID0001", "my-fn", 900, now=1_000_000.0)
    session = minter.session_of(credentials.session.access_key_id, credentials.session_token)
    assert session == credentials.session
    assert session.access_key_id.startswith("ASIA") and len(session.access_key_id) == 20
    assert session.arn == "arn:aws:sts::000000000000:assumed-role/runner/my-fn"  # no path in a session's ARN
    assert session.user_id == "AROAEXAMPLEROLEID0001:my-fn"
    assert session.expires_at == 1_000_900.0
    assert credentials.secret_access_key == minter.secret_of(session.access_key_id)
    assert len(credentials.secret_access_key) == 40


def test_each_session_has_its_own_key_and_secret():
    minter = SessionMinter(b"k" * 32)
    one, two = (minter.mint("000000000000", ROLE, "AROAX", "s", 900) for _ in range(2))
    assert one.session.access_key_id != two.session.access_key_id
    assert one.secret_access_key != two.secret_access_key


@pytest.mark.parametrize("alter", [
    lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # the MAC
    lambda token: token.replace("LSTS1", "LSTS2"),
    lambda token: "not a token",
    lambda token: token.split(".")[0] + "." + token.split(".")[1],
])
def test_an_altered_token_is_refused(alter):
    minter = SessionMinter(b"k" * 32)
    credentials = minter.mint("000000000000", ROLE, "AROAX", "s", 900)
    with pytest.raises(SessionTokenInvalid):
        minter.session_of(credentials.session.access_key_id, alter(credentials.session_token))


def test_a_token_belongs_to_its_key_and_to_the_key_it_was_minted_under():
    minter = SessionMinter(b"k" * 32)
    one, two = (minter.mint("000000000000", ROLE, "AROAX", "s", 900) for _ in range(2))
    with pytest.raises(SessionTokenInvalid):
        minter.session_of(one.session.access_key_id, two.session_token)
    with pytest.raises(SessionTokenInvalid):
        SessionMinter(b"o" * 32).session_of(one.session.access_key_id, one.session_token)
