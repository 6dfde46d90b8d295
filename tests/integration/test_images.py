"""Container-image functions (PackageType Image, issue 14 part 2) against a real registry
(docker-registry from Debian) with images the tests build from scratch (oci_support): the API's
fields and refusals, tags resolved once, bad and hostile images refused without creating or
changing anything, and under the linux backend the image as the environment's whole root.

Runs under the linux backend only (the Makefile's process pass leaves this file out;
test_images_process.py checks that the process backend refuses image functions).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PRIVATE_REGISTRY_LOGIN, ROLE, Server, free_port, make_zip

from . import oci_support as oci
from .helpers import environment_counts, error_code_and_status, wait_until

BOOTSTRAP_ENTRYPOINT = ["/var/task/bootstrap"]


# --------------------------------------------------------------------------------------------
# Fixtures: registries, the server, the images


@pytest.fixture(scope="module")
def locked_registry(tmp_path_factory):
    """A registry needing a login that the server's registry config has no entry for."""
    reg = oci.Registry(tmp_path_factory.mktemp("locked-registry"), login=("someone", "else")).start()
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def userpass_registry(tmp_path_factory):
    """A registry needing a login given as `username`/`password` members in the config file."""
    reg = oci.Registry(tmp_path_factory.mktemp("userpass-registry"), login=("bob", "pa:ss word")).start()
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def srv(tmp_path_factory, private_registry, userpass_registry, locked_registry):
    data = tmp_path_factory.mktemp("images")
    config = data / "docker-config.json"
    config.write_text(json.dumps({"auths": {
        **private_registry.docker_config_entry(),
        f"http://{userpass_registry.host}": {"username": userpass_registry.login[0],
                                              "password": userpass_registry.login[1]},
    }}))
    server = Server(data / "data", args=["--registry-config", str(config)])
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lam(srv):
    return srv.client()


@pytest.fixture
def image_function(lam, unique_name):
    """Create an image function (waiting until it is Active) and delete it after the test."""
    created: list[str] = []

    def _create(uri: str, *, name: str | None = None, **kwargs) -> dict:
        fn_name = name or f"{unique_name}-{len(created)}"
        resp = lam.create_function(FunctionName=fn_name, PackageType="Image", Code={"ImageUri": uri}, Role=ROLE,
                                   Timeout=30, **kwargs)
        created.append(fn_name)
        wait_ready(lam, fn_name)
        return resp

    yield _create
    for fn_name in created:
        try:
            lam.delete_function(FunctionName=fn_name)
        except lam.exceptions.ResourceNotFoundException:
            pass


def wait_ready(lam, name: str) -> dict:
    def ready():
        config = lam.get_function_configuration(FunctionName=name)
        if config.get("State") == "Failed" or config.get("LastUpdateStatus") == "Failed":
            raise AssertionError(f"function {name} failed: {config}")
        return config if config.get("State") == "Active" and config.get("LastUpdateStatus", "Successful") == "Successful" else None
    return wait_until(ready, timeout=60, what=f"{name} to be Active")


def push_busybox(registry: oci.Registry, repository: str, tag: str, *, extra_layers: list[oci.Layer] = (),
                 fmt: str = "oci", **spec) -> str:
    """The busybox image: busybox, the bootstrap at /var/task/bootstrap, `extra_layers` on top; its URI."""
    spec.setdefault("entrypoint", BOOTSTRAP_ENTRYPOINT)
    spec.setdefault("working_dir", "/var/task")
    spec.setdefault("env", {"PATH": "/bin", "IMAGE_VAR": "from-image"})
    oci.push_image(registry.client(), repository, tag, [oci.busybox_layer(), oci.bootstrap_layer(), *extra_layers],
                   oci.ImageSpec(**spec), fmt=fmt)
    return f"{registry.host}/{repository}:{tag}"


@pytest.fixture(scope="module")
def busybox_uri(registry) -> str:
    return push_busybox(registry, "busybox", "v1", cmd=["first-arg", "second arg"])


def digest_of(registry: oci.Registry, repository: str, tag: str) -> str:
    return registry.client().manifest(repository, tag)[2]


