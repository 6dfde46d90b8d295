"""Runtime management configs: Auto/FunctionUpdate/Manual, and a pinned build kept or refused.

A runtime version is a build of the interpreter on the server. The test makes two builds of the
python3.11 it runs on (hard-linked copies of its installation whose binaries are distinct files),
pins a function to the first, points the server's python3.11 at the second, and sees the pinned
function keep the first — until that binary is gone, when its invoke is refused.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROLE, Server, make_zip

from .helpers import aws_error, function_logs, wait_until

WHICH = """
import sys

def handler(event, context):
    return sys.executable
"""
RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"


def _build(where: Path) -> str:
    """A copy of this interpreter's installation with a binary of its own; its python binary."""
    prefix = Path(sys.base_prefix)
    binary = prefix / "bin" / RUNTIME
    if not binary.is_file():
        pytest.fail(f"{binary} is missing: these tests need the {RUNTIME} installation the test runner uses")
    subprocess.run(["cp", "-al", str(prefix), str(where)], check=True)
    copied = where / "bin" / RUNTIME
    copied.unlink()
    shutil.copy2(binary, copied)  # a file of its own: another build
    os.utime(copied)
    return str(copied)


@pytest.fixture
def builds(tmp_path):
    return _build(tmp_path / "build-1"), _build(tmp_path / "build-2")


def _server(tmp_path: Path, interpreter: str) -> Server:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    srv = Server(data, args=["--python-interpreter", f"{RUNTIME}={interpreter}"])
    srv.start()
    return srv


def _init_arn(srv: Server, name: str, inits: int = 1) -> str:
    """The runtime version ARN of the function's `inits`-th INIT_START line (log files are written
    a moment after the invoke answers, so wait for it)."""
    def probe() -> list[str] | None:
        arns = re.findall(r"Runtime Version ARN: (\S+)", function_logs(srv, name))
        return arns if len(arns) >= inits else None
    return wait_until(probe, what=f"INIT_START number {inits} in the logs of {name}")[inits - 1]


def _create(client, name: str) -> None:
    client.create_function(FunctionName=name, Runtime=RUNTIME, Role=ROLE, Handler="app.handler",
                           Code={"ZipFile": make_zip({"app.py": WHICH})})


def test_a_pinned_function_keeps_its_build_and_is_refused_once_it_is_gone(tmp_path, builds):
    first, second = builds
    srv = _server(tmp_path, first)
    try:
        client = srv.client()
        _create(client, "pinned")
        _create(client, "auto")
        assert json.loads(client.invoke(FunctionName="pinned")["Payload"].read()) == first
        first_arn = _init_arn(srv, "pinned")
        put = client.put_runtime_management_config(FunctionName="pinned", UpdateRuntimeOn="Manual",
                                                   RuntimeVersionArn=first_arn)
        assert put["UpdateRuntimeOn"] == "Manual" and put["RuntimeVersionArn"] == first_arn
        assert put["FunctionArn"] == "arn:aws:lambda:us-east-1:000000000000:function:pinned"
    finally:
        srv.stop()

    srv = _server(tmp_path, second)  # the server's python is now another build
    try:
        client = srv.client()
        got = client.get_runtime_management_config(FunctionName="pinned")
        assert (got["UpdateRuntimeOn"], got["RuntimeVersionArn"]) == ("Manual", first_arn)
        assert json.loads(client.invoke(FunctionName="pinned")["Payload"].read()) == first  # kept
        assert _init_arn(srv, "pinned", inits=2) == first_arn
        assert json.loads(client.invoke(FunctionName="auto")["Payload"].read()) == second  # Auto follows
        second_arn = _init_arn(srv, "auto")
        assert second_arn != first_arn
        code, status, message = aws_error(lambda: client.put_runtime_management_config(
            FunctionName="auto", UpdateRuntimeOn="Manual", RuntimeVersionArn=first_arn))
        assert (code, status) == ("InvalidParameterValueException", 400), message  # not a build it has now
    finally:
        srv.stop()

    shutil.rmtree(Path(first).parent.parent)  # the pinned build is gone
    srv = _server(tmp_path, second)
    try:
        client = srv.client()
        code, status, message = aws_error(lambda: client.invoke(FunctionName="pinned"))
        assert (code, status) == ("InvalidRuntimeException", 502)
        assert first_arn in message
        client.put_runtime_management_config(FunctionName="pinned", UpdateRuntimeOn="Auto")
        assert json.loads(client.invoke(FunctionName="pinned")["Payload"].read()) == second
    finally:
        srv.stop()


def test_put_get_and_refusals(server, lambda_client, create_function):
    created = create_function(WHICH, Publish=True)
    name, arn = created["FunctionName"], created["FunctionArn"]
    default = lambda_client.get_runtime_management_config(FunctionName=name)
    assert (default["UpdateRuntimeOn"], default["FunctionArn"]) == ("Auto", arn)
    assert "RuntimeVersionArn" not in default
    put = lambda_client.put_runtime_management_config(FunctionName=name, UpdateRuntimeOn="FunctionUpdate")
    assert (put["UpdateRuntimeOn"], put["FunctionArn"]) == ("FunctionUpdate", arn)
    assert lambda_client.get_runtime_management_config(FunctionName=name)["UpdateRuntimeOn"] == "FunctionUpdate"
    # a version has its own; the runtime's ARN GetFunction reports pins the current build
    reported = lambda_client.get_function(FunctionName=name)["Configuration"]["RuntimeVersionConfig"]["RuntimeVersionArn"]
    pinned = lambda_client.put_runtime_management_config(FunctionName=name, Qualifier="1", UpdateRuntimeOn="Manual",
                                                         RuntimeVersionArn=reported)
    assert pinned["FunctionArn"] == f"{arn}:1"
    assert pinned["RuntimeVersionArn"].startswith("arn:aws:lambda:us-east-1::runtime:")
    assert lambda_client.invoke(FunctionName=name, Qualifier="1")["StatusCode"] == 200
    assert lambda_client.get_runtime_management_config(FunctionName=name, Qualifier="1")["RuntimeVersionArn"] == \
        pinned["RuntimeVersionArn"]
    assert lambda_client.get_runtime_management_config(FunctionName=name)["UpdateRuntimeOn"] == "FunctionUpdate"

    other = "arn:aws:lambda:us-east-1::runtime:" + "0" * 64
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    cases = [
        (dict(UpdateRuntimeOn="Sometimes"), "ValidationException", 400),
        (dict(UpdateRuntimeOn="Manual"), "InvalidParameterValueException", 400),
        (dict(UpdateRuntimeOn="Manual", RuntimeVersionArn=other), "InvalidParameterValueException", 400),
        (dict(UpdateRuntimeOn="Auto", RuntimeVersionArn=reported), "InvalidParameterValueException", 400),
        (dict(UpdateRuntimeOn="Auto", Qualifier="9"), "ResourceNotFoundException", 404),
        (dict(UpdateRuntimeOn="Auto", Qualifier="live"), "InvalidParameterValueException", 400),
        (dict(UpdateRuntimeOn="Auto", FunctionName=f"{name}-missing"), "ResourceNotFoundException", 404),
    ]
    for params, code, status in cases:
        params = {"FunctionName": name, **params}
        got = aws_error(lambda: lambda_client.put_runtime_management_config(**params))
        assert got[:2] == (code, status), (params, got)
    assert aws_error(lambda: lambda_client.get_runtime_management_config(FunctionName=f"{name}-missing"))[
        :2] == ("ResourceNotFoundException", 404)
