"""Helpers shared by the integration tests: ARNs, log decoding, bounded polling, raw HTTP.

Everything here observes the server from the outside (HTTP, its data directory); nothing imports `lambdalet`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, TypeVar
from urllib.parse import quote

from botocore.exceptions import ClientError

from conftest import ROLE, Server, make_zip

ACCOUNT = "000000000000"
REGION = "us-east-1"
T = TypeVar("T")

ECHO_HANDLER = "def handler(event, context):\n    return event\n"

# A handler whose module-level state shows whether an execution environment was reused.
COUNTER_HANDLER = """\
import os
import uuid

COUNT = 0
ENV_ID = uuid.uuid4().hex


def handler(event, context):
    global COUNT
    COUNT += 1
    return {"count": COUNT, "env_id": ENV_ID, "pid": os.getpid()}
"""


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def code_sha256(zip_bytes: bytes) -> str:
    """Lambda's CodeSha256: base64 of the SHA-256 digest of the deployment package."""
    return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()


def decoded_log(resp: dict) -> str:
    """The `LogResult` of an Invoke with LogType=Tail, decoded."""
    return base64.b64decode(resp["LogResult"]).decode("utf-8", errors="replace")


def error_code_and_status(exc) -> tuple[str, int]:
    """(Error.Code, HTTP status) of a botocore ClientError."""
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


def aws_error(call: Callable[..., object], **params) -> tuple[str, int, str]:
    """(Error.Code, HTTP status, message) of a call that must fail, to compare with AWS's recorded answer."""
    try:
        call(**params)
    except ClientError as exc:
        return (exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"],
                exc.response["Error"]["Message"])
    raise AssertionError(f"{getattr(call, '__name__', call)}({params}) succeeded; AWS refuses it")


def wait_until(probe: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.1, what: str = "condition") -> T:
    """Call `probe` until it returns something truthy, at most `timeout` seconds; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def wait_updated(client, name: str) -> dict:
    """Wait for the function's last update to be done (boto3's `function_updated_v2`, polled more
    often than its 1 s delay), as a client must before changing it again; its configuration."""
    return wait_until(lambda: (config := client.get_function_configuration(FunctionName=name))
                      ["LastUpdateStatus"] != "InProgress" and config, what=f"the update of {name}")


def http_request(url: str, method: str = "GET", data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    """A raw HTTP request that returns (status, headers, body) instead of raising on 4xx/5xx."""
    req = urllib.request.Request(url, method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers.items()), err.read()


def server_status(server: Server) -> dict:
    status, _, body = http_request(server.url + "/_lambdalet/status")
    assert status == 200, f"/_lambdalet/status answered {status}: {body[:500]!r}"
    return json.loads(body)


def environment_counts(server: Server, name: str) -> dict[str, int]:
    """{"idle": N, "busy": N, "starting": N} for a function (all 0 when the server lists no environment)."""
    envs = server_status(server).get("functions", {}).get(name, {}).get("environments", {})
    return {state: envs.get(state, 0) for state in ("idle", "busy", "starting")}


def function_logs(server: Server, name: str) -> str:
    """Everything the server wrote in the log group `/aws/lambda/<name>` (`<data-dir>/logs/%2Faws%2Flambda%2F<name>/`)."""
    log_dir = Path(server.data_dir) / "logs" / quote(f"/aws/lambda/{name}", safe="")
    if not log_dir.is_dir():
        return ""
    return "".join(p.read_text(errors="replace") for p in sorted(log_dir.rglob("*.log")) if p.is_file())


def create_python_function(client, name: str, code: str = ECHO_HANDLER, **kwargs) -> dict:
    """CreateFunction for servers other than the session one (the `create_function` fixture covers that one)."""
    params = {
        "FunctionName": name,
        "Runtime": "python3.11",
        "Role": ROLE,
        "Handler": "app.handler",
        "Code": {"ZipFile": make_zip({"app.py": code})},
    }
    params.update(kwargs)
    return client.create_function(**params)


def wait_for_function_log(server: Server, name: str, needle: str, timeout: float = 10.0) -> str:
    """Poll the function's log files until they contain `needle`; return their whole text."""
    def probe() -> str | None:
        text = function_logs(server, name)
        return text if needle in text else None
    return wait_until(probe, timeout=timeout, what=f"{needle!r} in the log files of {name}")


@functools.lru_cache(maxsize=1)
def host_node() -> tuple[str, str]:
    """The host's node and its runtime name (nodejs20.x for a node v20); the tests that run Node
    functions fail, saying what to install, on a host without one."""
    node = shutil.which("node")
    assert node, "these tests need Node.js (a `node` on PATH): install nodejs 18, 20 or 22"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    major = version.lstrip("v").split(".")[0]
    assert major in ("18", "20", "22"), f"these tests need Node.js 18, 20 or 22, not {version}"
    return node, f"nodejs{major}.x"
