"""Hot reload: code read live from a host directory; an edit retires only that function's
environments, no edit keeps warm state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT, ROLE

from .helpers import COUNTER_HANDLER, wait_until



def versioned(version: str) -> str:
    """The counter handler, plus `app.versioned`, which also says which code it is."""
    return (COUNTER_HANDLER + f"\nVERSION = {version!r}\n\n"
            "def versioned(event, context):\n    return {**handler(event, context), 'version': VERSION}\n")


@pytest.fixture
def code_dir(tmp_path) -> Path:
    directory = tmp_path / "live"
    directory.mkdir()
    (directory / "app.py").write_text(versioned("v1"))
    for path in (tmp_path, directory):  # readable by the sandbox's unprivileged user
        path.chmod(0o755)
    (directory / "app.py").chmod(0o644)
    return directory


def invoke(client, name: str) -> dict:
    resp = client.invoke(FunctionName=name, Payload=b"{}")
    assert "FunctionError" not in resp, resp["Payload"].read()
    return json.loads(resp["Payload"].read())


def test_an_edit_is_picked_up_by_the_next_invoke_and_warm_state_survives_without_one(
        lambda_client, create_function, code_dir):
    name = create_function(Code={"S3Bucket": "hot-reload", "S3Key": str(code_dir)},
                           Handler="app.versioned")["FunctionName"]
    bystander = create_function(COUNTER_HANDLER)["FunctionName"]
    config = lambda_client.get_function(FunctionName=name)
    assert "Location" not in config["Code"]  # no package: the code is the directory
    first, second = invoke(lambda_client, name), invoke(lambda_client, name)
    assert first["version"] == second["version"] == "v1"
    assert second["env_id"] == first["env_id"] and second["count"] == 2  # warm state kept: no edit
    other = invoke(lambda_client, bystander)

    (code_dir / "app.py").write_text(versioned("v2"))
    after = wait_until(lambda: (r := invoke(lambda_client, name))["version"] == "v2" and r,
                       timeout=10, interval=0.05, what="the edit to reach the function")
    assert after["env_id"] != first["env_id"] and after["count"] == 1  # a fresh init with the new code
    assert invoke(lambda_client, name)["count"] == 2  # and warm again after it
    assert invoke(lambda_client, bystander)["env_id"] == other["env_id"]  # nothing else disturbed


def test_update_function_code_switches_between_a_directory_and_a_zip(lambda_client, create_function, code_dir):
    name = create_function(Handler="app.versioned", code=versioned("zip"))["FunctionName"]
    assert invoke(lambda_client, name)["version"] == "zip"
    lambda_client.update_function_code(FunctionName=name, S3Bucket="hot-reload", S3Key=str(code_dir))
    assert invoke(lambda_client, name)["version"] == "v1"
    for key in ("relative/path", "/no/such/directory"):
        with pytest.raises(lambda_client.exceptions.InvalidParameterValueException):
            lambda_client.update_function_code(FunctionName=name, S3Bucket="hot-reload", S3Key=key)
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException):  # real S3: not yet
        lambda_client.update_function_code(FunctionName=name, S3Bucket="some-bucket", S3Key="code.zip")


def test_deploy_watch_from_the_cli(server, code_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_ENDPOINT_URL"] = server.url
    deployed = subprocess.run([sys.executable, "-m", "lambdalet", "deploy", str(code_dir), "--name", "watched",
                               "--handler", "app.versioned", "--watch"], capture_output=True, env=env,
                              cwd=REPO_ROOT, timeout=120)
    assert deployed.returncode == 0, deployed.stderr.decode()
    assert f"code read live from {code_dir}" in deployed.stderr.decode()
    client = server.client()
    try:
        assert invoke(client, "watched")["version"] == "v1"
        (code_dir / "app.py").write_text(versioned("v3"))
        wait_until(lambda: invoke(client, "watched")["version"] == "v3", timeout=10, interval=0.05,
                   what="the edit to reach the function")
    finally:
        client.delete_function(FunctionName="watched")


def test_hot_reload_survives_a_restart(fresh_server, code_dir):
    fresh_server.start()
    client = fresh_server.client()
    client.create_function(FunctionName="live", Runtime="python3.12", Role=ROLE, Handler="app.versioned",
                           Code={"S3Bucket": "hot-reload", "S3Key": str(code_dir)})
    fresh_server.restart()
    first = invoke(client, "live")
    (code_dir / "app.py").write_text(versioned("after-restart"))
    wait_until(lambda: invoke(client, "live")["version"] == "after-restart", timeout=10, interval=0.05,
               what="the edit to reach the function after a restart")
    assert first["version"] == "v1"