def run(lam, name: str, command: str = "true", **event) -> dict:
    """Invoke a busybox-image function running `command`; its decoded answer (oci_support.BUSYBOX_BOOTSTRAP)."""
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(oci.sh_event(command, **event)))
    body = resp["Payload"].read()
    assert "FunctionError" not in resp, body
    return oci.decode_busybox_result(json.loads(body))


def expect_invalid(call, *args, **kwargs) -> str:
    """Call; assert it fails with InvalidParameterValueException (400); the message."""
    with pytest.raises(Exception) as failure:
        call(*args, **kwargs)
    assert hasattr(failure.value, "response"), failure.value
    assert error_code_and_status(failure.value) == ("InvalidParameterValueException", 400), failure.value.response
    message = failure.value.response["Error"]["Message"]
    assert message
    return message


def assert_absent(lam, name: str) -> None:
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=name)


# --------------------------------------------------------------------------------------------
# The API


def test_create_and_get_an_image_function(lam, image_function, registry, busybox_uri) -> None:
    digest = digest_of(registry, "busybox", "v1")
    created = image_function(busybox_uri)
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["PackageType"] == "Image"
    assert "Runtime" not in created and "Handler" not in created
    assert created["CodeSha256"] == digest.removeprefix("sha256:")
    name = created["FunctionName"]

    got = lam.get_function(FunctionName=name)
    assert got["Code"] == {"RepositoryType": "ECR", "ImageUri": busybox_uri,
                           "ResolvedImageUri": f"{registry.host}/busybox@{digest}"}
    config = got["Configuration"]
    assert config["PackageType"] == "Image" and config["CodeSha256"] == digest.removeprefix("sha256:")
    assert "Runtime" not in config and "Handler" not in config
    listed = {f["FunctionName"]: f for f in lam.list_functions()["Functions"]}
    assert listed[name]["PackageType"] == "Image"


def test_image_config_is_echoed_and_updated(lam, image_function, busybox_uri) -> None:
    image_config = {"EntryPoint": ["/bin/sh", "/var/task/bootstrap"], "Command": ["x"], "WorkingDirectory": "/tmp"}
    created = image_function(busybox_uri, ImageConfig=image_config)
    assert created["ImageConfigResponse"] == {"ImageConfig": image_config}
    name = created["FunctionName"]
    assert lam.get_function_configuration(FunctionName=name)["ImageConfigResponse"] == {"ImageConfig": image_config}

    updated = lam.update_function_configuration(FunctionName=name, ImageConfig={"Command": ["y", "z"]})
    assert updated["ImageConfigResponse"] == {"ImageConfig": {"Command": ["y", "z"]}}
    wait_ready(lam, name)
    answer = run(lam, name)  # the image's ENTRYPOINT and WorkingDir again, ImageConfig's CMD
    assert answer["argv"] == ["/var/task/bootstrap", "y", "z"] and answer["pwd"] == "/var/task"


@pytest.mark.parametrize("extra", [
    pytest.param({"Runtime": "python3.11"}, id="Runtime"),
    pytest.param({"Handler": "app.handler"}, id="Handler"),
    pytest.param({"Layers": ["arn:aws:lambda:us-east-1:000000000000:layer:x:1"]}, id="Layers"),
    pytest.param({"SnapStart": {"ApplyOn": "PublishedVersions"}}, id="SnapStart"),
])
def test_image_functions_refuse_zip_only_parameters(lam, unique_name, busybox_uri, extra) -> None:
    expect_invalid(lam.create_function, FunctionName=unique_name, PackageType="Image",
                   Code={"ImageUri": busybox_uri}, Role=ROLE, **extra)
    assert_absent(lam, unique_name)


def test_package_type_and_code_must_agree(lam, unique_name, busybox_uri) -> None:
    zipped = make_zip({"app.py": "def handler(e, c):\n    return e\n"})
    expect_invalid(lam.create_function, FunctionName=unique_name, PackageType="Image", Code={"ZipFile": zipped},
                   Role=ROLE)
    expect_invalid(lam.create_function, FunctionName=unique_name, PackageType="Zip", Code={"ImageUri": busybox_uri},
                   Role=ROLE, Runtime="python3.11", Handler="app.handler")
    assert_absent(lam, unique_name)


