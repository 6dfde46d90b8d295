"""Control plane: create, read, list, update and delete functions (CONTRACT.md §1)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import ROLE, invoke_json, make_zip

from .helpers import ACCOUNT, ECHO_HANDLER, code_sha256, function_arn

LAST_MODIFIED = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$")


def test_create_function_returns_the_full_configuration(lambda_client, unique_name):
    name = f"{unique_name}-fn"
    zip_bytes = make_zip({"app.py": ECHO_HANDLER})
    try:
        resp = lambda_client.create_function(
            FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
            Code={"ZipFile": zip_bytes}, Description="integration test function", Timeout=30,
            MemorySize=256, EphemeralStorage={"Size": 1024}, Environment={"Variables": {"STAGE": "test"}},
            Architectures=["x86_64"], Tags={"team": "platform"},
        )
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 201
        assert resp["FunctionName"] == name
        assert resp["FunctionArn"] == f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}"
        assert resp["Runtime"] == "python3.12"
        assert resp["Role"] == ROLE
        assert resp["Handler"] == "app.handler"
        assert resp["CodeSize"] == len(zip_bytes)
        assert resp["CodeSha256"] == code_sha256(zip_bytes)
        assert resp["Description"] == "integration test function"
        assert resp["Timeout"] == 30
        assert resp["MemorySize"] == 256
        assert LAST_MODIFIED.match(resp["LastModified"]), resp["LastModified"]
        assert resp["Version"] == "$LATEST"
        assert resp["RevisionId"]
        assert resp["State"] == "Pending"  # AWS's answer to a create: no LastUpdateStatus yet
        assert resp["StateReasonCode"] == "Creating" and "LastUpdateStatus" not in resp
        assert resp["PackageType"] == "Zip"
        assert resp["Architectures"] == ["x86_64"]
        assert resp["EphemeralStorage"] == {"Size": 1024}
        assert resp["Environment"]["Variables"] == {"STAGE": "test"}
        assert resp["TracingConfig"] == {"Mode": "PassThrough"}
        assert resp["LoggingConfig"]["LogFormat"] == "Text"
        assert resp["LoggingConfig"]["LogGroup"] == f"/aws/lambda/{name}"
    finally:
        lambda_client.delete_function(FunctionName=name)


def test_create_function_applies_defaults(create_function):
    resp = create_function()
    assert resp["Timeout"] == 3
    assert resp["MemorySize"] == 128
    assert resp["EphemeralStorage"] == {"Size": 512}
    assert resp["Architectures"] == ["x86_64"]
    assert resp["Description"] == ""


@pytest.mark.parametrize("runtime", ["python3.9", "python3.10", "python3.11", "python3.12", "python3.13",
                                     "provided.al2023", "provided.al2"])
def test_create_function_accepts_supported_runtimes(create_function, runtime):
    handler = "bootstrap.handler" if runtime.startswith("provided") else "app.handler"
    resp = create_function(Runtime=runtime, Handler=handler)
    assert resp["Runtime"] == runtime
    assert resp["State"] == "Pending"


def test_get_function_returns_configuration_code_location_and_tags(lambda_client, create_function):
    zip_bytes = make_zip({"app.py": ECHO_HANDLER, "data.txt": "some data\n"})
    created = create_function(Code={"ZipFile": zip_bytes}, Tags={"owner": "tests", "tier": "1"})
    name = created["FunctionName"]

    got = lambda_client.get_function(FunctionName=name)

    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    config = got["Configuration"]
    for key in ("FunctionName", "FunctionArn", "Runtime", "Role", "Handler", "CodeSize", "CodeSha256",
                "Timeout", "MemorySize", "LastModified", "Version", "PackageType"):
        assert config[key] == created[key], key
    assert config["State"] == "Active" and config["RevisionId"] != created["RevisionId"]  # settled, as on AWS
    assert config["CodeSha256"] == code_sha256(zip_bytes)
    assert got["Code"]["RepositoryType"] == "S3"
    with urllib.request.urlopen(got["Code"]["Location"], timeout=30) as resp:
        assert resp.read() == zip_bytes
    assert got["Tags"] == {"owner": "tests", "tier": "1"}


def test_get_function_configuration_matches_create(lambda_client, create_function):
    created = create_function(Description="config read back", Timeout=12)
    config = lambda_client.get_function_configuration(FunctionName=created["FunctionName"])
    assert config["ResponseMetadata"]["HTTPStatusCode"] == 200
    for key in ("FunctionName", "FunctionArn", "CodeSha256", "CodeSize", "Description", "Timeout",
                "Version"):
        assert config[key] == created[key], key
    assert (config["State"], config["LastUpdateStatus"]) == ("Active", "Successful")


def test_function_is_addressable_by_name_partial_arn_and_full_arn(lambda_client, create_function):
    name = create_function()["FunctionName"]
    for identifier in (name, f"{ACCOUNT}:function:{name}", function_arn(name)):
        config = lambda_client.get_function_configuration(FunctionName=identifier)
        assert config["FunctionName"] == name, identifier
        assert lambda_client.get_function(FunctionName=identifier)["Configuration"]["FunctionArn"] == function_arn(name)
        resp, payload = invoke_json(lambda_client, identifier, {"via": identifier})
        assert resp["StatusCode"] == 200
        assert payload == {"via": identifier}


def test_list_functions_paginates_with_marker_and_max_items(lambda_client, create_function):
    names = {create_function()["FunctionName"] for _ in range(3)}

    seen: list[str] = []
    marker = None
    for _ in range(1000):  # bounded: each page has one item
        kwargs = {"MaxItems": 1, **({"Marker": marker} if marker else {})}
        page = lambda_client.list_functions(**kwargs)
        assert len(page["Functions"]) <= 1
        seen.extend(f["FunctionName"] for f in page["Functions"])
        marker = page.get("NextMarker")
        if not marker:
            break
    assert names <= set(seen)
    assert len(seen) == len(set(seen)), "a function appeared on two pages"


def test_list_functions_paginator(lambda_client, create_function):
    names = {create_function()["FunctionName"] for _ in range(3)}
    paginator = lambda_client.get_paginator("list_functions")

    pages = list(paginator.paginate(PaginationConfig={"PageSize": 1}))

    assert len(pages) >= 3
    assert all(len(page["Functions"]) <= 1 for page in pages)
    seen = [f["FunctionName"] for page in pages for f in page["Functions"]]
    assert names <= set(seen)
    assert len(seen) == len(set(seen))


def test_list_functions_returns_configurations(lambda_client, create_function):
    created = create_function(Description="listed")
    listed = {f["FunctionName"]: f for f in lambda_client.get_paginator("list_functions").paginate().build_full_result()["Functions"]}
    entry = listed[created["FunctionName"]]
    assert entry["FunctionArn"] == created["FunctionArn"]
    assert entry["Description"] == "listed"
    assert entry["CodeSha256"] == created["CodeSha256"]


def test_update_function_code_changes_sha_and_revision(lambda_client, create_function):
    created = create_function("def handler(event, context):\n    return 'v1'\n")
    name = created["FunctionName"]
    new_zip = make_zip({"app.py": "def handler(event, context):\n    return 'v2'\n"})

    updated = lambda_client.update_function_code(FunctionName=name, ZipFile=new_zip)

    assert updated["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert updated["CodeSha256"] == code_sha256(new_zip) != created["CodeSha256"]
    assert updated["CodeSize"] == len(new_zip)
    assert updated["RevisionId"] != created["RevisionId"]
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
    assert lambda_client.get_function_configuration(FunctionName=name)["CodeSha256"] == code_sha256(new_zip)
    _, payload = invoke_json(lambda_client, name)
    assert payload == "v2"


def test_update_function_configuration_changes_settings_and_environment(lambda_client, create_function):
    code = "import os\n\ndef handler(event, context):\n    return os.environ.get('COLOR')\n"
    created = create_function(code, Environment={"Variables": {"COLOR": "red"}})
    name = created["FunctionName"]
    assert invoke_json(lambda_client, name)[1] == "red"

    updated = lambda_client.update_function_configuration(
        FunctionName=name, Environment={"Variables": {"COLOR": "blue"}}, Timeout=20, MemorySize=512,
        Description="updated")

    assert updated["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert updated["RevisionId"] != created["RevisionId"]
    assert updated["Environment"]["Variables"] == {"COLOR": "blue"}
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
    config = lambda_client.get_function_configuration(FunctionName=name)
    assert (config["Timeout"], config["MemorySize"], config["Description"]) == (20, 512, "updated")
    assert config["CodeSha256"] == created["CodeSha256"]
    assert invoke_json(lambda_client, name)[1] == "blue"


def test_delete_function_removes_it(lambda_client, create_function):
    name = create_function()["FunctionName"]

    resp = lambda_client.delete_function(FunctionName=name)

    assert resp["ResponseMetadata"]["HTTPStatusCode"] < 300
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_function(FunctionName=name)
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.invoke(FunctionName=name, Payload=b"{}")
    listed = lambda_client.get_paginator("list_functions").paginate().build_full_result()["Functions"]
    assert name not in {f["FunctionName"] for f in listed}


def test_delete_function_by_full_arn(lambda_client, create_function):
    name = create_function()["FunctionName"]
    lambda_client.delete_function(FunctionName=function_arn(name))
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_function_configuration(FunctionName=name)


def test_waiters_pass(lambda_client, create_function):
    name = create_function()["FunctionName"]
    config = {"Delay": 1, "MaxAttempts": 10}
    lambda_client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=config)
    lambda_client.get_waiter("function_exists").wait(FunctionName=name, WaiterConfig=config)
    lambda_client.update_function_configuration(FunctionName=name, Description="waited")
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=config)


def test_parameters_are_checked_against_the_model_before_lookup(lambda_client, create_function):
    """Path, query and header parameters are validated with the model's constraints first: a
    malformed Qualifier is a ValidationException, not a 404, even for a function that exists."""
    name = create_function()["FunctionName"]
    for call in (lambda: lambda_client.get_function(FunctionName=name, Qualifier="invalid!"),
                 lambda: lambda_client.invoke(FunctionName=name, Qualifier="invalid!"),
                 lambda: lambda_client.get_function(FunctionName="no-such-function", Qualifier="invalid!")):
        try:
            call()
        except ClientError as exc:
            error = exc.response["Error"]
        else:
            raise AssertionError("accepted")
        assert error["Code"] == "ValidationException", error
        assert error["Message"].startswith("1 validation error detected: Value 'invalid!' at 'qualifier' failed to "
                                           "satisfy constraint: Member must satisfy regular expression pattern: "), error
    listed = lambda_client.list_functions(MaxItems=1)  # a valid query parameter still passes
    assert len(listed["Functions"]) == 1
    try:  # past botocore's own client-side check, as any other client may send it
        urllib.request.urlopen(lambda_client.meta.endpoint_url + "/2015-03-31/functions/?MaxItems=0")
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read())
        assert exc.code == 400 and exc.headers["x-amzn-ErrorType"] == "ValidationException", body
        assert "at 'maxItems' failed to satisfy constraint: Member must have value greater than or equal to 1" in \
            body["message"]
    else:
        raise AssertionError("MaxItems=0 accepted")


@pytest.mark.parametrize("runtime", ["provided", "python3.7", "python3.8", "nodejs16.x", "java8", "go1.x"])
def test_deprecated_runtimes_are_refused_in_aws_words(lambda_client, unique_name, runtime):
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException) as refused:
        lambda_client.create_function(FunctionName=unique_name, Runtime=runtime, Role=ROLE, Handler="app.handler",
                                      Code={"ZipFile": make_zip({"app.py": ECHO_HANDLER})})
    assert refused.value.response["Error"]["Message"] == (
        f"The runtime parameter of {runtime} is no longer supported for creating or updating AWS Lambda functions. "
        "We recommend you use a supported runtime while creating or updating functions.")


def test_deleting_a_missing_version_or_alias_succeeds_as_on_aws(lambda_client, create_function):
    name = create_function()["FunctionName"]
    for _ in range(2):
        assert lambda_client.delete_function(FunctionName=name, Qualifier="1233")["ResponseMetadata"]["HTTPStatusCode"] == 204
        assert lambda_client.delete_alias(FunctionName=name, Name="non-existent")["ResponseMetadata"]["HTTPStatusCode"] == 204
    lambda_client.delete_function(FunctionName=name)
    for call in (lambda: lambda_client.delete_function(FunctionName=name),
                 lambda: lambda_client.delete_function(FunctionName=name, Qualifier="1233"),
                 lambda: lambda_client.delete_alias(FunctionName=name, Name="non-existent")):
        with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
            call()


def test_a_request_signed_for_another_region_is_refused(server, lambda_client):
    """As AWS's endpoint for one region refuses a signature scoped to another (no silent answer
    from this server's region)."""
    import boto3

    other = boto3.client("lambda", endpoint_url=server.url, region_name="eu-west-1",
                         aws_access_key_id="test", aws_secret_access_key="test")
    with pytest.raises(ClientError) as refused:
        other.list_functions()
    error = refused.value.response["Error"]
    assert (error["Code"], refused.value.response["ResponseMetadata"]["HTTPStatusCode"]) == ("InvalidSignatureException", 403)
    assert error["Message"].startswith("Credential should be scoped to a valid region.") and "us-east-1" in error["Message"]
    logs = boto3.client("logs", endpoint_url=server.url, region_name="eu-west-1",
                        aws_access_key_id="test", aws_secret_access_key="test")
    with pytest.raises(ClientError) as refused:
        logs.describe_log_groups()
    assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert lambda_client.list_functions()["ResponseMetadata"]["HTTPStatusCode"] == 200


