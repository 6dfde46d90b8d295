"""Code signing configs (CRUD, errors, paging, tags) and their enforcement on code uploads, driven
over HTTP with boto3; code is signed with `lambdalet sign-code`, as a user would."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tests.conftest import Server, make_zip
from tests.integration.helpers import ACCOUNT, REGION, ROLE, aws_error, create_python_function, function_arn

PROFILE = f"arn:aws:signer:{REGION}:{ACCOUNT}:/signing-profiles/trusted/abcdef0123"
OTHER = f"arn:aws:signer:{REGION}:{ACCOUNT}:/signing-profiles/other/0123456789"
UNKNOWN = f"arn:aws:signer:{REGION}:{ACCOUNT}:/signing-profiles/unknown/9999999999"
REVOKED = f"arn:aws:signer:{REGION}:{ACCOUNT}:/signing-profiles/revoked/1111111111"
CODE = "def handler(event, context):\n    return {'signed': True}\n"


def _pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _public(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Private key files by profile ARN (UNKNOWN's is not told to the server)."""
    root = tmp_path_factory.mktemp("keys")
    made = {PROFILE: ed25519.Ed25519PrivateKey.generate(), OTHER: ec.generate_private_key(ec.SECP256R1()),
            UNKNOWN: ed25519.Ed25519PrivateKey.generate(), REVOKED: ed25519.Ed25519PrivateKey.generate()}
    paths = {}
    for index, (arn, key) in enumerate(made.items()):
        paths[arn] = root / f"key{index}.pem"
        paths[arn].write_bytes(_pem(key))
    profiles = root / "profiles.toml"
    profiles.write_text("\n".join(
        f'[profiles."{arn}"]\npublic_key = """{_public(made[arn])}"""\n' + ("revoked = true\n" if arn == REVOKED else "")
        for arn in (PROFILE, OTHER, REVOKED)))
    return paths, profiles


@pytest.fixture(scope="module")
def signing_server(tmp_path_factory, keys):
    srv = Server(tmp_path_factory.mktemp("signing-data"), args=["--signing-profiles", str(keys[1])])
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def client(signing_server):
    return signing_server.client()


def sign(keys, tmp_path, data: bytes, profile: str) -> bytes:
    path = tmp_path / "code.zip"
    path.write_bytes(data)
    subprocess.run([sys.executable, "-m", "lambdalet", "sign-code", str(path), "--profile-version-arn", profile,
                    "--key", str(keys[0][profile])], check=True, capture_output=True)
    return path.read_bytes()


def new_config(client, policy: str = "Enforce", publishers=(PROFILE,), **kwargs) -> str:
    return client.create_code_signing_config(
        AllowedPublishers={"SigningProfileVersionArns": list(publishers)},
        CodeSigningPolicies={"UntrustedArtifactOnDeployment": policy}, **kwargs)["CodeSigningConfig"]["CodeSigningConfigArn"]


