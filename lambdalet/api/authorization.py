"""What an authenticated caller may do: AWS's policy evaluation on every request under `--auth iam`.

Each request needs one permission (`api/permissions.py`: an action on a resource, with the
request's condition keys). The caller's identity policies (`auth/identities.py`, compiled once and
cached) and the resource's policy — a function's (its unqualified policy and that of the version
or alias named), a layer version's, or a role's trust policy for `sts:AssumeRole` — are evaluated
by `iam/evaluation.py`: an explicit deny wins; in the caller's own account an identity or a
resource policy may allow; from another account both must. A refusal is 403
`AccessDeniedException` with AWS's message ("User: arn:… is not authorized to perform: … on
resource: … because no identity-based policy allows the … action").

The Lambda API is authorised here, as middleware after authentication and parameter validation
(AWS answers a malformed request with its ValidationException before asking IAM); CloudWatch
Logs, STS and IAM, whose requests name their operation in the body, ask `require` themselves.
Compiled resource policies are kept by their RevisionId, so the invoke path parses nothing.
"""

from __future__ import annotations

import json
from typing import Callable, Iterator, Mapping

from aiohttp import web

from lambdalet import console
from lambdalet.api import other_accounts
from lambdalet.api.authentication import SCHEDULER_PREFIXES, caller
from lambdalet.api.common import lambda_body, services
from lambdalet.api.errors import Handler
from lambdalet.api.model_params import operation_and_params
from lambdalet.api.permissions import BODY_NEEDED, EVENT_SOURCE_MAPPING, Permission, lambda_permission
from lambdalet.auth.identities import Caller
from lambdalet.errors import AccessDeniedException
from lambdalet.iam.documents import MalformedPolicy, Policy, PolicyKind, compile_policy
from lambdalet.iam.evaluation import (
    AuthorizationRequest, Decision, Principal, access_denied_message, authorize, request_context,
)
from lambdalet.model import Arns
from lambdalet.placement import client_ip
from lambdalet.policies import policy_document

LAMBDA_PREFIX = "/20"  # every Lambda API path starts with its version date
#: The caller of a `NONE` function URL: no account, no service; only a policy for `*` allows it.
ANONYMOUS = Principal(arn="", account="")
#: Compiled resource policies kept at once (by function, qualifier and RevisionIds).
MAX_CACHED_POLICIES = 4096
#: Remembered allowances (Decisions) and body-less requests' permissions.
MAX_CACHED_DECISIONS = 4096


class ResourcePolicies:
    """Compiled resource policies, by the revision of the statements they were compiled from."""

    def __init__(self) -> None:
        self._compiled: dict[tuple, Policy | None] = {}

    def compiled(self, key: tuple, statements: list[dict]) -> Policy | None:
        if key in self._compiled:
            return self._compiled[key]
        try:
            policy = compile_policy(policy_document(statements), PolicyKind.RESOURCE) if statements else None
        except MalformedPolicy:
            policy = None  # Lambda built it; one it cannot read grants nothing
        if len(self._compiled) >= MAX_CACHED_POLICIES:
            self._compiled.clear()
        self._compiled[key] = policy
        return policy


class Decisions:
    """Allowances that read no condition key, by principal, action and resource, each with the
    identity and resource policies it was decided under: the invoke path asks the same question
    again and again, and the answer holds while those compiled policies are the ones in force
    (an IAM change or a new policy revision compiles new ones, so a stale entry cannot match)."""

    def __init__(self) -> None:
        self._allowed: dict[tuple[str, str, str, str, str], tuple[tuple[Policy, ...], Policy | None]] = {}

    @staticmethod
    def _key(who: Caller, permission: Permission) -> tuple[str, str, str, str, str]:
        return who.arn, who.user_id, permission.action, permission.resource, permission.resource_account

    def allowed(self, who: Caller, permission: Permission, identity_policies: tuple[Policy, ...],
                resource_policy: Policy | None) -> bool:
        found = self._allowed.get(self._key(who, permission))
        return found is not None and found[0] is identity_policies and found[1] is resource_policy

    def remember(self, who: Caller, permission: Permission, identity_policies: tuple[Policy, ...],
                 resource_policy: Policy | None) -> None:
        if len(self._allowed) >= MAX_CACHED_DECISIONS:
            self._allowed.clear()
        self._allowed[self._key(who, permission)] = (identity_policies, resource_policy)


