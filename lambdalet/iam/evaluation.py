"""AWS's policy evaluation logic for identity and resource-based policies, within and across accounts.

The order (AWS's "Policy evaluation logic" and "Cross-account policy evaluation logic"):
1. an explicit Deny in any applicable policy wins (identity-based reported before resource-based
   when both deny: AWS names only one policy type and does not say which);
2. the root user of the resource's account is allowed (no identity policy applies to it);
3. a service principal (and an anonymous caller) is allowed only by the resource policy;
4. within one account, an Allow in either an identity policy or the resource policy suffices, but
   a resource-policy Allow naming only the *account* delegates to the account's identity policies,
   so it allows the root user and no one else;
5. across accounts, both are needed: an identity-policy Allow (implicit for the other account's
   root) and a resource-policy Allow naming the principal or its account.
When both allows are missing, the message names the identity-based policy.

Principals: `"*"` and `{"AWS": "*"}` name everyone (services and anonymous callers too); an
account id or root ARN names the account; a role ARN names the role's sessions as well; other ARNs
are compared exactly (IAM allows no wildcards in them, documents.py refuses them).

Not modelled: permissions boundaries, session policies, SCPs/RCPs, and NotPrincipal's rule that a
role session is excluded only when every principal of its chain is listed (here one match excludes).
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Mapping, Sequence

from lambdalet.iam.documents import Policy, PrincipalSet, Statement
from lambdalet.iam.patterns import ContextValue

__all__ = [
    "AuthorizationRequest", "Decision", "Outcome", "Principal", "access_denied_message", "authorize",
    "request_context",
]


@dataclass(frozen=True)
class Principal:
    """Who makes a request, in the forms policies name it."""

    arn: str  # arn:aws:iam::A:root | ...:user/path/name | arn:aws:sts::A:assumed-role/ROLE/SESSION | ""
    account: str  # 12 digits; "" for a service principal or an anonymous caller
    user_id: str = ""  # AIDA... for a user, AROA...:SESSION for a role session, the account for root
    role_arn: str = ""  # for a role session: arn:aws:iam::A:role/path/ROLE
    service: str = ""  # for a service principal: "s3.amazonaws.com"
    username: str = ""  # for ${aws:username} (IAM users only)

    @property
    def is_root(self) -> bool:
        return self.arn.startswith("arn:") and self.arn.endswith(":root") and not self.service

    @property
    def is_anonymous(self) -> bool:
        return not self.account and not self.service

    @functools.cached_property
    def condition_keys(self) -> Mapping[str, str]:
        """The global condition keys derived from the principal, lower-cased (aws:PrincipalArn,
        aws:PrincipalAccount, aws:PrincipalType, aws:userid, aws:username, aws:PrincipalServiceName);
        computed once per Principal object, which callers may keep for the caller's credentials."""
        return _principal_keys(self)

    @property
    def kind(self) -> str:
        """aws:PrincipalType's value."""
        if self.service:
            return "Service"
        if self.is_anonymous:
            return "Anonymous"
        if self.is_root:
            return "Account"
        if self.role_arn or ":assumed-role/" in self.arn:
            return "AssumedRole"
        if ":federated-user/" in self.arn:
            return "FederatedUser"
        return "User"


def _principal_keys(principal: Principal) -> Mapping[str, str]:
    """The global condition keys a request context derives from its principal (lower-cased)."""
    keys: dict[str, str] = {"aws:principaltype": principal.kind}
    if principal.service:
        keys["aws:principalservicename"] = principal.service
        return keys
    if principal.account:
        keys["aws:principalaccount"] = principal.account
        keys["aws:principalarn"] = principal.role_arn or principal.arn  # a session reports its role
    if principal.user_id or principal.is_root:
        keys["aws:userid"] = principal.user_id or principal.account
    if principal.username:
        keys["aws:username"] = principal.username
    return MappingProxyType(keys)


def request_context(
    *, now: datetime | None = None, source_ip: str | None = None, secure_transport: bool | None = None,
    **extra: ContextValue,
) -> dict[str, ContextValue]:
    """The request-derived global keys (aws:CurrentTime, aws:EpochTime, aws:SourceIp,
    aws:SecureTransport) plus `extra`, lower-cased, for AuthorizationRequest.context. The clock is
    the caller's, so tests choose the time; principal-derived keys need not be given."""
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    context: dict[str, ContextValue] = {
        "aws:currenttime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:epochtime": str(int(moment.timestamp())),
    }
    if source_ip is not None:
        context["aws:sourceip"] = source_ip
    if secure_transport is not None:
        context["aws:securetransport"] = "true" if secure_transport else "false"
    context.update({key.lower(): value for key, value in extra.items()})
    return context


@dataclass(frozen=True)
class AuthorizationRequest:
    """One authorization question. `context` maps condition keys (any case: they are compared
    case-insensitively) to a string or a list of strings; the principal-derived global keys
    (aws:PrincipalArn, aws:PrincipalAccount, aws:PrincipalType, aws:userid, aws:username,
    aws:PrincipalServiceName) are filled in from `principal` unless given."""

    principal: Principal
    action: str
    resource: str
    resource_account: str
    context: Mapping[str, ContextValue] = field(default_factory=lambda: MappingProxyType({}))

    def get(self, key: str, /) -> ContextValue | None:
        """A context value by lower-cased key (what conditions and policy variables read).

        The lower-cased copy of `context` is made on first use only (without cached_property's
        lock): requests whose policies have no conditions or variables never make it."""
        lowered = self.__dict__.get("_lowered")
        if lowered is None:
            lowered = {k.lower(): v if type(v) is str else _context_value(v) for k, v in self.context.items()}
            object.__setattr__(self, "_lowered", lowered)
        value = lowered.get(key)
        return self.principal.condition_keys.get(key) if value is None else value

    @property
    def context_read(self) -> bool:
        """Whether a condition or policy variable read a condition key: a decision made without
        reading one is the same for every request of this principal, action and resource."""
        return "_lowered" in self.__dict__


