"""Deployment packages from S3: functions and layers from objects in moto (server mode), reached
by the Lambdalet server with boto3 through `AWS_ENDPOINT_URL`, as it would reach S3 itself.

Also: S3's refusals in Lambda's words (a stand-in S3 answers AccessDenied and the redirect of a
bucket in another region, which moto does not), and a zip over the 50 MB an inline upload allows.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import threading
import uuid
import zipfile

import pytest

from conftest import ROLE, Server, aws_cli, delete_functions, invoke_json, make_zip, running

from .helpers import code_sha256, error_code_and_status, http_request, wait_updated

HANDLER = "def handler(event, context):\n    return {{'code': {marker!r}}}\n"


def code_zip(marker: str) -> bytes:
    return make_zip({"app.py": HANDLER.format(marker=marker)})


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory, moto) -> Server:
    with running(Server(tmp_path_factory.mktemp("s3code"), extra_env={"AWS_ENDPOINT_URL": moto.url})) as srv:
        yield srv


@pytest.fixture(scope="module")
def bucket(moto) -> str:
    """A versioned bucket in moto, in the server's region."""
    name = f"code-{uuid.uuid4().hex[:12]}"
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


@pytest.fixture
def s3(moto):
    return moto.client("s3")


@pytest.fixture
def lam(s3_server):
    return s3_server.client()


@pytest.fixture
def names(lam):
    """Unique names; the functions among them are deleted afterwards."""
    made: list[str] = []

    def name(prefix: str = "s3fn") -> str:
        made.append(f"{prefix}-{uuid.uuid4().hex[:8]}")
        return made[-1]

    yield name
    delete_functions(lam, made)


def put(s3, bucket: str, key: str, data: bytes) -> str:
    """Upload an object; its VersionId."""
    return s3.put_object(Bucket=bucket, Key=key, Body=data)["VersionId"]


def create(lam, name: str, code: dict, **kwargs) -> dict:
    return lam.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                               Code=code, **kwargs)


def refused(call, *args, **kwargs) -> tuple[str, int, str]:
    """(error code, status, message) of a call expected to fail."""
    with pytest.raises(Exception) as info:
        call(*args, **kwargs)
    code, status = error_code_and_status(info.value)
    return code, status, info.value.response["Error"]["Message"]


def test_function_from_s3_runs_and_reports_the_objects_hash_and_size(lam, s3, bucket, names):
    data = code_zip("from-s3")
    put(s3, bucket, "hello/function.zip", data)
    name = names()
    config = create(lam, name, {"S3Bucket": bucket, "S3Key": "hello/function.zip"})
    assert config["CodeSha256"] == code_sha256(data) and config["CodeSize"] == len(data)
    assert invoke_json(lam, name)[1] == {"code": "from-s3"}
    code = lam.get_function(FunctionName=name)["Code"]
    assert code["RepositoryType"] == "S3"
    status, _headers, body = http_request(code["Location"])
    assert status == 200 and body == data  # the package exactly as it was in the bucket


def test_s3_object_version_selects_that_version_of_the_object(lam, s3, bucket, names):
    old = put(s3, bucket, "versioned.zip", code_zip("old"))
    put(s3, bucket, "versioned.zip", code_zip("new"))
    pinned, newest = names(), names()
    create(lam, pinned, {"S3Bucket": bucket, "S3Key": "versioned.zip", "S3ObjectVersion": old})
    create(lam, newest, {"S3Bucket": bucket, "S3Key": "versioned.zip"})
    assert invoke_json(lam, pinned)[1] == {"code": "old"}
    assert invoke_json(lam, newest)[1] == {"code": "new"}


