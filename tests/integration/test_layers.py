"""Layers: publish/get/list/delete, layer permissions, `Layers` on functions, and /opt at run time
(CONTRACT.md §11)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import urllib.request
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import ROLE, aws_cli, invoke_json, make_zip

from .helpers import ACCOUNT, REGION, code_sha256, create_python_function, error_code_and_status

DATA = Path(__file__).parent / "data"
PYTHON = f"python3.{sys.version_info[1]}"  # the interpreter of the test run, so a runtime of the host

LAYER_LIB = "VALUE = 'from mylib in the layer'\n"
SITE_LIB = "VALUE = 'from site-packages in the layer'\n"

IMPORTS_FROM_LAYERS = """
import os, sys

def handler(event, context):
    import mylib
    import sitelib
    return {"mylib": mylib.VALUE, "sitelib": sitelib.VALUE, "mylib_file": mylib.__file__,
            "path": sys.path[:4], "task_root": os.environ["LAMBDA_TASK_ROOT"]}
"""


def layer_arn(name: str, version: int | None = None) -> str:
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{name}"
    return f"{arn}:{version}" if version is not None else arn


@pytest.fixture
def publish_layer(lambda_client, unique_name):
    """Publish a layer version (files → zip); every version published is deleted after the test."""
    published: list[tuple[str, int]] = []

    def _publish(files: dict[str, str | bytes], *, name: str | None = None, modes: dict[str, int] | None = None,
                 **kwargs) -> dict:
        layer_name = name or f"{unique_name}-layer"
        resp = lambda_client.publish_layer_version(LayerName=layer_name, Content={"ZipFile": make_zip(files, modes)},
                                                   **kwargs)
        published.append((layer_name, resp["Version"]))
        return resp

    yield _publish
    for layer_name, version in published:
        lambda_client.delete_layer_version(LayerName=layer_name, VersionNumber=version)


# ------------------------------------------------------------------------------------------- control plane

def test_publish_get_list_and_delete_layer_versions(lambda_client, publish_layer, unique_name):
    name = f"{unique_name}-layer"
    content = make_zip({"python/mylib.py": LAYER_LIB})
    v1 = lambda_client.publish_layer_version(
        LayerName=name, Content={"ZipFile": content}, Description="first", LicenseInfo="MIT",
        CompatibleRuntimes=["python3.11", "python3.12"], CompatibleArchitectures=["x86_64"])
    assert v1["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert (v1["LayerArn"], v1["LayerVersionArn"], v1["Version"]) == (layer_arn(name), layer_arn(name, 1), 1)
    assert (v1["Description"], v1["LicenseInfo"]) == ("first", "MIT")
    assert v1["CompatibleRuntimes"] == ["python3.11", "python3.12"] and v1["CompatibleArchitectures"] == ["x86_64"]
    assert v1["Content"]["CodeSha256"] == code_sha256(content) and v1["Content"]["CodeSize"] == len(content)
    assert v1["CreatedDate"].endswith("+0000")
    with urllib.request.urlopen(v1["Content"]["Location"], timeout=10) as download:
        assert download.read() == content
    v2 = publish_layer({"python/mylib.py": "VALUE = 2\n"}, name=name, CompatibleRuntimes=["nodejs20.x"])
    assert v2["Version"] == 2 and "LicenseInfo" not in v2 and "CompatibleArchitectures" not in v2

    got = lambda_client.get_layer_version(LayerName=name, VersionNumber=1)
    assert {k: v for k, v in got.items() if k != "ResponseMetadata"} == \
        {k: v for k, v in v1.items() if k != "ResponseMetadata"}
    assert lambda_client.get_layer_version(LayerName=layer_arn(name), VersionNumber=2)["Version"] == 2
    assert lambda_client.get_layer_version_by_arn(Arn=layer_arn(name, 1))["Description"] == "first"

    layers = {layer["LayerName"]: layer for layer in
              lambda_client.get_paginator("list_layers").paginate().build_full_result()["Layers"]}
    assert layers[name]["LayerArn"] == layer_arn(name)
    assert layers[name]["LatestMatchingVersion"]["Version"] == 2
    assert "Content" not in layers[name]["LatestMatchingVersion"]
    by_runtime = lambda_client.list_layers(CompatibleRuntime="python3.12")["Layers"]
    assert [layer["LatestMatchingVersion"]["Version"] for layer in by_runtime if layer["LayerName"] == name] == [1]
    by_arch = lambda_client.list_layers(CompatibleArchitecture="arm64")["Layers"]
    assert name not in {layer["LayerName"] for layer in by_arch}

    pages = list(lambda_client.get_paginator("list_layer_versions").paginate(
        LayerName=name, PaginationConfig={"PageSize": 1}))
    assert [v["Version"] for page in pages for v in page["LayerVersions"]] == [2, 1]  # newest first
    assert pages[0]["LayerVersions"][0]["LayerVersionArn"] == layer_arn(name, 2)
    filtered = lambda_client.list_layer_versions(LayerName=name, CompatibleRuntime="nodejs20.x")["LayerVersions"]
    assert [v["Version"] for v in filtered] == [2]

    lambda_client.delete_layer_version(LayerName=name, VersionNumber=1)
    lambda_client.delete_layer_version(LayerName=name, VersionNumber=1)  # idempotent, as on Lambda
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_layer_version(LayerName=name, VersionNumber=1)
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_layer_version_by_arn(Arn=layer_arn(name, 1))
    assert publish_layer({"python/mylib.py": "VALUE = 3\n"}, name=name)["Version"] == 3  # never renumbered
    assert [v["Version"] for v in lambda_client.list_layer_versions(LayerName=name)["LayerVersions"]] == [3, 2]
    assert lambda_client.list_layer_versions(LayerName=f"{name}-none")["LayerVersions"] == []
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException) as error:
        lambda_client.get_layer_version(LayerName=name, VersionNumber=0)
    assert "Layer Version Cannot be less than 1" in str(error.value)


def test_layer_version_permissions(lambda_client, publish_layer):
    layer = publish_layer({"python/mylib.py": LAYER_LIB})
    name, arn = layer["LayerArn"].rsplit(":", 1)[1], layer["LayerVersionArn"]
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException) as error:
        lambda_client.get_layer_version_policy(LayerName=name, VersionNumber=1)
    assert "No policy is associated with the given resource." in str(error.value)

    added = lambda_client.add_layer_version_permission(
        LayerName=name, VersionNumber=1, StatementId="xaccount", Action="lambda:GetLayerVersion",
        Principal="123456789012")
    assert added["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert json.loads(added["Statement"]) == {
        "Sid": "xaccount", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "lambda:GetLayerVersion", "Resource": arn}
    with pytest.raises(lambda_client.exceptions.PreconditionFailedException):
        lambda_client.add_layer_version_permission(
            LayerName=name, VersionNumber=1, StatementId="org", Action="lambda:GetLayerVersion", Principal="*",
            RevisionId="stale")
    org = lambda_client.add_layer_version_permission(
        LayerName=name, VersionNumber=1, StatementId="org", Action="lambda:GetLayerVersion", Principal="*",
        OrganizationId="o-abcdefghij", RevisionId=added["RevisionId"])
    assert json.loads(org["Statement"])["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}}

    policy = lambda_client.get_layer_version_policy(LayerName=name, VersionNumber=1)
    document = json.loads(policy["Policy"])
    assert (document["Version"], document["Id"]) == ("2012-10-17", "default")
    assert [(s["Sid"], s["Principal"]) for s in document["Statement"]] == [
        ("xaccount", {"AWS": "arn:aws:iam::123456789012:root"}), ("org", "*")]
    assert policy["RevisionId"] == org["RevisionId"]

    with pytest.raises(lambda_client.exceptions.ResourceConflictException) as error:
        lambda_client.add_layer_version_permission(
            LayerName=name, VersionNumber=1, StatementId="org", Action="lambda:GetLayerVersion", Principal="*")
    assert "The statement id (org) provided already exists" in str(error.value)
    with pytest.raises(ClientError) as error:  # the model's pattern (layer_permission_action_invalid)
        lambda_client.add_layer_version_permission(
            LayerName=name, VersionNumber=1, StatementId="bad", Action="lambda:InvokeFunction", Principal="*")
    assert error_code_and_status(error.value) == ("ValidationException", 400)
    assert error.value.response["Error"]["Message"] == (
        "1 validation error detected: Value 'lambda:InvokeFunction' at 'action' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: lambda:GetLayerVersion")
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException) as error:
        lambda_client.add_layer_version_permission(
            LayerName=name, VersionNumber=9, StatementId="x", Action="lambda:GetLayerVersion", Principal="*")
    assert f"Layer version {layer_arn(name, 9)} does not exist." in str(error.value)

    with pytest.raises(lambda_client.exceptions.PreconditionFailedException):
        lambda_client.remove_layer_version_permission(LayerName=name, VersionNumber=1, StatementId="org",
                                                      RevisionId="stale")
    lambda_client.remove_layer_version_permission(LayerName=name, VersionNumber=1, StatementId="org",
                                                  RevisionId=policy["RevisionId"])
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.remove_layer_version_permission(LayerName=name, VersionNumber=1, StatementId="org")
    lambda_client.remove_layer_version_permission(LayerName=name, VersionNumber=1, StatementId="xaccount")
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_layer_version_policy(LayerName=name, VersionNumber=1)


def test_function_layers_are_validated_as_lambda_does(lambda_client, create_function, publish_layer, unique_name):
    layer = publish_layer({"python/mylib.py": LAYER_LIB})
    missing = layer_arn(f"{unique_name}-layer", 7)

    def refused(layers: list[str], code: str = "InvalidParameterValueException") -> str:
        with pytest.raises(ClientError) as error:
            create_function(Layers=layers)
        assert error_code_and_status(error.value) == (code, 400)
        return error.value.response["Error"]["Message"]

    assert refused([layer["LayerVersionArn"]] * 6) == "Cannot reference more than 5 layers."
    assert refused([missing]) == f"Layer version {missing} does not exist."
    bad = refused([layer["LayerArn"]], "ValidationException")  # no version: add_layer_arn_without_version_exc
    assert bad.startswith(f"1 validation error detected: Value '[{layer['LayerArn']}]' at 'layers' failed")
    second = publish_layer({"python/mylib.py": "VALUE = 2\n"})
    assert "Two different versions of the same layer" in refused([layer["LayerVersionArn"],
                                                                   second["LayerVersionArn"]])
    other_region = layer["LayerVersionArn"].replace(REGION, "eu-west-1")
    assert "Layers are expected to be in region us-east-1" in refused([other_region])

    name = create_function()["FunctionName"]
    with pytest.raises(lambda_client.exceptions.InvalidParameterValueException) as error:
        lambda_client.update_function_configuration(FunctionName=name, Layers=[missing])
    code, status = error_code_and_status(error.value)
    assert (code, status) == ("InvalidParameterValueException", 400)
    assert "Layers" not in lambda_client.get_function_configuration(FunctionName=name)


# ------------------------------------------------------------------------------------------- /opt at run time

def test_python_function_imports_libraries_from_its_layers(lambda_client, create_function, publish_layer,
                                                          unique_name):
    plain = publish_layer({"python/mylib.py": LAYER_LIB}, name=f"{unique_name}-plain")
    site = publish_layer({f"python/lib/{PYTHON}/site-packages/sitelib/__init__.py": SITE_LIB},
                         name=f"{unique_name}-site", CompatibleRuntimes=[PYTHON])
    layers = [plain["LayerVersionArn"], site["LayerVersionArn"]]
    created = create_function(IMPORTS_FROM_LAYERS, Runtime=PYTHON, Layers=layers)
    assert created["Layers"] == [{"Arn": plain["LayerVersionArn"], "CodeSize": plain["Content"]["CodeSize"]},
                                 {"Arn": site["LayerVersionArn"], "CodeSize": site["Content"]["CodeSize"]}]
    name = created["FunctionName"]

    resp, result = invoke_json(lambda_client, name)
    assert "FunctionError" not in resp, result
    assert (result["mylib"], result["sitelib"]) == ("from mylib in the layer", "from site-packages in the layer")
    opt = os.path.dirname(os.path.dirname(result["mylib_file"]))  # /opt (elsewhere under the process backend)
    assert result["path"] == [result["task_root"], f"{opt}/python/lib/{PYTHON}/site-packages", f"{opt}/python"] + \
        result["path"][3:]

    # PublishVersion snapshots the layers; removing them from $LATEST leaves the version as it was.
    assert lambda_client.publish_version(FunctionName=name)["Layers"] == created["Layers"]
    assert "Layers" not in lambda_client.update_function_configuration(FunctionName=name, Layers=[])
    resp, result = invoke_json(lambda_client, name)
    assert resp.get("FunctionError") == "Unhandled" and result["errorType"] == "ModuleNotFoundError"
    resp, result = invoke_json(lambda_client, name, Qualifier="1")
    assert "FunctionError" not in resp and result["mylib"] == "from mylib in the layer"


def test_a_later_layer_overrides_an_earlier_layers_files(lambda_client, create_function, publish_layer, unique_name):
    first = publish_layer({"python/shared.py": "WHO = 'first'\n", "python/only_first.py": "HERE = True\n",
                           "python/pkg/__init__.py": "", "python/pkg/a.py": "A = 'first'\n"},
                          name=f"{unique_name}-one")
    second = publish_layer({"python/shared.py": "WHO = 'second'\n", "python/pkg/b.py": "B = 'second'\n"},
                           name=f"{unique_name}-two")
    code = ("def handler(event, context):\n"
            "    import shared, only_first\n    from pkg import a, b\n"
            "    return [shared.WHO, only_first.HERE, a.A, b.B]\n")
    in_order = create_function(code, Layers=[first["LayerVersionArn"], second["LayerVersionArn"]])["FunctionName"]
    reversed_ = create_function(code, Layers=[second["LayerVersionArn"], first["LayerVersionArn"]])["FunctionName"]
    assert invoke_json(lambda_client, in_order)[1] == ["second", True, "first", "second"]
    assert invoke_json(lambda_client, reversed_)[1] == ["first", True, "first", "second"]


def test_layer_bin_and_lib_are_on_the_search_paths(lambda_client, create_function, publish_layer):
    layer = publish_layer({"bin/layer-tool": "#!/bin/sh\necho \"layer tool says $1\"\n", "lib/libnothing.txt": "x"},
                          modes={"bin/layer-tool": 0o755})
    code = ("import os, subprocess\n\ndef handler(event, context):\n"
            "    out = subprocess.run(['layer-tool', 'hi'], capture_output=True, text=True).stdout.strip()\n"
            "    return {'out': out, 'path': os.environ['PATH'], 'ld': os.environ['LD_LIBRARY_PATH']}\n")
    name = create_function(code, Layers=[layer["LayerVersionArn"]])["FunctionName"]
    resp, result = invoke_json(lambda_client, name)
    assert "FunctionError" not in resp, result
    assert result["out"] == "layer tool says hi"
    opt = result["path"].rsplit(":", 1)[1].removesuffix("/bin")  # /opt (elsewhere under the process backend)
    assert result["path"] == f"/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:{opt}/bin"
    assert result["ld"].endswith(f":{opt}/lib")


@pytest.mark.isolation
def test_opt_is_read_only_in_the_linux_sandbox(lambda_client, create_function, publish_layer):
    layer = publish_layer({"python/mylib.py": LAYER_LIB, "data/config.txt": "layer data"})
    code = ("import errno, os\n\ndef handler(event, context):\n"
            "    results = {'listing': sorted(os.listdir('/opt')), 'data': open('/opt/data/config.txt').read()}\n"
            "    for path in ('/opt/new-file', '/opt/python/mylib.py', '/opt/data/config.txt'):\n"
            "        try:\n            open(path, 'w').write('x')\n            results[path] = 'written'\n"
            "        except OSError as exc:\n            results[path] = errno.errorcode[exc.errno]\n"
            "    return results\n")
    name = create_function(code, Layers=[layer["LayerVersionArn"]])["FunctionName"]
    resp, result = invoke_json(lambda_client, name)
    assert "FunctionError" not in resp, result
    assert result["listing"] == ["data", "python"] and result["data"] == "layer data"
    assert result["/opt/new-file"] == "EROFS"
    assert result["/opt/python/mylib.py"] in ("EROFS", "EACCES")
    assert result["/opt/data/config.txt"] in ("EROFS", "EACCES")


def test_a_custom_runtime_bootstrap_can_come_from_a_layer(lambda_client, create_function, publish_layer):
    layer = publish_layer({"bootstrap": (DATA / "echo_bootstrap.sh").read_text()}, modes={"bootstrap": 0o755},
                          CompatibleRuntimes=["provided.al2023"])
    name = create_function(files={"README.txt": "no bootstrap here"}, Runtime="provided.al2023",
                           Handler="echo.handler", Layers=[layer["LayerVersionArn"]])["FunctionName"]
    resp, result = invoke_json(lambda_client, name, {"from": "layer"})
    assert "FunctionError" not in resp, result
    assert result["echo"] == {"from": "layer"} and result["handler"] == "echo.handler"

    # Without the layer, neither place has one: Lambda's Runtime.InvalidEntrypoint names both.
    lambda_client.update_function_configuration(FunctionName=name, Layers=[])
    resp, result = invoke_json(lambda_client, name, {})
    assert resp["FunctionError"] == "Unhandled" and result["errorType"] == "Runtime.InvalidEntrypoint"
    assert "/bootstrap" in result["errorMessage"] and "/opt/bootstrap]" in result["errorMessage"]


def test_deleting_a_layer_version_never_breaks_a_function_that_uses_it(fresh_server, unique_name):
    fresh_server.start()
    client = fresh_server.client()
    layer = client.publish_layer_version(LayerName=unique_name,
                                         Content={"ZipFile": make_zip({"python/mylib.py": LAYER_LIB})})
    code = "def handler(event, context):\n    import mylib\n    return mylib.VALUE\n"
    create_python_function(client, unique_name, code, Layers=[layer["LayerVersionArn"]])
    assert invoke_json(client, unique_name)[1] == "from mylib in the layer"

    client.delete_layer_version(LayerName=unique_name, VersionNumber=1)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_layer_version(LayerName=unique_name, VersionNumber=1)
    config = client.update_function_configuration(FunctionName=unique_name, Timeout=5)  # retires the environment
    assert [entry["Arn"] for entry in config["Layers"]] == [layer["LayerVersionArn"]]
    assert invoke_json(client, unique_name)[1] == "from mylib in the layer"  # a new environment
    with pytest.raises(client.exceptions.InvalidParameterValueException):  # but it cannot be attached again
        client.update_function_configuration(FunctionName=unique_name, Layers=[layer["LayerVersionArn"]])

    # After a restart, even with the merged-layer cache gone, a cold start still finds the layer.
    fresh_server.stop()
    cache = Path(fresh_server.data_dir) / "opt"
    for dirpath, _dirs, _files in os.walk(cache):
        os.chmod(dirpath, 0o755)
    shutil.rmtree(cache)
    fresh_server.start()
    client = fresh_server.client()
    resp, result = invoke_json(client, unique_name)
    assert "FunctionError" not in resp, result
    assert result == "from mylib in the layer"
    assert client.publish_layer_version(LayerName=unique_name, Content={
        "ZipFile": make_zip({"python/mylib.py": LAYER_LIB})})["Version"] == 2  # numbers are never reused


def test_layers_with_the_aws_cli(server, lambda_client, unique_name, tmp_path):
    (tmp_path / "layer.zip").write_bytes(make_zip({"python/mylib.py": LAYER_LIB}))
    (tmp_path / "code.zip").write_bytes(make_zip({"app.py": "def handler(e, c):\n    import mylib\n"
                                                            "    return mylib.VALUE\n"}))
    try:
        published = json.loads(aws_cli(server, "lambda", "publish-layer-version", "--layer-name", unique_name,
                                       "--zip-file", f"fileb://{tmp_path / 'layer.zip'}",
                                       "--compatible-runtimes", "python3.11", "--description", "cli").stdout)
        assert published["LayerVersionArn"] == layer_arn(unique_name, 1) and published["Description"] == "cli"
        created = json.loads(aws_cli(server, "lambda", "create-function", "--function-name", unique_name,
                                     "--runtime", "python3.11", "--role", ROLE, "--handler", "app.handler",
                                     "--zip-file", f"fileb://{tmp_path / 'code.zip'}",
                                     "--layers", published["LayerVersionArn"]).stdout)
        assert created["Layers"][0]["Arn"] == published["LayerVersionArn"]
        assert invoke_json(lambda_client, unique_name)[1] == "from mylib in the layer"
        missing = aws_cli(server, "lambda", "get-layer-version-by-arn", "--arn", layer_arn(unique_name, 5),
                          check=False)
        assert missing.returncode != 0 and b"ResourceNotFoundException" in missing.stderr
    finally:
        lambda_client.delete_layer_version(LayerName=unique_name, VersionNumber=1)
        try:
            lambda_client.delete_function(FunctionName=unique_name)
        except lambda_client.exceptions.ResourceNotFoundException:
            pass


@pytest.mark.snapstart
def test_snapstart_environments_see_the_layers_of_their_template(lambda_client, create_function, publish_layer):
    layer = publish_layer({"python/mylib.py": LAYER_LIB})
    code = "import mylib\n\ndef handler(event, context):\n    return [mylib.VALUE, open('/opt/python/mylib.py').read()]\n"
    name = create_function(code, Runtime="python3.12", SnapStart={"ApplyOn": "PublishedVersions"},
                           Layers=[layer["LayerVersionArn"]])["FunctionName"]
    lambda_client.publish_version(FunctionName=name)
    resp, result = invoke_json(lambda_client, name, Qualifier="1")
    assert "FunctionError" not in resp, result
    assert result == ["from mylib in the layer", LAYER_LIB]
