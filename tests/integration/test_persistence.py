"""Functions survive a server restart (metadata and code live in the data directory)."""

from __future__ import annotations

from conftest import invoke_json

from .helpers import create_python_function

CODE = "def handler(event, context):\n    return {'persisted': event['n']}\n"


def test_functions_survive_a_restart(fresh_server, unique_name):
    fresh_server.start()
    client = fresh_server.client()
    created = create_python_function(client, unique_name, CODE, Description="survivor", Timeout=7,
                                     Environment={"Variables": {"KEEP": "me"}})
    assert invoke_json(client, unique_name, {"n": 1})[1] == {"persisted": 1}
    client.put_function_concurrency(FunctionName=unique_name, ReservedConcurrentExecutions=7)
    unreserved = client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]

    fresh_server.restart()
    client = fresh_server.client()

    listed = client.get_paginator("list_functions").paginate().build_full_result()["Functions"]
    assert unique_name in {f["FunctionName"] for f in listed}
    config = client.get_function_configuration(FunctionName=unique_name)
    assert config["CodeSha256"] == created["CodeSha256"]
    assert (config["Description"], config["Timeout"]) == ("survivor", 7)
    assert config["Environment"]["Variables"] == {"KEEP": "me"}
    resp, payload = invoke_json(client, unique_name, {"n": 2})
    assert "FunctionError" not in resp
    assert payload == {"persisted": 2}
    assert client.get_function_concurrency(FunctionName=unique_name)["ReservedConcurrentExecutions"] == 7
    assert client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == unreserved
