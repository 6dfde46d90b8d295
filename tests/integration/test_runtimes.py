"""Runtimes: every managed Python version, a shell custom runtime, and AWS's own awslambdaric (CONTRACT.md §4, §5.4)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT, ROLE, Server, invoke_json, make_zip, running

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


def _python_build(version: str) -> str:
    """A real interpreter binary of the host (pyenv's, else PATH's), for a server told to use it."""
    from lambdalet.runtimes.registry import RuntimeRegistry

    return RuntimeRegistry().get(f"python{version}").interpreter or ""


@pytest.mark.parametrize("runtime, needs", [("python3.14", "Install Python 3.14"),
                                            ("nodejs24.x", "Install Node.js 24")])
def test_newest_runtimes_run_where_the_host_has_them_and_say_what_to_install_otherwise(
        lambda_client, unique_name, runtime, needs):
    """python3.14 and nodejs24.x are runtimes of this server: created and run where the host has
    the interpreter, refused naming what to install (and the flag that points at one) where not."""
    handler = "index.handler" if runtime.startswith("nodejs") else "app.handler"
    files = {"index.js": "exports.handler = async () => process.env.AWS_EXECUTION_ENV;\n"} \
        if runtime.startswith("nodejs") else {"app.py": "import os\ndef handler(e, c):\n"
                                                         "    return os.environ['AWS_EXECUTION_ENV']\n"}
    try:
        lambda_client.create_function(FunctionName=unique_name, Runtime=runtime, Role=ROLE, Handler=handler,
                                      Code={"ZipFile": make_zip(files)})
    except lambda_client.exceptions.InvalidParameterValueException as refused:
        message = refused.response["Error"]["Message"]
        assert needs in message and ("--python-interpreter" in message or "--node-binary" in message), message
        return
    lambda_client.get_waiter("function_active_v2").wait(FunctionName=unique_name)
    _, result = invoke_json(lambda_client, unique_name)
    assert result == f"AWS_Lambda_{runtime}"


def test_a_configured_interpreter_serves_a_runtime_the_host_would_not_find(tmp_path):
    """`--python-interpreter python3.14=PATH` is taken as is: the runtime then runs on that binary
    (here another version's, to show the runtime is one entry and a path, nothing more)."""
    interpreter = _python_build("3.12") or _python_build("3.11")
    assert interpreter, "the host has neither python3.12 nor python3.11"
    with running(Server(tmp_path / "data", args=["--python-interpreter", f"python3.14={interpreter}",
                                                 "--node-binary", "nodejs24.x=/nonexistent/node"])) as srv:
        client = srv.client()
        client.create_function(FunctionName="newest", Runtime="python3.14", Role=ROLE, Handler="app.handler",
                               Code={"ZipFile": make_zip({"app.py": "import os\ndef handler(e, c):\n"
                                                                    "    return os.environ['AWS_EXECUTION_ENV']\n"})})
        client.get_waiter("function_active_v2").wait(FunctionName="newest")
        _, result = invoke_json(client, "newest")
        assert result == "AWS_Lambda_python3.14"
        with pytest.raises(client.exceptions.InvalidParameterValueException) as refused:
            client.create_function(FunctionName="node24", Runtime="nodejs24.x", Role=ROLE, Handler="index.handler",
                                   Code={"ZipFile": make_zip({"index.js": "exports.handler = async () => 1;\n"})})
        assert "the configured /nonexistent/node is not an executable node binary" in \
            refused.value.response["Error"]["Message"]
