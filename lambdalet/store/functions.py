"""Function rows: create, update, delete and load everything at start-up."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from lambdalet.errors import ResourceConflictException
from lambdalet.model import LATEST, FunctionConfig, now_iso
from lambdalet.store.schema import function_concurrency, function_versions, functions


@dataclass(frozen=True)
class StoredFunction:
    latest: FunctionConfig
    tags: dict[str, str] = field(default_factory=dict)
    reserved_concurrency: int | None = None


class FunctionStore:
    """Synchronous repository; callers run it off the event loop (`asyncio.to_thread`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load_all(self) -> list[StoredFunction]:
        with self.engine.connect() as conn:
            tags = {row.name: json.loads(row.tags) for row in conn.execute(select(functions))}
            reserved = {row.function_name: row.reserved for row in conn.execute(select(function_concurrency))}
            rows = conn.execute(select(function_versions).where(function_versions.c.version == LATEST))
            return [
                StoredFunction(FunctionConfig.from_record(json.loads(row.config)), tags.get(row.function_name, {}),
                               reserved.get(row.function_name))
                for row in rows
            ]

    def create(self, config: FunctionConfig, tags: dict[str, str]) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(functions).values(name=config.name, created=now_iso(), tags=json.dumps(tags)))
                conn.execute(
                    insert(function_versions).values(
                        function_name=config.name, version=config.version, config=json.dumps(config.to_record())
                    )
                )
        except IntegrityError as exc:
            raise ResourceConflictException(f"Function already exist: {config.name}") from exc

    def update(self, config: FunctionConfig) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(function_versions)
                .where(function_versions.c.function_name == config.name)
                .where(function_versions.c.version == config.version)
                .values(config=json.dumps(config.to_record()))
            )

    def set_reserved_concurrency(self, name: str, reserved: int | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(function_concurrency).where(function_concurrency.c.function_name == name))
            if reserved is not None:
                conn.execute(insert(function_concurrency).values(function_name=name, reserved=reserved))

    def delete(self, name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(function_concurrency).where(function_concurrency.c.function_name == name))
            conn.execute(delete(function_versions).where(function_versions.c.function_name == name))
            conn.execute(delete(functions).where(functions.c.name == name))
