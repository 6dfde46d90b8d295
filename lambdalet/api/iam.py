"""The IAM subset on the server's port: users, access keys, roles, inline and managed policies.

boto3's `iam` client and `aws iam` (with `--endpoint-url`) send IAM's query protocol: a
form-encoded `POST /` with `Version=2010-05-08` (STS shares the path with its own Version), read
an XML answer in IAM's namespace. Each action's parameters are checked against botocore's IAM
model (`ValidationError`, in AWS's words), then against IAM's own rules; what is kept lives in the
database (`store/iam.py`), in the caller's account (`--auth iam`) or the server's (`--auth open`).
Policy documents are checked by `check_policy_document` alone, one seam for a full validator.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import parse_qsl, quote
from xml.sax.saxutils import escape

from aiohttp import web

from lambdalet import service_model
from lambdalet.api.authentication import Caller, caller
from lambdalet.api.common import read_body, services
from lambdalet.api.authorization import require
from lambdalet.api.permissions import iam_permission
from lambdalet.errors import AccessDeniedException
from lambdalet.iam.documents import MalformedPolicy, PolicyKind, compile_policy
from lambdalet.api.query_protocol import IAM_NAMESPACE, IAM_VERSION, error_response, result_response
from lambdalet.iam_errors import (
    IamError, InvalidInput, LimitExceeded, MalformedPolicyDocument, NoSuchEntity, ValidationError, no_such_role,
    no_such_user, policy_not_found,
)
from lambdalet.store.iam import AccessKeyRecord, IamStore, PolicyRecord, RoleRecord, UserRecord

log = logging.getLogger(__name__)
ID_ALPHABET = string.ascii_uppercase + string.digits
SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"
#: IAM's quotas on policy sizes, in characters not counting white space.
USER_INLINE_QUOTA, ROLE_INLINE_QUOTA, MANAGED_QUOTA, TRUST_QUOTA = 2048, 10240, 6144, 2048
DEFAULT_MAX_ITEMS = 100
POLICY_ARN = re.compile(r"arn:aws:iam::(\d{12}|aws):policy(/.*)?/([^/]+)")


def iam_id(prefix: str, length: int = 17) -> str:
    """An id as IAM makes them: AIDA/AROA/ANPA and 17 upper-case letters and digits (AKIA: 16)."""
    return prefix + "".join(secrets.choice(ID_ALPHABET) for _ in range(length))


def now() -> str:
    """IAM's CreateDate: ISO 8601 to the second, in UTC."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- policy documents ---------------------------------------------------------------------------


def check_policy_document(text: str, kind: str) -> None:
    """Is `text` a policy document IAM would take as a `kind` ("identity" or "trust") policy? IAM's
    grammar (`iam/documents.py`, the same compiler authorisation uses), and a trust policy within
    its quota. Raises MalformedPolicyDocument or LimitExceeded."""
    try:
        compile_policy(text, PolicyKind.TRUST if kind == "trust" else PolicyKind.IDENTITY)
    except MalformedPolicy as exc:
        raise MalformedPolicyDocument(exc.message) from None
    if kind == "trust" and policy_size(text) > TRUST_QUOTA:
        raise LimitExceeded(f"Cannot exceed quota for ACLSizePerRole: {TRUST_QUOTA}")


def policy_size(text: str) -> int:
    """A document's size as IAM counts it against its quotas: white space does not count."""
    return sum(1 for c in text if not c.isspace())


def inline_quota(kind: str, owner: str) -> Callable[[list[str]], None]:
    """The check of a user's (2,048) or role's (10,240) inline policies, all of them together."""
    limit = USER_INLINE_QUOTA if kind == "user" else ROLE_INLINE_QUOTA

    def check(documents: list[str]) -> None:
        if sum(map(policy_size, documents)) > limit:
            raise LimitExceeded(f"Maximum policy size of {limit} bytes exceeded for {kind} {owner}")
    return check


