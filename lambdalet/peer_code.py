"""Code a node does not have yet: a function's package and its layers, fetched where they are.

A package uploaded through one node is in that node's blob store and, on PostgreSQL, in the
database (`store/shared_blobs.py`). When another node needs it (its first cold start of the
function there, say after a restart), it reads the package from the database by digest; a
package the database lacks (stored by an older Lambdalet) is asked of the live nodes
(`nodes.py`) at `/_lambdalet/code/<sha256>.zip`, the download GetFunction's `Code.Location`
serves. Either way the bytes must hash to the digest; they are then stored and extracted as if
uploaded, and a function's merged /opt is built from its layers (`store/layer_dirs.py`). Code
found nowhere is an init failure that says so.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import urllib.error
import urllib.request

from lambdalet.errors import InvalidParameterValueException
from lambdalet.model import FunctionConfig
from lambdalet.nodes import NodeRegistry
from lambdalet.store.blobs import BlobStore
from lambdalet.store.layer_dirs import LayerDirs

log = logging.getLogger(__name__)
FETCH_TIMEOUT_S = 60.0
MAX_PACKAGE_BYTES = 262_144_000  # what a package may unzip to, so never more than this zipped


class PeerCode:
    def __init__(self, blobs: BlobStore, layer_dirs: LayerDirs, nodes: NodeRegistry) -> None:
        self._blobs, self._layer_dirs, self._nodes = blobs, layer_dirs, nodes
        self._fetching: dict[str, asyncio.Future[bool]] = {}

    async def ensure_function(self, config: FunctionConfig) -> str | None:
        """Make the code and layers of `config` present here; None when they are, else what is
        missing. At once (a few stat calls) when this node has them already."""
        missing = [digest for digest in (config.code_sha256, *(layer.code_sha256 for layer in config.layers))
                   if not await self.ensure(digest)]
        if missing:
            what = "code" if missing[0] == config.code_sha256 else "layer"
            return (f"The function's {what} ({missing[0]}) is neither in this server's database nor on a live node "
                    "sharing it")
        if config.layers and not self._layer_dirs.path(config.layers).exists():  # type: ignore[union-attr]
            await asyncio.to_thread(self._layer_dirs.ensure, config.layers)
        return None

    async def ensure(self, sha256: str, from_peers: bool = True) -> bool:
        """Whether the package is here now (fetched if it was not). Concurrent cold starts of one
        package share one fetch. `from_peers=False`: the database only (a peer asking this node
        must not make it ask the peers in turn)."""
        if self._blobs.code_dir(sha256).is_dir():
            return True
        key = f"{sha256}:{from_peers}"
        pending = self._fetching.get(key)
        if pending is None:
            pending = self._fetching[key] = asyncio.ensure_future(asyncio.to_thread(self._fetch, sha256, from_peers))
            pending.add_done_callback(lambda _: self._fetching.pop(key, None))
        return await asyncio.shield(pending)

    def _fetch(self, sha256: str, from_peers: bool) -> bool:
        if self._from_database(sha256):
            return True
        return from_peers and self._from_peers(sha256)

    def _from_database(self, sha256: str) -> bool:
        shared = self._blobs.shared
        if shared is None:
            return False
        with self._blobs.spool() as path:
            if not shared.load(sha256, path):
                return False
            try:  # content-addressed: damaged bytes would be stored under their own digest, never this one
                stored = self._blobs.put_zip(path, share=False).sha256
            except InvalidParameterValueException:
                stored = "not a zip"
        if stored != sha256:
            log.warning("code %s in the database is damaged (%s): ignored", sha256[:12], stored[:12])
            return False
        log.info("code %s read from the database", sha256[:12])
        return True

    def _from_peers(self, sha256: str) -> bool:
        for node in self._nodes.live():
            if node["self"]:
                continue
            url = f"{node['url'].rstrip('/')}/_lambdalet/code/{sha256}.zip"
            try:
                with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as answer:
                    data = answer.read(MAX_PACKAGE_BYTES + 1)
            except (urllib.error.URLError, OSError) as exc:  # not there, or that node is going
                log.info("code %s not fetched from %s: %s", sha256[:12], node["name"], exc)
                continue
            if hashlib.sha256(data).hexdigest() != sha256:
                log.warning("code %s from %s does not hash to its digest: ignored", sha256[:12], node["name"])
                continue
            self._blobs.put_zip(data)  # into the database too: it lacked this package
            log.info("code %s fetched from node %s (%d bytes)", sha256[:12], node["name"], len(data))
            return True
        return False

