"""Resource policies: AddPermission, RemovePermission, GetPolicy on a function, version or alias.

Stored and returned with Lambda's statement shape; they are not enforced yet (that comes with
authentication): docs/deviations.md says so.
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


def _target(request: web.Request) -> tuple[str, str]:
    """The function and qualifier ("" for none) a policy request names; $LATEST cannot have one."""
    svc = services(request)
    ref = function_ref(request)
    qual = qualifier(request, ref)
    if qual == LATEST:
        raise InvalidParameterValueException("We currently do not support adding policies for $LATEST.")
    if qual is not None and qual not in svc.functions.get(ref.name).aliases:
        svc.functions.config(ref.name, qual)  # 404 unless it names a version
    svc.functions.get(ref.name, qual)
    return ref.name, qual or ""


def _principal(principal: str, account: str) -> object:
    if principal == "*":
        return "*"
    if re.fullmatch(r"\d{12}", principal):
        return {"AWS": f"arn:aws:iam::{principal}:root"}
    if principal.startswith("arn:"):
        return {"AWS": principal}
    return {"Service": principal}


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
    await svc.functions.change_policy(name, qual, adding(statement, body.string("RevisionId"), "GetPolicy"))
    return json_response({"Statement": json.dumps(statement)}, status=201)


async def remove_permission(request: web.Request) -> web.Response:
    svc = services(request)
    name, qual = _target(request)
    change = removing(request.match_info["statement_id"], request.query.get("RevisionId"), "GetPolicy")
    await svc.functions.change_policy(name, qual, change)
    return web.Response(status=204)


async def get_policy(request: web.Request) -> web.Response:
    svc = services(request)
    name, qual = _target(request)
    policy = svc.functions.get(name).policies.get(qual)
    if policy is None:
        raise ResourceNotFoundException("The resource you requested does not exist.")
    statements, revision_id = policy
    return json_response({"Policy": json.dumps(policy_document(statements)), "RevisionId": revision_id})

