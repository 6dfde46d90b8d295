"""Tenant isolation: TenancyConfig PER_TENANT on CreateFunction, X-Amz-Tenant-Id on Invoke; an
execution environment serves one tenant only (issue 17)."""

from __future__ import annotations

import json

from conftest import ROLE, make_zip

from .helpers import aws_error, decoded_log, wait_for_function_log

TENANT_HANDLER = """\
import uuid

ENV_ID = uuid.uuid4().hex


def handler(event, context):
    print(f"tenant={context.tenant_id} marker={event.get('marker')}")
    return {"env_id": ENV_ID, "tenant": context.tenant_id}
"""
PER_TENANT = {"TenantIsolationMode": "PER_TENANT"}


def _invoke(client, name: str, tenant: str) -> dict:
    resp = client.invoke(FunctionName=name, TenantId=tenant, Payload=b"{}")
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp
    return json.loads(resp["Payload"].read())


def test_tenancy_config_is_echoed(lambda_client, create_function):
    created = create_function(TENANT_HANDLER, TenancyConfig=PER_TENANT)
    name = created["FunctionName"]

    assert created["TenancyConfig"] == PER_TENANT
    assert lambda_client.get_function(FunctionName=name)["Configuration"]["TenancyConfig"] == PER_TENANT
    assert lambda_client.get_function_configuration(FunctionName=name)["TenancyConfig"] == PER_TENANT
    plain = create_function()
    assert "TenancyConfig" not in plain
    assert "TenancyConfig" not in lambda_client.get_function_configuration(FunctionName=plain["FunctionName"])


def test_each_tenant_has_its_own_environments(lambda_client, create_function):
    name = create_function(TENANT_HANDLER, TenancyConfig=PER_TENANT)["FunctionName"]

    blue = _invoke(lambda_client, name, "blue")
    green = _invoke(lambda_client, name, "green")
    blue_again = _invoke(lambda_client, name, "blue")

    assert blue["tenant"] == "blue" and green["tenant"] == "green"
    assert blue["env_id"] != green["env_id"]  # never the same environment for two tenants
    assert blue_again["env_id"] == blue["env_id"]  # the same tenant's warm environment is reused


def test_node_context_has_the_tenant_id(lambda_client, create_function):
    code = "exports.handler = async (event, context) => ({tenant: context.tenantId});\n"
    name = create_function(files={"index.js": code}, Runtime="nodejs20.x", Handler="index.handler",
                           TenancyConfig=PER_TENANT)["FunctionName"]

    resp = lambda_client.invoke(FunctionName=name, TenantId="acme:eu/1", Payload=b"{}")

    assert json.loads(resp["Payload"].read()) == {"tenant": "acme:eu/1"}


def test_tenant_id_must_fit_the_function(lambda_client, create_function):
    isolated = create_function(TENANT_HANDLER, TenancyConfig=PER_TENANT)["FunctionName"]
    plain = create_function()["FunctionName"]

    code, status, message = aws_error(lambda_client.invoke, FunctionName=isolated, Payload=b"{}")
    assert (code, status) == ("InvalidParameterValueException", 400) and "tenant ID" in message
    code, status, message = aws_error(lambda_client.invoke, FunctionName=plain, TenantId="blue", Payload=b"{}")
    assert (code, status) == ("InvalidParameterValueException", 400) and "remove the tenant ID" in message
    code, status, _ = aws_error(lambda_client.invoke, FunctionName=isolated, TenantId="no#hash", Payload=b"{}")
    assert (code, status) == ("ValidationException", 400)  # the model's pattern


def test_event_invoke_keeps_the_tenant(server, lambda_client, create_function):
    name = create_function(TENANT_HANDLER, TenancyConfig=PER_TENANT)["FunctionName"]

    resp = lambda_client.invoke(FunctionName=name, TenantId="orange", InvocationType="Event",
                                Payload=json.dumps({"marker": "async-1"}))

    assert resp["StatusCode"] == 202
    wait_for_function_log(server, name, "tenant=orange marker=async-1")


