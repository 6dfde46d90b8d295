"""Lambda's function states and the response shapes AWS gives, as its recorded answers show them
(LocalStack's test_lambda_api snapshots, recorded against AWS): Pending → Active on create,
InProgress → Successful on update, the refusals while a change is in progress, and which ARN,
which members each answer carries."""

from __future__ import annotations

import signal

import pytest
from botocore.exceptions import ClientError

from conftest import ROLE, make_zip
from conftest import invoke_json
from .helpers import COUNTER_HANDLER, ECHO_HANDLER, function_arn, wait_updated

CODE = {"ZipFile": make_zip({"app.py": ECHO_HANDLER})}
OTHER_CODE = make_zip({"app.py": "def handler(event, context):\n    return 'other'\n"})
STATE_MEMBERS = ("State", "StateReason", "StateReasonCode", "LastUpdateStatus", "LastUpdateStatusReason",
                 "LastUpdateStatusReasonCode")


def states(config: dict) -> dict:
    return {member: config[member] for member in STATE_MEMBERS if member in config}


def conflict(call) -> str:
    with pytest.raises(ClientError) as exc:
        call()
    assert exc.value.response["Error"]["Code"] == "ResourceConflictException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    return exc.value.response["Error"]["Message"]


# --- states ---------------------------------------------------------------------------------------

def test_create_answers_pending_then_the_function_is_active_with_a_new_revision(create_function, lambda_client):
    created = create_function()
    assert states(created) == {"State": "Pending", "StateReason": "The function is being created.",
                               "StateReasonCode": "Creating"}
    config = lambda_client.get_function(FunctionName=created["FunctionName"])["Configuration"]
    assert states(config) == {"State": "Active", "LastUpdateStatus": "Successful"}
    assert config["RevisionId"] != created["RevisionId"]  # AWS changes it when the function becomes Active


def test_update_answers_in_progress_then_successful_and_refuses_a_second_update(create_function, lambda_client):
    name = create_function()["FunctionName"]
    active = lambda_client.get_function_configuration(FunctionName=name)
    updated = lambda_client.update_function_configuration(FunctionName=name, Description="one")
    assert states(updated) == {"State": "Active", "LastUpdateStatus": "InProgress",
                               "LastUpdateStatusReason": "The function is being created.",
                               "LastUpdateStatusReasonCode": "Creating"}
    assert updated["RevisionId"] != active["RevisionId"]
    in_progress = f"The operation cannot be performed at this time. An update is in progress for resource: " \
                  f"{function_arn(name)}"
    assert conflict(lambda: lambda_client.update_function_configuration(FunctionName=name, Description="2")) \
        == in_progress
    assert conflict(lambda: lambda_client.update_function_code(FunctionName=name, ZipFile=OTHER_CODE)) == in_progress
    assert conflict(lambda: lambda_client.publish_version(FunctionName=name)) == in_progress
    # invoking goes on while an update is in progress
    assert lambda_client.invoke(FunctionName=name, Payload=b'{"a": 1}')["StatusCode"] == 200
    settled = wait_updated(lambda_client, name)
    assert states(settled) == {"State": "Active", "LastUpdateStatus": "Successful"}
    assert settled["RevisionId"] != updated["RevisionId"] and settled["Description"] == "one"
    code = lambda_client.update_function_code(FunctionName=name, ZipFile=OTHER_CODE)
    assert code["LastUpdateStatus"] == "InProgress"
    wait_updated(lambda_client, name)


def test_waiters_pass(create_function, lambda_client):
    name = create_function()["FunctionName"]
    lambda_client.get_waiter("function_active_v2").wait(FunctionName=name)
    lambda_client.update_function_configuration(FunctionName=name, MemorySize=256)
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1})
    version = lambda_client.publish_version(FunctionName=name)
    assert states(version) == {"State": "Active", "LastUpdateStatus": "Successful"}
    lambda_client.get_waiter("published_version_active").wait(FunctionName=name, Qualifier=version["Version"],
                                                               WaiterConfig={"Delay": 1})


def test_a_version_published_with_an_update_is_pending_until_the_update_is_done(create_function, lambda_client):
    name = create_function()["FunctionName"]
    published = lambda_client.update_function_code(FunctionName=name, ZipFile=OTHER_CODE, Publish=True)
    assert published["Version"] == "1" and published["FunctionArn"] == function_arn(name) + ":1"
    assert states(published) == {"State": "Pending", "StateReason": "The function is being created.",
                                 "StateReasonCode": "Creating"}
    assert states(lambda_client.get_function(FunctionName=name, Qualifier="1")["Configuration"])["State"] \
        == "Pending"
    latest = lambda_client.get_function(FunctionName=name, Qualifier="$LATEST")["Configuration"]
    assert latest["LastUpdateStatus"] == "InProgress" and latest["FunctionArn"] == function_arn(name) + ":$LATEST"
    assert conflict(lambda: lambda_client.invoke(FunctionName=name, Qualifier="1")) == (
        "The operation cannot be performed at this time. The function is currently in the following state: Pending")
    wait_updated(lambda_client, name)
    version = lambda_client.get_function_configuration(FunctionName=name, Qualifier="1")
    assert states(version) == {"State": "Active", "LastUpdateStatus": "Successful"}
    assert version["RevisionId"] != published["RevisionId"]
    assert lambda_client.invoke(FunctionName=name, Qualifier="1")["Payload"].read() == b'"other"'
    # nothing changed since version 1 was published: no new version (the settled revision still counts)
    assert lambda_client.publish_version(FunctionName=name)["Version"] == "1"