@pytest.mark.parametrize("member", [
    {"PublishTo": "LATEST_PUBLISHED"},
    {"CapacityProviderConfig": {"LambdaManagedInstancesCapacityProviderConfig": {
        "CapacityProviderArn": "arn:aws:lambda:us-east-1:000000000000:capacity-provider:cp"}}},
    {"DurableConfig": {"RetentionPeriodInDays": 7}},
])
def test_members_this_server_cannot_honour_are_refused_not_ignored(lambda_client, unique_name, member):
    """A stored-but-ignored setting is a bug: until it is built, such a member is refused, and nothing is created."""
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException) as refused:
        lambda_client.create_function(FunctionName=unique_name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                                      Code={"ZipFile": make_zip({"app.py": ECHO_HANDLER})}, **member)
    assert "is not supported by this Lambdalet server yet" in refused.value.response["Error"]["Message"]
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_function(FunctionName=unique_name)


def test_code_storage_members_are_refused_unless_default(lambda_client, create_function):
    name = create_function()["FunctionName"]
    code = make_zip({"app.py": ECHO_HANDLER})
    lambda_client.update_function_code(FunctionName=name, ZipFile=code, S3ObjectStorageMode="COPY")  # the default
    for member in ({"S3ObjectStorageMode": "REFERENCE"}, {"SourceKMSKeyArn": "arn:aws:kms:us-east-1:000000000000:key/k"},
                   {"PublishTo": "LATEST_PUBLISHED"}):
        with pytest.raises(lambda_client.exceptions.InvalidParameterValueException):
            lambda_client.update_function_code(FunctionName=name, ZipFile=code, **member)
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException):
        lambda_client.publish_version(FunctionName=name, PublishTo="LATEST_PUBLISHED")
