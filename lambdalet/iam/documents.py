"""Policy documents: IAM's validation (with its MalformedPolicyDocument wording) and compilation.

Checks run in IAM's order, so a document with several faults gets the message IAM would give:
syntax (shape and types), version, principal presence, legacy parsing (Effect's case, dates, the
ARN shape of resources), unique Sids, actions present, resource formats, action vendors, then the
checks of the document's kind. The wording comes from IAM's own responses (as recorded by moto's
IAM validator and seen in AWS's errors); where IAM's answer is not known the closest one is used.

A compiled `Policy` keeps wildcards as compiled regexes and remembers, per action, which of its
statements can apply, so evaluating it is a few dictionary and regex lookups.
"""

from __future__ import annotations

import enum
import json
import re
from typing import Any, Mapping

from lambdalet.iam.conditions import Condition, check_condition_syntax, compile_condition
from lambdalet.iam.errors import LEGACY, SYNTAX, MalformedPolicy
from lambdalet.iam.patterns import Context, PatternSet

__all__ = ["MalformedPolicy", "Policy", "PolicyKind", "PrincipalSet", "Statement", "compile_policy"]


class PolicyKind(enum.Enum):
    IDENTITY = "identity"  # attached to a user, group or role: no Principal, needs Resource
    RESOURCE = "resource"  # attached to a resource (a function's policy): needs Principal
    TRUST = "trust"  # a role's AssumeRolePolicyDocument: needs Principal, no Resource


