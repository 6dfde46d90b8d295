"""Execution roles under `--auth iam`: each environment acts with its function's role, never the server.

A function's `Role` must be a role of its account whose trust policy lets `lambda.amazonaws.com`
assume it (`check`), as on AWS. Each environment then gets temporary credentials of that role
(`environment_variables`: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`),
session name the function's name, so `sts get-caller-identity` inside says
`arn:aws:sts::ACCOUNT:assumed-role/ROLE/FUNCTION`. Minting them costs two HMACs and writes nothing
(`auth/sessions.py`), so a cold start pays nothing measurable. They last `CREDENTIALS_S`; the
warm pool retires an environment `REFRESH_BEFORE_S` before its credentials expire (Lambda too
recycles environments rather than change a running process's variables), which leaves every
invocation — at most 15 minutes — valid credentials to its end.

The server's own AWS credentials are never given to functions in this mode, and functions reach
this server's Lambda, STS, IAM and CloudWatch Logs APIs by default (`AWS_ENDPOINT_URL_LAMBDA`, …),
so one function may invoke another, authorised by its role — unless the operator points those
variables elsewhere in the server's own environment.

With `--role-credentials upstream` (`auth/upstream_roles.py`) the credentials are instead the
role's on an upstream STS, for AWS services elsewhere, and `aws_session` gives destinations and
pollers the same role.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from lambdalet.auth.identities import Identities, parse_role_arn, trust_policy
from lambdalet.auth.sessions import SessionMinter
from lambdalet.auth.upstream_roles import REFRESH_BEFORE_S as UPSTREAM_REFRESH_BEFORE_S
from lambdalet.auth.upstream_roles import UpstreamRoles
from lambdalet.errors import InvalidParameterValueException
from lambdalet.iam.evaluation import AuthorizationRequest, Principal, authorize
from lambdalet.invoke.env_vars import PASSTHROUGH_NAMES

log = logging.getLogger(__name__)
CREDENTIALS_S = 6 * 3600
REFRESH_BEFORE_S = 3600
LAMBDA_SERVICE = Principal(arn="", account="", service="lambda.amazonaws.com")
ENDPOINT_SERVICES = ("LAMBDA", "STS", "IAM", "LOGS")
CANNOT_ASSUME = "The role defined for the function cannot be assumed by Lambda."
#: An environment started without upstream credentials (STS refused): replaced this soon, to try again.
UPSTREAM_RETRY_S = 60


class ExecutionRoles:
    def __init__(self, minter: SessionMinter, identities: Identities, server_url: str,
                 passthrough: dict[str, str], upstream: UpstreamRoles | None = None) -> None:
        self._minter = minter
        self._identities = identities
        self.upstream = upstream
        # what every environment gets: the operator's endpoints, without the server's credentials
        base = {name: value for name, value in passthrough.items() if name not in PASSTHROUGH_NAMES}
        if upstream is None:  # minted credentials are good for this server's APIs: point the SDKs here
            for service in ENDPOINT_SERVICES:
                base.setdefault(f"AWS_ENDPOINT_URL_{service}", server_url)
        self._base = base

    async def check(self, role_arn: str, account: str) -> None:
        """Refuse a Role that is not a role of `account` Lambda may assume."""
        found = parse_role_arn(role_arn)
        role = await self._identities.role(*found) if found is not None and found[0] == account else None
        trust = trust_policy(role.assume_role_policy_document) if role is not None and role.arn == role_arn else None
        if trust is None or not authorize(AuthorizationRequest(LAMBDA_SERVICE, "sts:AssumeRole", role_arn, account),
                                          (), trust).allowed:
            raise InvalidParameterValueException(CANNOT_ASSUME)

    def environment_variables(self, function_name: str, role_arn: str) -> tuple[dict[str, str], float]:
        """The variables of one new environment, and when (monotonic) it must be retired."""
        env = dict(self._base)
        if self.upstream is not None:
            return env, self._upstream_credentials(env, function_name, role_arn)
        found = parse_role_arn(role_arn)
        role = self._identities.cached_role(*found) if found is not None else None
        if role is not None:  # a role deleted since: the environment gets no credentials at all
            credentials = self._minter.mint(found[0], role.arn, role.role_id, function_name,  # type: ignore[index]
                                            CREDENTIALS_S)
            env.update(AWS_ACCESS_KEY_ID=credentials.session.access_key_id,
                       AWS_SECRET_ACCESS_KEY=credentials.secret_access_key,
                       AWS_SESSION_TOKEN=credentials.session_token)
        return env, time.monotonic() + CREDENTIALS_S - REFRESH_BEFORE_S

    def _upstream_credentials(self, env: dict[str, str], function_name: str, role_arn: str) -> float:
        """The upstream STS's credentials into `env` (blocking, once per role and function in half
        an hour); the environment is retired 20 minutes before they expire."""
        assert self.upstream is not None
        try:
            credentials = self.upstream.credentials(role_arn, function_name)
        except Exception as exc:  # the function runs, without credentials, and the operator is told why
            log.warning("no credentials for %s: sts:AssumeRole of %s upstream failed: %s", function_name, role_arn, exc)
            return time.monotonic() + UPSTREAM_RETRY_S
        env.update(AWS_ACCESS_KEY_ID=credentials.access_key_id, AWS_SECRET_ACCESS_KEY=credentials.secret_access_key,
                   AWS_SESSION_TOKEN=credentials.session_token)
        return time.monotonic() + max(0.0, credentials.expires_at - time.time() - UPSTREAM_REFRESH_BEFORE_S)

    def aws_session(self, function_name: str, role_arn: str) -> Any:
        """A boto3 session acting as the function's role, for its destinations and pollers; None
        without an upstream STS (the server's own credentials are used then)."""
        return self.upstream.session(role_arn, function_name) if self.upstream is not None else None
