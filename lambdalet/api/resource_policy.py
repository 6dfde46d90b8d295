"""Generic resource policies (2026 API): PutResourcePolicy, GetResourcePolicy, DeleteResourcePolicy.

The resource is named by ARN: a function, or one of its versions or aliases. It is the same policy
AddPermission, RemovePermission and GetPolicy work on (`policies` rows, the registry's memory), so
a statement added either way is seen both ways, under one RevisionId, and enforced the same way
under --auth iam (api/authorization.py).
"""

from __future__ import annotations

import json
from urllib.parse import unquote

from aiohttp import web

from lambdalet.api.common import json_body, json_response, services
from lambdalet.errors import InvalidParameterValueException, PolicyLengthExceededException, ResourceNotFoundException
from lambdalet.model import LATEST, parse_function_name
from lambdalet.policies import POLICY_LIMIT, deleting, policy_document, replacing

READ_WITH = "GetResourcePolicy"


def routes() -> list[web.RouteDef]:
    path = "/2026-07-09/resource-policy/{resource_arn:.+}"
    return [web.put(path, put_resource_policy), web.get(path, get_resource_policy),
            web.delete(path, delete_resource_policy)]


def _target(request: web.Request) -> tuple[str, str]:
    """(function, qualifier or "") the ResourceArn names; each part must exist."""
    svc = services(request)
    raw = unquote(request.match_info["resource_arn"])
    parts = raw.split(":")
    if len(parts) < 6 or parts[5].startswith("runtime/"):
        raise InvalidParameterValueException(
            f"Resource policies of {raw} are not supported by this Lambdalet server: only functions, their "
            "versions and their aliases have them.")
    ref = parse_function_name(raw)
    if (ref.account, ref.region) != (svc.arns.account, svc.arns.region):
        raise ResourceNotFoundException(f"Function not found: {raw}")
    function = svc.functions.get(ref.name)
    qual = ref.qualifier
    if qual == LATEST:
        raise InvalidParameterValueException("We currently do not support adding policies for $LATEST.")
    if qual is not None and qual not in function.aliases:
        svc.functions.config(ref.name, qual)  # 404 unless it names a version
    return ref.name, qual or ""


def _statements(raw: str) -> list[dict]:
    """The statements of a policy document, with IAM's basic shape checked."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidParameterValueException("The policy is not valid JSON.") from None
    if not isinstance(document, dict):
        raise InvalidParameterValueException("The policy must be a JSON object.")
    statements = document.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise InvalidParameterValueException("The policy must have a non-empty Statement.")
    sids = set()
    for statement in statements:
        if not isinstance(statement, dict):
            raise InvalidParameterValueException("Each statement of the policy must be a JSON object.")
        if statement.get("Effect") not in ("Allow", "Deny"):
            raise InvalidParameterValueException("Each statement's Effect must be Allow or Deny.")
        if "Action" not in statement and "NotAction" not in statement:
            raise InvalidParameterValueException("Each statement must have an Action.")
        sid = statement.get("Sid")
        if sid is not None:
            if sid in sids:
                raise InvalidParameterValueException(f"The statement id ({sid}) is used more than once.")
            sids.add(sid)
    return statements


async def put_resource_policy(request: web.Request) -> web.Response:
    svc = services(request)
    name, qual = _target(request)
    body = await json_body(request)
    raw = body.string("Policy", required=True)
    if not raw:
        raise InvalidParameterValueException("The policy must not be empty.")
    statements = _statements(raw)
    if len(json.dumps(policy_document(statements))) > POLICY_LIMIT:
        raise PolicyLengthExceededException("The final policy size is bigger than the limit.")
    updated, revision_id = await svc.functions.change_policy(
        name, qual, replacing(statements, body.string("RevisionId"), READ_WITH))
    return json_response({"Policy": json.dumps(policy_document(updated)), "RevisionId": revision_id})


async def get_resource_policy(request: web.Request) -> web.Response:
    svc = services(request)
    name, qual = _target(request)
    policy = svc.functions.get(name).policies.get(qual)
    if policy is None:
        raise ResourceNotFoundException("The resource you requested does not exist.")
    statements, revision_id = policy
    return json_response({"Policy": json.dumps(policy_document(statements)), "RevisionId": revision_id})


async def delete_resource_policy(request: web.Request) -> web.Response:
    svc = services(request)
    name, qual = _target(request)
    await svc.functions.change_policy(name, qual, deleting(request.query.get("RevisionId"), READ_WITH))
    return web.Response(status=204)
