"""Merged layer directories: later layers win, directories merge, the tree is built once and sealed."""

import io
import os
import zipfile

from lambdalet.model import FunctionLayer, layers_key
from lambdalet.store.blobs import BlobStore
from lambdalet.store.layer_dirs import LayerDirs


def zip_of(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buf.getvalue()


def layer(blobs: BlobStore, files: dict[str, str]) -> FunctionLayer:
    blob = blobs.put_zip(zip_of(files))
    return FunctionLayer(f"arn:aws:lambda:us-east-1:000000000000:layer:l:{blob.sha256[:4]}", blob.size,
                         blob.sha256, blob.unzipped_size)


def test_layers_merge_in_order_and_the_later_one_wins(tmp_path):
    blobs = BlobStore(tmp_path)
    dirs = LayerDirs(tmp_path, blobs)
    first = layer(blobs, {"python/shared.py": "first", "python/pkg/a.py": "a", "thing": "a file"})
    second = layer(blobs, {"python/shared.py": "second", "python/pkg/b.py": "b", "thing/inside": "now a dir"})

    merged = dirs.ensure((first, second))

    assert merged == tmp_path / "opt" / layers_key((first, second)) == dirs.path((first, second))
    assert (merged / "python" / "shared.py").read_text() == "second"
    assert sorted(os.listdir(merged / "python" / "pkg")) == ["a.py", "b.py"]
    assert (merged / "thing" / "inside").read_text() == "now a dir"
    assert not os.access(merged / "python", os.W_OK) or os.geteuid() == 0
    assert oct((merged / "python").stat().st_mode & 0o777) == oct(0o555)
    assert dirs.ensure((second, first)) != merged  # order matters
    assert (dirs.ensure((second, first)) / "python" / "shared.py").read_text() == "first"


def test_a_merged_tree_is_built_once(tmp_path):
    blobs = BlobStore(tmp_path)
    dirs = LayerDirs(tmp_path, blobs)
    only = layer(blobs, {"bin/tool": "#!/bin/sh\n"})
    merged = dirs.ensure((only,))
    inode = merged.stat().st_ino
    assert dirs.ensure((only,)).stat().st_ino == inode
    assert dirs.path(()) is None and dirs.ensure(()) is None
    assert [p for p in os.listdir(tmp_path / "opt") if p.startswith(".")] == []  # no staging left behind