def test_a_tag_is_resolved_once_until_the_code_is_updated(lam, image_function, registry) -> None:
    first = push_busybox(registry, "moving", "latest", env={"PATH": "/bin", "GENERATION": "one"})
    first_digest = digest_of(registry, "moving", "latest")
    name = image_function(first)["FunctionName"]
    assert run(lam, name)["env"]["GENERATION"] == "one"

    push_busybox(registry, "moving", "latest", env={"PATH": "/bin", "GENERATION": "two"})
    second_digest = digest_of(registry, "moving", "latest")
    assert second_digest != first_digest
    lam.update_function_configuration(FunctionName=name, Description="an unrelated change")
    wait_ready(lam, name)
    assert lam.get_function(FunctionName=name)["Code"]["ResolvedImageUri"] == f"{registry.host}/moving@{first_digest}"
    assert run(lam, name)["env"]["GENERATION"] == "one"

    updated = lam.update_function_code(FunctionName=name, ImageUri=first)
    assert updated["CodeSha256"] == second_digest.removeprefix("sha256:")
    wait_ready(lam, name)
    assert lam.get_function(FunctionName=name)["Code"]["ResolvedImageUri"] == f"{registry.host}/moving@{second_digest}"
    assert run(lam, name)["env"]["GENERATION"] == "two"

    by_digest = f"{registry.host}/moving@{first_digest}"
    lam.update_function_code(FunctionName=name, ImageUri=by_digest)
    wait_ready(lam, name)
    code = lam.get_function(FunctionName=name)["Code"]
    assert code["ImageUri"] == by_digest and code["ResolvedImageUri"] == by_digest
    assert run(lam, name)["env"]["GENERATION"] == "one"


def test_create_by_digest_and_by_localhost(lam, image_function, registry, busybox_uri) -> None:
    digest = digest_of(registry, "busybox", "v1")
    by_digest = f"{registry.host}/busybox@{digest}"
    name = image_function(by_digest)["FunctionName"]
    assert lam.get_function(FunctionName=name)["Code"]["ResolvedImageUri"] == by_digest
    assert run(lam, name, "echo ok")["out"] == "ok\n"

    localhost = f"localhost:{registry.port}/busybox:v1"
    name = image_function(localhost)["FunctionName"]
    assert lam.get_function(FunctionName=name)["Code"]["ImageUri"] == localhost
    assert run(lam, name, "echo ok")["out"] == "ok\n"


def test_docker_schema_2_manifests(lam, image_function, registry) -> None:
    uri = push_busybox(registry, "docker-format", "v1", fmt="docker")
    created = image_function(uri)
    assert created["CodeSha256"] == digest_of(registry, "docker-format", "v1").removeprefix("sha256:")
    assert run(lam, created["FunctionName"], "echo docker")["out"] == "docker\n"


@pytest.mark.parametrize("fmt", ["oci", "docker"])
def test_an_index_runs_the_hosts_architecture(lam, image_function, registry, fmt) -> None:
    layers = [oci.busybox_layer(), oci.bootstrap_layer()]
    index_digest, per_arch = oci.push_index(registry.client(), f"multi-{fmt}", "v1", [
        ("arm64", layers, oci.ImageSpec(entrypoint=BOOTSTRAP_ENTRYPOINT, env={"PATH": "/bin", "ARCH": "arm64"})),
        ("amd64", layers, oci.ImageSpec(entrypoint=BOOTSTRAP_ENTRYPOINT, env={"PATH": "/bin", "ARCH": "amd64"})),
        ("s390x", layers, oci.ImageSpec(entrypoint=BOOTSTRAP_ENTRYPOINT, env={"PATH": "/bin", "ARCH": "s390x"})),
    ], fmt=fmt)
    name = image_function(f"{registry.host}/multi-{fmt}:v1")["FunctionName"]
    resolved = lam.get_function(FunctionName=name)["Code"]["ResolvedImageUri"]
    # the index's digest (what the tag named) or its amd64 manifest's: the contract names "the manifest"
    assert resolved in (f"{registry.host}/multi-{fmt}@{index_digest}", f"{registry.host}/multi-{fmt}@{per_arch['amd64']}")
    assert run(lam, name)["env"]["ARCH"] == "amd64"