def test_snapstart_is_refused_with_tenancy(lambda_client, unique_name):
    code, status, message = aws_error(
        lambda_client.create_function, FunctionName=unique_name, Runtime="python3.12", Role=ROLE,
        Handler="app.handler", Code={"ZipFile": make_zip({"app.py": TENANT_HANDLER})},
        TenancyConfig=PER_TENANT, SnapStart={"ApplyOn": "PublishedVersions"})
    assert (code, status) == ("InvalidParameterValueException", 400) and "tenant isolation" in message


def test_tenancy_config_survives_a_restart(fresh_server):
    fresh_server.start()
    client = fresh_server.client()
    client.create_function(FunctionName="tenanted", Runtime="python3.11", Role=ROLE, Handler="app.handler",
                           Code={"ZipFile": make_zip({"app.py": TENANT_HANDLER})}, TenancyConfig=PER_TENANT)

    fresh_server.restart()

    client = fresh_server.client()
    assert client.get_function_configuration(FunctionName="tenanted")["TenancyConfig"] == PER_TENANT
    assert _invoke(client, "tenanted", "blue")["tenant"] == "blue"


def test_features_lambda_does_not_offer_with_tenancy_are_refused(lambda_client, create_function):
    name = create_function(TENANT_HANDLER, Runtime="python3.12", TenancyConfig=PER_TENANT)["FunctionName"]
    version = lambda_client.publish_version(FunctionName=name)["Version"]

    code, status, message = aws_error(lambda_client.create_function_url_config, FunctionName=name, AuthType="NONE")
    assert (code, status) == ("InvalidParameterValueException", 400) and "tenant isolation" in message
    code, status, message = aws_error(lambda_client.put_provisioned_concurrency_config, FunctionName=name,
                                      Qualifier=version, ProvisionedConcurrentExecutions=1)
    assert (code, status) == ("InvalidParameterValueException", 400) and "tenant isolation" in message
    code, status, message = aws_error(lambda_client.update_function_configuration, FunctionName=name,
                                      SnapStart={"ApplyOn": "PublishedVersions"})
    assert (code, status) == ("InvalidParameterValueException", 400) and "tenant isolation" in message
    code, status, message = aws_error(lambda_client.create_event_source_mapping, FunctionName=name,
                                      EventSourceArn="arn:aws:sqs:us-east-1:000000000000:tenant-queue")
    assert (code, status) == ("InvalidParameterValueException", 400) and "tenant isolation" in message


def test_streamed_invoke_runs_in_the_tenants_environment(lambda_client, create_function):
    name = create_function(TENANT_HANDLER, TenancyConfig=PER_TENANT)["FunctionName"]
    buffered = _invoke(lambda_client, name, "blue")

    resp = lambda_client.invoke_with_response_stream(FunctionName=name, TenantId="blue", Payload=b"{}")
    body = b"".join(e["PayloadChunk"]["Payload"] for e in resp["EventStream"] if "PayloadChunk" in e)

    assert json.loads(body) == buffered  # the same warm environment of the same tenant
    code, _, _ = aws_error(lambda_client.invoke_with_response_stream, FunctionName=name, Payload=b"{}")
    assert code == "InvalidParameterValueException"


def test_json_log_records_carry_the_tenant_id(lambda_client, create_function):
    code = ("import logging\nlogging.getLogger().setLevel(logging.INFO)\n\n\n"
            "def handler(event, context):\n    logging.getLogger().info('for the tenant')\n    return 1\n")
    name = create_function(code, TenancyConfig=PER_TENANT, LoggingConfig={"LogFormat": "JSON"})["FunctionName"]

    resp = lambda_client.invoke(FunctionName=name, TenantId="blue", LogType="Tail", Payload=b"{}")

    records = [json.loads(line) for line in decoded_log(resp).splitlines() if line.startswith("{")]
    mine = [r for r in records if r.get("message") == "for the tenant"]
    assert mine and mine[0]["tenantId"] == "blue"
