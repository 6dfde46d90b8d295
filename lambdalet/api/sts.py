"""The STS subset on the server's port: `GetCallerIdentity`, in STS's query protocol.

boto3's `sts` client and `aws sts get-caller-identity` (with `--endpoint-url`) send a form-encoded
`POST /` (`Action=GetCallerIdentity&Version=2011-06-15`) and read an XML answer. The identity is
the request's authenticated caller under `--auth iam` (the account's root for its root key), and
the account's root under `--auth open`, where any credentials act as it. Other actions answer
STS's `InvalidAction`: AssumeRole and the IAM API come with users and roles (issue 18).
"""

from __future__ import annotations

from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from aiohttp import web

from lambdalet.api.authentication import caller
from lambdalet.api.common import read_body, services
from lambdalet.api.query_protocol import STS_VERSION, error_response, result_response


async def dispatch(request: web.Request) -> web.StreamResponse:
    try:
        form = dict(parse_qsl((await read_body(request)).decode("utf-8", "replace"), keep_blank_values=True))
    except TimeoutError:
        response = error_response(408, "RequestTimeout", "The request body was not received in time.")
        response.force_close()
        return response
    action, version = form.get("Action", ""), form.get("Version", "")
    if action != "GetCallerIdentity" or version != STS_VERSION:
        return error_response(400, "InvalidAction",
                              f"Could not find operation {action} for version {version or 'NO_VERSION_SPECIFIED'}")
    who = caller(request)
    account = who.account_id if who else services(request).arns.account
    arn, user_id = (who.arn, who.user_id) if who else (f"arn:aws:iam::{account}:root", account)
    return result_response("GetCallerIdentity", f"<Arn>{escape(arn)}</Arn><UserId>{escape(user_id)}</UserId>"
                                                f"<Account>{account}</Account>")