class LazyContext(Mapping[str, object]):
    """A request's condition keys, built the first time a condition or policy variable reads one:
    most policies have neither, and the invoke path then pays nothing for the clock and peer."""

    def __init__(self, build: Callable[[], dict[str, object]]) -> None:
        self._build: Callable[[], dict[str, object]] | None = build
        self._values: dict[str, object] = {}

    def _built(self) -> dict[str, object]:
        if self._build is not None:
            self._values, self._build = self._build(), None
        return self._values

    def __getitem__(self, key: str) -> object:
        return self._built()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())


def condition_context(request: web.Request, permission: Permission) -> dict[str, object]:
    """The request's global condition keys beside its Lambda ones (the principal's own keys,
    aws:PrincipalArn and the like, the evaluation derives from the Principal)."""
    return request_context(source_ip=client_ip(request, services(request).node_key),
                           secure_transport=request.secure,
                           **{"aws:RequestedRegion": services(request).arns.region,
                              "aws:ResourceAccount": permission.resource_account}, **permission.context)


def decide(request: web.Request, who: Caller, permission: Permission, identity_policies: tuple[Policy, ...],
           resource_policy: Policy | None) -> tuple[Decision, AuthorizationRequest]:
    ask = AuthorizationRequest(who.principal, permission.action, permission.resource, permission.resource_account,
                               LazyContext(lambda: condition_context(request, permission)))
    return authorize(ask, identity_policies, resource_policy), ask


def function_policy(request: web.Request, function: tuple[str, str] | None) -> Policy | None:
    """The resource policy of a function: its unqualified statements and those of the qualifier."""
    if function is None:
        return None
    svc = services(request)
    name, qual = function
    if not svc.functions.exists(name):
        return None
    policies = svc.functions.get(name).policies
    unqualified = policies.get("", ([], ""))
    qualified = policies.get(qual, ([], "")) if qual else ([], "")
    if not unqualified[0] and not qualified[0]:
        return None
    cache: ResourcePolicies = svc.resource_policies
    return cache.compiled((name, qual, unqualified[1], qualified[1]), unqualified[0] + qualified[0])


def layer_policy(request: web.Request, layer: tuple[str, int]) -> Policy | None:
    """A layer version's permissions (AddLayerVersionPermission), for callers of other accounts."""
    svc = services(request)
    found = svc.layers.layer(layer[0])
    statements, revision = found.policies.get(layer[1], ([], "")) if found is not None else ([], "")
    if not statements:
        return None
    cache: ResourcePolicies = svc.resource_policies
    return cache.compiled(("layer", *layer, revision), statements)


async def require(request: web.Request, permission: Permission, resource_policy: Policy | None = None) -> None:
    """Raise AccessDeniedException unless the request's caller has `permission`."""
    who = caller(request)
    if who is None:  # --auth open
        return
    if resource_policy is None and permission.layer is not None:
        await services(request).layers.refresh(request)  # as the database has it: another node may have changed it
        resource_policy = layer_policy(request, permission.layer)
    elif resource_policy is None:
        resource_policy = function_policy(request, permission.function)
    if resource_policy is None and who.kind == "root" and permission.resource_account == who.account_id:
        return  # a root in its own account, and no resource policy that could deny it: what evaluation answers
    svc = services(request)
    policies = await svc.identities.identity_policies(who)
    decisions: Decisions = svc.decisions
    if decisions.allowed(who, permission, policies, resource_policy):
        return
    decision, ask = decide(request, who, permission, policies, resource_policy)
    if not decision.allowed:
        raise AccessDeniedException(access_denied_message(ask, decision))
    if not ask.context_read:
        decisions.remember(who, permission, policies, resource_policy)


async def _lambda_request_permission(request: web.Request) -> tuple[str, Permission] | None:
    """The Lambda operation a request calls and the permission it needs. For an operation that
    reads neither its body nor a mapping, that follows from the method, the path with its query
    and the caller's account alone, and is remembered: Invoke's is worked out once per function."""
    who, svc = caller(request), services(request)
    assert who is not None
    key = (request.method, request.raw_path, who.account_id, svc.arns.region)
    known = _PERMISSIONS.get(key)
    if known is not None:
        return known
    found = operation_and_params(request)
    if found is None:
        return None
    operation, params = found
    body = await lambda_body(request) if operation in BODY_NEEDED else None
    mapping_function = await _mapping_function_arn(request, params) if operation in EVENT_SOURCE_MAPPING else None
    # a bare name is the caller's own account's: for another account of the accounts file, not this server's
    arns = svc.arns if who.account_id == svc.arns.account else Arns(who.account_id, svc.arns.region)
    answer = operation, lambda_permission(operation, params, request.query, body, arns, mapping_function)
    if body is None and operation not in EVENT_SOURCE_MAPPING:
        if len(_PERMISSIONS) >= MAX_CACHED_DECISIONS:
            _PERMISSIONS.clear()
        _PERMISSIONS[key] = answer
    return answer


