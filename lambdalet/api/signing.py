"""Requests signed for another region are refused, as AWS's endpoint for one region refuses them.

A client configured for `eu-west-1` against a server for `us-east-1` used to get the `us-east-1`
resources silently; AWS answers such a signature `403 InvalidSignatureException` ("Credential
should be scoped to a valid region"). Only the credential scope of a SigV4 `Authorization` header
(or presigned `X-Amz-Credential`) is read here; the signature itself is not verified (no IAM yet).
Function URLs, the console's and the server's own routes are left alone.
"""

from __future__ import annotations

from aiohttp import web

from lambdalet.api.common import services
from lambdalet.api.errors import Handler
from lambdalet.errors import LambdaError

UNSIGNED_PREFIXES = ("/lambda-url/", "/_lambdalet/", "/metrics")


class InvalidSignatureException(LambdaError):
    status, error_type = 403, "InvalidSignatureException"


def signing_region(request: web.Request) -> str | None:
    """The region of the request's SigV4 credential scope (`KEY/DATE/REGION/SERVICE/aws4_request`)."""
    authorization = request.headers.get("Authorization")
    if authorization is not None:
        start = authorization.find("Credential=")
        if start < 0:
            return None
        end = authorization.find(",", start)
        scope = authorization[start + 11:end if end >= 0 else None]
    else:
        scope = request.query.get("X-Amz-Credential") if request.query_string else None
        if scope is None:
            return None
    parts = scope.split("/")
    return parts[2] if len(parts) == 5 else None


@web.middleware
async def check_signing_region(request: web.Request, handler: Handler) -> web.StreamResponse:
    region = signing_region(request)
    if region is not None and not request.path.startswith(UNSIGNED_PREFIXES):
        served = services(request).settings.region
        if region != served:
            message = (f"Credential should be scoped to a valid region. This Lambdalet server serves {served} "
                       f"(its --region); the request was signed for {region}.")
            if "X-Amz-Target" in request.headers:  # the JSON protocol (CloudWatch Logs): its own error shape
                return web.json_response({"__type": "InvalidSignatureException", "message": message}, status=403,
                                         content_type="application/x-amz-json-1.1")
            raise InvalidSignatureException(message)
    return await handler(request)
