"""Registry logins (lambdalet/images/registry.py): a Docker config.json's entries, and ECR's
authorization token through boto3 — here from moto in server mode, as from AWS."""

from __future__ import annotations

import base64
import json

from lambdalet.images.reference import parse
from lambdalet.images.registry import Credentials

ECR_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:v1"


def test_docker_config_logins(tmp_path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {
        "registry.example.com": {"auth": base64.b64encode(b"alice:s3cr:et").decode()},
        "https://other.example.com/v1/": {"username": "bob", "password": "pw"},
        "empty.example.com": {},
    }}))
    credentials = Credentials.from_docker_config(config)
    assert credentials.for_registry(parse("registry.example.com/app"), "us-east-1") == ("alice", "s3cr:et")
    assert credentials.for_registry(parse("other.example.com/app"), "us-east-1") == ("bob", "pw")
    assert credentials.for_registry(parse("empty.example.com/app"), "us-east-1") is None
    assert Credentials.from_docker_config(tmp_path / "missing.json").logins == {}


def test_an_ecr_registry_logs_in_with_get_authorization_token(moto, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    token = moto.client("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, _, password = base64.b64decode(token).decode().partition(":")
    assert Credentials().for_registry(parse(ECR_IMAGE), "us-east-1") == (user, password)
    assert user == "AWS" and password
    # an entry in the config file wins over the token
    assert Credentials({parse(ECR_IMAGE).registry: ("me", "pw")}).for_registry(parse(ECR_IMAGE), "us-east-1") == ("me", "pw")