# -- requests -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """One request: the account it acts in, who sent it (None under --auth open), its parameters."""

    account_id: str
    who: Caller | None
    store: IamStore
    params: dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.params.get(name)

    def user_name(self) -> str | None:
        """UserName, else the calling user's own name (None for the root, which is not an IAM user)."""
        if self["UserName"] is not None:
            return self["UserName"]
        if self.who is not None and ":user/" in self.who.arn:
            return self.who.arn.rsplit("/", 1)[1]
        return None

    def required_user_name(self) -> str:
        name = self.user_name()
        if name is None:
            raise InvalidInput("The root's access keys are those of the accounts file, not IAM's: name a UserName.")
        return name


#: Members IAM takes that this server does not apply: refused, never kept without effect.
UNSUPPORTED_MEMBERS = frozenset({"Tags", "PermissionsBoundary"})


def parse_params(operation: str, form: dict[str, str]) -> dict[str, Any]:
    """The form's values of the operation's scalar members, typed as the model says, checked against
    its constraints (ValidationError, every broken one listed as AWS lists them)."""
    shape = service_model.input_shape("iam", operation)
    for key in form:
        member = key.split(".", 1)[0]
        if member in UNSUPPORTED_MEMBERS and member in shape.members:  # type: ignore[attr-defined]
            raise InvalidInput(f"{member} is not supported by this server's IAM (docs/security.md): it would be "
                               "stored and have no effect, so the request is refused.")
    params: dict[str, Any] = {}
    found: list[str] = []
    for name, member in shape.members.items():  # type: ignore[attr-defined]
        if name not in form:
            continue
        raw = form[name]
        if member.type_name in ("integer", "long"):
            try:
                params[name] = int(raw)
            except ValueError:
                found.append(service_model.problem(raw, name[:1].lower() + name[1:], "be an integer"))
        elif member.type_name == "boolean":
            params[name] = raw.lower() == "true"
        elif member.type_name == "string":
            params[name] = raw
    found.extend(service_model.problems(shape, params, ""))
    if found:
        raise ValidationError(service_model.message(found))
    return params


def page(ctx: Context, items: list[Any], key: Callable[[Any], str], tag: str, render: Callable[[Any], str]) -> str:
    """One page of a List action: `<tag>` members from Marker on, MaxItems of them, IsTruncated, Marker."""
    marker, max_items = ctx["Marker"], ctx["MaxItems"] or DEFAULT_MAX_ITEMS
    if marker is not None:
        items = [item for item in items if key(item) >= marker]
    shown, rest = items[:max_items], items[max_items:]
    xml = f"<{tag}>{''.join(f'<member>{render(item)}</member>' for item in shown)}</{tag}>"
    xml += f"<IsTruncated>{'true' if rest else 'false'}</IsTruncated>"
    return xml + (f"<Marker>{escape(key(rest[0]))}</Marker>" if rest else "")


def el(tag: str, value: object) -> str:
    if value is None:
        return ""
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return f"<{tag}>{escape(text)}</{tag}>"


def document_xml(tag: str, text: str) -> str:
    """IAM answers a policy document URL-encoded (boto3 decodes it into a dict)."""
    return el(tag, quote(text, safe=""))


def user_xml(user: UserRecord) -> str:
    return (el("Path", user.path) + el("UserName", user.name) + el("UserId", user.user_id) + el("Arn", user.arn)
            + el("CreateDate", user.created))


def role_xml(role: RoleRecord) -> str:
    return (el("Path", role.path) + el("RoleName", role.name) + el("RoleId", role.role_id) + el("Arn", role.arn)
            + el("CreateDate", role.created) + document_xml("AssumeRolePolicyDocument", role.assume_role_policy_document)
            + el("Description", role.description) + el("MaxSessionDuration", role.max_session_duration))


def policy_xml(policy: PolicyRecord, description: bool = True) -> str:
    return (el("PolicyName", policy.name) + el("PolicyId", policy.policy_id) + el("Arn", policy.arn)
            + el("Path", policy.path) + el("DefaultVersionId", policy.default_version_id)
            + el("AttachmentCount", policy.attachment_count) + el("PermissionsBoundaryUsageCount", 0)
            + el("IsAttachable", True) + (el("Description", policy.description) if description else "")
            + el("CreateDate", policy.created) + el("UpdateDate", policy.updated))


