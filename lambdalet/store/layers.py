"""Layer rows: publish, delete, permissions, and load everything at start-up."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine

from lambdalet.model import LayerVersion
from lambdalet.store.functions import _replace
from lambdalet.store.schema import layer_policies, layer_version_counters, layer_versions


@dataclass(frozen=True)
class StoredLayer:
    name: str
    last_version: int
    versions: dict[int, LayerVersion] = field(default_factory=dict)
    policies: dict[int, tuple[list[dict], str]] = field(default_factory=dict)  # version → (statements, revision)


class LayerStore:
    """Synchronous repository; callers run it off the event loop (`asyncio.to_thread`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load_all(self) -> list[StoredLayer]:
        with self.engine.connect() as conn:
            counters = {row.name: row.last_version for row in conn.execute(select(layer_version_counters))}
            versions: dict[str, dict[int, LayerVersion]] = {}
            for row in conn.execute(select(layer_versions)):
                versions.setdefault(row.name, {})[row.version] = LayerVersion.from_record(json.loads(row.config))
            policies: dict[str, dict[int, tuple[list[dict], str]]] = {}
            for row in conn.execute(select(layer_policies)):
                policies.setdefault(row.name, {})[row.version] = (json.loads(row.statements), row.revision_id)
        return [StoredLayer(name, last, versions.get(name, {}), policies.get(name, {}))
                for name, last in counters.items()]

    def publish(self, layer: LayerVersion) -> None:
        """Store a new layer version and advance the layer's version counter, in one transaction."""
        with self.engine.begin() as conn:
            _replace(conn, layer_versions, {"name": layer.name, "version": layer.version},
                     {"config": json.dumps(layer.to_record())})
            _replace(conn, layer_version_counters, {"name": layer.name}, {"last_version": layer.version})

    def delete_version(self, name: str, version: int) -> None:
        with self.engine.begin() as conn:
            for table in (layer_policies, layer_versions):
                conn.execute(delete(table).where(table.c.name == name).where(table.c.version == version))

    def set_policy(self, name: str, version: int, statements: list[dict], revision_id: str) -> None:
        with self.engine.begin() as conn:
            _replace(conn, layer_policies, {"name": name, "version": version},
                     {"statements": json.dumps(statements), "revision_id": revision_id} if statements else None)
