"""Deployment packages kept in the database, so that every node sharing it can run every function.

A cluster's nodes each keep the zips they use in their own blob store (`blobs.py`); this is the
copy that outlives any node. Each zip uploaded through any node (CreateFunction, UpdateFunctionCode,
PublishLayerVersion, inline or from S3) is written here once, in one transaction, as rows of
CHUNK_BYTES so that neither side holds a whole package in memory; a node that lacks a package
reads it back by digest (`peer_code.py`), checks the digest and extracts it as if uploaded.

Why the database, not an S3-compatible store or the nodes themselves: it is already the one thing
every node shares and it must be durable anyway; an object store would be one more service to run
and secure, and copies only on nodes are lost with them. The cost is the packages' size in the
database (Lambda's limits keep each under 250 MB). Only a server on PostgreSQL keeps this copy:
on SQLite there is one machine, and its blob store is the copy.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import exists, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from lambdalet.store.schema import code_blob_chunks as chunks

log = logging.getLogger(__name__)
CHUNK_BYTES = 4 << 20  # a row each: small enough to stream, large enough for few rows


class SharedBlobs:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def has(self, sha256: str) -> bool:
        with self.engine.connect() as conn:
            return bool(conn.execute(select(exists().where(chunks.c.sha256 == sha256))).scalar())

    def keep(self, sha256: str, zip_path: Path) -> None:
        """Store the zip at `zip_path` under its digest unless the database has it already.
        All of its rows commit together, so a reader finds the whole package or none of it."""
        if self.has(sha256):
            return
        try:
            with self.engine.begin() as conn, zip_path.open("rb") as source:
                for seq, piece in enumerate(iter(lambda: source.read(CHUNK_BYTES), b"")):
                    conn.execute(insert(chunks).values(sha256=sha256, seq=seq, data=piece))
        except IntegrityError:  # another node stored the same package meanwhile: it is there
            pass
        log.info("code %s kept in the database (%d bytes)", sha256[:12], zip_path.stat().st_size)

    def load(self, sha256: str, target: Path) -> bool:
        """Write the package to `target` (an empty file); whether the database has it."""
        found = False
        with self.engine.connect() as conn, target.open("wb") as out:
            rows = conn.execution_options(stream_results=True, yield_per=1).execute(
                select(chunks.c.data).where(chunks.c.sha256 == sha256).order_by(chunks.c.seq))
            for (piece,) in rows:
                out.write(piece)
                found = True
        return found
