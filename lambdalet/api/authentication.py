"""Who is calling: under `--auth iam` every request is authenticated by its SigV4 signature.

The signature is checked by `auth/sigv4.py` (botocore's canonicalisation) against the root access
keys of the server's account (`auth/accounts.py`). A request that passes carries its `Caller` for
the handlers (`caller(request)`); one that does not is answered with AWS's error in the shape of
the API it was sent to: Lambda's REST-JSON (`x-amzn-ErrorType`), CloudWatch Logs' JSON 1.1
(`__type`) or the query-protocol XML of STS and IAM (whose signatures name `sts` or `iam`,
as the form's `Version` says). Under `--auth open` (the default on loopback) this middleware is not installed at all,
so the hot path pays nothing, and `caller` answers the account's root.

Not authenticated, in either mode: code downloads (`/_lambdalet/code/<sha256>.zip`, whose
unguessable digest is the capability, as a presigned S3 URL is on AWS), `/metrics` and
`/_lambdalet/status` (for scrapers and probes), the console's static pages (`/console/`, and a
browser's `GET /`, which goes there), and function URLs, which check their own
(`url_requests.py`: `AWS_IAM` URLs call `authenticate_url`). The console's data
(`/_lambdalet/console/…`) is signed for `lambda`, as the API is. Node-to-node reads
(`/_lambdalet/peer/…`) are signed with the nodes' shared key instead (`node_auth.py`).

The keys are the accounts' root keys, IAM users' access keys and role sessions' temporary
credentials (`Authenticator`). What an authenticated caller may do is `api/authorization.py`'s
question. The accounts file may list several accounts: their root keys all authenticate here.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Callable
from pathlib import Path

from aiohttp import web

from lambdalet import console
from lambdalet.api.common import lambda_body, read_body, services
from lambdalet.api.errors import Handler
from lambdalet.api.query_protocol import IAM_NAMESPACE, IAM_VERSION, form_version, is_query_request
from lambdalet.api.query_protocol import error_response as query_error
from lambdalet.auth.accounts import ROOT_CREDENTIALS_FILE, Accounts, AccountsError, load_accounts
from lambdalet.auth.identities import Caller, Identities
from lambdalet.auth.sessions import SESSION_KEY_ID_PREFIX, SessionMinter, SessionTokenInvalid
from lambdalet.auth.sigv4 import SecretKey, SignatureRefused, credential_of, verify
from lambdalet.config import Settings
from lambdalet.errors import LambdaError

log = logging.getLogger(__name__)
CALLER = web.RequestKey("caller", object)
UNAUTHENTICATED_PREFIXES = ("/lambda-url/", "/_lambdalet/", "/metrics", "/console")
SCHEDULER_PREFIXES = ("/schedules", "/schedule-groups")
LOGS_TARGET_PREFIX = "Logs_20140328."
#: The query-protocol services (STS, IAM) name the same refusals without "Exception".
QUERY_ERROR_CODES = {"MissingAuthenticationTokenException": "MissingAuthenticationToken",
                     "IncompleteSignatureException": "IncompleteSignature",
                     "UnrecognizedClientException": "InvalidClientTokenId",
                     "InvalidSignatureException": "SignatureDoesNotMatch",
                     "ExpiredTokenException": "ExpiredToken"}


class Authenticator:
    """The access keys this server knows, each with the caller it authenticates: the accounts'
    root keys (in memory), IAM users' keys (`auth/identities.py`, cached) and the temporary
    credentials of role sessions (`auth/sessions.py`, checked without a lookup)."""

    def __init__(self, accounts: Accounts, minter: SessionMinter | None = None,
                 identities: Identities | None = None) -> None:
        self._roots: dict[str, tuple[SecretKey, Caller]] = {}
        for account in accounts.by_id.values():
            key = SecretKey(account.root_access_key_id, account.root_secret_access_key)
            self._roots[key.access_key_id] = (key, Caller(account.id, f"arn:aws:iam::{account.id}:root", account.id,
                                                          key.access_key_id))
        self.accounts = accounts
        self.minter = minter
        self.identities = identities

    async def _key(self, access_key_id: str, token: str | None) -> tuple[SecretKey, Caller] | None:
        root = self._roots.get(access_key_id)
        if root is not None:
            return root
        if token is not None and access_key_id.startswith(SESSION_KEY_ID_PREFIX) and self.minter is not None:
            try:
                session = self.minter.session_of(access_key_id, token)
            except SessionTokenInvalid:
                return None
            caller = Caller(session.account_id, session.arn, session.user_id, access_key_id, "assumed-role",
                            session.role_name, session.role_arn, session.session_name)
            return SecretKey(access_key_id, self.minter.secret_of(access_key_id), token, session.expires_at), caller
        if self.identities is None:
            return None
        record = await self.identities.access_key(access_key_id)
        if record is None or record.status != "Active":
            return None
        return (SecretKey(access_key_id, record.secret_access_key),
                Caller(record.account_id, record.user_arn, record.user_id, access_key_id, "user", record.user_name))

    async def authenticate(self, request: web.Request, body: bytes, service: str | tuple[str, ...]) -> Caller:
        """The caller who signed `request` for `service` (or one of several); raises SignatureRefused."""
        raw_path, _, raw_query = request.raw_path.partition("?")
        access_key_id, token = credential_of(request.headers, raw_query)
        found = await self._key(access_key_id, token) if access_key_id else None
        signature = verify(request.method, raw_path, raw_query, request.headers, body,
                           lambda key_id: found[0] if found is not None and key_id == access_key_id else None,
                           service=service)
        assert found is not None and signature.access_key_id == access_key_id
        return found[1]


def accounts_for(settings: Settings, data_dir: Path) -> Accounts | None:
    """The server's accounts under --auth iam (None under open), the root key shown in the log the
    one time it is generated. Raises AccountsError for keys or files it cannot use."""
    if settings.auth_mode != "iam":
        return None
    accounts = load_accounts(settings.account_id, data_dir,
                             Path(settings.accounts_file) if settings.accounts_file else None)
    if settings.account_id not in accounts.by_id:
        raise AccountsError(f"the accounts file lists {', '.join(accounts.by_id)} but not --account-id "
                            f"{settings.account_id}, the account whose functions this server keeps: list it too")
    if accounts.generated is not None:
        log.warning("Generated the root access key of account %s (shown this once; kept in %s, mode 0600):\n"
                    "  AWS_ACCESS_KEY_ID=%s\n  AWS_SECRET_ACCESS_KEY=%s", settings.account_id,
                    data_dir / ROOT_CREDENTIALS_FILE, accounts.generated.root_access_key_id,
                    accounts.generated.root_secret_access_key)
    log.info("--auth iam: every request must be signed, by the root access key of account %s (%s) or by "
             "an IAM user's or role session's", settings.account_id,
             accounts.by_id[settings.account_id].root_access_key_id)
    others = sorted(set(accounts.by_id) - {settings.account_id})
    if others:
        log.info("Other accounts (IAM users and roles of their own; they reach account %s's functions where its "
                 "resource policies allow): %s", settings.account_id, ", ".join(others))
    return accounts


def caller(request: web.Request) -> Caller | None:
    """Who sent `request` under `--auth iam`; None under `--auth open` (anyone is the root)."""
    return request.get(CALLER)  # type: ignore[return-value]


class _Refused(LambdaError):
    """A SignatureRefused in Lambda's error shape (status and type vary, so set per instance)."""