def test_update_function_code_from_s3_with_dry_run_revision_id_and_publish(lam, s3, bucket, names):
    name = names()
    create(lam, name, {"ZipFile": code_zip("inline")})
    first = lam.get_function_configuration(FunctionName=name)  # Active, with the RevisionId it then has
    data = code_zip("updated-from-s3")
    put(s3, bucket, "update.zip", data)

    dry = lam.update_function_code(FunctionName=name, S3Bucket=bucket, S3Key="update.zip", DryRun=True)
    assert dry["CodeSha256"] == code_sha256(data)
    unchanged = lam.get_function_configuration(FunctionName=name)
    assert unchanged["CodeSha256"] == first["CodeSha256"] and unchanged["RevisionId"] == first["RevisionId"]
    assert invoke_json(lam, name)[1] == {"code": "inline"}

    code, status, _ = refused(lam.update_function_code, FunctionName=name, S3Bucket=bucket, S3Key="update.zip",
                              RevisionId=str(uuid.uuid4()))
    assert (code, status) == ("PreconditionFailedException", 412)
    assert lam.get_function_configuration(FunctionName=name)["CodeSha256"] == first["CodeSha256"]

    published = lam.update_function_code(FunctionName=name, S3Bucket=bucket, S3Key="update.zip",
                                         RevisionId=first["RevisionId"], Publish=True)
    assert published["Version"] == "1" and published["CodeSha256"] == code_sha256(data)
    wait_updated(lam, name)  # the version is Pending until the update is done, as on AWS
    assert invoke_json(lam, name, Qualifier="1")[1] == {"code": "updated-from-s3"}
    assert invoke_json(lam, name)[1] == {"code": "updated-from-s3"}


def test_layer_from_s3_is_used_by_a_function_from_s3(lam, s3, bucket, names):
    layer_zip = make_zip({"python/greeting.py": "WORDS = 'hello from a layer in S3'\n"})
    put(s3, bucket, "layers/greeting.zip", layer_zip)
    layer_name = names("s3layer")
    layer = lam.publish_layer_version(LayerName=layer_name, CompatibleRuntimes=["python3.11"],
                                      Content={"S3Bucket": bucket, "S3Key": "layers/greeting.zip"})
    try:
        assert layer["Content"]["CodeSha256"] == code_sha256(layer_zip)
        assert layer["Content"]["CodeSize"] == len(layer_zip)
        put(s3, bucket, "uses-layer.zip", make_zip({"app.py": (
            "import greeting\n\ndef handler(event, context):\n    return {'code': greeting.WORDS}\n")}))
        name = names()
        create(lam, name, {"S3Bucket": bucket, "S3Key": "uses-layer.zip"}, Layers=[layer["LayerVersionArn"]])
        assert invoke_json(lam, name)[1] == {"code": "hello from a layer in S3"}
    finally:
        lam.delete_layer_version(LayerName=layer_name, VersionNumber=layer["Version"])


NO_SUCH_KEY = ("Error occurred while GetObject. S3 Error Code: NoSuchKey. "
               "S3 Error Message: The specified key does not exist.")
NO_SUCH_BUCKET = ("Error occurred while GetObject. S3 Error Code: NoSuchBucket. "
                  "S3 Error Message: The specified bucket does not exist")


def test_a_missing_key_or_bucket_is_lambdas_error_and_creates_or_changes_nothing(lam, s3, bucket, names):
    name = names()
    missing_bucket = f"absent-{uuid.uuid4().hex[:12]}"
    for code, message in (({"S3Bucket": bucket, "S3Key": "no/such.zip"}, NO_SUCH_KEY),
                          ({"S3Bucket": missing_bucket, "S3Key": "function.zip"}, NO_SUCH_BUCKET)):
        assert refused(create, lam, name, code) == ("InvalidParameterValueException", 400, message)
        with pytest.raises(lam.exceptions.ResourceNotFoundException):
            lam.get_function(FunctionName=name)

    create(lam, name, {"ZipFile": code_zip("kept")})
    before = lam.get_function_configuration(FunctionName=name)
    assert refused(lam.update_function_code, FunctionName=name, S3Bucket=bucket, S3Key="no/such.zip",
                   Publish=True) == ("InvalidParameterValueException", 400, NO_SUCH_KEY)
    assert refused(lam.update_function_code, FunctionName=name, S3Bucket=missing_bucket, S3Key="f.zip") == (
        "InvalidParameterValueException", 400, NO_SUCH_BUCKET)
    after = lam.get_function_configuration(FunctionName=name)
    assert (after["CodeSha256"], after["RevisionId"]) == (before["CodeSha256"], before["RevisionId"])
    assert lam.list_versions_by_function(FunctionName=name)["Versions"][-1]["Version"] == "$LATEST"
    assert invoke_json(lam, name)[1] == {"code": "kept"}

    layer_name = names("s3layer")
    assert refused(lam.publish_layer_version, LayerName=layer_name,
                   Content={"S3Bucket": bucket, "S3Key": "no/such.zip"}) == (
        "InvalidParameterValueException", 400, NO_SUCH_KEY)
    assert lam.list_layer_versions(LayerName=layer_name)["LayerVersions"] == []


