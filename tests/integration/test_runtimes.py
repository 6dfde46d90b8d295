"""Runtimes: every managed Python version, a shell custom runtime, and AWS's own awslambdaric (CONTRACT.md §4, §5.4)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT, invoke_json, make_zip

from .oci_support import awslambdaric_dir

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("runtime", ["python3.9", "python3.10", "python3.11", "python3.12", "python3.13"])
def test_python_runtime_runs_the_matching_interpreter(lambda_client, create_function, runtime):
    code = "import os, sys\n\ndef handler(event, context):\n" \
           "    return {'version': list(sys.version_info[:2]), 'exec_env': os.environ.get('AWS_EXECUTION_ENV')}\n"
    name = create_function(code, Runtime=runtime)["FunctionName"]

    resp, result = invoke_json(lambda_client, name)

    assert "FunctionError" not in resp, result
    assert result["version"] == [3, int(runtime.removeprefix("python3."))]
    assert result["exec_env"] == f"AWS_Lambda_{runtime}"


@pytest.mark.parametrize("runtime", ["provided.al2023", "provided.al2"])
def test_shell_bootstrap_custom_runtime(lambda_client, create_function, runtime):
    name = create_function(files={"bootstrap": (DATA / "echo_bootstrap.sh").read_text()}, modes={"bootstrap": 0o755},
                           Runtime=runtime, Handler="echo.handler")["FunctionName"]

    for n in range(2):
        resp, result = invoke_json(lambda_client, name, {"hello": "world", "n": n})
        assert resp["StatusCode"] == 200
        assert "FunctionError" not in resp, result
        assert result == {"echo": {"hello": "world", "n": n}, "requestId": resp["ResponseMetadata"]["RequestId"],
                          "handler": "echo.handler"}


AWSLAMBDARIC_APP = """\
class CustomError(Exception):
    pass


def handler(event, context):
    if event.get("fail"):
        raise CustomError("failed on purpose")
    return {"event": event, "request_id": context.aws_request_id, "function_name": context.function_name}
"""


def system_interpreter() -> tuple[str, str]:
    """A system Python under /usr and its X.Y version: the bootstrap execs it.

    A custom runtime brings its own language runtime; the sandbox shows functions the host's
    read-only system paths, so the distribution's interpreter is the one a bootstrap can use.
    """
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(candidate):
            version = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                     capture_output=True, text=True, check=True).stdout.strip()
            return os.path.realpath(candidate), version
    raise AssertionError("this test needs a system python3 under /usr (Debian's python3 package)")


@pytest.fixture(scope="module")
def awslambdaric_zip() -> bytes:
    """awslambdaric's wheels for the system interpreter, cached under .cache/, plus app.py and a bootstrap."""
    interpreter, version = system_interpreter()
    cache = awslambdaric_dir(REPO_ROOT / ".cache", version)

    files: dict[str, str | bytes] = {}
    modes: dict[str, int] = {}
    for path in sorted(cache.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            rel = path.relative_to(cache).as_posix()
            files[rel] = path.read_bytes()
            modes[rel] = path.stat().st_mode & 0o777
    files["app.py"] = AWSLAMBDARIC_APP
    files["bootstrap"] = f'#!/bin/sh\nexec {interpreter} -m awslambdaric "$_HANDLER"\n'
    modes["bootstrap"] = 0o755
    return make_zip(files, modes)


def test_awslambdaric_runtime(lambda_client, create_function, awslambdaric_zip):
    name = create_function(Code={"ZipFile": awslambdaric_zip}, Runtime="provided.al2023",
                           Handler="app.handler", Timeout=30)["FunctionName"]

    resp, result = invoke_json(lambda_client, name, {"x": 1})
    assert resp["StatusCode"] == 200
    assert "FunctionError" not in resp, result
    assert result == {"event": {"x": 1}, "request_id": resp["ResponseMetadata"]["RequestId"], "function_name": name}

    resp = lambda_client.invoke(FunctionName=name, Payload=json.dumps({"fail": True}))
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    error = json.loads(resp["Payload"].read())
    assert error["errorType"] == "CustomError"
    assert error["errorMessage"] == "failed on purpose"
    assert isinstance(error["stackTrace"], list)

    resp, result = invoke_json(lambda_client, name, {"x": 2})
    assert "FunctionError" not in resp, result
    assert result["event"] == {"x": 2}
