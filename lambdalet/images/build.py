"""Building a container image from folders, without Docker, and pushing it (`lambdalet push-image`).

Each folder becomes one layer (a gzip-compressed tar, byte-for-byte reproducible: sorted names,
no timestamps, owned by root, modes kept), placed at a path of the image; the image config names
the entrypoint, command, environment and working directory, and the manifest is an OCI image
manifest for this host's architecture. That is all a Lambda image needs: a folder with a static
binary and a `bootstrap`, a root file system made with debootstrap, or an application beside a
runtime interface client.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from lambdalet.images.reference import HOST_ARCHITECTURE, ImageReference
from lambdalet.images.registry import OCI_MANIFEST, RegistrySession

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class Layer:
    compressed: bytes
    diff_id: str  # sha256 of the uncompressed tar, as the image config lists it


@dataclass
class ImageSpec:
    entrypoint: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str = ""
    architecture: str = ""


def folder_layer(folder: Path, at: str = "/") -> Layer:
    """`folder`'s tree as a layer whose files appear under `at` in the image."""
    prefix = at.strip("/")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        parents = Path(prefix).parts if prefix else ()
        for depth in range(1, len(parents) + 1):
            archive.addfile(_entry("/".join(parents[:depth]), tarfile.DIRTYPE, 0o755))
        for directory, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                path = Path(directory) / name
                inside = "/".join(p for p in (prefix, path.relative_to(folder).as_posix()) if p)
                info = os.lstat(path)
                if os.path.islink(path):
                    entry = _entry(inside, tarfile.SYMTYPE, 0o777)
                    entry.linkname = os.readlink(path)
                    archive.addfile(entry)
                elif path.is_dir():
                    archive.addfile(_entry(inside, tarfile.DIRTYPE, info.st_mode & 0o7777))
                elif path.is_file():
                    entry = _entry(inside, tarfile.REGTYPE, info.st_mode & 0o7777)
                    entry.size = info.st_size
                    with open(path, "rb") as handle:
                        archive.addfile(entry, handle)
    raw = buffer.getvalue()
    return Layer(gzip.compress(raw, compresslevel=6, mtime=0), "sha256:" + hashlib.sha256(raw).hexdigest())


def _entry(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.uid, info.gid = kind, mode, 0, 0, 0
    return info


def config_document(spec: ImageSpec, layers: list[Layer]) -> bytes:
    run: dict = {"Env": [f"{k}={v}" for k, v in spec.env.items()]}
    if spec.entrypoint:
        run["Entrypoint"] = spec.entrypoint
    if spec.command:
        run["Cmd"] = spec.command
    if spec.working_dir:
        run["WorkingDir"] = spec.working_dir
    return json.dumps({"architecture": spec.architecture or HOST_ARCHITECTURE, "os": "linux", "config": run,
                       "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]}},
                      sort_keys=True).encode()


def push(session: RegistrySession, image: ImageReference, layers: list[Layer], spec: ImageSpec) -> str:
    """Push the layers, the config and an OCI manifest tagged `image.tag`; the manifest's digest."""
    descriptors = [{"mediaType": OCI_LAYER, "digest": session.push_blob(layer.compressed),
                    "size": len(layer.compressed)} for layer in layers]
    config = config_document(spec, layers)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": session.push_blob(config), "size": len(config)},
                "layers": descriptors}
    return session.push_manifest(image.tag or "latest", json.dumps(manifest).encode(), OCI_MANIFEST)
