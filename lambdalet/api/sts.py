"""The STS subset on the server's port: `GetCallerIdentity` and `AssumeRole`, in STS's query protocol.

boto3's `sts` client and `aws sts …` (with `--endpoint-url`) send a form-encoded `POST /`
(`Action=AssumeRole&Version=2011-06-15&…`) and read an XML answer.

- `GetCallerIdentity` names the request's authenticated caller under `--auth iam` (a root, an
  IAM user, or a role session as `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`), and the
  account's root under `--auth open`, where any credentials act as it. It needs no permission, as
  on AWS.
- `AssumeRole` mints temporary credentials (`auth/sessions.py`) for a role of the account when
  its trust policy and the caller's identity policies allow `sts:AssumeRole` (AWS's evaluation:
  a trust policy naming the caller allows on its own; one naming the account defers to the
  caller's policies). A root may not assume roles (AWS refuses it too); a session may (role
  chaining), for at most an hour. Session policies, tags and MFA are refused, never ignored:
  they would narrow or condition what the session may do, and this server does not apply them.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from aiohttp import web

from lambdalet.api.authentication import caller
from lambdalet.api.authorization import decide
from lambdalet.api.common import read_body, services
from lambdalet.api.permissions import Permission
from lambdalet.api.query_protocol import STS_VERSION, error_response, result_response
from lambdalet.auth.identities import parse_role_arn, trust_policy
from lambdalet.auth.sessions import DEFAULT_DURATION_S, MIN_DURATION_S
from lambdalet.iam.documents import Policy, PolicyKind, compile_policy
from lambdalet.iam.evaluation import AuthorizationRequest, authorize

SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
CHAINED_MAX_S = 3600
UNSUPPORTED = {"Policy": "session policies", "PolicyArns.member.1": "session policies",
               "Tags.member.1.Key": "session tags", "TransitiveTagKeys.member.1": "session tags",
               "SerialNumber": "MFA", "TokenCode": "MFA", "ProvidedContexts.member.1.ProviderArn": "provided contexts"}


async def dispatch(request: web.Request) -> web.StreamResponse:
    try:
        form = dict(parse_qsl((await read_body(request)).decode("utf-8", "replace"), keep_blank_values=True))
    except TimeoutError:
        response = error_response(408, "RequestTimeout", "The request body was not received in time.")
        response.force_close()
        return response
    action, version = form.get("Action", ""), form.get("Version", "")
    if version == STS_VERSION and action == "GetCallerIdentity":
        return get_caller_identity(request)
    if version == STS_VERSION and action == "AssumeRole":
        return await assume_role(request, form)
    return error_response(400, "InvalidAction",
                          f"Could not find operation {action} for version {version or 'NO_VERSION_SPECIFIED'}")


def get_caller_identity(request: web.Request) -> web.Response:
    who = caller(request)
    account = who.account_id if who else services(request).arns.account
    arn, user_id = (who.arn, who.user_id) if who else (f"arn:aws:iam::{account}:root", account)
    return result_response("GetCallerIdentity", f"<Arn>{escape(arn)}</Arn><UserId>{escape(user_id)}</UserId>"
                                                f"<Account>{account}</Account>")


def _validation(message: str) -> web.Response:
    return error_response(400, "ValidationError", message)


#: Every action on every resource: the identity side when asking what a trust policy alone says.
ALLOW_ALL = compile_policy('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}',
                           PolicyKind.IDENTITY)


def _trusts(ask: AuthorizationRequest, trust: Policy) -> bool:
    """Whether the trust policy names the caller, itself or through its account. A role's trust
    policy must, always: an identity policy allowing sts:AssumeRole is not enough on its own, even
    in the role's account. Asked as from another account, where a statement naming the account
    counts (and the identity side is granted here: it is evaluated on its own)."""
    return authorize(replace(ask, resource_account=""), (ALLOW_ALL,), trust).allowed


async def assume_role(request: web.Request, form: dict[str, str]) -> web.Response:
    svc = services(request)
    role_arn, session_name = form.get("RoleArn", ""), form.get("RoleSessionName", "")
    problems = []
    if not 20 <= len(role_arn) <= 2048:
        problems.append(f"Value '{role_arn}' at 'roleArn' failed to satisfy constraint: Member must have length "
                        "greater than or equal to 20")
    if not SESSION_NAME.match(session_name):
        problems.append(f"Value '{session_name}' at 'roleSessionName' failed to satisfy constraint: Member must "
                        "satisfy regular expression pattern: [\\w+=,.@-]*")
    if problems:
        return _validation(f"{len(problems)} validation error{'s' if len(problems) > 1 else ''} detected: "
                           + "; ".join(problems))
    for member, what in UNSUPPORTED.items():
        if member in form:
            return _validation(f"AssumeRole with {what} is not supported by this server (docs/security.md): the "
                               "session would not be limited as you asked.")
    try:
        duration = int(form.get("DurationSeconds", DEFAULT_DURATION_S))
    except ValueError:
        return _validation(f"Value '{form['DurationSeconds']}' at 'durationSeconds' is not a number")
    if duration < MIN_DURATION_S:
        return _validation(f"1 validation error detected: Value '{duration}' at 'durationSeconds' failed to satisfy "
                           f"constraint: Member must have value greater than or equal to {MIN_DURATION_S}")
    who = caller(request)
    account = who.account_id if who else svc.arns.account
    found = parse_role_arn(role_arn)
    role = await svc.identities.role(*found) if found else None
    if role is not None and role.arn != role_arn:  # same name, another path: not this role
        role = None
    if who is not None:
        if who.kind == "root":
            return error_response(403, "AccessDenied", "Roles may not be assumed by root accounts.")
        context = {"sts:rolesessionname": session_name}
        if "ExternalId" in form:
            context["sts:externalid"] = form["ExternalId"]
        if "SourceIdentity" in form:
            context["sts:sourceidentity"] = form["SourceIdentity"]
        permission = Permission("sts:AssumeRole", role_arn, found[0] if found else account, context)
        trust = trust_policy(role.assume_role_policy_document) if role is not None else None
        policies = await svc.identities.identity_policies(who)
        decision, ask = decide(request, who, permission, policies, trust)
        if role is None or trust is None or not decision.allowed or not _trusts(ask, trust):
            # STS's words: it does not say which policy was missing
            return error_response(403, "AccessDenied", f"User: {who.arn} is not authorized to perform: "
                                                       f"sts:AssumeRole on resource: {role_arn}")
    elif role is None:
        return error_response(403, "AccessDenied", f"User: arn:aws:iam::{account}:root is not authorized to perform: "
                                                   f"sts:AssumeRole on resource: {role_arn}")
    chained = who is not None and who.kind == "assumed-role"
    if duration > (CHAINED_MAX_S if chained else role.max_session_duration):
        return _validation("The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role "
                           "chaining." if chained else
                           "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
    assert found is not None
    credentials = svc.minter.mint(found[0], role.arn, role.role_id, session_name, duration)
    session = credentials.session
    expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(session.expires_at))
    return result_response("AssumeRole", (
        f"<Credentials><AccessKeyId>{session.access_key_id}</AccessKeyId>"
        f"<SecretAccessKey>{escape(credentials.secret_access_key)}</SecretAccessKey>"
        f"<SessionToken>{escape(credentials.session_token)}</SessionToken>"
        f"<Expiration>{expiration}</Expiration></Credentials>"
        f"<AssumedRoleUser><AssumedRoleId>{escape(session.user_id)}</AssumedRoleId>"
        f"<Arn>{escape(session.arn)}</Arn></AssumedRoleUser>"))
