"""Content-addressed code blobs: each zip stored once by SHA-256 and extracted once, read-only.

Layout under the data directory:
    blobs/<sha256-hex>.zip     the deployment package exactly as uploaded (served as Code.Location)
    code/<sha256-hex>/         its extracted tree, shared by every function/version with that hash
    blobs/.download-*          a package still arriving (`spool`), e.g. from S3; moved into place by put_zip
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from lambdalet.errors import InvalidParameterValueException
from lambdalet.store.shared_blobs import SharedBlobs

MAX_UNZIPPED_BYTES = 262_144_000  # 250 MB, Lambda's limit for function code plus layers


@dataclass(frozen=True)
class Blob:
    sha256: str  # hex
    size: int
    unzipped_size: int = 0


class BlobStore:
    def __init__(self, root: Path, shared: SharedBlobs | None = None) -> None:
        #: the database's copy of every package, for the other nodes (PostgreSQL); None: this machine only
        self.shared = shared
        self.blobs = root / "blobs"
        self.code = root / "code"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.code.mkdir(parents=True, exist_ok=True)

    def zip_path(self, sha256: str) -> Path:
        return self.blobs / f"{sha256}.zip"

    def code_dir(self, sha256: str) -> Path:
        return self.code / sha256

    def put_zip(self, source: bytes | Path, share: bool = True) -> Blob:
        """Validate a deployment package, store it and extract it (both idempotent). `source` is
        the zip itself, or a file made by `spool()`, which is moved into the store (no copy).
        An upload is also kept in the shared store (`share`); a package read from there is not."""
        with _open_zip(source) as archive:
            if isinstance(source, Path):
                sha256, size = _file_sha256(source), source.stat().st_size
            else:
                sha256, size = hashlib.sha256(source).hexdigest(), len(source)
            target = self.zip_path(sha256)
            if not target.exists():
                if isinstance(source, Path):
                    os.replace(source, target)  # the archive keeps reading the same file
                else:
                    _atomic_write(target, source)
            if not self.code_dir(sha256).exists():
                self._extract(archive, sha256)
            if share and self.shared is not None:
                self.shared.keep(sha256, target)
            return Blob(sha256, size, _unzipped_size(archive))

    @contextlib.contextmanager
    def spool(self) -> Iterator[Path]:
        """An empty file in the store for a package that arrives in pieces (written by the caller,
        then given to put_zip); removed on the way out unless put_zip took it."""
        fd, name = tempfile.mkstemp(dir=self.blobs, prefix=".download-")
        os.close(fd)
        path = Path(name)
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    def unzipped_size(self, sha256: str) -> int:
        """The unzipped size of a stored package (read from its central directory)."""
        with zipfile.ZipFile(self.zip_path(sha256)) as archive:
            return _unzipped_size(archive)

    def _extract(self, archive: zipfile.ZipFile, sha256: str) -> None:
        staging = Path(tempfile.mkdtemp(prefix=f".{sha256[:12]}-", dir=self.code))
        try:
            links = []
            for info in archive.infolist():  # files and directories first: no link exists yet to lead them astray
                if stat.S_ISLNK(info.external_attr >> 16):
                    links.append(info)
                else:
                    _extract_member(archive, info, staging)
            for info in links:
                _make_link(archive, info, staging)
            _make_read_only(staging)
            os.rename(staging, self.code_dir(sha256))
        except FileExistsError:  # a concurrent upload of the same zip won the race
            shutil.rmtree(staging, ignore_errors=True)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if self.code_dir(sha256).exists():
                return
            raise InvalidParameterValueException(f"Could not unzip uploaded file: {exc}") from exc


def _unzipped_size(archive: zipfile.ZipFile) -> int:
    return sum(info.file_size for info in archive.infolist())


def _open_zip(source: bytes | Path) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(source if isinstance(source, Path) else io.BytesIO(source))
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise InvalidParameterValueException(
            "Could not unzip uploaded file. Please check your file, then try to upload again."
        ) from exc
    if _unzipped_size(archive) > MAX_UNZIPPED_BYTES:
        archive.close()
        raise InvalidParameterValueException(
            f"Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes"
        )
    return archive


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _extract_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, root: Path) -> None:
    """Extract one member, keeping its Unix mode (a custom runtime's bootstrap must stay executable)."""
    mode = info.external_attr >> 16
    path = Path(archive.extract(info, root))
    if path.is_file():
        perms = stat.S_IMODE(mode) if mode else 0o644
        os.chmod(path, (perms | 0o444) & 0o555 if perms & 0o111 else 0o444)


def _make_link(archive: zipfile.ZipFile, info: zipfile.ZipInfo, root: Path) -> None:
    """Create a symbolic link member, as Lambda keeps them (its target is resolved in the sandbox).

    Links are made after every other member, and never under another link: the server extracts
    as root, and a member written through a link to a host directory would land on the host."""
    name = _safe_name(info.filename)
    parent = root
    for part in Path(name).parent.parts:
        parent = parent / part
        if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
            raise OSError(f"{info.filename}: a link inside a link or a file")
        parent.mkdir(exist_ok=True)
    try:
        os.symlink(archive.read(info).decode(), root / name)
    except FileExistsError:  # not the rename race _extract expects that error from
        raise OSError(f"{info.filename}: a link and another member share the name") from None


def _safe_name(name: str) -> str:
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return os.path.join(*parts)


def _make_read_only(root: Path) -> None:
    for dirpath, _dirnames, _files in os.walk(root):
        os.chmod(dirpath, 0o555)


def _atomic_write(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, target)