def test_publishing_gives_latest_a_new_revision_and_a_no_op_publish_does_not(create_function, lambda_client):
    name = create_function()["FunctionName"]
    active = lambda_client.get_function_configuration(FunctionName=name)["RevisionId"]
    version = lambda_client.publish_version(FunctionName=name, RevisionId=active)
    assert version["RevisionId"] != active
    latest = lambda_client.get_function_configuration(FunctionName=name)["RevisionId"]
    assert latest not in (active, version["RevisionId"])  # as AWS: publishing changes $LATEST's RevisionId
    assert lambda_client.get_function_configuration(FunctionName=name, Qualifier="1")["RevisionId"] \
        == version["RevisionId"]  # and the version keeps its own
    assert lambda_client.publish_version(FunctionName=name, RevisionId=latest)["Version"] == "1"
    assert lambda_client.get_function_configuration(FunctionName=name)["RevisionId"] == latest


def test_states_and_revisions_changing_keep_the_warm_environment(create_function, lambda_client):
    """Settling a change, or publishing, changes only states and RevisionIds: the environment that runs
    $LATEST stays warm (no new cold start)."""
    name = create_function(COUNTER_HANDLER)["FunctionName"]
    lambda_client.update_function_configuration(FunctionName=name, Description="changed")
    first = invoke_json(lambda_client, name)[1]  # while the update is InProgress
    wait_updated(lambda_client, name)
    assert invoke_json(lambda_client, name)[1]["env_id"] == first["env_id"]
    lambda_client.publish_version(FunctionName=name)
    assert invoke_json(lambda_client, name)[1]["env_id"] == first["env_id"]


def test_a_change_in_progress_is_settled_by_a_restart(fresh_server):
    """Killed before the change settled (its work was all done before the answer): settled at start-up."""
    fresh_server.start()
    client = fresh_server.client()
    client.create_function(FunctionName="restarted", Runtime="python3.11", Role=ROLE, Handler="app.handler",
                           Code=CODE)
    updated = client.update_function_code(FunctionName="restarted", ZipFile=OTHER_CODE, Publish=True)
    fresh_server.stop(signal.SIGKILL)
    fresh_server.start()
    client = fresh_server.client()
    for qualifier in ("$LATEST", "1"):
        config = client.get_function_configuration(FunctionName="restarted", Qualifier=qualifier)
        assert states(config) == {"State": "Active", "LastUpdateStatus": "Successful"}
    assert client.get_function_configuration(FunctionName="restarted", Qualifier="1")["RevisionId"] \
        != updated["RevisionId"]
    assert client.invoke(FunctionName="restarted", Qualifier="1")["Payload"].read() == b'"other"'


# --- shapes ---------------------------------------------------------------------------------------

def test_create_with_publish_answers_version_1_under_the_unqualified_arn(create_function, lambda_client):
    created = create_function(Publish=True)
    name = created["FunctionName"]
    assert created["Version"] == "1" and created["FunctionArn"] == function_arn(name)
    assert created["State"] == "Pending"
    version = lambda_client.get_function(FunctionName=name, Qualifier="1")["Configuration"]
    assert version["State"] == "Active" and version["RevisionId"] != created["RevisionId"]
    assert lambda_client.publish_version(FunctionName=name)["Version"] == "1"


def test_latest_is_named_in_the_arn_where_aws_names_it(create_function, lambda_client):
    name = create_function(Publish=True)["FunctionName"]
    arn = function_arn(name)
    assert lambda_client.get_function_configuration(FunctionName=name)["FunctionArn"] == arn
    assert lambda_client.get_function_configuration(FunctionName=name, Qualifier="$LATEST")["FunctionArn"] \
        == arn + ":$LATEST"
    assert lambda_client.get_function(FunctionName=name, Qualifier="$LATEST")["Configuration"]["FunctionArn"] \
        == arn + ":$LATEST"
    versions = lambda_client.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["FunctionArn"] for v in versions] == [arn + ":$LATEST", arn + ":1"]
    every = [f for f in lambda_client.list_functions(FunctionVersion="ALL")["Functions"] if f["FunctionName"] == name]
    assert [f["FunctionArn"] for f in every] == [arn + ":$LATEST", arn + ":1"]
    plain = [f for f in lambda_client.list_functions()["Functions"] if f["FunctionName"] == name]
    assert [f["FunctionArn"] for f in plain] == [arn]
    put = lambda_client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    assert put["FunctionArn"] == arn + ":$LATEST"
    assert lambda_client.get_function_event_invoke_config(FunctionName=name)["FunctionArn"] == arn + ":$LATEST"
    listed = lambda_client.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
    assert [c["FunctionArn"] for c in listed] == [arn + ":$LATEST"]