def test_crud_as_aws_records_it(client, unique_name):
    created = client.create_code_signing_config(
        Description="Testing CodeSigning Config", AllowedPublishers={"SigningProfileVersionArns": [PROFILE]},
        CodeSigningPolicies={"UntrustedArtifactOnDeployment": "Enforce"})
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    config = created["CodeSigningConfig"]
    arn = config["CodeSigningConfigArn"]
    assert arn == f"arn:aws:lambda:{REGION}:{ACCOUNT}:code-signing-config:{config['CodeSigningConfigId']}"
    assert len(config["CodeSigningConfigId"]) == 21 and config["CodeSigningConfigId"].startswith("csc-")
    assert config["CodeSigningPolicies"] == {"UntrustedArtifactOnDeployment": "Enforce"}
    assert config["Description"] == "Testing CodeSigning Config"
    updated = client.update_code_signing_config(
        CodeSigningConfigArn=arn, CodeSigningPolicies={"UntrustedArtifactOnDeployment": "Warn"})["CodeSigningConfig"]
    assert updated["CodeSigningPolicies"] == {"UntrustedArtifactOnDeployment": "Warn"}
    assert updated["AllowedPublishers"] == {"SigningProfileVersionArns": [PROFILE]}
    assert client.get_code_signing_config(CodeSigningConfigArn=arn)["CodeSigningConfig"] == updated
    assert client.update_code_signing_config(CodeSigningConfigArn=arn)["CodeSigningConfig"] == updated
    assert updated in client.list_code_signing_configs()["CodeSigningConfigs"]

    create_python_function(client, unique_name, CODE)
    put = client.put_function_code_signing_config(CodeSigningConfigArn=arn, FunctionName=unique_name)
    assert (put["CodeSigningConfigArn"], put["FunctionName"]) == (arn, unique_name)
    got = client.get_function_code_signing_config(FunctionName=unique_name)
    assert (got["CodeSigningConfigArn"], got["FunctionName"]) == (arn, unique_name)
    assert client.list_functions_by_code_signing_config(CodeSigningConfigArn=arn)["FunctionArns"] == [
        function_arn(unique_name)]
    assert aws_error(client.delete_code_signing_config, CodeSigningConfigArn=arn)[:2] == (
        "ResourceConflictException", 409)
    client.delete_function_code_signing_config(FunctionName=unique_name)
    assert client.get_function_code_signing_config(FunctionName=unique_name)["CodeSigningConfigArn"] == ""
    assert client.list_functions_by_code_signing_config(CodeSigningConfigArn=arn)["FunctionArns"] == []
    assert client.delete_code_signing_config(CodeSigningConfigArn=arn)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert aws_error(client.get_code_signing_config, CodeSigningConfigArn=arn) == (
        "ResourceNotFoundException", 404, f"The Lambda code signing configuration {arn} can not be found.")
    client.delete_function(FunctionName=unique_name)


def test_not_found_errors_as_aws_records_them(client, unique_name):
    arn = new_config(client)
    invalid = arn[:-1] + ("x" if arn[-1] != "x" else "y")
    missing_fn = "csc-test-doesnotexist"
    not_found = f"The Lambda code signing configuration {invalid} can not be found."
    csc_not_found = ("The code signing configuration cannot be found. Check that the provided configuration is "
                     f"not deleted: {invalid}.")
    fn_not_found = f"Function not found: {function_arn(missing_fn)}"
    create_python_function(client, unique_name, CODE)
    assert aws_error(client.delete_code_signing_config, CodeSigningConfigArn=invalid) == (
        "ResourceNotFoundException", 404, not_found)
    assert client.delete_function_code_signing_config(FunctionName=unique_name)["ResponseMetadata"][
        "HTTPStatusCode"] == 204
    assert aws_error(client.delete_function_code_signing_config, FunctionName=missing_fn) == (
        "ResourceNotFoundException", 404, fn_not_found)
    assert aws_error(client.put_function_code_signing_config, FunctionName=missing_fn, CodeSigningConfigArn=arn) == (
        "ResourceNotFoundException", 404, fn_not_found)
    assert aws_error(client.put_function_code_signing_config, FunctionName=unique_name,
                     CodeSigningConfigArn=invalid) == ("CodeSigningConfigNotFoundException", 404, csc_not_found)
    assert aws_error(client.put_function_code_signing_config, FunctionName=missing_fn,
                     CodeSigningConfigArn=invalid) == ("CodeSigningConfigNotFoundException", 404, csc_not_found)
    assert aws_error(client.update_code_signing_config, CodeSigningConfigArn=invalid, Description="new") == (
        "ResourceNotFoundException", 404, not_found)
    assert aws_error(client.get_code_signing_config, CodeSigningConfigArn=invalid) == (
        "ResourceNotFoundException", 404, not_found)
    assert aws_error(client.get_function_code_signing_config, FunctionName=missing_fn) == (
        "ResourceNotFoundException", 404, fn_not_found)
    assert client.list_functions_by_code_signing_config(CodeSigningConfigArn=arn)["FunctionArns"] == []
    assert aws_error(client.list_functions_by_code_signing_config, CodeSigningConfigArn=invalid) == (
        "ResourceNotFoundException", 404, not_found)
    assert aws_error(client.create_function, FunctionName=unique_name + "-x", Runtime="python3.11", Role=ROLE,
                     Handler="app.handler", Code={"ZipFile": make_zip({"app.py": CODE})},
                     CodeSigningConfigArn=invalid) == ("CodeSigningConfigNotFoundException", 404, csc_not_found)
    client.delete_function(FunctionName=unique_name)