def key_xml(key: AccessKeyRecord, secret: bool = False) -> str:
    return (el("UserName", key.user_name) + el("AccessKeyId", key.access_key_id) + el("Status", key.status)
            + (el("SecretAccessKey", key.secret_access_key) if secret else "") + el("CreateDate", key.created))


def attached_xml(policy: PolicyRecord) -> str:
    return el("PolicyName", policy.name) + el("PolicyArn", policy.arn)


def policy_arn(ctx: Context) -> str:
    """PolicyArn, checked to be a managed policy's ARN (one of another account, or AWS's, which this
    server does not keep, is then not found by the store)."""
    arn = ctx["PolicyArn"]
    if POLICY_ARN.fullmatch(arn) is None:
        raise InvalidInput(f"ARN {arn} is not valid.")
    return arn


# -- users and access keys -----------------------------------------------------------------------


def create_user(ctx: Context) -> str:
    user = ctx.store.create_user(ctx.account_id, ctx["UserName"], ctx["Path"] or "/", iam_id("AIDA"), now())
    return f"<User>{user_xml(user)}</User>"


def get_user(ctx: Context) -> str:
    name = ctx.user_name()
    if name is None:  # the root: IAM answers the account itself
        return (f"<User>{el('UserId', ctx.account_id)}{el('Arn', f'arn:aws:iam::{ctx.account_id}:root')}"
                f"{el('CreateDate', now())}</User>")
    user = ctx.store.user(ctx.account_id, name)
    if user is None:
        raise no_such_user(name)
    return f"<User>{user_xml(user)}</User>"


def list_users(ctx: Context) -> str:
    users = ctx.store.users(ctx.account_id, ctx["PathPrefix"] or "/")
    return page(ctx, users, lambda u: u.name.lower(), "Users", user_xml)


def update_user(ctx: Context) -> None:
    ctx.store.update_user(ctx.account_id, ctx["UserName"], ctx["NewUserName"], ctx["NewPath"])


def delete_user(ctx: Context) -> None:
    ctx.store.delete_user(ctx.account_id, ctx["UserName"])


def create_access_key(ctx: Context) -> str:
    secret = "".join(secrets.choice(SECRET_ALPHABET) for _ in range(40))
    key = ctx.store.create_access_key(ctx.account_id, ctx.required_user_name(), iam_id("AKIA", 16), secret, now())
    return f"<AccessKey>{key_xml(key, secret=True)}</AccessKey>"


def list_access_keys(ctx: Context) -> str:
    name = ctx.user_name()
    keys = [] if name is None else ctx.store.access_keys(ctx.account_id, name)
    return page(ctx, keys, lambda k: k.access_key_id, "AccessKeyMetadata", key_xml)


def update_access_key(ctx: Context) -> None:
    if ctx["Status"] not in ("Active", "Inactive"):
        raise ValidationError(service_model.message([service_model.problem(
            ctx["Status"], "status", "satisfy enum value set: [Active, Inactive]")]))
    ctx.store.update_access_key(ctx.account_id, ctx.required_user_name(), ctx["AccessKeyId"], ctx["Status"])


def delete_access_key(ctx: Context) -> None:
    ctx.store.delete_access_key(ctx.account_id, ctx.required_user_name(), ctx["AccessKeyId"])


# -- roles ----------------------------------------------------------------------------------------


def create_role(ctx: Context) -> str:
    document = ctx["AssumeRolePolicyDocument"]
    check_policy_document(document, "trust")
    role = RoleRecord(ctx.account_id, ctx["RoleName"], iam_id("AROA"), ctx["Path"] or "/", now(), document,
                      ctx["Description"], ctx["MaxSessionDuration"] or 3600)
    ctx.store.create_role(role)
    return f"<Role>{role_xml(role)}</Role>"


def get_role(ctx: Context) -> str:
    role = ctx.store.role(ctx.account_id, ctx["RoleName"])
    if role is None:
        raise no_such_role(ctx["RoleName"])
    return f"<Role>{role_xml(role)}<RoleLastUsed/></Role>"


