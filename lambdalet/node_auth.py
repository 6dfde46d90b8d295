"""Requests one node makes of another, signed with a key every node of the database shares.

Node-to-node routes (`/_lambdalet/peer/…`) carry no caller's credentials: the node asking has
authenticated and authorised its caller already. They are signed instead with HMAC-SHA256 under
the `node-to-node` key of `store/server_keys.py` (over a timestamp, the path and the body), so
only a node of the same database can call them, and a recorded request is refused after
MAX_SKEW_S. Node clocks must agree within that, as heartbeats need anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.request
from typing import Any

from aiohttp import web

HEADER = "X-Lambdalet-Node-Signature"
KEY_NAME = "node-to-node"
MAX_SKEW_S = 300


def sign(key: bytes, path: str, body: bytes, now: float | None = None) -> str:
    """The header value for a request of `body` to `path`."""
    stamp = str(int(time.time() if now is None else now))
    return f"{stamp}:{_mac(key, stamp, path, body)}"


def verify(key: bytes, value: str, path: str, body: bytes, now: float | None = None) -> bool:
    stamp, _, mac = value.partition(":")
    if not stamp.isdigit() or abs((time.time() if now is None else now) - int(stamp)) > MAX_SKEW_S:
        return False
    return hmac.compare_digest(mac, _mac(key, stamp, path, body))


async def signed_call(request: web.Request, key: bytes) -> dict[str, Any] | web.Response:
    """The JSON object a node-to-node request carries, signed with `key`; else the answer to give
    it (403 unsigned, 400 not a JSON object)."""
    body = await request.read()
    if not key or not verify(key, request.headers.get(HEADER, ""), request.path, body):
        return web.json_response({"message": "Only a node of this server's database may call this."}, status=403)
    try:
        call = json.loads(body)
    except ValueError:
        call = None
    if not isinstance(call, dict):
        return web.json_response({"message": "The request body is not a JSON object."}, status=400)
    return call


def post(key: bytes, base_url: str, path: str, payload: Any, timeout_s: float) -> Any:
    """POST `payload` as JSON to another node's `path`, signed; its JSON answer. Raises OSError
    (urllib's errors among them) when the node does not answer, ValueError when not with JSON."""
    body = json.dumps(payload).encode()
    request = urllib.request.Request(base_url.rstrip("/") + path, data=body, method="POST", headers={
        "Content-Type": "application/json", HEADER: sign(key, path, body)})
    with urllib.request.urlopen(request, timeout=timeout_s) as answer:
        return json.load(answer)


def _mac(key: bytes, stamp: str, path: str, body: bytes) -> str:
    return hmac.new(key, stamp.encode() + b"\n" + path.encode() + b"\n" + body, hashlib.sha256).hexdigest()