def test_s3_members_must_come_as_bucket_and_key_and_never_with_a_zip_file(lam, bucket, names):
    name = names()
    for code in ({"S3Bucket": bucket}, {"S3Key": "function.zip"}, {"S3ObjectVersion": "abc"}):
        code_, status, message = refused(create, lam, name, code)
        assert (code_, status) == ("InvalidParameterValueException", 400)
        assert "S3Bucket and S3Key" in message
    assert refused(create, lam, name, {"S3Bucket": bucket, "S3Key": "f.zip", "ZipFile": code_zip("x")}) == (
        "InvalidParameterValueException", 400,
        "Please do not provide other FunctionCode parameters when providing a ZipFile.")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=name)


def test_a_zip_over_fifty_megabytes_deploys_from_s3(lam, s3, bucket, names):
    """Inline uploads stop at 50 MB; from S3 the limit is the 250 MB unzipped. Random bytes, stored
    uncompressed: the zip really is ~55 MB."""
    buffer = io.BytesIO()
    blob = os.urandom(55 * 1024 * 1024)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("app.py", "import hashlib, os\n\ndef handler(event, context):\n"
                                   "    with open(os.path.join(os.path.dirname(__file__), 'blob.bin'), 'rb') as f:\n"
                                   "        return {'sha256': hashlib.sha256(f.read()).hexdigest()}\n")
        archive.writestr("blob.bin", blob)
    data = buffer.getvalue()
    assert len(data) > 55 * 1024 * 1024
    put(s3, bucket, "big.zip", data)
    name = names()
    config = create(lam, name, {"S3Bucket": bucket, "S3Key": "big.zip"}, MemorySize=512)
    assert config["CodeSize"] == len(data) and config["CodeSha256"] == code_sha256(data)
    assert invoke_json(lam, name)[1] == {"sha256": hashlib.sha256(blob).hexdigest()}


def test_the_aws_cli_creates_a_function_from_s3(s3_server, lam, s3, bucket, names):
    put(s3, bucket, "cli.zip", code_zip("from-the-cli"))
    name = names()
    proc = aws_cli(s3_server, "lambda", "create-function", "--function-name", name, "--runtime", "python3.11",
                   "--handler", "app.handler", "--role", ROLE, "--code", f"S3Bucket={bucket},S3Key=cli.zip")
    assert json.loads(proc.stdout)["CodeSize"] == len(code_zip("from-the-cli"))
    assert invoke_json(lam, name)[1] == {"code": "from-the-cli"}


class RefusingS3(http.server.BaseHTTPRequestHandler):
    """A stand-in S3 for what moto does not do: deny a read, redirect to the bucket's region."""

    ANSWERS = {
        "denied.zip": (403, {}, "AccessDenied", "Access Denied"),
        "elsewhere.zip": (301, {"x-amz-bucket-region": "eu-west-1"}, "PermanentRedirect",
                          "The bucket you are attempting to access must be addressed using the specified endpoint. "
                          "Please send all future requests to this endpoint."),
    }

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.server.paths.append(self.path)
        status, headers, code, message = self.ANSWERS[self.path.rsplit("/", 1)[-1].split("?")[0]]
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
                f"<RequestId>1</RequestId></Error>").encode()
        self.send_response(status)
        for header, value in {"Content-Type": "application/xml", **headers}.items():
            self.send_header(header, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def refusing_s3():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RefusingS3)
    httpd.paths = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()


def test_a_denied_read_and_a_bucket_in_another_region_are_refused_as_lambda_refuses_them(tmp_path, refusing_s3):
    endpoint = f"http://127.0.0.1:{refusing_s3.server_port}"
    with running(Server(tmp_path / "data", extra_env={"AWS_ENDPOINT_URL_S3": endpoint})) as srv:
        lam = srv.client()
        assert refused(create, lam, "denied", {"S3Bucket": "private", "S3Key": "denied.zip"}) == (
            "InvalidParameterValueException", 400,
            "Error occurred while GetObject. S3 Error Code: AccessDenied. S3 Error Message: Access Denied")
        refusing_s3.paths.clear()
        assert refused(create, lam, "elsewhere", {"S3Bucket": "european", "S3Key": "elsewhere.zip"}) == (
            "InvalidParameterValueException", 400,
            "Error occurred while GetObject. S3 Error Code: PermanentRedirect. S3 Error Message: "
            "The bucket is in this region: eu-west-1. Please use this region to retry the request")
        assert len(refusing_s3.paths) == 1  # botocore did not follow the redirect to eu-west-1
        assert lam.list_functions()["Functions"] == []