def list_roles(ctx: Context) -> str:
    roles = ctx.store.roles(ctx.account_id, ctx["PathPrefix"] or "/")
    return page(ctx, roles, lambda r: r.name.lower(), "Roles", role_xml)


def update_assume_role_policy(ctx: Context) -> None:
    check_policy_document(ctx["PolicyDocument"], "trust")
    ctx.store.update_assume_role_policy(ctx.account_id, ctx["RoleName"], ctx["PolicyDocument"])


def delete_role(ctx: Context) -> None:
    ctx.store.delete_role(ctx.account_id, ctx["RoleName"])


# -- inline policies (users' and roles' alike) ----------------------------------------------------


def put_inline(kind: str) -> Callable[[Context], None]:
    owner_param = "UserName" if kind == "user" else "RoleName"

    def put(ctx: Context) -> None:
        check_policy_document(ctx["PolicyDocument"], "identity")
        owner = ctx[owner_param]
        ctx.store.put_inline_policy(kind, ctx.account_id, owner, ctx["PolicyName"], ctx["PolicyDocument"],
                                    inline_quota(kind, owner))
    return put


def get_inline(kind: str) -> Callable[[Context], str]:
    owner_param = "UserName" if kind == "user" else "RoleName"

    def get(ctx: Context) -> str:
        owner, name, document = ctx.store.inline_policy(kind, ctx.account_id, ctx[owner_param], ctx["PolicyName"])
        return el(owner_param, owner) + el("PolicyName", name) + document_xml("PolicyDocument", document)
    return get


def list_inline(kind: str) -> Callable[[Context], str]:
    owner_param = "UserName" if kind == "user" else "RoleName"

    def list_names(ctx: Context) -> str:
        names = ctx.store.inline_policy_names(kind, ctx.account_id, ctx[owner_param])
        return page(ctx, names, str.lower, "PolicyNames", escape)
    return list_names


def delete_inline(kind: str) -> Callable[[Context], None]:
    owner_param = "UserName" if kind == "user" else "RoleName"

    def remove(ctx: Context) -> None:
        ctx.store.delete_inline_policy(kind, ctx.account_id, ctx[owner_param], ctx["PolicyName"])
    return remove


# -- managed policies --------------------------------------------------------------------------------


def create_policy(ctx: Context) -> str:
    document = ctx["PolicyDocument"]
    check_policy_document(document, "identity")
    if policy_size(document) > MANAGED_QUOTA:
        raise LimitExceeded(f"Cannot exceed quota for PolicySize: {MANAGED_QUOTA}")
    created = now()
    policy = PolicyRecord(ctx.account_id, ctx["PolicyName"], iam_id("ANPA"), ctx["Path"] or "/",
                          ctx["Description"], document, "v1", created, created, 0)
    ctx.store.create_policy(policy)
    return f"<Policy>{policy_xml(policy, description=False)}</Policy>"


def _policy(ctx: Context) -> PolicyRecord:
    arn = policy_arn(ctx)
    policy = ctx.store.policy(ctx.account_id, arn)
    if policy is None:
        raise policy_not_found(arn)
    return policy


def get_policy(ctx: Context) -> str:
    return f"<Policy>{policy_xml(_policy(ctx))}</Policy>"


def get_policy_version(ctx: Context) -> str:
    policy = _policy(ctx)
    if ctx["VersionId"] != policy.default_version_id:
        raise NoSuchEntity(f"Policy {policy.arn} version {ctx['VersionId']} does not exist or is not attachable.")
    return (f"<PolicyVersion>{document_xml('Document', policy.document)}{el('VersionId', policy.default_version_id)}"
            f"{el('IsDefaultVersion', True)}{el('CreateDate', policy.created)}</PolicyVersion>")


def list_policies(ctx: Context) -> str:
    scope = ctx["Scope"] or "All"
    policies = [] if scope == "AWS" else ctx.store.policies(ctx.account_id, ctx["PathPrefix"] or "/",
                                                            bool(ctx["OnlyAttached"]))
    return page(ctx, policies, lambda p: p.name.lower(), "Policies", policy_xml)


def delete_policy(ctx: Context) -> None:
    ctx.store.delete_policy(ctx.account_id, policy_arn(ctx))


