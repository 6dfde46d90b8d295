"""The image tests' own tools, checked on their own (no Lambdalet server): what oci_support pushes
to docker-registry is what comes back, byte for byte and digest for digest; and what the registry
refuses on push, which decides how the hostile images of test_images.py are served."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import tarfile

import pytest

from . import oci_support as oci


def _pull_and_verify(client: oci.RegistryClient, repository: str, reference: str, digest: str) -> dict:
    """Fetch a manifest and every blob it names; check each against its digest and size."""
    content_type, body, served_digest = client.manifest(repository, reference)
    assert served_digest == digest == oci.sha256_digest(body)
    manifest = json.loads(body)
    assert content_type == manifest["mediaType"]
    for descriptor in [manifest["config"], *manifest["layers"]]:
        blob = client.blob(repository, descriptor["digest"])
        assert oci.sha256_digest(blob) == descriptor["digest"] and len(blob) == descriptor["size"]
    config = json.loads(client.blob(repository, manifest["config"]["digest"]))
    diff_ids = [oci.sha256_digest(gzip.decompress(client.blob(repository, d["digest"]))) for d in manifest["layers"]]
    assert config["rootfs"] == {"type": "layers", "diff_ids": diff_ids}
    return {"manifest": manifest, "config": config}


@pytest.mark.parametrize("fmt", ["oci", "docker"])
def test_an_image_pushed_is_pulled_back_identical(registry, fmt) -> None:
    client = registry.client()
    layers = [oci.busybox_layer(), oci.bootstrap_layer()]
    spec = oci.ImageSpec(entrypoint=["/var/task/bootstrap"], cmd=["a", "b"], env={"IMAGE_VAR": "x y"},
                         working_dir="/var/task")
    digest = oci.push_image(client, f"support-{fmt}", "v1", layers, spec, fmt=fmt)
    pulled = _pull_and_verify(client, f"support-{fmt}", "v1", digest)
    assert pulled["manifest"]["mediaType"] == oci.FORMATS[fmt][0]
    assert [d["mediaType"] for d in pulled["manifest"]["layers"]] == [oci.FORMATS[fmt][3]] * 2
    assert pulled["config"]["architecture"] == "amd64" and pulled["config"]["os"] == "linux"
    assert pulled["config"]["config"] == {"Entrypoint": ["/var/task/bootstrap"], "Cmd": ["a", "b"],
                                          "Env": ["IMAGE_VAR=x y"], "WorkingDir": "/var/task"}
    assert client.tags(f"support-{fmt}") == ["v1"]
    # by digest too
    assert client.manifest(f"support-{fmt}", digest)[2] == digest


@pytest.mark.parametrize("fmt", ["oci", "docker"])
def test_an_index_names_one_manifest_per_platform(registry, fmt) -> None:
    client = registry.client()
    index_digest, per_arch = oci.push_index(client, f"support-index-{fmt}", "multi", [
        ("arm64", [oci.busybox_layer()], oci.ImageSpec(env={"ARCH": "arm64"})),
        ("amd64", [oci.busybox_layer(), oci.bootstrap_layer()], oci.ImageSpec(env={"ARCH": "amd64"})),
    ], fmt=fmt)
    content_type, body, digest = client.manifest(f"support-index-{fmt}", "multi")
    assert content_type == oci.FORMATS[fmt][1] and digest == index_digest
    index = json.loads(body)
    assert {(m["platform"]["architecture"], m["digest"]) for m in index["manifests"]} == set(per_arch.items())
    for arch, manifest_digest in per_arch.items():
        pulled = _pull_and_verify(client, f"support-index-{fmt}", manifest_digest, manifest_digest)
        assert pulled["config"]["architecture"] == arch
        assert pulled["config"]["config"]["Env"] == [f"ARCH={arch}"]


def test_layers_are_deterministic_and_keep_what_they_are_given() -> None:
    members = [oci.directory("a"), oci.file("a/f", "x", 0o4755), oci.symlink("a/l", "/etc"),
               oci.hardlink("a/h", "/etc/shadow"), oci.file("../escape", "y"), oci.device("a/null"),
               oci.whiteout("a/gone"), oci.opaque_whiteout("a")]
    first, second = oci.layer(members), oci.layer(members)
    assert first.blob == second.blob and first.diff_id == second.diff_id
    assert first.diff_id == oci.sha256_digest(gzip.decompress(first.blob))
    with tarfile.open(fileobj=io.BytesIO(first.blob)) as archive:
        infos = {info.name: info for info in archive.getmembers()}
    assert list(infos) == ["a", "a/f", "a/l", "a/h", "../escape", "a/null", "a/.wh.gone", "a/.wh..wh..opq"]
    assert infos["a/f"].mode == 0o4755 and infos["a/l"].linkname == "/etc"
    assert infos["a/h"].islnk() and infos["a/h"].linkname == "/etc/shadow"
    assert infos["a/null"].ischr() and (infos["a/null"].devmajor, infos["a/null"].devminor) == (1, 3)


def test_what_the_registry_refuses_on_push(registry) -> None:
    """distribution 2.8 checks digests and blob existence, not sizes, gzip or tar contents."""
    client = registry.client()
    good = oci.busybox_layer()
    # a blob whose bytes differ from the digest it is uploaded under
    with pytest.raises(oci.RegistryHTTPError) as refused:
        client.push_blob("support-refusals", b"these bytes", digest=oci.sha256_digest(b"other bytes"))
    assert refused.value.status == 400 and refused.value.codes == ["DIGEST_INVALID"]
    # a manifest naming a layer the repository does not have
    missing = {"mediaType": oci.OCI_LAYER, "digest": oci.sha256_digest(b"never pushed"), "size": 12}
    with pytest.raises(oci.RegistryHTTPError) as refused:
        oci.push_image(client, "support-refusals", "missing-layer", [good], layer_descriptors=[missing])
    assert refused.value.status == 400 and refused.value.codes == ["MANIFEST_BLOB_UNKNOWN"]
    # an index naming a manifest the repository does not have
    index = json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [
        {"mediaType": oci.OCI_MANIFEST, "digest": oci.sha256_digest(b"no manifest"), "size": 11,
         "platform": {"architecture": "amd64", "os": "linux"}}]}).encode()
    with pytest.raises(oci.RegistryHTTPError) as refused:
        client.push_manifest("support-refusals", "missing-manifest", index, oci.OCI_INDEX)
    assert refused.value.codes == ["MANIFEST_BLOB_UNKNOWN"]
    # a manifest pushed by a digest that is not its own
    body = oci.manifest_document(oci.image_config([good], oci.ImageSpec()), [good])
    with pytest.raises(oci.RegistryHTTPError) as refused:
        client.push_manifest("support-refusals", oci.sha256_digest(b"not this"), body, oci.OCI_MANIFEST)
    assert refused.value.codes == ["DIGEST_INVALID"]
    # accepted: a wrong size in a descriptor, and a blob that is not a valid gzip (a truncated one)
    wrong_size = [{"mediaType": oci.OCI_LAYER, "digest": good.digest, "size": good.size - 100}]
    oci.push_image(client, "support-refusals", "wrong-size", [good], layer_descriptors=wrong_size)
    truncated = oci.Layer(good.blob[: good.size // 2], good.diff_id)
    digest = oci.push_image(client, "support-refusals", "truncated", [truncated])
    manifest = json.loads(client.manifest("support-refusals", digest)[1])
    assert client.blob("support-refusals", manifest["layers"][0]["digest"]) == truncated.blob


def test_a_blob_deleted_or_corrupted_behind_the_registry(registry) -> None:
    client = registry.client()
    victim = oci.layer([oci.file("f", "original content")])
    oci.push_image(client, "support-behind", "deleted", [victim])
    client.delete_blob("support-behind", victim.digest)
    with pytest.raises(oci.RegistryHTTPError) as gone:
        client.blob("support-behind", victim.digest)
    assert gone.value.status == 404
    other = oci.layer([oci.file("f", "tampered content")])
    oci.push_image(client, "support-behind", "corrupted", [other])
    forged = bytearray(other.blob)
    forged[-20] ^= 0xFF
    registry.corrupt_blob(other.digest, bytes(forged))
    served = client.blob("support-behind", other.digest)
    assert served == bytes(forged) and oci.sha256_digest(served) != other.digest


def test_the_private_registry_needs_its_login(private_registry) -> None:
    anonymous = private_registry.client(login=None)
    with pytest.raises(oci.RegistryHTTPError) as refused:
        anonymous.request("GET", "/v2/")
    assert refused.value.status == 401
    wrong = oci.RegistryClient(private_registry.host, (private_registry.login[0], "wrong"))
    with pytest.raises(oci.RegistryHTTPError) as refused:
        wrong.request("GET", "/v2/")
    assert refused.value.status == 401
    client = private_registry.client()
    digest = oci.push_image(client, "support-private", "v1", [oci.busybox_layer()])
    _pull_and_verify(client, "support-private", "v1", digest)
    with pytest.raises(oci.RegistryHTTPError):
        anonymous.manifest("support-private", "v1")


def test_the_busybox_bootstrap_parses_what_it_needs() -> None:
    """The bootstrap's extraction of the event's command and of the request id, in busybox sh."""
    script = r"""