VERSION_MESSAGE = "Policy document must be version 2012-10-17 or greater."
_TOP_ELEMENTS = frozenset({"Version", "Id", "Statement"})
_VERSIONS = ("2008-10-17", "2012-10-17")
_STATEMENT_ELEMENTS = frozenset(
    {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Principal", "NotPrincipal", "Condition"}
)
_PRINCIPAL_TYPES = frozenset({"AWS", "Service", "Federated", "CanonicalUser"})
_PARTITIONS = frozenset({"aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f", "aws-eusc"})
_IAM_PATHS = (
    "user/", "federated-user/", "role/", "group/", "instance-profile/", "mfa/", "server-certificate/",
    "policy/", "sms-mfa/", "saml-provider/", "oidc-provider/", "report/", "access-report/",
)
_TRUST_ACTIONS = frozenset(a.lower() for a in (
    "sts:AssumeRole", "sts:AssumeRoleWithSAML", "sts:AssumeRoleWithWebIdentity", "sts:SetSourceIdentity",
    "sts:TagSession", "sts:DecodeAuthorizationMessage", "sts:GetAccessKeyInfo", "sts:GetCallerIdentity",
    "sts:GetFederationToken", "sts:GetServiceBearerToken", "sts:GetSessionToken",
))
_ACCOUNT = re.compile(r"\d{12}\Z")
_AWS_PRINCIPAL = re.compile(
    r"arn:aws[a-z-]*:(?:iam::(\d{12}):(?:root|(?:user|role|federated-user)/[^*?]+)"
    r"|sts::(\d{12}):(?:assumed-role/[^*?/]+/[^*?]+|federated-user/[^*?]+))\Z"
)
_VENDOR = re.compile(r"[a-zA-Z0-9.\-]*\Z")
_ACTION_CACHE_LIMIT = 1024


class _Frozen:
    """Compiled parts are shared by every request (and thread) that evaluates them: read-only."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _init(self, **values: object) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)


class PrincipalSet(_Frozen):
    """A Principal or NotPrincipal element: who it names, in the forms evaluation compares
    (account ids, from "123456789012" and from root ARNs; other ARNs exactly; services lower-cased)."""

    __slots__ = ("anyone", "accounts", "arns", "services")
    anyone: bool
    accounts: frozenset[str]
    arns: frozenset[str]
    services: frozenset[str]

    def __init__(self, element: Any) -> None:
        anyone = element == "*"
        accounts: set[str] = set()
        arns: set[str] = set()
        services: frozenset[str] = frozenset()
        if isinstance(element, Mapping):
            for value in _strings(element.get("AWS")):
                if value == "*":
                    anyone = True
                elif _ACCOUNT.match(value):
                    accounts.add(value)
                elif value.endswith(":root"):
                    accounts.add(value.split(":")[4])
                else:
                    arns.add(value)
            services = frozenset(v.lower() for v in _strings(element.get("Service")))
        self._init(anyone=anyone, accounts=frozenset(accounts), arns=frozenset(arns), services=services)


class Statement(_Frozen):
    """One compiled statement. `principals`/`not_principals` are None in identity policies;
    `resources` and `not_resources` both None means the statement names no resource (it then
    applies to whatever the policy is attached to)."""

    __slots__ = ("sid", "allow", "actions", "not_actions", "resources", "not_resources",
                 "principals", "not_principals", "condition")
    sid: str
    allow: bool
    actions: PatternSet | None
    not_actions: PatternSet | None
    resources: PatternSet | None
    not_resources: PatternSet | None
    principals: PrincipalSet | None
    not_principals: PrincipalSet | None
    condition: Condition | None

    def __init__(self, raw: Mapping[str, Any], variables: bool) -> None:
        self._init(
            sid=raw.get("Sid", ""),
            allow=raw["Effect"] == "Allow",
            actions=_patterns(raw.get("Action"), ignore_case=True, variables=False),
            not_actions=_patterns(raw.get("NotAction"), ignore_case=True, variables=False),
            resources=_patterns(raw.get("Resource"), ignore_case=False, variables=variables),
            not_resources=_patterns(raw.get("NotResource"), ignore_case=False, variables=variables),
            principals=PrincipalSet(raw["Principal"]) if "Principal" in raw else None,
            not_principals=PrincipalSet(raw["NotPrincipal"]) if "NotPrincipal" in raw else None,
            condition=compile_condition(raw["Condition"], variables) if raw.get("Condition") else None,
        )

    def matches_action(self, action: str) -> bool:
        if self.actions is not None:
            return self.actions.matches(action, _NO_CONTEXT)
        return self.not_actions is not None and not self.not_actions.matches(action, _NO_CONTEXT)

    def matches_resource(self, resource: str, context: Context) -> bool:
        if self.resources is not None:
            return self.resources.matches(resource, context)
        if self.not_resources is not None:
            return not self.not_resources.matches(resource, context)
        return True


class _NoContext:
    def get(self, key: str, /) -> None:
        return None


_NO_CONTEXT = _NoContext()


class Policy(_Frozen):
    """A validated, compiled, immutable policy document."""

    __slots__ = ("kind", "version", "statements", "condition_keys", "_by_action")
    kind: PolicyKind
    version: str  # "2012-10-17", "2008-10-17" or "" (resource and trust policies may omit it)
    statements: tuple[Statement, ...]
    condition_keys: frozenset[str]  # lower-cased, so callers can refuse keys they do not supply

    def __init__(self, kind: PolicyKind, version: str, statements: tuple[Statement, ...]) -> None:
        keys = frozenset(k for s in statements if s.condition is not None for k in s.condition.keys)
        self._init(kind=kind, version=version, statements=statements, condition_keys=keys, _by_action={})

    def for_action(self, action: str) -> tuple[tuple[Statement, ...], tuple[Statement, ...]]:
        """(Deny statements, Allow statements) whose Action/NotAction admits `action` (lower-cased).

        Remembered per action: a server asks about a handful of actions, over and over.
        """
        found = self._by_action.get(action)
        if found is None:
            if len(self._by_action) >= _ACTION_CACHE_LIMIT:
                self._by_action.clear()
            matching = [s for s in self.statements if s.matches_action(action)]
            found = (tuple(s for s in matching if not s.allow), tuple(s for s in matching if s.allow))
            self._by_action[action] = found
        return found

    def __repr__(self) -> str:
        return f"<Policy {self.kind.value} {len(self.statements)} statements>"


def compile_policy(document: str | Mapping[str, Any], kind: PolicyKind) -> Policy:
    """Validate a policy document (JSON text or already parsed) and compile it; MalformedPolicy
    carries IAM's message. Callers compile a document once and keep the Policy."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            raise MalformedPolicy(SYNTAX) from None
    statements = _check_syntax(document)
    version = document.get("Version", "")  # type: ignore[union-attr]
    if version != "2012-10-17" and (kind is PolicyKind.IDENTITY or version not in ("", "2008-10-17")):
        raise MalformedPolicy(VERSION_MESSAGE)
    _check_principal_presence(statements, kind)
    resource_error = _check_legacy_and_resources(statements)
    sids = [s["Sid"] for s in statements if s.get("Sid")]
    if len(sids) != len(set(sids)):
        raise MalformedPolicy("Statement IDs (SID) in a single policy must be unique.")
    for statement in statements:
        key = "Action" if "Action" in statement else "NotAction"
        if statement.get(key) in (None, []):
            raise MalformedPolicy("Policy statement must contain actions.")
    if resource_error:
        raise MalformedPolicy(resource_error)
    for statement in statements:
        for action in _strings(statement.get("Action", statement.get("NotAction"))):
            _check_action(action)
    _check_kind(statements, kind)
    variables = version == "2012-10-17"
    return Policy(kind, version, tuple(Statement(s, variables) for s in statements))


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [v for v in value if v is not None]


def _patterns(value: Any, *, ignore_case: bool, variables: bool) -> PatternSet | None:
    if value is None:
        return None
    return PatternSet(_strings(value), ignore_case=ignore_case, variables=variables)


def _string_or_strings(value: Any) -> bool:
    if isinstance(value, str):
        return True
    return isinstance(value, list) and all(v is None or isinstance(v, str) for v in value)


def _check_syntax(document: Any) -> list[Mapping[str, Any]]:
    """The shape of the document; every fault here is IAM's "Syntax errors in policy."."""
    if not isinstance(document, Mapping) or not set(document) <= _TOP_ELEMENTS:
        raise MalformedPolicy(SYNTAX)
    if document.get("Version", _VERSIONS[0]) not in _VERSIONS or not isinstance(document.get("Id", ""), str):
        raise MalformedPolicy(SYNTAX)
    raw = document.get("Statement")
    statements = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(statements, list) or not statements:
        raise MalformedPolicy(SYNTAX)
    for statement in statements:
        if not isinstance(statement, Mapping) or not set(statement) <= _STATEMENT_ELEMENTS:
            raise MalformedPolicy(SYNTAX)
        for first, second in (("Action", "NotAction"), ("Resource", "NotResource"), ("Principal", "NotPrincipal")):
            if first in statement and second in statement:
                raise MalformedPolicy(SYNTAX)
        effect = statement.get("Effect")
        if not isinstance(effect, str) or effect.lower() not in ("allow", "deny"):
            raise MalformedPolicy(SYNTAX)
        for key in ("Action", "NotAction", "Resource", "NotResource"):
            if key in statement and not _string_or_strings(statement[key]):
                raise MalformedPolicy(SYNTAX)
        for key in ("Principal", "NotPrincipal"):
            if key in statement:
                _check_principal_syntax(statement[key])
        if "Condition" in statement:
            check_condition_syntax(statement["Condition"])
        if not isinstance(statement.get("Sid", ""), str):
            raise MalformedPolicy(SYNTAX)
    return statements


def _check_principal_syntax(element: Any) -> None:
    if element == "*":
        return
    if not isinstance(element, Mapping) or not element or not set(element) <= _PRINCIPAL_TYPES:
        raise MalformedPolicy(SYNTAX)
    for value in element.values():
        if not _string_or_strings(value) or value == []:
            raise MalformedPolicy(SYNTAX)


def _check_principal_presence(statements: list[Mapping[str, Any]], kind: PolicyKind) -> None:
    for statement in statements:
        named = "Principal" in statement or "NotPrincipal" in statement
        if kind is PolicyKind.IDENTITY and named:
            raise MalformedPolicy("Policy document should not specify a principal.")
        if kind is not PolicyKind.IDENTITY and not named:
            raise MalformedPolicy("Missing required field Principal")


def _check_legacy_and_resources(statements: list[Mapping[str, Any]]) -> str:
    """Legacy parsing (raised at once) and the first resource-format message (returned, since IAM
    reports it only after checking that statements have actions)."""
    for statement in statements:
        if statement["Effect"] not in ("Allow", "Deny"):
            raise MalformedPolicy(LEGACY)
        if statement.get("Condition"):
            compile_condition(statement["Condition"])  # dates, numbers and CIDRs must parse
    resource_error = ""
    for statement in statements:
        for key in ("Resource", "NotResource"):
            resources = sorted(_strings(statement.get(key)), reverse=True)
            for resource in resources:
                resource_error = resource_error or _resource_format_error(resource)
            if not resource_error:
                for resource in resources:
                    parts = resource.split(":")
                    if resource != "*" and ("::" in resource and len(parts) < 6 or len(parts) > 2 and not parts[2]):
                        raise MalformedPolicy(LEGACY)
    return resource_error


def _resource_format_error(resource: str) -> str:
    if resource == "*":
        return ""
    if ":" not in resource:
        return f'Resource {resource} must be in ARN format or "*".'
    parts = resource.split(":")
    partition = parts[1]
    if partition != "*" and partition not in _PARTITIONS:
        rest = parts[2:] if len(parts) > 2 else [""]
        shown = [rest[0] if rest[0] or len(rest) > 1 else "*"]
        shown += [rest[1] if len(rest) > 1 else "*", rest[2] if len(rest) > 2 else "*"]
        shown.append(":".join(rest[3:]) if len(rest) > 3 else "*")
        return f'Partition "{partition}" is not valid for resource "arn:{partition}:{":".join(shown)}".'
    if len(parts) < 3:
        return "Resource vendor must be fully qualified and cannot contain regexes."
    service, region = parts[2], parts[3] if len(parts) > 3 else ""
    relative = ":".join(parts[5:])
    if service == "iam" and region:
        return f"IAM resource {resource} cannot contain region information."
    if service == "s3" and region and not relative.startswith("accesspoint/"):
        return f"Resource {resource} can not contain region information."
    if service == "iam" and relative != "*" and not relative.startswith(_IAM_PATHS):
        return f'IAM resource path must either be "*" or start with {", ".join(_IAM_PATHS)}.'
    return ""


def _check_action(action: str) -> None:
    parts = action.split(":")
    if len(parts) == 1 and action != "*":
        raise MalformedPolicy("Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.")
    if len(parts) > 2:
        raise MalformedPolicy("Actions/Condition can contain only one colon.")
    if parts[0] != "*" and not _VENDOR.match(parts[0]):
        raise MalformedPolicy(f"Vendor {parts[0]} is not valid")


def _check_kind(statements: list[Mapping[str, Any]], kind: PolicyKind) -> None:
    for statement in statements:
        if kind is PolicyKind.IDENTITY:
            key = "Resource" if "Resource" in statement else "NotResource"
            if statement.get(key) in (None, []):
                raise MalformedPolicy("Policy statement must contain resources.")
        elif kind is PolicyKind.TRUST:
            actions = _strings(statement.get("Action"))
            if not actions or any(a.lower() not in _TRUST_ACTIONS for a in actions):
                raise MalformedPolicy(
                    "Trust Policy statement actions can only be sts:AssumeRole, "
                    "sts:AssumeRoleWithSAML,  and sts:AssumeRoleWithWebIdentity"
                )
    if kind is PolicyKind.TRUST and any("Resource" in s or "NotResource" in s for s in statements):
        raise MalformedPolicy("Has prohibited field Resource.")
    for statement in statements:
        for key in ("Principal", "NotPrincipal"):
            element = statement.get(key)
            if isinstance(element, Mapping):
                for value in _strings(element.get("AWS")):
                    if value != "*" and not _ACCOUNT.match(value) and not _AWS_PRINCIPAL.match(value):
                        raise MalformedPolicy(f'Invalid principal in policy: "AWS":"{value}"')
