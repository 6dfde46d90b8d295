"""AWS's query protocol, as STS and IAM speak it: a form-encoded `POST /` in, XML out (errors included).

Shared by the STS subset (`api/sts.py`), the IAM subset (`api/iam.py`) and authentication, which
answers a refused call in the error shape of the service it was sent to. The two services share
the path and tell themselves apart by the form's `Version`; each has its own XML namespace.
"""

from __future__ import annotations

import uuid
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from aiohttp import web

STS_VERSION = "2011-06-15"
STS_NAMESPACE = f"https://sts.amazonaws.com/doc/{STS_VERSION}/"
IAM_VERSION = "2010-05-08"
IAM_NAMESPACE = f"https://iam.amazonaws.com/doc/{IAM_VERSION}/"
FORM = "application/x-www-form-urlencoded"


def is_query_request(request: web.Request) -> bool:
    """A query-protocol call: a form-encoded POST to `/`, without JSON's X-Amz-Target."""
    return (request.method == "POST" and request.path == "/" and "X-Amz-Target" not in request.headers
            and request.content_type == FORM)


def form_version(body: bytes) -> str:
    """The `Version` of a form-encoded body (empty when it has none): which service it is for."""
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        if key == "Version":
            return value
    return ""


def namespace_for(version: str) -> str:
    """The XML namespace of the service a form's `Version` names (STS's for any other)."""
    return IAM_NAMESPACE if version == IAM_VERSION else STS_NAMESPACE


def error_response(status: int, code: str, message: str, namespace: str = STS_NAMESPACE) -> web.Response:
    """The query protocol's XML error (`Sender` faults: every error here is the client's)."""
    request_id = str(uuid.uuid4())
    body = (f'<ErrorResponse xmlns="{namespace}"><Error><Type>Sender</Type><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>")
    return web.Response(status=status, text=body, content_type="text/xml", headers={"x-amzn-RequestId": request_id})


def result_response(action: str, result_xml: str | None, namespace: str = STS_NAMESPACE) -> web.Response:
    """`<{action}Response><{action}Result>…</…><ResponseMetadata>` around an action's result; an
    action that answers nothing (None: IAM's DeleteUser and the like) has no Result element."""
    request_id = str(uuid.uuid4())
    result = f"<{action}Result>{result_xml}</{action}Result>" if result_xml is not None else ""
    body = (f'<{action}Response xmlns="{namespace}">{result}'
            f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>")
    return web.Response(text=body, content_type="text/xml", headers={"x-amzn-RequestId": request_id})
