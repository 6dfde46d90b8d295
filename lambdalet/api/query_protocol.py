"""AWS's query protocol, as STS speaks it: a form-encoded `POST /` in, XML out (errors included).

Shared by the STS subset (`api/sts.py`) and by authentication, which answers a refused STS call in
STS's own error shape.
"""

from __future__ import annotations

import uuid
from xml.sax.saxutils import escape

from aiohttp import web

STS_VERSION = "2011-06-15"
STS_NAMESPACE = f"https://sts.amazonaws.com/doc/{STS_VERSION}/"
FORM = "application/x-www-form-urlencoded"


def is_query_request(request: web.Request) -> bool:
    """A query-protocol call: a form-encoded POST to `/`, without JSON's X-Amz-Target."""
    return (request.method == "POST" and request.path == "/" and "X-Amz-Target" not in request.headers
            and request.content_type == FORM)


def error_response(status: int, code: str, message: str) -> web.Response:
    """The query protocol's XML error (`Sender` faults: every error here is the client's)."""
    request_id = str(uuid.uuid4())
    body = (f'<ErrorResponse xmlns="{STS_NAMESPACE}"><Error><Type>Sender</Type><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>")
    return web.Response(status=status, text=body, content_type="text/xml", headers={"x-amzn-RequestId": request_id})


def result_response(action: str, result_xml: str) -> web.Response:
    """`<{action}Response><{action}Result>…</…><ResponseMetadata>` around an action's result."""
    request_id = str(uuid.uuid4())
    body = (f'<{action}Response xmlns="{STS_NAMESPACE}"><{action}Result>{result_xml}</{action}Result>'
            f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>")
    return web.Response(text=body, content_type="text/xml", headers={"x-amzn-RequestId": request_id})
