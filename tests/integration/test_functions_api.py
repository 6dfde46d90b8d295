"""Control plane: create, read, list, update and delete functions (CONTRACT.md §1)."""

from __future__ import annotations

import re
import urllib.request

import pytest

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
