"""Applying image layers to a root (lambdalet/images/unpack.py): whiteouts, and every way a layer
could write outside the root, refused."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from lambdalet.images.unpack import LayerRejected, Unpacker


def tar_layer(*members: tuple[str, str, object], compress: bool = True) -> io.BytesIO:
    """A layer from (name, kind, payload): kind is file (payload bytes), dir, sym/hard (target), dev, fifo."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            info.mode = 0o755 if kind == "dir" else 0o644
            data = None
            if kind == "file":
                data = payload if isinstance(payload, bytes) else str(payload).encode()
                info.size = len(data)
            elif kind == "setuid":
                data, info.size, info.mode = b"x", 1, 0o4755
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, str(payload)
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, str(payload)
            elif kind == "dev":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buffer.getvalue()
    return io.BytesIO(gzip.compress(raw) if compress else raw)


@pytest.fixture
def unpacker(tmp_path: Path) -> Unpacker:
    root = tmp_path / "rootfs"
    root.mkdir()
    return Unpacker(root)


def test_layers_apply_in_order_with_whiteouts(unpacker: Unpacker) -> None:
    unpacker.apply(tar_layer(("etc", "dir", None), ("etc/keep", "file", "1"), ("etc/gone", "file", "1"),
                             ("cache", "dir", None), ("cache/old", "file", "1"), ("bin/tool", "file", "v1")), "l1")
    unpacker.apply(tar_layer(("etc/.wh.gone", "file", ""), ("cache/new", "file", "2"),
                             ("cache/.wh..wh..opq", "file", ""), ("bin/tool", "file", "v2")), "l2")
    unpacker.finish()
    root = unpacker.root
    assert (root / "etc/keep").read_text() == "1"
    assert not (root / "etc/gone").exists() and not (root / "etc/.wh.gone").exists()
    # the opaque marker empties what lower layers put there, never what its own layer wrote
    assert sorted(os.listdir(root / "cache")) == ["new"]
    assert (root / "bin/tool").read_text() == "v2"
    for point in ("proc", "dev", "tmp"):
        assert (root / point).is_dir() and not (root / point).is_symlink()


def test_uncompressed_layers_and_links_kept_as_written(unpacker: Unpacker) -> None:
    unpacker.apply(tar_layer(("usr/bin/busybox", "file", "bb"), ("bin", "sym", "usr/bin"),
                             ("usr/bin/sh", "sym", "/usr/bin/busybox"), ("usr/bin/ash", "hard", "usr/bin/busybox"),
                             compress=False), "l1")
    root = unpacker.root
    assert os.readlink(root / "bin") == "usr/bin"
    assert os.readlink(root / "usr/bin/sh") == "/usr/bin/busybox"  # resolved inside the sandbox, where this is /
    assert os.stat(root / "usr/bin/ash").st_ino == os.stat(root / "usr/bin/busybox").st_ino


def test_devices_dropped_and_setuid_cleared(unpacker: Unpacker) -> None:
    unpacker.apply(tar_layer(("dev/null", "dev", None), ("usr/bin/su", "setuid", None), ("run/pipe", "fifo", None)), "l1")
    root = unpacker.root
    assert not (root / "dev/null").exists()
    mode = os.stat(root / "usr/bin/su").st_mode
    assert not mode & (stat.S_ISUID | stat.S_ISGID) and mode & 0o111
    assert stat.S_ISFIFO(os.lstat(root / "run/pipe").st_mode)


@pytest.mark.parametrize("members, words", [
    ([("../escape", "file", "x")], "'..'"),
    ([("a/../../escape", "file", "x")], "'..'"),
    ([("passwd", "hard", "/etc/passwd")], "relative name"),
    ([("shadow", "hard", "../../etc/shadow")], "'..'"),
    ([("evil", "sym", "/etc"), ("evil/owned", "file", "x")], "symbolic link"),
    ([("evil", "sym", "../../.."), ("evil/tmp/owned", "file", "x")], "symbolic link"),
    ([("evil", "sym", "/etc"), ("hardened", "hard", "evil/passwd")], "symbolic link"),
    ([("file", "file", "x"), ("file/below", "file", "x")], "not a directory"),
])
def test_escapes_are_refused(unpacker: Unpacker, tmp_path: Path, members, words: str) -> None:
    with pytest.raises(LayerRejected, match=words):
        unpacker.apply(tar_layer(*members), "sha256:bad")
    assert not (tmp_path / "escape").exists() and not (tmp_path / "owned").exists()


def test_a_link_from_a_lower_layer_is_not_written_through(unpacker: Unpacker, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    unpacker.apply(tar_layer(("var", "sym", str(outside))), "l1")
    with pytest.raises(LayerRejected, match="symbolic link"):
        unpacker.apply(tar_layer(("var/owned", "file", "x")), "l2")
    assert list(outside.iterdir()) == []


def test_truncated_and_foreign_layers(unpacker: Unpacker) -> None:
    whole = tar_layer(("big", "file", os.urandom(100_000))).getvalue()
    with pytest.raises(LayerRejected, match="not a complete tar archive"):
        unpacker.apply(io.BytesIO(whole[: len(whole) // 2]), "sha256:cut")
    with pytest.raises(LayerRejected, match="not a complete tar archive"):
        unpacker.apply(io.BytesIO(b"\x28\xb5\x2f\xfd" + os.urandom(64)), "sha256:zstd")


def test_the_size_limit_counts_across_layers(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    small = Unpacker(root, max_bytes=1500)
    small.apply(tar_layer(("a", "file", "x" * 1000)), "l1")
    with pytest.raises(LayerRejected, match="larger than 1500 bytes"):
        small.apply(tar_layer(("b", "file", "x" * 1000)), "l2")
