"""Temporary credentials (`ASIA…` key, secret, session token) that need no row per session.

`sts:AssumeRole` and every execution environment's role credentials are minted here. A session
token carries what the session is (account, role, session name, expiry) and an HMAC of it under
the server's session key, and the session's secret is an HMAC of its access key id under the same
key, so verifying a request signed with temporary credentials costs two HMACs and no lookup, and
minting one at an environment's cold start writes nothing. The key lives in the database
(`store/server_keys.py`), so every node that shares it accepts the sessions any node minted.

What a stateless token cannot do is be revoked before it expires; AWS's cannot either (short of a
policy that denies sessions issued before a time), and a deleted role leaves its sessions with no
policies, so they may do nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from lambdalet.auth.accounts import KEY_ALPHABET

TOKEN_PREFIX = "LSTS1"
SESSION_KEY_ID_PREFIX = "ASIA"
MIN_DURATION_S = 900
DEFAULT_DURATION_S = 3600


class SessionTokenInvalid(ValueError):
    """A token this server did not mint, or one altered since."""


@dataclass(frozen=True)
class Session:
    """Who a set of temporary credentials acts as: a role's session."""

    access_key_id: str
    account_id: str
    role_arn: str  # arn:aws:iam::ACCOUNT:role/PATH/NAME
    role_id: str  # AROA…
    session_name: str
    expires_at: float  # epoch seconds

    @property
    def role_name(self) -> str:
        return self.role_arn.rsplit("/", 1)[-1]

    @property
    def arn(self) -> str:
        """The session's own ARN, as STS names it: the role's path is not part of it."""
        return f"arn:aws:sts::{self.account_id}:assumed-role/{self.role_name}/{self.session_name}"

    @property
    def user_id(self) -> str:
        return f"{self.role_id}:{self.session_name}"


@dataclass(frozen=True)
class TemporaryCredentials:
    session: Session
    secret_access_key: str
    session_token: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionMinter:
    """Mints and checks temporary credentials under one key (32 random bytes, shared by the nodes)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def secret_of(self, access_key_id: str) -> str:
        """The secret access key of a session's key id: derived, never stored."""
        return _b64(hmac.new(self._key, b"secret\0" + access_key_id.encode(), hashlib.sha256).digest())[:40]

    def mint(self, account_id: str, role_arn: str, role_id: str, session_name: str, duration_s: int,
             now: float | None = None) -> TemporaryCredentials:
        now = time.time() if now is None else now
        key_id = SESSION_KEY_ID_PREFIX + "".join(secrets.choice(KEY_ALPHABET) for _ in range(16))
        session = Session(key_id, account_id, role_arn, role_id, session_name, float(int(now) + duration_s))
        payload = json.dumps({"k": key_id, "a": account_id, "r": role_arn, "i": role_id, "s": session_name,
                              "e": int(session.expires_at)}, separators=(",", ":")).encode()
        mac = hmac.new(self._key, b"token\0" + payload, hashlib.sha256).digest()
        return TemporaryCredentials(session, self.secret_of(key_id), f"{TOKEN_PREFIX}.{_b64(payload)}.{_b64(mac)}")

    def session_of(self, access_key_id: str, token: str) -> Session:
        """The session a token names, when it is one this key minted for `access_key_id` (expired or
        not: the caller answers ExpiredToken). Raises SessionTokenInvalid."""
        prefix, _, rest = token.partition(".")
        encoded, _, mac = rest.partition(".")
        if prefix != TOKEN_PREFIX or not encoded or not mac:
            raise SessionTokenInvalid(token)
        try:
            payload, signature = _unb64(encoded), _unb64(mac)
        except ValueError:
            raise SessionTokenInvalid(token) from None
        expected = hmac.new(self._key, b"token\0" + payload, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, signature):
            raise SessionTokenInvalid(token)
        fields = json.loads(payload)
        if fields["k"] != access_key_id:
            raise SessionTokenInvalid(token)
        return Session(fields["k"], fields["a"], fields["r"], fields["i"], fields["s"], float(fields["e"]))