#: Body-less requests' permissions by method, path with query, caller's account and server's region.
_PERMISSIONS: dict[tuple[str, str, str, str], tuple[str, Permission]] = {}


async def _mapping_function_arn(request: web.Request, params: Mapping[str, str]) -> str | None:
    """The function of the event source mapping a request names (lambda:FunctionArn), if it exists."""
    mapping = await services(request).mappings.get(params.get("UUID", ""))
    return services(request).arns.function(mapping.function_name) if mapping is not None else None


def scheduler_permission(request: web.Request, body: Mapping[str, object], account: str) -> Permission:
    """EventBridge Scheduler's actions: `scheduler:CreateSchedule` on its schedule's ARN in `account`, …"""
    arns = Arns(account, services(request).arns.region)
    base = f"arn:aws:scheduler:{arns.region}:{arns.account}"
    verbs = {"POST": "Create", "GET": "Get", "PUT": "Update", "DELETE": "Delete"}
    name = request.match_info.get("name")
    if request.path.startswith("/schedule-groups"):
        if name is None:
            return Permission("scheduler:ListScheduleGroups", "*", arns.account)
        return Permission(f"scheduler:{verbs[request.method]}ScheduleGroup", f"{base}:schedule-group/{name}",
                          arns.account)
    if name is None:
        return Permission("scheduler:ListSchedules", "*", arns.account)
    group = request.query.get("groupName") or str(body.get("GroupName") or "default")
    return Permission(f"scheduler:{verbs[request.method]}Schedule", f"{base}:schedule/{group}/{name}", arns.account)


def console_permission(request: web.Request) -> Permission:
    """The console's own data: reading a function's charts and saved events needs
    `lambda:GetFunction` on it, changing its saved events `lambda:UpdateFunctionConfiguration`."""
    arns = services(request).arns
    name = request.match_info.get("function", "")
    action = "lambda:GetFunction" if request.method == "GET" else "lambda:UpdateFunctionConfiguration"
    return Permission(action, arns.function(name), arns.account, function=(name, ""))


@web.middleware
async def authorize_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Installed under `--auth iam` only, after `authenticate`: Lambda, Scheduler and the console's data."""
    if caller(request) is None:  # not authenticated: a path the authenticator leaves open
        return await handler(request)
    path = request.path
    if path.startswith(LAMBDA_PREFIX):
        found = await _lambda_request_permission(request)
        if found is not None:
            operation, permission = found
            home = services(request).arns.account
            if permission.resource_account != home:
                return other_accounts.answer(operation, permission, home)
            await require(request, permission)
    elif path.startswith(SCHEDULER_PREFIXES):
        raw = await lambda_body(request) if request.method in ("POST", "PUT") else b""
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, RecursionError):
            body = {}
        who = caller(request)
        assert who is not None
        await require(request, scheduler_permission(request, body if isinstance(body, dict) else {}, who.account_id))
        home = services(request).arns.account
        if who.account_id != home:
            return other_accounts.scheduler_answer(request, who.account_id, home)
    elif path.startswith(console.DATA_PREFIX) and "function" in request.match_info:
        await require(request, console_permission(request))
    return await handler(request)


async def url_allowed(request: web.Request, name: str, qual: str, who: Caller | None, auth_type: str) -> bool:
    """Whether a function URL may be invoked (AWS's model since October 2025): both
    `lambda:InvokeFunctionUrl` and `lambda:InvokeFunction` on the function (or its alias), with
    `lambda:FunctionUrlAuthType` set. A `NONE` URL's caller is anonymous: only a resource-policy
    statement for `*` can allow it."""
    arns = services(request).arns
    resource = arns.function(name, qual or None)
    context = {"lambda:functionurlauthtype": auth_type}
    resource_policy = function_policy(request, (name, qual))
    for action in ("lambda:InvokeFunctionUrl", "lambda:InvokeFunction"):
        permission = Permission(action, resource, arns.account, context, (name, qual))
        if who is None:
            ask = AuthorizationRequest(ANONYMOUS, action, resource, arns.account, context)
            if not authorize(ask, (), resource_policy).allowed:
                return False
            continue
        policies = await services(request).identities.identity_policies(who)
        if not decide(request, who, permission, policies, resource_policy)[0].allowed:
            return False
    return True
