"""Resource policies: AddPermission, RemovePermission, GetPolicy on a function, version or alias.

Stored and returned with Lambda's statement shape, and enforced under --auth iam: a function's
unqualified policy and its version's or alias's are evaluated with the caller's identity policies
(api/authorization.py).
"""

from __future__ import annotations

import json
import re

from aiohttp import web

from lambdalet.api.common import function_ref, json_body, json_response, qualifier, services
from lambdalet.errors import InvalidParameterValueException, ResourceNotFoundException
from lambdalet.model import LATEST
from lambdalet.policies import adding, policy_document, removing

STATEMENT_ID = re.compile(r"^([a-zA-Z0-9-_.]+)$")
ACTION = re.compile(r"^(lambda:[*]|lambda:[a-zA-Z]+|[*])$")


def routes() -> list[web.RouteDef]:
    base = "/2015-03-31/functions/{function_name}/policy"
    return [web.post(base, add_permission), web.get(base, get_policy),
            web.delete(base + "/{statement_id}", remove_permission)]


def _target(request: web.Request, missing_function: str | None = None) -> tuple[str, str]:
    """The function and qualifier ("" for none) a policy request names; $LATEST cannot have one.
    A function that does not exist is answered with `missing_function` when given (each operation
    has its own words on AWS), else with "Function not found"."""
    svc = services(request)
    ref = function_ref(request)
    qual = qualifier(request, ref)
    if qual == LATEST:
        raise InvalidParameterValueException("We currently do not support adding policies for $LATEST.")
    if missing_function is not None and not svc.functions.exists(ref.name):
        raise ResourceNotFoundException(missing_function.format(arn=svc.arns.function(ref.name)))
    if qual is not None:
        svc.functions.require_qualifier(ref.name, qual)
    svc.functions.get(ref.name)
    return ref.name, qual or ""


#: Service principals are AWS's (and Alexa's) domains; anything else AWS refuses.
SERVICE_PRINCIPAL = re.compile(r"^[a-z0-9][a-z0-9.-]*\.(amazonaws\.com|amazonaws\.com\.cn|amazon\.com)$")


def _principal(principal: str, account: str) -> object:
    if principal == "*":
        return "*"
    if re.fullmatch(r"\d{12}", principal):
        return {"AWS": f"arn:aws:iam::{principal}:root"}
    if principal.startswith("arn:"):
        return {"AWS": principal}
    if not SERVICE_PRINCIPAL.match(principal):
        raise InvalidParameterValueException(
            "The provided principal was invalid. Please check the principal and try again.")
    return {"Service": principal}


def _policy_revision(svc, name: str, qual: str, given: str | None) -> str | None:
    """The RevisionId precondition left to check against the policy's own. On AWS a policy's
    RevisionId is its function's, version's or alias's, so the RevisionId GetFunction or GetAlias
    answered is met too (None: nothing left to check)."""
    if given is None:
        return None
    function = svc.functions.get(name)
    if qual in function.aliases:
        current = function.aliases[qual].revision_id
    else:
        current = function.versions[qual].revision_id if qual else function.latest.revision_id
    return None if given == current else given


async def add_permission(request: web.Request) -> web.Response:
    svc = services(request)
    name, qual = _target(request)
    body = await json_body(request)
    sid = body.string("StatementId", required=True, max_len=100, pattern=STATEMENT_ID)
    statement: dict = {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": _principal(body.string("Principal", required=True), svc.arns.account),
        "Action": body.string("Action", required=True, pattern=ACTION),
        "Resource": svc.arns.function(name, qual or None),
    }
    conditions: dict[str, dict[str, str]] = {}
    for member, operator, key in (("SourceArn", "ArnLike", "AWS:SourceArn"),
                                  ("SourceAccount", "StringEquals", "AWS:SourceAccount"),
                                  ("PrincipalOrgID", "StringEquals", "aws:PrincipalOrgID"),
                                  ("EventSourceToken", "StringEquals", "lambda:EventSourceToken"),
                                  ("FunctionUrlAuthType", "StringEquals", "lambda:FunctionUrlAuthType")):
        value = body.string(member)
        if value is not None:
            conditions.setdefault(operator, {})[key] = value
    if conditions:
        statement["Condition"] = conditions
    revision = _policy_revision(svc, name, qual, body.string("RevisionId"))
    await svc.functions.change_policy(name, qual, adding(statement, revision, "GetPolicy"))
    return json_response({"Statement": json.dumps(statement)}, status=201)


async def remove_permission(request: web.Request) -> web.Response:
    svc = services(request)
    name, qual = _target(request, missing_function="No policy found for: {arn}")
    if qual not in svc.functions.get(name).policies:
        raise ResourceNotFoundException("No policy is associated with the given resource.")
    revision = _policy_revision(svc, name, qual, request.query.get("RevisionId"))
    change = removing(request.match_info["statement_id"], revision, "GetPolicy")
    await svc.functions.change_policy(name, qual, change)
    return web.Response(status=204)


async def get_policy(request: web.Request) -> web.Response:
    svc = services(request)
    try:
        name, qual = _target(request)
    except ResourceNotFoundException:  # GetPolicy says no more than this, whatever is missing
        raise ResourceNotFoundException("The resource you requested does not exist.") from None
    policy = svc.functions.get(name).policies.get(qual)
    if policy is None:
        raise ResourceNotFoundException("The resource you requested does not exist.")
    statements, revision_id = policy
    return json_response({"Policy": json.dumps(policy_document(statements)), "RevisionId": revision_id})

