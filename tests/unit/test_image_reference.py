"""ImageUri parsing by Docker's rules (lambdalet/images/reference.py)."""

import pytest

from lambdalet.images.reference import BadReference, parse

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize("uri, registry, repository, reference", [
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:v1", "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "app", "v1"),
    ("127.0.0.1:5000/team/app", "127.0.0.1:5000", "team/app", "latest"),
    (f"localhost/app@{DIGEST}", "localhost", "app", DIGEST),
    (f"[::1]:5000/app:v2@{DIGEST}", "[::1]:5000", "app", DIGEST),
    ("alpine", "registry-1.docker.io", "library/alpine", "latest"),
    ("bitnami/redis:7.2", "registry-1.docker.io", "bitnami/redis", "7.2"),
])
def test_references(uri, registry, repository, reference):
    ref = parse(uri)
    assert (ref.registry, ref.repository, ref.reference) == (registry, repository, reference)


def test_loopback_and_ecr():
    assert parse("127.0.0.1:5000/a").is_loopback and parse("localhost:5000/a").is_loopback
    assert parse("[::1]:5000/a").is_loopback and not parse("registry.example.com/a").is_loopback
    assert parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com/app").ecr_region == "eu-west-1"
    assert parse("registry.example.com/a").ecr_region is None
    assert parse("127.0.0.1:5000/a:v1").by_digest(DIGEST) == f"127.0.0.1:5000/a@{DIGEST}"


@pytest.mark.parametrize("uri", ["Upper/Case", "app@sha256:short", "app:bad tag", "host:5000/", ""])
def test_bad_references(uri):
    with pytest.raises(BadReference):
        parse(uri)