def _lambda_refusal(refused: SignatureRefused) -> LambdaError:
    error = _Refused(refused.message)
    error.status, error.error_type = refused.status, refused.error_type
    return error


def _logs_response(status: int, error_type: str, message: str) -> web.Response:
    return web.Response(status=status, text=json.dumps({"__type": error_type, "message": message}),
                        content_type="application/x-amz-json-1.1")


def _sts_response(status: int, error_type: str, message: str) -> web.Response:
    return query_error(status, QUERY_ERROR_CODES.get(error_type, error_type), message)


#: An API's refusal in its own shape: (status, error type, message) -> response.
Refuse = Callable[[int, str, str], web.Response]


def _iam_response(status: int, error_type: str, message: str) -> web.Response:
    return query_error(status, QUERY_ERROR_CODES.get(error_type, error_type), message, IAM_NAMESPACE)


def _query_service(body: bytes) -> tuple[str, Refuse]:
    """STS or IAM, by the form's Version: the service the credential scope must name, and its errors."""
    return ("iam", _iam_response) if form_version(body) == IAM_VERSION else ("sts", _sts_response)


async def _authenticated(request: web.Request, handler: Handler, authenticator: "Authenticator",
                         service_of: Callable[[bytes], tuple[str, Refuse]]) -> web.StreamResponse:
    """For the APIs whose errors are not Lambda's: read the body, authenticate for the service
    `service_of` names for that body, answer a refusal in the shape it gives."""
    try:
        body = await read_body(request)
    except asyncio.TimeoutError:
        response = service_of(b"")[1](408, "RequestTimeout", "The request body was not received in time.")
        response.force_close()
        return response
    except web.HTTPRequestEntityTooLarge:
        return service_of(b"")[1](413, "SerializationException", "The request body is larger than this server accepts.")
    service, refuse = service_of(body)
    try:
        request[CALLER] = await authenticator.authenticate(request, body, service)
    except SignatureRefused as refused:
        return refuse(refused.status, refused.error_type, refused.message)
    return await handler(request)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if (path.startswith(UNAUTHENTICATED_PREFIXES) and not path.startswith(console.DATA_PREFIX)) or (
            path == "/" and console.wants_console(request)):
        return await handler(request)
    authenticator: Authenticator = services(request).authenticator  # type: ignore[assignment]
    if request.headers.get("X-Amz-Target", "").startswith(LOGS_TARGET_PREFIX):
        return await _authenticated(request, handler, authenticator, lambda _body: ("logs", _logs_response))
    if is_query_request(request):  # STS and IAM: form-encoded, XML errors
        return await _authenticated(request, handler, authenticator, _query_service)
    service = "scheduler" if request.path.startswith(SCHEDULER_PREFIXES) else "lambda"
    body = await lambda_body(request)
    try:
        request[CALLER] = await authenticator.authenticate(request, body, service)
    except SignatureRefused as refused:
        raise _lambda_refusal(refused) from None  # rendered by api/errors.lambda_errors
    return await handler(request)


async def authenticate_url(request: web.Request, body: bytes) -> Caller | None:
    """The caller who signed a request to an `AWS_IAM` function URL, or None when the signature is
    missing or does not verify (the URL then answers 403 Forbidden, as AWS's do). Under
    `--auth open` any SigV4 Authorization header is accepted as the account's root."""
    authenticator: Authenticator | None = services(request).authenticator  # type: ignore[assignment]
    if authenticator is None:
        return None
    try:
        return await authenticator.authenticate(request, body, "lambda")
    except SignatureRefused:
        return None
