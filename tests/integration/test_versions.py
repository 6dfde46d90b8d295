"""Versions: PublishVersion, ListVersionsByFunction, immutability and qualified invocation."""

from __future__ import annotations

import pytest

from conftest import ROLE, invoke_json, make_zip

from .helpers import wait_updated

VERSIONED = """
import os

def handler(event, context):
    return {"greeting": os.environ.get("GREETING"), "code": "CODE",
            "version": os.environ["AWS_LAMBDA_FUNCTION_VERSION"], "arn": context.invoked_function_arn,
            "context_version": context.function_version}
"""


def code(marker: str) -> bytes:
    return make_zip({"app.py": VERSIONED.replace("CODE", marker)})


def test_publish_snapshots_latest_and_an_unchanged_latest_publishes_nothing(lambda_client, create_function):
    created = create_function(VERSIONED, Environment={"Variables": {"GREETING": "one"}})
    name = created["FunctionName"]
    v1 = lambda_client.publish_version(FunctionName=name, Description="first")
    assert v1["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert v1["Version"] == "1" and v1["FunctionArn"] == created["FunctionArn"] + ":1"
    assert v1["CodeSha256"] == created["CodeSha256"] and v1["Description"] == "first"
    assert lambda_client.publish_version(FunctionName=name)["Version"] == "1"  # nothing changed
    lambda_client.update_function_configuration(FunctionName=name, Environment={"Variables": {"GREETING": "two"}})
    wait_updated(lambda_client, name)
    assert lambda_client.publish_version(FunctionName=name)["Version"] == "2"
    versions = [v["Version"] for page in lambda_client.get_paginator("list_versions_by_function").paginate(
        FunctionName=name, PaginationConfig={"PageSize": 1}) for v in page["Versions"]]
    assert versions == ["$LATEST", "1", "2"]


def test_publish_preconditions(lambda_client, create_function):
    created = create_function(VERSIONED)
    name = created["FunctionName"]
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException) as error:
        lambda_client.publish_version(FunctionName=name, CodeSha256="not-the-hash")
    assert "is different from current CodeSHA256 in $LATEST" in str(error.value)
    with pytest.raises(lambda_client.exceptions.PreconditionFailedException):
        lambda_client.publish_version(FunctionName=name, RevisionId="stale")
    active = lambda_client.get_function_configuration(FunctionName=name)  # the RevisionId changed with Active
    published = lambda_client.publish_version(FunctionName=name, CodeSha256=created["CodeSha256"],
                                              RevisionId=active["RevisionId"])
    assert published["Version"] == "1"


def test_versions_are_immutable_and_run_their_own_code_and_configuration(lambda_client, create_function):
    # Timeout 15: on this 2-core VM a 128 MB function (7 % of a CPU) once took > 3 s for its first
    # invoke while another test's server tore its sandboxes down; this test is about versions.
    name = create_function(files={"app.py": VERSIONED.replace("CODE", "v1")}, Timeout=15,
                           Environment={"Variables": {"GREETING": "one"}})["FunctionName"]
    lambda_client.publish_version(FunctionName=name)
    lambda_client.update_function_code(FunctionName=name, ZipFile=code("v2"))
    wait_updated(lambda_client, name)
    lambda_client.update_function_configuration(FunctionName=name, Environment={"Variables": {"GREETING": "two"}})

    resp, one = invoke_json(lambda_client, name, {}, Qualifier="1")
    assert "FunctionError" not in resp, one
    assert resp["ExecutedVersion"] == "1"
    assert (one["code"], one["greeting"], one["version"], one["context_version"]) == ("v1", "one", "1", "1")
    assert one["arn"].endswith(f":function:{name}:1")
    resp, latest = invoke_json(lambda_client, name, {})
    assert "FunctionError" not in resp, latest
    assert resp["ExecutedVersion"] == "$LATEST"
    assert (latest["code"], latest["greeting"], latest["version"]) == ("v2", "two", "$LATEST")

    assert lambda_client.get_function(FunctionName=name, Qualifier="1")["Configuration"]["Environment"] == {
        "Variables": {"GREETING": "one"}}
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException):
        lambda_client.update_function_configuration(FunctionName=f"{name}:1", Timeout=10)


def test_every_way_to_name_a_version(lambda_client, create_function):
    created = create_function(VERSIONED)
    name, arn = created["FunctionName"], created["FunctionArn"]
    lambda_client.publish_version(FunctionName=name)
    for function_name, qualifier in ((name, "1"), (f"{name}:1", None), (f"{arn}:1", None),
                                     (f"000000000000:function:{name}:1", None)):
        kwargs = {"Qualifier": qualifier} if qualifier else {}
        resp, body = invoke_json(lambda_client, function_name, {}, **kwargs)
        assert resp["ExecutedVersion"] == "1" and body["arn"] == f"{arn}:1", function_name
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException) as error:
        lambda_client.invoke(FunctionName=f"{name}:1", Qualifier="2")
    assert "does not match the specified qualifier" in str(error.value)
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.invoke(FunctionName=name, Qualifier="7")


def test_deleting_a_version_never_reuses_its_number(lambda_client, create_function):
    name = create_function(VERSIONED)["FunctionName"]
    lambda_client.publish_version(FunctionName=name)
    lambda_client.update_function_configuration(FunctionName=name, Description="changed")
    wait_updated(lambda_client, name)
    assert lambda_client.publish_version(FunctionName=name)["Version"] == "2"
    lambda_client.delete_function(FunctionName=name, Qualifier="2")
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_function_configuration(FunctionName=name, Qualifier="2")
    lambda_client.update_function_configuration(FunctionName=name, Description="again")
    wait_updated(lambda_client, name)
    assert lambda_client.publish_version(FunctionName=name)["Version"] == "3"
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException):
        lambda_client.delete_function(FunctionName=name, Qualifier="$LATEST")


def test_publish_flags_and_listing_every_version(lambda_client, unique_name, create_function):
    created = create_function(VERSIONED, Publish=True)
    name = created["FunctionName"]
    assert created["Version"] == "1"
    updated = lambda_client.update_function_code(FunctionName=name, ZipFile=code("v2"), Publish=True)
    assert updated["Version"] == "2"
    listed = [(f["FunctionName"], f["Version"]) for page in lambda_client.get_paginator("list_functions").paginate(
        FunctionVersion="ALL") for f in page["Functions"] if f["FunctionName"] == name]
    assert listed == [(name, "$LATEST"), (name, "1"), (name, "2")]


def test_versions_survive_a_restart(fresh_server):
    fresh_server.start()
    client = fresh_server.client()
    client.create_function(FunctionName="kept", Runtime="python3.12", Role=ROLE, Handler="app.handler",
                           Code={"ZipFile": code("v1")}, Publish=True)
    client.update_function_code(FunctionName="kept", ZipFile=code("v2"))
    fresh_server.restart()
    assert invoke_json(client, "kept", {}, Qualifier="1")[1]["code"] == "v1"
    assert invoke_json(client, "kept", {})[1]["code"] == "v2"
    client.update_function_configuration(FunctionName="kept", Description="after restart")
    wait_updated(client, "kept")
    assert client.publish_version(FunctionName="kept")["Version"] == "2"