def attach(kind: str) -> Callable[[Context], None]:
    owner_param = "UserName" if kind == "user" else "RoleName"

    def attach_policy(ctx: Context) -> None:
        ctx.store.attach_policy(kind, ctx.account_id, ctx[owner_param], policy_arn(ctx))
    return attach_policy


def detach(kind: str) -> Callable[[Context], None]:
    owner_param = "UserName" if kind == "user" else "RoleName"

    def detach_policy(ctx: Context) -> None:
        ctx.store.detach_policy(kind, ctx.account_id, ctx[owner_param], policy_arn(ctx))
    return detach_policy


def list_attached(kind: str) -> Callable[[Context], str]:
    owner_param = "UserName" if kind == "user" else "RoleName"

    def list_policies(ctx: Context) -> str:
        policies = ctx.store.attached_policies(kind, ctx.account_id, ctx[owner_param], ctx["PathPrefix"] or "/")
        return page(ctx, policies, lambda p: p.name.lower(), "AttachedPolicies", attached_xml)
    return list_policies


ACTIONS: dict[str, Callable[[Context], str | None]] = {
    "CreateUser": create_user, "GetUser": get_user, "ListUsers": list_users, "UpdateUser": update_user,
    "DeleteUser": delete_user,
    "CreateAccessKey": create_access_key, "ListAccessKeys": list_access_keys,
    "UpdateAccessKey": update_access_key, "DeleteAccessKey": delete_access_key,
    "CreateRole": create_role, "GetRole": get_role, "ListRoles": list_roles, "DeleteRole": delete_role,
    "UpdateAssumeRolePolicy": update_assume_role_policy,
    "PutUserPolicy": put_inline("user"), "GetUserPolicy": get_inline("user"),
    "ListUserPolicies": list_inline("user"), "DeleteUserPolicy": delete_inline("user"),
    "PutRolePolicy": put_inline("role"), "GetRolePolicy": get_inline("role"),
    "ListRolePolicies": list_inline("role"), "DeleteRolePolicy": delete_inline("role"),
    "CreatePolicy": create_policy, "GetPolicy": get_policy, "GetPolicyVersion": get_policy_version,
    "ListPolicies": list_policies, "DeletePolicy": delete_policy,
    "AttachUserPolicy": attach("user"), "DetachUserPolicy": detach("user"),
    "ListAttachedUserPolicies": list_attached("user"),
    "AttachRolePolicy": attach("role"), "DetachRolePolicy": detach("role"),
    "ListAttachedRolePolicies": list_attached("role"),
}


def _error(status: int, code: str, message: str) -> web.Response:
    return error_response(status, code, message, IAM_NAMESPACE)


async def dispatch(request: web.Request) -> web.StreamResponse:
    """One IAM query-protocol request (its form's Version is IAM's: `server.query_or_json`)."""
    try:
        form = dict(parse_qsl((await read_body(request)).decode("utf-8", "replace"), keep_blank_values=True))
    except TimeoutError:
        response = _error(408, "RequestTimeout", "The request body was not received in time.")
        response.force_close()
        return response
    action = form.get("Action", "")
    handler = ACTIONS.get(action)
    if handler is None:
        return _error(400, "InvalidAction", f"Could not find operation {action} for version {IAM_VERSION}")
    svc = services(request)
    who = caller(request)
    account = who.account_id if who else svc.arns.account
    try:
        ctx = Context(account, who, svc.iam, parse_params(action, form))
        await require(request, iam_permission(action, form, account, who.arn if who and who.kind == "user" else None))
        result = await asyncio.to_thread(handler, ctx)
    except IamError as error:
        return _error(error.status, error.code, error.message)
    except AccessDeniedException as denied:
        return _error(403, "AccessDenied", denied.message)
    except Exception:  # a bug here must still answer in IAM's shape, and be seen in the log
        log.exception("IAM %s failed", action)
        return _error(500, "ServiceFailure", "The request processing has failed because of an unknown error.")
    finally:
        if not action.startswith(("Get", "List")):  # what authentication and authorisation cached may be stale
            svc.identities.changed()
    return result_response(action, result, IAM_NAMESPACE)
