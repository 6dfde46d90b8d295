"""Content-addressed code blobs: validation, modes, safety, idempotence (lambdalet.store.blobs)."""

import hashlib
import io
import os
import stat
import zipfile

import pytest

from lambdalet.errors import InvalidParameterValueException
from lambdalet.store import blobs as blobs_module
from lambdalet.store.blobs import BlobStore


def zip_of(members: dict[str, tuple[bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, (data, mode) in members.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            archive.writestr(info, data)
    return buf.getvalue()


def test_zip_is_stored_by_hash_and_extracted_read_only_with_modes(tmp_path):
    store = BlobStore(tmp_path)
    data = zip_of({"bootstrap": (b"#!/bin/sh\n", 0o100755), "lib/app.py": (b"x = 1\n", 0o100644)})
    blob = store.put_zip(data)
    assert blob.sha256 == hashlib.sha256(data).hexdigest() and blob.size == len(data)
    assert store.zip_path(blob.sha256).read_bytes() == data
    code = store.code_dir(blob.sha256)
    assert os.access(code / "bootstrap", os.X_OK)
    assert stat.S_IMODE((code / "lib" / "app.py").stat().st_mode) == 0o444
    assert store.put_zip(data) == blob  # idempotent


def test_not_a_zip_is_refused_with_lambdas_message(tmp_path):
    with pytest.raises(InvalidParameterValueException, match="Could not unzip uploaded file"):
        BlobStore(tmp_path).put_zip(b"definitely not a zip")
    assert not any((tmp_path / "blobs").iterdir())


def test_unzipped_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(blobs_module, "MAX_UNZIPPED_BYTES", 100)
    with pytest.raises(InvalidParameterValueException, match="Unzipped size must be smaller than 100 bytes"):
        BlobStore(tmp_path).put_zip(zip_of({"big": (b"x" * 101, 0o100644)}))


def test_members_cannot_escape_the_code_directory(tmp_path):
    store = BlobStore(tmp_path)
    blob = store.put_zip(zip_of({"../../escape.py": (b"bad", 0o100644), "/abs.py": (b"bad", 0o100644)}))
    assert not (tmp_path.parent / "escape.py").exists()
    extracted = {p.relative_to(store.code_dir(blob.sha256)).as_posix() for p in store.code_dir(blob.sha256).rglob("*")}
    assert extracted == {"escape.py", "abs.py"}


def test_a_symlink_member_cannot_lead_extraction_out_of_the_code_directory(tmp_path):
    """The zip-symlink attack: a link to a host directory, then members written through it. The
    server extracts as root, so this would write anywhere on the host."""
    outside = tmp_path / "outside"
    outside.mkdir()
    store = BlobStore(tmp_path / "data")
    link = stat.S_IFLNK | 0o777
    for members in (
        {"evil": (str(outside).encode(), link), "evil/pwned": (b"bad", 0o100644)},  # a file through the link
        {"evil": (str(outside).encode(), link), "evil/deeper": (b"x", link)},  # a link through the link
        {"evil": (b"../../../outside", link), "evil/pwned": (b"bad", 0o100644)},
    ):
        with pytest.raises(InvalidParameterValueException, match="Could not unzip"):
            store.put_zip(zip_of(members))
        assert list(outside.iterdir()) == [], members


def test_symlinks_inside_a_package_are_kept(tmp_path):
    store = BlobStore(tmp_path)
    link = stat.S_IFLNK | 0o777
    blob = store.put_zip(zip_of({"lib/real.py": (b"x = 1\n", 0o100644), "app.py": (b"lib/real.py", link),
                                 "abs": (b"/opt/python", link)}))
    code = store.code_dir(blob.sha256)
    assert os.readlink(code / "app.py") == "lib/real.py" and (code / "app.py").read_text() == "x = 1\n"
    assert os.readlink(code / "abs") == "/opt/python"  # resolved inside the sandbox, where /opt is the layers


def test_a_spooled_file_is_moved_into_the_store_as_the_same_blob(tmp_path):
    """A package that arrives in pieces (from S3) is written to `spool()` and taken over by put_zip."""
    store = BlobStore(tmp_path)
    data = zip_of({"app.py": (b"x = 1\n", 0o100644)})
    with store.spool() as path:
        path.write_bytes(data)
        blob = store.put_zip(path)
        assert not path.exists()  # moved, not copied
    assert blob == BlobStore(tmp_path / "other").put_zip(data)
    assert store.zip_path(blob.sha256).read_bytes() == data
    assert (store.code_dir(blob.sha256) / "app.py").read_bytes() == b"x = 1\n"
    with store.spool() as again:  # the same package a second time: nothing to move, the file is removed
        again.write_bytes(data)
        assert store.put_zip(again) == blob
    assert not again.exists()
    assert [p.name for p in (tmp_path / "blobs").iterdir()] == [f"{blob.sha256}.zip"]


def test_a_spooled_file_that_is_not_a_zip_is_refused_and_removed(tmp_path):
    store = BlobStore(tmp_path)
    with pytest.raises(InvalidParameterValueException, match="Could not unzip uploaded file"):
        with store.spool() as path:
            path.write_bytes(b"not a zip")
            store.put_zip(path)
    assert not any((tmp_path / "blobs").iterdir())
