"""Container images: resolving an `ImageUri` once, and unpacked roots shared by digest.

`resolve` runs at CreateFunction/UpdateFunctionCode: it fetches the manifest the URI names
(a tag is resolved to a digest here, once, as Lambda does: a later push to the tag changes
nothing until the code is updated), picks this host's entry of an image index, reads the image
config (architecture, entrypoint, command, environment, working directory) and unpacks the image
(`ensure`), so that an image that cannot be used is refused before anything changes.

Layout under the data directory:
    images/roots/<manifest-hex>/     the unpacked root of one image manifest, read-only,
                                     shared by every function and version that uses it
    images/.staging-*/               a pull in progress (removed when it fails)

`ensure` is also what a cold start calls when the root is missing (a node that has not pulled
this image yet, or a data directory cleaned by hand): it pulls by digest, so the content is the
one that was resolved.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambdalet.images import reference
from lambdalet.images.reference import HOST_ARCHITECTURE, BadReference, ImageReference
from lambdalet.images.registry import (
    DOCKER_MANIFEST, INDEXES, MANIFESTS, Credentials, ManifestUnknown, RegistryError, RegistrySession, new_pool,
)
from lambdalet.images.unpack import MAX_IMAGE_BYTES, LayerRejected, Unpacker
from lambdalet.model import FunctionImage

log = logging.getLogger(__name__)
LAYER_TYPES = ("application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip",
               "application/vnd.docker.image.rootfs.diff.tar.gzip", "application/vnd.docker.image.rootfs.diff.tar")


class ImageUnusable(Exception):
    """An image that cannot become a function's code; the message is the API's answer."""


@dataclass(frozen=True)
class _Manifest:
    digest: str  # of the platform manifest: the unpacked root's key
    config_digest: str
    layers: tuple[tuple[str, int, str], ...]  # (digest, size, media type)


class ImageStore:
    def __init__(self, data_dir: Path, credentials: Credentials, insecure_registries: frozenset[str],
                 region: str) -> None:
        self.roots = data_dir / "images" / "roots"
        self.roots.mkdir(parents=True, exist_ok=True)
        for leftover in self.roots.parent.glob(".staging-*"):  # a pull a crash or kill cut short
            shutil.rmtree(leftover, ignore_errors=True)
        self.credentials = credentials
        self.insecure = insecure_registries
        self.region = region
        self._http = new_pool()
        self._pulls: dict[str, threading.Lock] = {}
        self._pulls_lock = threading.Lock()

    def root(self, image: FunctionImage) -> Path:
        return self.roots / image.root_digest.removeprefix("sha256:")

    def resolve(self, uri: str) -> FunctionImage:
        """Resolve and pull `uri` (blocking; run it off the event loop)."""
        try:
            image_ref = reference.parse(uri)
        except BadReference as exc:
            raise ImageUnusable(f"Source image {uri} is not valid: {exc}. Provide a valid source image.") from None
        session = self._session(image_ref)
        try:
            media_type, body, digest = session.manifest(image_ref.reference)
            manifest = self._platform_manifest(session, media_type, body, digest, uri)
            config = session.blob_json(manifest.config_digest)
        except ManifestUnknown:
            raise ImageUnusable(f"Source image {uri} does not exist. Provide a valid source image.") from None
        except RegistryError as exc:
            raise ImageUnusable(f"Source image {uri} cannot be pulled: {exc}.") from None
        image = _function_image(uri, image_ref.by_digest(digest), manifest.digest, config)
        self._ensure(image, session, manifest)
        return image

    def ensure(self, image: FunctionImage) -> Path:
        """The image's unpacked root, pulled (by digest) if this server does not have it yet."""
        path = self.root(image)
        if path.is_dir():
            return path
        image_ref = reference.parse(image.resolved_uri)
        session = self._session(image_ref)
        try:
            media_type, body, digest = session.manifest(image.root_digest)
            manifest = self._platform_manifest(session, media_type, body, digest, image.resolved_uri)
        except RegistryError as exc:
            raise ImageUnusable(f"Source image {image.resolved_uri} cannot be pulled: {exc}.") from None
        return self._ensure(image, session, manifest)

    def _session(self, image_ref: ImageReference) -> RegistrySession:
        try:
            login = self.credentials.for_registry(image_ref, self.region)
        except RegistryError as exc:
            raise ImageUnusable(f"Source image {image_ref.registry}/{image_ref.repository} cannot be pulled: {exc}.") from None
        return RegistrySession(image_ref, login, insecure=image_ref.registry in self.insecure, http=self._http)

    def _platform_manifest(self, session: RegistrySession, media_type: str, body: bytes, digest: str,
                           uri: str) -> _Manifest:
        document = json.loads(body)
        if media_type in INDEXES:
            entries = [m for m in document.get("manifests", [])
                       if (m.get("platform") or {}).get("architecture") == HOST_ARCHITECTURE
                       and (m.get("platform") or {}).get("os", "linux") == "linux"]
            if not entries:
                found = sorted({f"{(m.get('platform') or {}).get('os')}/{(m.get('platform') or {}).get('architecture')}"
                                for m in document.get("manifests", [])})
                raise ImageUnusable(f"Source image {uri} has no manifest for linux/{HOST_ARCHITECTURE}, the "
                                    f"architecture of this server (it has: {', '.join(found) or 'none'}).")
            media_type, body, digest = session.manifest(entries[0]["digest"])
            document = json.loads(body)
        if media_type not in MANIFESTS:
            raise ImageUnusable(f"The image manifest, config or layer media type for the source image {uri} is not "
                                f"supported ({media_type or 'no media type'}).")
        try:
            layers = tuple((layer["digest"], int(layer["size"]), layer.get("mediaType", DOCKER_MANIFEST))
                           for layer in document["layers"])
            config_digest = document["config"]["digest"]
        except (KeyError, TypeError, ValueError):
            raise ImageUnusable(f"The image manifest of the source image {uri} is malformed.") from None
        for layer_digest, _size, layer_type in layers:
            if layer_type not in LAYER_TYPES or not reference.DIGEST.match(layer_digest):
                raise ImageUnusable(f"The image manifest, config or layer media type for the source image {uri} is "
                                    f"not supported (layer {layer_digest}: {layer_type}; gzip or uncompressed tar "
                                    "layers only).")
        if sum(size for _digest, size, _type in layers) > MAX_IMAGE_BYTES:
            raise ImageUnusable(f"Source image {uri} is larger than Lambda's limit of {MAX_IMAGE_BYTES} bytes.")
        return _Manifest(digest, config_digest, layers)

    def _ensure(self, image: FunctionImage, session: RegistrySession, manifest: _Manifest) -> Path:
        """Pull and unpack `manifest` into its root unless it is there; one pull per root at a time."""
        target = self.root(image)
        with self._pulls_lock:
            lock = self._pulls.setdefault(target.name, threading.Lock())
        with lock:
            if target.is_dir():
                return target
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.roots.parent))
            try:
                unpacker = Unpacker(staging / "rootfs")
                unpacker.root.mkdir()
                for digest, size, _type in manifest.layers:
                    with tempfile.TemporaryFile(dir=self.roots.parent) as blob:
                        session.blob_to(digest, size, blob)
                        blob.seek(0)
                        unpacker.apply(blob, digest)
                unpacker.finish()
                os.rename(unpacker.root, target)
                log.info("image %s unpacked: %d layer(s), %d bytes", image.resolved_uri, len(manifest.layers),
                         unpacker.total_bytes)
            except RegistryError as exc:
                raise ImageUnusable(f"Source image {image.uri} cannot be pulled: {exc}.") from None
            except LayerRejected as exc:
                raise ImageUnusable(f"Source image {image.uri} cannot be used: {exc}.") from None
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return target


def _function_image(uri: str, resolved_uri: str, root_digest: str, config: Any) -> FunctionImage:
    """What a function keeps of the image config: where it runs and what it runs."""
    if not isinstance(config, dict):
        raise ImageUnusable(f"The image config of the source image {uri} is malformed.")
    architecture = config.get("architecture", "")
    if architecture != HOST_ARCHITECTURE:
        raise ImageUnusable(f"Source image {uri} is built for the {architecture or 'unknown'} architecture; this "
                            f"server runs {HOST_ARCHITECTURE} images.")
    if config.get("os", "linux") != "linux":
        raise ImageUnusable(f"Source image {uri} is built for {config.get('os')}, not linux.")
    run = config.get("config") or {}
    env = {}
    for item in run.get("Env") or ():
        name, _, value = str(item).partition("=")
        env[name] = value
    return FunctionImage(uri=uri, resolved_uri=resolved_uri, root_digest=root_digest,
                         entrypoint=tuple(run.get("Entrypoint") or ()), command=tuple(run.get("Cmd") or ()),
                         working_dir=run.get("WorkingDir") or "", env=env)
