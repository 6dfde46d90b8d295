"""Code a node does not have yet, fetched from the node that does.

A function created through one node has its package in that node's blob store only. When
another node needs it (its first cold start there, say after a restart), it asks the live nodes
(`nodes.py`) for it by digest at `/_lambdalet/code/<sha256>.zip` (the download GetFunction's
`Code.Location` already serves), checks that the bytes hash to that digest, and stores and
extracts them as if uploaded. A package no live node has is an init failure that says so.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import urllib.error
import urllib.request

from lambdalet.nodes import NodeRegistry
from lambdalet.store.blobs import BlobStore

log = logging.getLogger(__name__)
FETCH_TIMEOUT_S = 60.0
MAX_PACKAGE_BYTES = 262_144_000  # what a package may unzip to, so never more than this zipped


class PeerCode:
    def __init__(self, blobs: BlobStore, nodes: NodeRegistry) -> None:
        self._blobs, self._nodes = blobs, nodes
        self._fetching: dict[str, asyncio.Future[bool]] = {}

    async def ensure(self, sha256: str) -> bool:
        """Whether the package is here now (fetched from a peer if it was not). Concurrent cold
        starts of one package share one fetch."""
        if self._blobs.code_dir(sha256).is_dir():
            return True
        pending = self._fetching.get(sha256)
        if pending is None:
            pending = self._fetching[sha256] = asyncio.ensure_future(asyncio.to_thread(self._fetch, sha256))
            pending.add_done_callback(lambda _: self._fetching.pop(sha256, None))
        return await asyncio.shield(pending)

    def _fetch(self, sha256: str) -> bool:
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
            self._blobs.put_zip(data)
            log.info("code %s fetched from node %s (%d bytes)", sha256[:12], node["name"], len(data))
            return True
        return False
