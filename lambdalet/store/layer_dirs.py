"""Merged layer directories: what a function sees at /opt, built once per distinct list of layers.

Layout under the data directory:
    opt/<key>/    the extracted layers of one ordered list merged into one read-only tree, where
                  <key> is the SHA-256 of the layers' content hashes in order (`model.layers_key`)

Each layer is already extracted, read-only, at `code/<sha256>/` (`blobs.py`). Merging copies those
trees in list order, a later layer replacing an earlier layer's file at the same path, as Lambda
extracts layers into /opt one after the other. Files are hard links into the extracted layers (they
are read-only and never change), so a merged tree costs directories, not data. The tree is built
when a function is given its layers (CreateFunction/UpdateFunctionConfiguration) and checked again
at start-up; starting an environment only names its path.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from lambdalet.model import FunctionLayer, layers_key
from lambdalet.store.blobs import BlobStore


class LayerDirs:
    def __init__(self, root: Path, blobs: BlobStore) -> None:
        self.root = root / "opt"
        self.blobs = blobs
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, layers: tuple[FunctionLayer, ...]) -> Path | None:
        """Where the merged tree of `layers` is (None for no layers): a path computation, no I/O."""
        return self.root / layers_key(layers) if layers else None

    def ensure(self, layers: tuple[FunctionLayer, ...]) -> Path | None:
        """Build the merged tree of `layers` unless it exists (idempotent, safe to race)."""
        target = self.path(layers)
        if target is None or target.exists():
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name[:12]}-", dir=self.root))
        try:
            for layer in layers:
                _merge(self.blobs.code_dir(layer.code_sha256), staging)
            for dirpath, _dirs, _files in os.walk(staging):
                os.chmod(dirpath, 0o555)
            os.rename(staging, target)
        except OSError:
            _remove(staging)
            if not target.exists():  # not a concurrent build that won the race
                raise
        return target


def _merge(source: Path, target: Path) -> None:
    """Copy the tree `source` over `target`; what `source` holds replaces what `target` had."""
    for entry in os.scandir(source):
        destination = target / entry.name
        if entry.is_dir(follow_symlinks=False):
            if destination.is_symlink() or (destination.exists() and not destination.is_dir()):
                destination.unlink()
            destination.mkdir(exist_ok=True)
            os.chmod(destination, 0o755)  # writable while building; sealed at the end
            _merge(Path(entry.path), destination)
            continue
        if destination.is_dir() and not destination.is_symlink():
            _remove(destination)
        elif destination.is_symlink() or destination.exists():
            destination.unlink()
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), destination)
        else:
            try:
                os.link(entry.path, destination)
            except OSError:  # another file system, or hard links not allowed: copy
                shutil.copy2(entry.path, destination)


def _remove(tree: Path) -> None:
    for dirpath, _dirs, _files in os.walk(tree):
        os.chmod(dirpath, 0o755)
    shutil.rmtree(tree, ignore_errors=True)
