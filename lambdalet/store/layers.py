"""Layer rows: publish, delete, permissions, and load them all (at start-up and for each layer request)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

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

    def publish(self, draft: LayerVersion) -> LayerVersion:
        """Store `draft` as the layer's next version, numbered from the database's counter in the
        same transaction (locked: nodes publishing one layer at once get consecutive numbers)."""
        for attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    last = conn.execute(select(layer_version_counters.c.last_version)
                                        .where(layer_version_counters.c.name == draft.name).with_for_update()).scalar()
                    layer = dataclasses.replace(draft, version=(last or 0) + 1)
                    conn.execute(insert(layer_versions).values(name=layer.name, version=layer.version,
                                                               config=json.dumps(layer.to_record())))
                    _replace(conn, layer_version_counters, {"name": layer.name}, {"last_version": layer.version})
                return layer
            except IntegrityError:  # another node published the layer's first version meanwhile
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def delete_version(self, name: str, version: int) -> None:
        with self.engine.begin() as conn:
            for table in (layer_policies, layer_versions):
                conn.execute(delete(table).where(table.c.name == name).where(table.c.version == version))

    def set_policy(self, name: str, version: int, statements: list[dict], revision_id: str) -> None:
        with self.engine.begin() as conn:
            _replace(conn, layer_policies, {"name": name, "version": version},
                     {"statements": json.dumps(statements), "revision_id": revision_id} if statements else None)
