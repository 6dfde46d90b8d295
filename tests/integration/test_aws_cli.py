"""The real AWS CLI against the server."""

from __future__ import annotations

import base64
import json

import pytest
from botocore.exceptions import ClientError

from conftest import ROLE, aws_cli, make_zip

from .helpers import function_arn

# awscli v1 (the PyPI package) sends --payload raw; it has no --cli-binary-format option (that is v2's).
CODE = "def handler(event, context):\n    print('cli invoke', event)\n    return {'sum': event['a'] + 1}\n"


@pytest.fixture
def cli_function_name(lambda_client, unique_name):
    """A name for a function the test creates through the CLI; deleted afterwards if the test left it."""
    yield unique_name
    try:
        lambda_client.delete_function(FunctionName=unique_name)
    except ClientError:
        pass


def test_cli_function_lifecycle(server, cli_function_name, tmp_path):
    name = cli_function_name
    (tmp_path / "code.zip").write_bytes(make_zip({"app.py": CODE}))

    created = json.loads(aws_cli(server, "lambda", "create-function", "--function-name", name,
                                 "--runtime", "python3.11", "--role", ROLE, "--handler", "app.handler",
                                 "--zip-file", f"fileb://{tmp_path / 'code.zip'}").stdout)
    assert created["FunctionArn"] == function_arn(name)
    assert created["State"] == "Pending"  # as AWS answers a create

    invoked = json.loads(aws_cli(server, "lambda", "invoke", "--function-name", name,
                                 "--payload", '{"a":1}',
                                 "--log-type", "Tail", "out.json", cwd=tmp_path).stdout)
    assert invoked["StatusCode"] == 200
    assert invoked["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in invoked
    assert json.loads((tmp_path / "out.json").read_text()) == {"sum": 2}
    log = base64.b64decode(invoked["LogResult"]).decode()
    assert "cli invoke {'a': 1}" in log and "REPORT RequestId: " in log

    got = json.loads(aws_cli(server, "lambda", "get-function", "--function-name", name).stdout)
    assert got["Configuration"]["FunctionName"] == name
    assert got["Code"]["RepositoryType"] == "S3"

    listed = json.loads(aws_cli(server, "lambda", "list-functions").stdout)
    assert name in {f["FunctionName"] for f in listed["Functions"]}

    aws_cli(server, "lambda", "delete-function", "--function-name", name)
    missing = aws_cli(server, "lambda", "get-function", "--function-name", name, check=False)
    assert missing.returncode != 0
    assert b"ResourceNotFoundException" in missing.stderr


def test_cli_reports_errors(server, unique_name):
    proc = aws_cli(server, "lambda", "get-function", "--function-name", f"{unique_name}-missing", check=False)
    assert proc.returncode != 0
    assert b"ResourceNotFoundException" in proc.stderr
