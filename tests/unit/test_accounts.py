"""Accounts and root credentials (lambdalet/auth/accounts.py)."""

from __future__ import annotations

import stat

import pytest

from lambdalet.auth.accounts import AccountsError, load_accounts

FILE = """
[[account]]
id = "000000000000"
root_access_key_id = "AKIAFIRSTACCOUNT01"
root_secret_access_key = "first-secret-0123456789"

[[account]]
id = "111111111111"
root_access_key_id = "AKIASECONDACCOUNT2"
root_secret_access_key = "second-secret-0123456789"
"""


def test_an_accounts_file_lists_every_account(tmp_path):
    path = tmp_path / "accounts.toml"
    path.write_text(FILE)
    accounts = load_accounts("000000000000", tmp_path / "data", path, environ={})
    assert sorted(accounts.by_id) == ["000000000000", "111111111111"]
    assert accounts.by_root_key["AKIASECONDACCOUNT2"].id == "111111111111"
    assert accounts.generated is None
    assert not (tmp_path / "data").exists()  # nothing generated


@pytest.mark.parametrize("text, says", [
    ("not toml [", "is not TOML"),
    ("", "lists no [[account]]"),
    ('[[account]]\nid = "1"\nroot_access_key_id = "AKIAFIRSTACCOUNT01"\nroot_secret_access_key = "s" \n',
     "is not 12 digits"),
    ('[[account]]\nid = "000000000000"\n', "must all be given"),
    ('[[account]]\nid = "000000000000"\nroot_access_key_id = "AKIAFIRSTACCOUNT01"\n'
     'root_secret_access_key = "first-secret-0123456789"\nregion = "x"\n', "unknown key(s) region"),
    (FILE.replace("AKIASECONDACCOUNT2", "AKIAFIRSTACCOUNT01"), "share the root access key"),
    (FILE.replace("111111111111", "000000000000"), "listed twice"),
])
def test_a_broken_accounts_file_is_refused_saying_why(tmp_path, text, says):
    path = tmp_path / "accounts.toml"
    path.write_text(text)
    with pytest.raises(AccountsError, match=says.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        load_accounts("000000000000", tmp_path, path, environ={})


def test_root_keys_from_the_environment(tmp_path):
    accounts = load_accounts("123456789012", tmp_path, environ={
        "LAMBDALET_ROOT_ACCESS_KEY_ID": "AKIAENVIRONMENT001", "LAMBDALET_ROOT_SECRET_ACCESS_KEY": "x" * 40})
    assert accounts.by_root_key["AKIAENVIRONMENT001"].id == "123456789012"
    with pytest.raises(AccountsError, match="go together"):
        load_accounts("123456789012", tmp_path, environ={"LAMBDALET_ROOT_ACCESS_KEY_ID": "AKIAENVIRONMENT001"})


def test_generated_once_into_a_private_file(tmp_path):
    first = load_accounts("000000000000", tmp_path, environ={})
    assert first.generated is not None
    path = tmp_path / "root-credentials"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_accounts("000000000000", tmp_path, environ={})
    assert again.generated is None  # shown only the first time
    assert again.by_id["000000000000"] == first.generated
    path.write_text("garbage")
    with pytest.raises(AccountsError, match="remove it"):
        load_accounts("000000000000", tmp_path, environ={})
