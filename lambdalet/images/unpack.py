"""Applying an image's layers, in order, to one directory: the environment's root filesystem.

Each layer is a tar stream (gzip-compressed or not) read with the standard library's `tarfile`
member by member, never with `extractall`: the server extracts as root, so every member is
checked before it touches the disk.

- A member's name may not hold `..` and may not lead through a symbolic link (a link made by an
  earlier member or layer): nothing is ever written outside the root.
- Symbolic links are kept exactly as written; they are resolved inside the environment, where
  this directory is `/`, so even an absolute target stays in the image.
- Hard links must name a regular file of the image by a relative name.
- Device nodes are dropped; setuid, setgid and group/other write bits are cleared; files and
  directories belong to root (the function runs as an unprivileged uid and only reads them).
- OCI whiteouts (`.wh.<name>` deletes `<name>` of a lower layer, `.wh..wh..opq` empties a
  directory of lower layers' entries) apply to lower layers only, as the image spec says.
- The files' total size is held to Lambda's 10 GB limit for an image.

A layer that breaks any of these rules makes the whole image unusable (`LayerRejected`).
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zlib
from pathlib import Path
from typing import IO

MAX_IMAGE_BYTES = 10 * 1024 ** 3  # Lambda's limit on an image's uncompressed size
WHITEOUT, OPAQUE = ".wh.", ".wh..wh..opq"
#: Mount points the sandbox needs in every image root; made (as directories) when an image lacks them.
MOUNT_POINTS = ("proc", "dev", "tmp")
SAFE_MODE_BITS = 0o1755  # no setuid/setgid, no group/other write


class LayerRejected(Exception):
    """A layer that cannot be applied safely or at all; the message names the member and the rule."""


class Unpacker:
    """Applies layers, in order, to `root` (a new, empty directory of the server's)."""

    def __init__(self, root: Path, max_bytes: int = MAX_IMAGE_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.total_bytes = 0

    def apply(self, layer: IO[bytes], name: str) -> None:
        """Apply one layer (an open file holding its blob); `name` is used in error messages."""
        written: set[str] = set()  # what this layer made: whiteouts never apply to it
        try:
            with tarfile.open(fileobj=layer, mode="r|*") as archive:
                for member in archive:
                    self._member(archive, member, written, name)
        except tarfile.CompressionError as exc:
            raise LayerRejected(f"layer {name}: unsupported compression ({exc}); use gzip or none") from exc
        except (tarfile.ReadError, EOFError, zlib.error) as exc:
            raise LayerRejected(f"layer {name} is not a complete tar archive: {exc}") from exc
        except OSError as exc:
            raise LayerRejected(f"layer {name} cannot be unpacked: {exc}") from exc

    def finish(self) -> None:
        """Make the mount points the sandbox needs, as real directories (never a link that the
        server would follow when it mounts /proc or /dev there)."""
        for point in MOUNT_POINTS:
            path = self.root / point
            if path.is_symlink() or (path.exists() and not path.is_dir()):
                path.unlink()
            path.mkdir(mode=0o755, exist_ok=True)
        os.chmod(self.root, 0o755)

    def _member(self, archive: tarfile.TarFile, member: tarfile.TarInfo, written: set[str], layer: str) -> None:
        relative = _clean_name(member.name, layer)
        if relative is None:
            return  # the archive's own top directory ("./")
        parent, base = os.path.split(relative)
        self._check_parents(parent, member.name, layer)
        if base == OPAQUE:
            self._empty_directory(parent, written)
            return
        if base.startswith(WHITEOUT):
            target = os.path.join(parent, base[len(WHITEOUT):])
            if target not in written:
                _remove(self.root / target)
            return
        path = self.root / relative
        if member.isdir():
            if path.is_symlink() or (path.exists() and not path.is_dir()):
                _remove(path)
            path.mkdir(exist_ok=True)
            os.chmod(path, member.mode & SAFE_MODE_BITS | 0o700)
        elif member.isreg():
            self._count(member.size, layer)
            _remove(path)
            source = archive.extractfile(member)
            assert source is not None
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(source, out, 1024 * 1024)
            os.chmod(path, member.mode & SAFE_MODE_BITS & ~0o1000)
        elif member.issym():
            _remove(path)
            os.symlink(member.linkname, path)
        elif member.islnk():
            target = _clean_name(member.linkname, layer, what="hard link target")
            if target is None or member.linkname.startswith("/"):
                raise LayerRejected(f"layer {layer}: hard link {member.name} -> {member.linkname} does not name a "
                                    "file of the image by a relative name")
            self._check_parents(os.path.dirname(target), member.linkname, layer)
            source_path = self.root / target
            if source_path.is_symlink() or not source_path.is_file():
                raise LayerRejected(f"layer {layer}: hard link {member.name} -> {member.linkname}: no such file "
                                    "in the image")
            _remove(path)
            os.link(source_path, path, follow_symlinks=False)
        elif member.isfifo():
            _remove(path)
            os.mkfifo(path, 0o644)
        else:
            return  # device nodes (and anything stranger) are dropped
        written.add(relative)

    def _check_parents(self, parent: str, name: str, layer: str) -> None:
        """Every directory on the way to a member is a real directory of the root (made if missing)."""
        path = self.root
        for part in Path(parent).parts:
            path = path / part
            if path.is_symlink():
                raise LayerRejected(f"layer {layer}: {name} leads through the symbolic link "
                                    f"/{path.relative_to(self.root)}, which could point outside the image")
            if not path.exists():
                path.mkdir(mode=0o755)
            elif not path.is_dir():
                raise LayerRejected(f"layer {layer}: {name} lies under /{path.relative_to(self.root)}, "
                                    "which is not a directory")

    def _empty_directory(self, directory: str, written: set[str]) -> None:
        path = self.root / directory
        if not path.is_dir() or path.is_symlink():
            return
        for entry in os.listdir(path):
            if os.path.join(directory, entry) not in written:
                _remove(path / entry)

    def _count(self, size: int, layer: str) -> None:
        self.total_bytes += size
        if self.total_bytes > self.max_bytes:
            raise LayerRejected(f"layer {layer}: the image is larger than {self.max_bytes} bytes uncompressed, "
                                "Lambda's limit for a container image")


def _clean_name(name: str, layer: str, what: str = "member") -> str | None:
    """`name` relative to the root (`./a/b` and `/a/b` are `a/b`), or None for the root itself."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise LayerRejected(f"layer {layer}: {what} {name!r} climbs out of the image with '..'")
    return os.path.join(*parts) if parts else None


def _remove(path: Path) -> None:
    """Remove whatever is at `path` (a link itself, never what it points to)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)
