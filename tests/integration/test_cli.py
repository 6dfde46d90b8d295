"""The CLI for humans, run as a subprocess the way a user types it: deploy, invoke, ls, rm."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import re
import urllib.request
import zipfile
from pathlib import Path

import pytest

from conftest import REPO_ROOT, Server


def lambdalet(server: Server | None, *args: str, cwd: Path | None = None, input: bytes | None = None,
              endpoint: str | None = None) -> subprocess.CompletedProcess:
    """`lambdalet ARGS` with the server as its endpoint (botocore's AWS_ENDPOINT_URL) and no AWS
    credentials at all, as on a developer's laptop."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_ENDPOINT_URL"] = endpoint or (server.url if server else "")
    env["HOME"] = str(cwd or REPO_ROOT)  # no ~/.aws
    return subprocess.run([sys.executable, "-m", "lambdalet", *args], capture_output=True, env=env, cwd=cwd,
                          input=input, timeout=120)


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "my-func"
    root.mkdir()
    (root / "app.py").write_text(
        "import os\n\n"
        "def handler(event, context):\n"
        "    print('got', event)\n"
        "    if event.get('fail'):\n"
        "        raise ValueError('bad input: ' + str(event['fail']))\n"
        "    return {'hello': event.get('name', 'world'), 'greeting': os.environ.get('GREETING')}\n")
    (root / "secret.env").write_text("PASSWORD=x\n")
    (root / "notes").mkdir()
    (root / "notes" / "todo.txt").write_text("ignored by .lambdaletignore\n")
    (root / ".gitignore").write_text("*.env\n")
    (root / ".lambdaletignore").write_text("notes/\n")
    return root


def test_deploy_a_folder_then_invoke_list_and_remove(server, project, tmp_path):
    deployed = lambdalet(server, "deploy", str(project), "--env", "GREETING=hi", "--url")
    assert deployed.returncode == 0, deployed.stderr.decode()
    arn, url = deployed.stdout.decode().split()
    assert arn.endswith(":function:my-func")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url)
    assert urllib.request.urlopen(url, timeout=60).status == 200  # the URL every client reaches
    assert "Created my-func (python3." in deployed.stderr.decode()

    # What was packaged: the handler, not what the ignore files exclude.
    client = server.client()
    code = client.get_function(FunctionName="my-func")["Configuration"]
    assert code["Handler"] == "app.handler" and code["Environment"]["Variables"] == {"GREETING": "hi"}
    zip_url = client.get_function(FunctionName="my-func")["Code"]["Location"]
    names = zipfile.ZipFile(io.BytesIO(urllib.request.urlopen(zip_url).read())).namelist()
    assert sorted(names) == ["app.py"]

    invoked = lambdalet(server, "invoke", "my-func", '{"name": "cli"}')
    assert invoked.returncode == 0, invoked.stderr.decode()
    assert json.loads(invoked.stdout) == {"hello": "cli", "greeting": "hi"}

    (tmp_path / "event.json").write_text('{"name": "file"}')
    from_file = lambdalet(server, "invoke", "my-func", f"@{tmp_path / 'event.json'}", "--tail")
    assert json.loads(from_file.stdout)["hello"] == "file"
    assert "got {'name': 'file'}" in from_file.stderr.decode()  # the log tail, on stderr
    from_stdin = lambdalet(server, "invoke", "my-func", "-", input=b'{"name": "stdin"}')
    assert json.loads(from_stdin.stdout)["hello"] == "stdin"

    failed = lambdalet(server, "invoke", "my-func", '{"fail": 42}')
    assert failed.returncode == 1
    assert "Function error: ValueError: bad input: 42" in failed.stderr.decode()
    assert "Traceback" not in failed.stderr.decode()

    listed = lambdalet(server, "ls")
    assert listed.returncode == 0
    assert any(line.split()[:2] == ["my-func", code["Runtime"]] for line in listed.stdout.decode().splitlines())

    (project / "app.py").write_text("def handler(event, context):\n    return 'v2'\n")
    updated = lambdalet(server, "deploy", str(project), "--publish", "--alias", "live")
    assert updated.returncode == 0, updated.stderr.decode()
    assert updated.stdout.decode().strip().endswith(":function:my-func:1")
    assert lambdalet(server, "invoke", "my-func", "--qualifier", "live").stdout.strip() == b'"v2"'

    removed = lambdalet(server, "rm", "my-func")
    assert removed.returncode == 0 and b"deleted my-func" in removed.stderr
    again = lambdalet(server, "rm", "my-func")
    assert again.returncode == 1 and again.stderr.decode().strip() == "Error: no such function: my-func"


def test_errors_are_one_clear_line(server, project, tmp_path):
    cases = [
        (lambdalet(server, "invoke", "no-such-function"), "Error: ResourceNotFoundException: Function not found"),
        (lambdalet(server, "invoke", "x", "{not json"), "not JSON"),
        (lambdalet(server, "deploy", str(project), "--memory", "64"), "64 is not in the range 128<=x<=10240"),
        (lambdalet(None, "ls", endpoint="http://127.0.0.1:9"), "cannot reach the Lambda API at http://127.0.0.1:9"),
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    cases.append((lambdalet(server, "deploy", str(empty)), "cannot tell the runtime"))
    for result, message in cases:
        err = result.stderr.decode()
        assert result.returncode != 0
        assert message in err, err
        assert "Traceback" not in err


def test_every_command_has_help():
    for command in ("deploy", "invoke", "ls", "mappings", "rm", "logs", "server"):
        result = subprocess.run([sys.executable, "-m", "lambdalet", command, "--help"], capture_output=True,
                                timeout=60)
        assert result.returncode == 0 and b"Usage: " in result.stdout