def test_get_function_by_alias_shows_the_alias_arn(create_function, lambda_client):
    name = create_function(Publish=True)["FunctionName"]
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    for call in (lambda: lambda_client.get_function(FunctionName=name, Qualifier="live")["Configuration"],
                 lambda: lambda_client.get_function_configuration(FunctionName=f"{name}:live")):
        config = call()
        assert config["FunctionArn"] == function_arn(name) + ":live" and config["Version"] == "1"


def test_list_operations_carry_only_the_members_aws_lists(create_function, lambda_client):
    name = create_function(Publish=True)["FunctionName"]
    assert "RuntimeVersionConfig" in lambda_client.get_function_configuration(FunctionName=name)
    listed = [f for f in lambda_client.list_functions(FunctionVersion="ALL")["Functions"] if f["FunctionName"] == name]
    listed += lambda_client.list_versions_by_function(FunctionName=name)["Versions"]
    assert len(listed) == 4
    for config in listed:
        assert not set(config) & {*STATE_MEMBERS, "RuntimeVersionConfig"}
        assert {"FunctionArn", "Version", "RevisionId", "SnapStart", "LoggingConfig"} <= set(config)


def test_empty_environment_is_echoed(create_function, lambda_client):
    created = create_function(Environment={"Variables": {}})
    assert created["Environment"] == {"Variables": {}}
    name = created["FunctionName"]
    assert lambda_client.get_function_configuration(FunctionName=name)["Environment"] == {"Variables": {}}
    assert "Environment" not in create_function()


def test_function_url_config_echoes_invoke_mode_once_given(create_function, lambda_client):
    """Create and Update answer InvokeMode only once a request gave it for the URL (then always, as
    AWS's test_lambda_update_function_url_config shows); Get and List always show it."""
    name = create_function()["FunctionName"]
    created = lambda_client.create_function_url_config(FunctionName=name, AuthType="NONE")
    assert "InvokeMode" not in created
    assert lambda_client.get_function_url_config(FunctionName=name)["InvokeMode"] == "BUFFERED"
    assert "InvokeMode" not in lambda_client.update_function_url_config(FunctionName=name, AuthType="AWS_IAM")
    given = lambda_client.update_function_url_config(FunctionName=name, InvokeMode="BUFFERED")
    assert given["InvokeMode"] == "BUFFERED"
    assert lambda_client.update_function_url_config(FunctionName=name, AuthType="NONE")["InvokeMode"] == "BUFFERED"
    listed = lambda_client.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"]
    assert [c["InvokeMode"] for c in listed] == ["BUFFERED"]
    lambda_client.delete_function_url_config(FunctionName=name)
    again = lambda_client.create_function_url_config(FunctionName=name, AuthType="NONE", InvokeMode="BUFFERED")
    assert again["InvokeMode"] == "BUFFERED"


def test_layers_echo_empty_compatibility_lists_that_were_given(lambda_client, unique_name):
    content = {"ZipFile": make_zip({"python/lib.py": "X = 1\n"})}
    empty = lambda_client.publish_layer_version(LayerName=unique_name, Content=content, CompatibleRuntimes=[],
                                                CompatibleArchitectures=[])
    try:
        assert empty["CompatibleRuntimes"] == [] and empty["CompatibleArchitectures"] == []
        got = lambda_client.get_layer_version(LayerName=unique_name, VersionNumber=empty["Version"])
        assert got["CompatibleRuntimes"] == [] and got["CompatibleArchitectures"] == []
        bare = lambda_client.publish_layer_version(LayerName=unique_name, Content=content)
        assert "CompatibleRuntimes" not in bare and "CompatibleArchitectures" not in bare
    finally:
        for version in lambda_client.list_layer_versions(LayerName=unique_name)["LayerVersions"]:
            lambda_client.delete_layer_version(LayerName=unique_name, VersionNumber=version["Version"])


def test_total_code_size_counts_every_version_and_layer_version(create_function, lambda_client, unique_name):
    def total() -> int:
        return lambda_client.get_account_settings()["AccountUsage"]["TotalCodeSize"]

    before = total()
    created = create_function(Publish=True)
    assert total() - before == 2 * created["CodeSize"]  # $LATEST and version 1
    before = total()
    layer = lambda_client.publish_layer_version(LayerName=unique_name,
                                                Content={"ZipFile": make_zip({"python/lib.py": "X = 1\n"})})
    try:
        assert total() - before == layer["Content"]["CodeSize"]  # as AWS counts layer archives
    finally:
        lambda_client.delete_layer_version(LayerName=unique_name, VersionNumber=layer["Version"])
    assert total() == before