def test_a_private_registry_with_credentials(lam, image_function, private_registry, userpass_registry) -> None:
    for reg in (private_registry, userpass_registry):
        uri = push_busybox(reg, "private/busybox", "v1")
        name = image_function(uri)["FunctionName"]
        assert run(lam, name, "echo private")["out"] == "private\n"
    assert PRIVATE_REGISTRY_LOGIN == private_registry.login


# --------------------------------------------------------------------------------------------
# Bad images: refused with InvalidParameterValueException, nothing created or changed


def _hostile(registry: oci.Registry, tag: str, members: list[oci.Member]) -> str:
    return push_busybox(registry, "hostile", tag, extra_layers=[oci.layer(members)])


@pytest.fixture(scope="module")
def bad_images(registry, locked_registry) -> dict:
    """name -> ImageUri (and "digests": name -> the offending layer's digest) of an image CreateFunction/UpdateFunctionCode must refuse; each models one attack or failure."""
    client = registry.client()
    uris = {
        # the tag or the repository does not exist
        "unknown-tag": f"{registry.host}/busybox:no-such-tag",
        "unknown-repository": f"{registry.host}/no-such-repository:v1",
        # a digest the registry has no manifest for (a manifest whose digest does not match what the
        # registry has: distribution refuses to store a manifest under another digest, DIGEST_INVALID)
        "unknown-digest": f"{registry.host}/busybox@{oci.sha256_digest(b'no such manifest')}",
        # nothing listens there
        "unreachable": f"127.0.0.1:{free_port()}/busybox:v1",
        # a registry that needs a login the server has none for
        "no-credentials": push_busybox(locked_registry, "busybox", "v1"),
        # a path leaving the image root
        "dot-dot": _hostile(registry, "dot-dot", [oci.file("../escape", "outside the root")]),
        "dot-dot-deep": _hostile(registry, "dot-dot-deep", [oci.directory("var"), oci.file("var/../../escape", "x")]),
        # a hard link to a host file by absolute path (would link /etc/shadow of the host into the image)
        "absolute-hardlink": _hostile(registry, "absolute-hardlink", [oci.hardlink("shadow", "/etc/shadow")]),
        # a hard link leaving the root by ../
        "dot-dot-hardlink": _hostile(registry, "dot-dot-hardlink", [oci.hardlink("passwd", "../../etc/passwd")]),
        # a symlink to a host directory, then a member written through it (write-through: a naive
        # extractor creates /etc/owned on the host)
        "symlink-write-through": _hostile(registry, "symlink-write-through",
                                          [oci.symlink("evil", "/etc"), oci.file("evil/owned", "owned")]),
        "relative-symlink-write-through": _hostile(registry, "relative-symlink-write-through",
                                                   [oci.symlink("up", "../../../../.."), oci.file("up/tmp/owned", "x")]),
    }
    # a truncated layer: the truncated gzip itself is the blob (the registry stores any bytes under their
    # digest), so the download verifies and the decompression must fail
    good = oci.layer([oci.file("data", bytes(range(256)) * 4096)])
    truncated = oci.Layer(good.blob[: good.size // 2], good.diff_id)
    digests = uris["digests"] = {"truncated-gzip": truncated.digest}
    uris["truncated-gzip"] = push_busybox(registry, "hostile", "truncated-gzip", extra_layers=[truncated])
    # a layer that is not a gzip nor a tar at all
    garbage = oci.Layer(b"\x1f\x8b garbage " * 100, oci.sha256_digest(b""))
    uris["not-a-tar"] = push_busybox(registry, "hostile", "not-a-tar", extra_layers=[garbage])
    digests["not-a-tar"] = garbage.digest
    # the registry serves bytes that do not match the layer's digest (a compromised registry or a
    # man in the middle; stored behind the registry's back since it checks digests on upload)
    victim = oci.layer([oci.file("victim", "original bytes" * 100)])
    uris["wrong-digest"] = push_busybox(registry, "hostile", "wrong-digest", extra_layers=[victim])
    forged = bytearray(victim.blob)
    forged[len(forged) // 2] ^= 0xFF
    registry.corrupt_blob(victim.digest, bytes(forged))
    digests["wrong-digest"] = victim.digest
    # the manifest names a layer the registry cannot serve (deleted after the manifest was pushed;
    # a manifest naming a missing blob cannot be pushed: MANIFEST_BLOB_UNKNOWN)
    missing = oci.layer([oci.file("missing", "soon gone")])
    uris["missing-layer"] = push_busybox(registry, "hostile", "missing-layer", extra_layers=[missing])
    client.delete_blob("hostile", missing.digest)
    digests["missing-layer"] = missing.digest
    # the registry serves more bytes than the manifest's size says (the registry accepts any size)
    busybox, bootstrap = oci.busybox_layer(), oci.bootstrap_layer()
    spec = oci.ImageSpec(entrypoint=BOOTSTRAP_ENTRYPOINT, env={"PATH": "/bin"})
    descriptors = [{"mediaType": oci.OCI_LAYER, "digest": busybox.digest, "size": busybox.size - 1000},
                   {"mediaType": oci.OCI_LAYER, "digest": bootstrap.digest, "size": bootstrap.size}]
    oci.push_image(client, "hostile", "size-lie", [busybox, bootstrap], spec, layer_descriptors=descriptors)
    uris["size-lie"] = f"{registry.host}/hostile:size-lie"
    digests["size-lie"] = busybox.digest
    # an image index without this host's architecture (amd64)
    oci.push_index(client, "hostile", "no-amd64", [("arm64", [busybox, bootstrap], spec),
                                                  ("s390x", [busybox, bootstrap], spec)])
    uris["index-without-amd64"] = f"{registry.host}/hostile:no-amd64"
    # a single manifest for another architecture
    oci.push_image(client, "hostile", "arm64-only", [busybox, bootstrap],
                   oci.ImageSpec(entrypoint=BOOTSTRAP_ENTRYPOINT, architecture="arm64"))
    uris["arm64-manifest"] = f"{registry.host}/hostile:arm64-only"
    # nothing to run: no ENTRYPOINT, no CMD, no ImageConfig
    oci.push_image(client, "hostile", "no-command", [busybox, bootstrap], oci.ImageSpec(env={"PATH": "/bin"}))
    uris["no-entrypoint"] = f"{registry.host}/hostile:no-command"
    return uris


#: case -> what its error message must name (one of, if a tuple), from the bad_images URIs: a clear
#: error names the problem. (The contract fixes only the error code; these are what any useful
#: message contains.)
BAD_IMAGES = {
    "unknown-tag": lambda uris: uris["unknown-tag"],
    "unknown-repository": lambda uris: uris["unknown-repository"],
    "unknown-digest": lambda uris: uris["unknown-digest"].rsplit("@", 1)[1],
    "unreachable": lambda uris: uris["unreachable"].split("/", 1)[0],
    "no-credentials": lambda uris: "credentials",
    "dot-dot": lambda uris: "../escape",
    "dot-dot-deep": lambda uris: "var/../../escape",
    "absolute-hardlink": lambda uris: "/etc/shadow",
    "dot-dot-hardlink": lambda uris: "../../etc/passwd",
    "symlink-write-through": lambda uris: "evil",
    "relative-symlink-write-through": lambda uris: "up",
    "truncated-gzip": lambda uris: uris["digests"]["truncated-gzip"],
    "not-a-tar": lambda uris: uris["digests"]["not-a-tar"],
    "wrong-digest": lambda uris: uris["digests"]["wrong-digest"],
    "missing-layer": lambda uris: (uris["digests"]["missing-layer"], "blob unknown"),
    "size-lie": lambda uris: uris["digests"]["size-lie"],
    "index-without-amd64": lambda uris: "amd64",
    "arm64-manifest": lambda uris: "arm64",
    "no-entrypoint": lambda uris: "ENTRYPOINT",
}


def names_the_problem(case: str, bad_images: dict, message: str) -> bool:
    expected = BAD_IMAGES[case](bad_images)
    return any(e.lower() in message.lower() for e in ((expected,) if isinstance(expected, str) else expected))


@pytest.mark.parametrize("case", BAD_IMAGES)
def test_a_bad_image_creates_nothing(lam, unique_name, bad_images, case) -> None:
    message = expect_invalid(lam.create_function, FunctionName=unique_name, PackageType="Image",
                   Code={"ImageUri": bad_images[case]}, Role=ROLE)
    assert names_the_problem(case, bad_images, message), (case, message)
    assert_absent(lam, unique_name)
    assert unique_name not in {f["FunctionName"] for f in lam.list_functions()["Functions"]}


def test_a_bad_image_changes_no_code(lam, image_function, registry, busybox_uri, bad_images) -> None:
    name = image_function(busybox_uri)["FunctionName"]
    before = lam.get_function(FunctionName=name)
    for case in BAD_IMAGES:
        message = expect_invalid(lam.update_function_code, FunctionName=name, ImageUri=bad_images[case])
        assert names_the_problem(case, bad_images, message), (case, message)
        after = lam.get_function(FunctionName=name)
        assert after["Code"] == before["Code"], case
        assert after["Configuration"]["CodeSha256"] == before["Configuration"]["CodeSha256"], case
        assert after["Configuration"]["RevisionId"] == before["Configuration"]["RevisionId"], case
    assert run(lam, name, "echo still here")["out"] == "still here\n"


def test_the_host_was_not_written_by_hostile_layers(bad_images) -> None:
    """After every hostile layer was tried (the module's bad-image tests), nothing landed outside."""
    import os

    assert not os.path.exists("/etc/owned")
    assert not os.path.exists("/escape")


def test_devices_are_dropped_and_setuid_bits_cleared(lam, image_function, registry) -> None:
    uri = push_busybox(registry, "special-files", "v1", extra_layers=[oci.layer([
        oci.directory("special"),
        oci.device("special/null", "char", 1, 3),
        oci.device("special/disk", "block", 8, 0, mode=0o660),
        oci.Member("special/fifo", "fifo", mode=0o644),
        oci.file("special/suid", "#!/bin/sh\necho hi\n", 0o4755),
        oci.file("special/sgid", "#!/bin/sh\necho hi\n", 0o2755),
        oci.file("special/plain", "plain", 0o644),
    ])])
    name = image_function(uri)["FunctionName"]
    answer = run(lam, name, "cd /special && for f in null disk suid sgid plain; do "
                            "if [ -e $f ]; then echo \"$f $(stat -c %a $f)\"; else echo \"$f absent\"; fi; done")
    lines = dict(line.split(" ", 1) for line in answer["out"].splitlines())
    assert lines["null"] == "absent" and lines["disk"] == "absent"
    assert lines["suid"] == "755" and lines["sgid"] == "755"
    assert lines["plain"] == "644"


# --------------------------------------------------------------------------------------------
# Running: the image is the environment's root


def test_the_image_is_the_root(lam, image_function, busybox_uri) -> None:
    name = image_function(busybox_uri)["FunctionName"]
    answer = run(lam, name, "touch /tmp/written && echo tmp-ok; touch /written-root 2>&1 || echo root-ro; "
                            "ls /usr 2>&1 || echo no-usr",
                 marker=[1, "two"])
    assert json.loads(answer["event"])["marker"] == [1, "two"]
    assert answer["host_python"] == "no"
    out = answer["out"].splitlines()
    assert "tmp-ok" in out and "root-ro" in out and "no-usr" in out
    assert answer["argv"] == ["/var/task/bootstrap", "first-arg", "second arg"]  # ENTRYPOINT + CMD
    assert answer["pwd"] == "/var/task"
    assert int(answer["uid"]) != 0
    assert answer["env"]["IMAGE_VAR"] == "from-image"
    # warm reuse keeps working, and each invocation gets its own event
    again = run(lam, name, "echo second")
    assert again["out"] == "second\n"


def test_image_config_overrides_entrypoint_command_and_working_directory(lam, image_function, registry) -> None:
    uri = push_busybox(registry, "overrides", "v1", entrypoint=["/bin/false"], cmd=["never"], working_dir="/")
    name = image_function(uri, ImageConfig={"EntryPoint": ["/bin/sh", "/var/task/bootstrap"],
                                            "Command": ["from", "image config"],
                                            "WorkingDirectory": "/tmp"})["FunctionName"]
    answer = run(lam, name)
    assert answer["argv"] == ["/var/task/bootstrap", "from", "image config"]
    assert answer["pwd"] == "/tmp"


def test_reserved_variables_win_over_image_env_and_function_env_over_both(lam, image_function, registry) -> None:
    uri = push_busybox(registry, "env", "v1", env={
        "PATH": "/bin", "IMAGE_VAR": "from-image", "ONLY_IN_IMAGE": "kept",
        "AWS_LAMBDA_FUNCTION_NAME": "from-image", "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:1",
        "LAMBDA_TASK_ROOT": "/from-image", "AWS_REGION": "xx-image-1",
    })
    name = image_function(uri, Environment={"Variables": {"IMAGE_VAR": "from-function"}})["FunctionName"]
    env = run(lam, name)["env"]
    assert env["IMAGE_VAR"] == "from-function"
    assert env["ONLY_IN_IMAGE"] == "kept"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_LAMBDA_RUNTIME_API"] != "127.0.0.1:1"  # and the bootstrap reached the real one
    assert env["LAMBDA_TASK_ROOT"] != "/from-image"
    assert env["AWS_REGION"] == "us-east-1"
    assert env["PATH"] == "/bin"


def test_whiteouts_are_applied(lam, image_function, registry) -> None:
    lower = oci.layer([oci.directory("data"), oci.file("data/keep", "k"), oci.file("data/gone", "g"),
                       oci.directory("data/gone-dir"), oci.file("data/gone-dir/inner", "i"),
                       oci.directory("opaque"), oci.file("opaque/old", "o"), oci.directory("opaque/sub"),
                       oci.file("opaque/sub/older", "o")])
    upper = oci.layer([oci.directory("data"), oci.whiteout("data/gone"), oci.whiteout("data/gone-dir"),
                       oci.directory("opaque"), oci.opaque_whiteout("opaque"), oci.file("opaque/new", "n")])
    uri = push_busybox(registry, "whiteouts", "v1", extra_layers=[lower, upper])
    name = image_function(uri)["FunctionName"]
    answer = run(lam, name, "echo data: $(ls -A /data); echo opaque: $(ls -A /opaque); cat /opaque/new")
    assert answer["out"].splitlines() == ["data: keep", "opaque: new", "n"]


def test_an_aws_style_python_image_with_awslambdaric(lam, image_function, registry, python_runtime_layer) -> None:
    runtime, interpreter = python_runtime_layer
    oci.push_image(registry.client(), "python", "3", [runtime, oci.python_app_layer()], oci.python_image_spec())
    name = image_function(f"{registry.host}/python:3")["FunctionName"]
    resp = lam.invoke(FunctionName=name, Payload=json.dumps({"hello": "image"}), LogType="Tail")
    result = json.loads(resp["Payload"].read())
    assert "FunctionError" not in resp, result
    assert result["event"] == {"hello": "image"}
    assert result["request_id"] == resp["ResponseMetadata"]["RequestId"]
    assert result["function_name"] == name
    assert result["executable"] == interpreter
    assert result["cwd"] == "/var/task" and result["task_root"] == "/var/task"
    assert result["uid"] != 0
    assert result["host_site_packages"] is False
    assert "END RequestId" in base64.b64decode(resp["LogResult"]).decode()

    resp = lam.invoke(FunctionName=name, Payload=json.dumps({"again": 2}))
    assert json.loads(resp["Payload"].read())["event"] == {"again": 2}


def test_push_image_builds_a_function_from_folders(lam, image_function, registry, tmp_path) -> None:
    """`lambdalet push-image`: folders become layers at the paths given; the image runs as pushed."""
    root, task = tmp_path / "root", tmp_path / "task"
    (root / "bin").mkdir(parents=True)
    task.mkdir()
    shutil.copy(oci.BUSYBOX, root / "bin" / "busybox")
    for tool in ("sh", "wget", "grep", "sed", "tr", "cat"):
        (root / "bin" / tool).symlink_to("busybox")
    (task / "bootstrap").write_text(
        "#!/bin/sh\nAPI=\"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime\"\nwhile true; do\n"
        "  wget -q -S -O /tmp/event \"$API/invocation/next\" 2>/tmp/headers\n"
        "  ID=$(grep -i Lambda-Runtime-Aws-Request-Id /tmp/headers | sed 's/.*: *//' | tr -d '\\r ')\n"
        "  echo \"{\\\"greeting\\\": \\\"$GREETING\\\", \\\"args\\\": \\\"$*\\\", \\\"event\\\": $(cat /tmp/event)}\" > /tmp/out\n"
        "  wget -q -O /dev/null --post-file /tmp/out \"$API/invocation/$ID/response\"\ndone\n")
    (task / "bootstrap").chmod(0o755)
    uri = f"{registry.host}/pushed:v1"
    done = subprocess.run([str(Path(sys.executable).parent / "lambdalet"), "push-image", uri, str(root),
                           f"{task}:/var/task", "--entrypoint", "/var/task/bootstrap", "--cmd", "app.handler 'two words'",
                           "--env", "PATH=/bin", "--env", "GREETING=hi"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    digest = done.stdout.strip()
    assert digest == digest_of(registry, "pushed", "v1") and "Pushing 2 layer(s)" in done.stderr

    name = image_function(uri)["FunctionName"]
    assert lam.get_function(FunctionName=name)["Code"]["ResolvedImageUri"] == f"{registry.host}/pushed@{digest}"
    body = json.loads(lam.invoke(FunctionName=name, Payload=b'{"n": 1}')["Payload"].read())
    assert body == {"greeting": "hi", "args": "app.handler two words", "event": {"n": 1}}


#: An extension in the image's own /opt/extensions, in busybox's sh with its wget: it registers,
#: says so in a file the function reads, and counts the INVOKE events it gets.
IMAGE_EXTENSION = """#!/bin/sh
BASE="http://${AWS_LAMBDA_RUNTIME_API}/2020-01-01/extension"
wget -q -S -O /dev/null --header "Lambda-Extension-Name: in-image" --post-data '{"events": ["INVOKE"]}' \\
    "$BASE/register" 2>/tmp/ext-headers
ID=$(grep -i 'Lambda-Extension-Identifier' /tmp/ext-headers | sed 's/.*: *//' | tr -d '\\r ')
echo registered > /tmp/ext-state
while true; do
    wget -q -O /tmp/ext-event --header "Lambda-Extension-Identifier: $ID" "$BASE/event/next" || exit 0
    echo invoke >> /tmp/ext-invokes
done
"""


def test_an_images_own_extensions_are_started_and_waited_for(srv, lam, image_function, registry) -> None:
    extension = oci.layer([oci.directory("opt"), oci.directory("opt/extensions"),
                           oci.file("opt/extensions/in-image", IMAGE_EXTENSION, 0o755)])
    uri = push_busybox(registry, "with-extension", "v1", extra_layers=[extension])
    name = image_function(uri)["FunctionName"]
    first = run(lam, name, "cat /tmp/ext-state")
    assert first["out"].strip() == "registered"  # init waited for the extension to register
    wait_until(lambda: environment_counts(srv, name) == {"idle": 1, "busy": 0, "starting": 0},
               what="the environment to be free once its extension took the INVOKE")
    second = run(lam, name, "cat /tmp/ext-invokes | wc -l")
    assert int(second["out"].strip()) >= 1  # the first invocation's INVOKE reached it
    assert "_LAMBDALET_EXTENSION_EXIT" not in second["env"]  # the launcher's token stays its own
