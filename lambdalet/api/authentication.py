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
(`/_lambdalet/console/…`) is signed for `lambda`, as the API is.

Authorisation is not built yet: the only identities are root keys, and a root key may do
anything in its account. A server serves one account until resources are scoped by account.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Callable
from pathlib import Path

from aiohttp import web

from lambdalet import console
from lambdalet.api.common import lambda_body, read_body, services
from lambdalet.api.errors import Handler
from lambdalet.api.query_protocol import IAM_NAMESPACE, IAM_VERSION, form_version, is_query_request
from lambdalet.api.query_protocol import error_response as query_error
from lambdalet.auth.accounts import ROOT_CREDENTIALS_FILE, Accounts, AccountsError, load_accounts
from lambdalet.auth.sigv4 import SecretKey, SignatureRefused, verify
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


@dataclass(frozen=True)
class Caller:
    """An authenticated principal: for a root key, the account itself (as STS names it)."""

    account_id: str
    arn: str
    user_id: str
    access_key_id: str


class Authenticator:
    """The access keys this server knows, each with the caller it authenticates."""

    def __init__(self, accounts: Accounts) -> None:
        self._keys: dict[str, tuple[SecretKey, Caller]] = {}
        for account in accounts.by_id.values():
            key = SecretKey(account.root_access_key_id, account.root_secret_access_key)
            self._keys[key.access_key_id] = (key, Caller(account.id, f"arn:aws:iam::{account.id}:root", account.id,
                                                         key.access_key_id))

    def secret(self, access_key_id: str) -> SecretKey | None:
        entry = self._keys.get(access_key_id)
        return entry[0] if entry else None

    def authenticate(self, request: web.Request, body: bytes, service: str) -> Caller:
        """The caller who signed `request` for `service`; raises SignatureRefused."""
        raw_path, _, raw_query = request.raw_path.partition("?")
        signature = verify(request.method, raw_path, raw_query, request.headers, body, self.secret, service=service)
        return self._keys[signature.access_key_id][1]


def authenticator_for(settings: Settings, data_dir: Path) -> Authenticator | None:
    """The server's authenticator under --auth iam (None under open), its root key shown in the
    log the one time it is generated. Raises AccountsError for keys or files it cannot use."""
    if settings.auth_mode != "iam":
        return None
    accounts = load_accounts(settings.account_id, data_dir,
                             Path(settings.accounts_file) if settings.accounts_file else None)
    if list(accounts.by_id) != [settings.account_id]:
        raise AccountsError(f"the accounts file lists {', '.join(accounts.by_id)}; this server serves one account, "
                            f"--account-id {settings.account_id}, until resources are scoped by account: list that "
                            "one only")
    if accounts.generated is not None:
        log.warning("Generated the root access key of account %s (shown this once; kept in %s, mode 0600):\n"
                    "  AWS_ACCESS_KEY_ID=%s\n  AWS_SECRET_ACCESS_KEY=%s", settings.account_id,
                    data_dir / ROOT_CREDENTIALS_FILE, accounts.generated.root_access_key_id,
                    accounts.generated.root_secret_access_key)
    log.info("--auth iam: every request must be signed with the root access key of account %s (%s)",
             settings.account_id, accounts.by_id[settings.account_id].root_access_key_id)
    return Authenticator(accounts)


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
        request[CALLER] = authenticator.authenticate(request, body, service)
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
        request[CALLER] = authenticator.authenticate(request, body, service)
    except SignatureRefused as refused:
        raise _lambda_refusal(refused) from None  # rendered by api/errors.lambda_errors
    return await handler(request)


def authenticate_url(request: web.Request, body: bytes) -> Caller | None:
    """The caller who signed a request to an `AWS_IAM` function URL, or None when the signature is
    missing or does not verify (the URL then answers 403 Forbidden, as AWS's do). Under
    `--auth open` any SigV4 Authorization header is accepted as the account's root."""
    authenticator: Authenticator | None = services(request).authenticator  # type: ignore[assignment]
    if authenticator is None:
        return None
    try:
        return authenticator.authenticate(request, body, "lambda")
    except SignatureRefused:
        return None
