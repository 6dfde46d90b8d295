"""Code signing configs and which function uses which (SQLite or PostgreSQL).

Every method is blocking; callers run them off the event loop. The database is the one truth:
nothing is cached, so nodes sharing one PostgreSQL see each other's changes, and code uploads
(never the invoke path) are the only readers besides the API.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from lambdalet.store.schema import code_signing_configs, function_code_signing


@dataclass(frozen=True)
class StoredCodeSigningConfig:
    id: str
    #: The API's CodeSigningConfig, as answered.
    config: dict
    tags: dict[str, str]


class CodeSigningStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, config_id: str, config: dict, tags: dict[str, str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(code_signing_configs).values(id=config_id, config=json.dumps(config),
                                                             tags=json.dumps(tags)))

    def get(self, config_id: str) -> StoredCodeSigningConfig | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(code_signing_configs).where(code_signing_configs.c.id == config_id)).first()
        return None if row is None else StoredCodeSigningConfig(row.id, json.loads(row.config), json.loads(row.tags))

    def ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(code_signing_configs.c.id).order_by(code_signing_configs.c.id)).scalars())

    def configs(self, ids: list[str]) -> dict[str, dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(code_signing_configs).where(code_signing_configs.c.id.in_(ids))).fetchall()
        return {row.id: json.loads(row.config) for row in rows}

    def update(self, config_id: str, config: dict) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(code_signing_configs).where(code_signing_configs.c.id == config_id)
                         .values(config=json.dumps(config)))

    def set_tags(self, config_id: str, tags: dict[str, str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(code_signing_configs).where(code_signing_configs.c.id == config_id)
                         .values(tags=json.dumps(tags)))

    def delete(self, config_id: str) -> bool:
        """Delete it unless a function uses it (False then, and nothing is deleted)."""
        with self.engine.begin() as conn:
            used = conn.execute(select(function_code_signing.c.function_name)
                                .where(function_code_signing.c.config_id == config_id).limit(1)).first()
            if used is not None:
                return False
            conn.execute(delete(code_signing_configs).where(code_signing_configs.c.id == config_id))
        return True

    # -- functions ------------------------------------------------------------------------------

    def of_function(self, function_name: str) -> str | None:
        """The id of the config the function uses, if any."""
        with self.engine.connect() as conn:
            return conn.execute(select(function_code_signing.c.config_id)
                                .where(function_code_signing.c.function_name == function_name)).scalar()

    def attach(self, function_name: str, config_id: str) -> bool:
        """Make the function use the config; False when the config is gone (nothing written)."""
        with self.engine.begin() as conn:
            exists = conn.execute(select(code_signing_configs.c.id)
                                  .where(code_signing_configs.c.id == config_id)).first()
            if exists is None:
                return False
            changed = conn.execute(update(function_code_signing)
                                   .where(function_code_signing.c.function_name == function_name)
                                   .values(config_id=config_id)).rowcount
            if not changed:
                conn.execute(insert(function_code_signing).values(function_name=function_name, config_id=config_id))
        return True

    def detach(self, function_name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(function_code_signing).where(function_code_signing.c.function_name == function_name))

    def functions_of(self, config_id: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(function_code_signing.c.function_name)
                                     .where(function_code_signing.c.config_id == config_id)
                                     .order_by(function_code_signing.c.function_name)).scalars())