def test_list_pages_with_marker(client):
    made = {new_config(client) for _ in range(3)}
    seen, marker, pages = [], None, 0
    while True:
        page = client.list_code_signing_configs(MaxItems=1, **({"Marker": marker} if marker else {}))
        assert len(page["CodeSigningConfigs"]) <= 1
        seen += [c["CodeSigningConfigArn"] for c in page["CodeSigningConfigs"]]
        pages += 1
        marker = page.get("NextMarker")
        if not marker:
            break
    assert made <= set(seen) and len(seen) == len(set(seen)) and pages == len(seen)


def test_tags_by_config_arn(client):
    arn = new_config(client, Tags={"team": "a"})
    assert client.list_tags(Resource=arn)["Tags"] == {"team": "a"}
    client.tag_resource(Resource=arn, Tags={"env": "prod"})
    assert client.list_tags(Resource=arn)["Tags"] == {"team": "a", "env": "prod"}
    client.untag_resource(Resource=arn, TagKeys=["team"])
    assert client.list_tags(Resource=arn)["Tags"] == {"env": "prod"}
    client.delete_code_signing_config(CodeSigningConfigArn=arn)
    assert aws_error(client.list_tags, Resource=arn) == (
        "ResourceNotFoundException", 404, f"Code signing config not found: {arn}")


def _create(client, name: str, data: bytes, arn: str):
    return client.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                                  Code={"ZipFile": data}, CodeSigningConfigArn=arn)


def test_enforce_refuses_untrusted_code_and_accepts_signed(client, keys, tmp_path, unique_name):
    arn = new_config(client, "Enforce")
    code = make_zip({"app.py": CODE})
    signed = sign(keys, tmp_path, code, PROFILE)
    tampered = make_zip({"app.py": CODE.replace("True", "False")})[:-2] + signed[len(code) - 2:]
    cases = {
        "unsigned": (code, "CodeVerificationFailedException", "not signed"),
        "tampered": (tampered, "InvalidCodeSignatureException", "does not match"),
        "wrong publisher": (sign(keys, tmp_path, code, OTHER), "CodeVerificationFailedException",
                            "not one of the code signing config's allowed publishers"),
        "unknown profile": (sign(keys, tmp_path, code, UNKNOWN), "CodeVerificationFailedException",
                            "not known to this server"),
    }
    for what, (data, error, words) in cases.items():
        code_, status, message = aws_error(_create, client=client, name=unique_name, data=data, arn=arn)
        assert (code_, status) == (error, 400), what
        assert words in message and "Lambda cannot deploy the function" in message, what
        assert aws_error(client.get_function, FunctionName=unique_name)[:2] == ("ResourceNotFoundException", 404)

    _create(client, unique_name, signed, arn)
    client.get_waiter("function_active_v2").wait(FunctionName=unique_name)
    assert client.get_function_code_signing_config(FunctionName=unique_name)["CodeSigningConfigArn"] == arn
    assert client.invoke(FunctionName=unique_name)["Payload"].read() == b'{"signed": true}'
    before = client.get_function(FunctionName=unique_name)["Configuration"]["CodeSha256"]
    assert aws_error(client.update_function_code, FunctionName=unique_name, ZipFile=code)[:2] == (
        "CodeVerificationFailedException", 400)
    assert client.get_function(FunctionName=unique_name)["Configuration"]["CodeSha256"] == before
    client.update_function_code(FunctionName=unique_name, ZipFile=sign(keys, tmp_path, make_zip(
        {"app.py": CODE + "# v2\n"}), PROFILE))
    client.update_code_signing_config(CodeSigningConfigArn=arn,
                                      AllowedPublishers={"SigningProfileVersionArns": [PROFILE, REVOKED]})
    code_, _status, message = aws_error(client.update_function_code, FunctionName=unique_name,
                                        ZipFile=sign(keys, tmp_path, code, REVOKED))
    assert code_ == "CodeVerificationFailedException" and "revoked" in message
    client.delete_function(FunctionName=unique_name)
    client.delete_code_signing_config(CodeSigningConfigArn=arn)