def _context_value(value: object) -> ContextValue:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    return [_context_value(v) for v in value]  # type: ignore[union-attr, misc]


class Outcome(enum.Enum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit_deny"
    IMPLICIT_DENY = "implicit_deny"


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str = ""  # what follows "on resource: <arn> " in AWS's AccessDenied message

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOW


ALLOWED = Decision(Outcome.ALLOW)

# How a resource-policy statement names a principal: not at all, only through its account (which
# delegates to the account's identity policies), or directly (the ARN, its role, a service, "*").
_NONE, _ACCOUNT, _DIRECT = 0, 1, 2


def _named(names: PrincipalSet, principal: Principal) -> int:
    if names.anyone:
        return _DIRECT
    if principal.service:
        return _DIRECT if principal.service.lower() in names.services else _NONE
    if principal.arn in names.arns or (principal.role_arn and principal.role_arn in names.arns):
        return _DIRECT
    if principal.account in names.accounts:
        return _DIRECT if principal.is_root else _ACCOUNT
    return _NONE


def _principal_level(statement: Statement, principal: Principal) -> int:
    if statement.principals is not None:
        return _named(statement.principals, principal)
    if statement.not_principals is not None:
        return _NONE if _named(statement.not_principals, principal) else _DIRECT
    return _DIRECT  # a statement without Principal (not valid in a resource policy) names no one in particular


def _applies(statement: Statement, request: AuthorizationRequest) -> bool:
    return statement.matches_resource(request.resource, request) and (
        statement.condition is None or statement.condition.holds(request)
    )


def _identity(policies: Sequence[Policy], action: str, request: AuthorizationRequest) -> tuple[bool, bool]:
    """(denied, allowed) by the identity-based policies."""
    allowed = False
    for policy in policies:
        denies, allows = policy.for_action(action)
        for statement in denies:
            if _applies(statement, request):
                return True, allowed
        if not allowed:
            for statement in allows:
                if _applies(statement, request):
                    allowed = True
                    break
    return False, allowed


def _resource(policy: Policy | None, action: str, request: AuthorizationRequest, need_allow: bool) -> tuple[bool, int]:
    """(denied, how the best applicable Allow names the principal) by the resource policy; the
    Allow statements are skipped when an identity-policy Allow already settles the request."""
    if policy is None:
        return False, _NONE
    denies, allows = policy.for_action(action)
    principal = request.principal
    for statement in denies:
        if _principal_level(statement, principal) and _applies(statement, request):
            return True, _NONE
    level = _NONE
    if not need_allow:
        return False, level
    for statement in allows:
        named = _principal_level(statement, principal)
        if named > level and _applies(statement, request):
            level = named
            if level == _DIRECT:
                break
    return False, level


def authorize(request: AuthorizationRequest, identity_policies: Sequence[Policy], resource_policy: Policy | None) -> Decision:
    """Decide a request as IAM would (see the module docstring for the rules and their order).

    `identity_policies` are those of the principal (a user's own, its groups', a session's role's);
    they are ignored for root users and service principals, which have none.
    """
    principal = request.principal
    action = request.action.lower()
    root = principal.is_root
    same_account = bool(principal.account) and principal.account == request.resource_account
    uses_identity = not root and not principal.service and bool(principal.account)
    identity_denied, identity_allowed = (
        _identity(identity_policies, action, request) if uses_identity else (False, False)
    )
    if identity_denied:
        return Decision(Outcome.EXPLICIT_DENY, "with an explicit deny in an identity-based policy")
    settled = (identity_allowed or root) and same_account
    resource_denied, named = _resource(resource_policy, action, request, need_allow=not settled)
    if resource_denied:
        return Decision(Outcome.EXPLICIT_DENY, "with an explicit deny in a resource-based policy")
    if settled:
        return ALLOWED
    if not uses_identity and not root:  # a service or an anonymous caller
        return ALLOWED if named else _implicit("resource", request)
    if same_account:
        return ALLOWED if named == _DIRECT else _implicit("identity", request)
    if not (identity_allowed or root):
        return _implicit("identity", request)
    return ALLOWED if named else _implicit("resource", request)


def _implicit(policy_type: str, request: AuthorizationRequest) -> Decision:
    return Decision(Outcome.IMPLICIT_DENY, f"because no {policy_type}-based policy allows the {request.action} action")


def access_denied_message(request: AuthorizationRequest, decision: Decision) -> str:
    """AWS's AccessDenied message for a denied request."""
    if decision.allowed:
        raise ValueError("the request was allowed")
    principal = request.principal
    who = principal.arn or principal.service or "anonymous"
    return (
        f"User: {who} is not authorized to perform: {request.action} on resource: {request.resource} "
        f"{decision.reason}"
    )