printf '%s' '{"sh": "'"$(printf 'echo hi; id -u' | base64 -w 0)"'", "x": 1}' > /tmp/oci-support-event
CMD=$(sed -n 's/.*"sh": *"\([A-Za-z0-9+\/=]*\)".*/\1/p' /tmp/oci-support-event | base64 -d)
sh -c "$CMD"
printf 'HTTP/1.1 200 OK\r\n  Lambda-Runtime-Aws-Request-Id: 8f1e-77\r\n' | grep -i 'Lambda-Runtime-Aws-Request-Id' | sed 's/.*: *//' | tr -d '\r '
rm -f /tmp/oci-support-event
"""
    out = subprocess.run([oci.BUSYBOX, "sh", "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["hi", str(os.getuid()), "8f1e-77"]


def test_the_python_image_runs_its_interpreter_in_a_chroot(python_runtime_layer, tmp_path) -> None:
    """The Python image's files alone (no host /usr) start the interpreter and import awslambdaric."""
    assert os.geteuid() == 0, "chroot needs root: run the suite as root, as its linux-sandbox tests need"
    layer, interpreter = python_runtime_layer
    for blob in (layer.blob, oci.python_app_layer().blob):
        with tarfile.open(fileobj=io.BytesIO(blob)) as archive:  # our own layer: trusted (filter= is 3.11.4+)
            archive.extractall(tmp_path, **({"filter": "fully_trusted"} if hasattr(tarfile, "data_filter") else {}))
    assert not (tmp_path / "usr/bin/python3").exists() or interpreter.startswith("/usr/")
    probe = ("import awslambdaric, runtime_client, json, ssl, sys, os; sys.path.insert(0, '/var/task'); "
             "import app; print(json.dumps([sys.executable, os.path.exists('/var/runtime/bootstrap')]))")
    out = subprocess.run(["/usr/sbin/chroot", str(tmp_path), interpreter, "-c", probe], capture_output=True, text=True,
                         env={"PYTHONPATH": "/var/runtime", "PATH": "/bin"}, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [interpreter, True]
    entry = subprocess.run(["/usr/sbin/chroot", str(tmp_path), "/bin/sh", "/lambda-entrypoint.sh"],
                           capture_output=True, text=True, env={"PATH": "/bin"}, timeout=60)
    assert entry.returncode == 142 and "expected the handler" in entry.stderr
