"""Execution-role credentials from an upstream STS (`--role-credentials upstream`).

A function whose code, destinations, dead-letter queue or event source mappings talk to AWS
services elsewhere (AWS itself, moto, LocalStack) needs credentials those services accept: this
server's own minted ones are good only for its own APIs. Here the server calls `sts:AssumeRole`
for the function's role on the STS its boto3 reaches — configured the standard way
(`AWS_ENDPOINT_URL_STS`, else AWS) with the server's own credentials — with the function's name as
session name, as Lambda does, and keeps the answer until `REFRESH_BEFORE_S` before it expires.

Environments take a frozen copy (`credentials`); the server's own clients for destinations and
pollers get a boto3 session whose credentials botocore refreshes through the same cache
(`session`), so a long-lived poller never holds expired ones.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

#: What Lambda asks of STS for an environment: an hour. The cache asks again with half an hour left;
#: an environment is retired with 20 minutes left, so its last (15-minute) invocation still has
#: valid credentials, and one started from the cache lives at least 10 minutes.
DURATION_S = 3600
CACHE_REFRESH_S = 1800
REFRESH_BEFORE_S = 1200


@dataclass(frozen=True)
class RoleCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expires_at: float  # epoch seconds


def session_name(function_name: str) -> str:
    """STS wants 2 to 64 characters; a function's name is 1 to 64."""
    return function_name if len(function_name) >= 2 else function_name + "-"


class UpstreamRoles:
    def __init__(self, region: str) -> None:
        self._region = region
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], RoleCredentials] = {}
        self._sts: Any = None

    def credentials(self, role_arn: str, function_name: str) -> RoleCredentials:
        """The role's credentials for this function, from the cache or from STS (blocking)."""
        key = (role_arn, session_name(function_name))
        with self._lock:
            found = self._cache.get(key)
        if found is not None and found.expires_at - time.time() > CACHE_REFRESH_S:
            return found
        fresh = self._assume(*key)
        with self._lock:
            self._cache[key] = fresh
        return fresh

    def session(self, role_arn: str, function_name: str) -> Any:
        """A boto3 session acting as the role, its credentials refreshed before they expire."""
        import boto3
        import botocore.session
        from botocore.credentials import RefreshableCredentials

        def metadata() -> dict[str, str]:
            found = self.credentials(role_arn, function_name)
            return {"access_key": found.access_key_id, "secret_key": found.secret_access_key,
                    "token": found.session_token,
                    "expiry_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(found.expires_at))}

        core = botocore.session.Session()
        core._credentials = RefreshableCredentials.create_from_metadata(  # botocore's own refreshing credentials
            metadata(), refresh_using=metadata, method="sts-assume-role")
        return boto3.session.Session(botocore_session=core, region_name=self._region)

    def _assume(self, role_arn: str, name: str) -> RoleCredentials:
        if self._sts is None:
            import boto3

            self._sts = boto3.session.Session().client("sts", region_name=self._region)
        reply = self._sts.assume_role(RoleArn=role_arn, RoleSessionName=name, DurationSeconds=DURATION_S)
        credentials = reply["Credentials"]
        return RoleCredentials(credentials["AccessKeyId"], credentials["SecretAccessKey"],
                               credentials["SessionToken"], credentials["Expiration"].timestamp())