def test_warn_accepts_untrusted_code_but_not_a_broken_signature(client, keys, tmp_path, unique_name, signing_server):
    arn = new_config(client, "Warn")
    code = make_zip({"app.py": CODE})
    _create(client, unique_name, code, arn)
    client.get_waiter("function_active_v2").wait(FunctionName=unique_name)
    assert "deployed untrusted code: the code package is not signed" in signing_server.log_text()
    signed = sign(keys, tmp_path, code, PROFILE)
    tampered = make_zip({"app.py": CODE + "# evil\n"})[:-2] + signed[len(code) - 2:]
    assert aws_error(client.update_function_code, FunctionName=unique_name, ZipFile=tampered)[:2] == (
        "InvalidCodeSignatureException", 400)
    client.delete_function(FunctionName=unique_name)


def test_image_functions_and_layers_are_refused(client, unique_name):
    arn = new_config(client)
    code, _status, message = aws_error(
        client.create_function, FunctionName=unique_name, Role=ROLE, PackageType="Image",
        Code={"ImageUri": "127.0.0.1:5000/x:latest"}, CodeSigningConfigArn=arn)
    assert (code, message) == ("InvalidParameterValueException",
                               "Code signing is not supported for functions of package type Image.")
    layer = client.publish_layer_version(LayerName=unique_name, Content={"ZipFile": make_zip({"python/x.py": ""})})
    create_python_function(client, unique_name, CODE, Layers=[layer["LayerVersionArn"]])
    code, _status, message = aws_error(client.put_function_code_signing_config, FunctionName=unique_name,
                                       CodeSigningConfigArn=arn)
    assert code == "InvalidParameterValueException" and "Layers" in message
    client.update_function_configuration(FunctionName=unique_name, Layers=[])
    client.get_waiter("function_updated_v2").wait(FunctionName=unique_name)
    client.put_function_code_signing_config(FunctionName=unique_name, CodeSigningConfigArn=arn)
    code, _status, message = aws_error(client.update_function_configuration, FunctionName=unique_name,
                                       Layers=[layer["LayerVersionArn"]])
    assert code == "InvalidParameterValueException" and "Layers" in message
    client.delete_function(FunctionName=unique_name)


def test_configs_survive_a_restart(fresh_server):
    fresh_server.start()
    client = fresh_server.client()
    arn = new_config(client, "Warn", Tags={"k": "v"})
    create_python_function(client, "survivor", CODE)
    client.put_function_code_signing_config(FunctionName="survivor", CodeSigningConfigArn=arn)
    fresh_server.restart()
    assert client.get_code_signing_config(CodeSigningConfigArn=arn)["CodeSigningConfig"]["CodeSigningPolicies"] == {
        "UntrustedArtifactOnDeployment": "Warn"}
    assert client.get_function_code_signing_config(FunctionName="survivor")["CodeSigningConfigArn"] == arn
    assert client.list_tags(Resource=arn)["Tags"] == {"k": "v"}
