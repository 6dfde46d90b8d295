"""Function rows: create, update, delete and load everything at start-up."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from lambdalet.errors import ResourceConflictException
from lambdalet.model import LATEST, Alias, FunctionConfig, now_iso
from lambdalet.store.schema import (
    aliases,
    event_invoke_configs,
    policies,
    provisioned_concurrency,
    function_concurrency,
    function_version_counters,
    function_versions,
    functions,
)


@dataclass(frozen=True)
class StoredFunction:
    latest: FunctionConfig
    tags: dict[str, str] = field(default_factory=dict)
    reserved_concurrency: int | None = None
    versions: dict[str, FunctionConfig] = field(default_factory=dict)  # published, by number
    last_version: int = 0
    aliases: dict[str, Alias] = field(default_factory=dict)
    policies: dict[str, tuple[list[dict], str]] = field(default_factory=dict)  # qualifier → (statements, revision)
    provisioned: dict[str, tuple[int, str]] = field(default_factory=dict)  # qualifier → (requested, last modified)
    event_configs: dict[str, dict] = field(default_factory=dict)  # qualifier → FunctionEventInvokeConfig


class FunctionStore:
    """Synchronous repository; callers run it off the event loop (`asyncio.to_thread`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load_all(self) -> list[StoredFunction]:
        with self.engine.connect() as conn:
            tags = {row.name: json.loads(row.tags) for row in conn.execute(select(functions))}
            reserved = {row.function_name: row.reserved for row in conn.execute(select(function_concurrency))}
            counters = {row.function_name: row.last_version for row in conn.execute(select(function_version_counters))}
            latest: dict[str, FunctionConfig] = {}
            published: dict[str, dict[str, FunctionConfig]] = {}
            for row in conn.execute(select(function_versions)):
                config = FunctionConfig.from_record(json.loads(row.config))
                if row.version == LATEST:
                    latest[row.function_name] = config
                else:
                    published.setdefault(row.function_name, {})[row.version] = config
            named: dict[str, dict[str, Alias]] = {}
            for row in conn.execute(select(aliases)):
                named.setdefault(row.function_name, {})[row.name] = Alias.from_record(json.loads(row.config))
            policy: dict[str, dict[str, tuple[list[dict], str]]] = {}
            for row in conn.execute(select(policies)):
                policy.setdefault(row.function_name, {})[row.qualifier] = (json.loads(row.statements), row.revision_id)
            provisioned: dict[str, dict[str, tuple[int, str]]] = {}
            for row in conn.execute(select(provisioned_concurrency)):
                provisioned.setdefault(row.function_name, {})[row.qualifier] = (row.requested, row.last_modified)
            invoke_configs: dict[str, dict[str, dict]] = {}
            for row in conn.execute(select(event_invoke_configs)):
                invoke_configs.setdefault(row.function_name, {})[row.qualifier] = json.loads(row.config)
            return [
                StoredFunction(config, tags.get(name, {}), reserved.get(name), published.get(name, {}),
                               counters.get(name, 0), named.get(name, {}), policy.get(name, {}),
                               provisioned.get(name, {}), invoke_configs.get(name, {}))
                for name, config in latest.items()
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

    def publish(self, config: FunctionConfig) -> None:
        """Store a new published version and advance the function's version counter."""
        with self.engine.begin() as conn:
            conn.execute(insert(function_versions).values(
                function_name=config.name, version=config.version, config=json.dumps(config.to_record())))
            conn.execute(delete(function_version_counters).where(function_version_counters.c.function_name == config.name))
            conn.execute(insert(function_version_counters).values(function_name=config.name,
                                                                  last_version=int(config.version)))

    def delete_version(self, name: str, version: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(function_versions).where(function_versions.c.function_name == name)
                         .where(function_versions.c.version == version))

    def set_policy(self, name: str, qualifier: str, statements: list[dict], revision_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(policies).where(policies.c.function_name == name)
                         .where(policies.c.qualifier == qualifier))
            if statements:
                conn.execute(insert(policies).values(function_name=name, qualifier=qualifier,
                                                     statements=json.dumps(statements), revision_id=revision_id))

    def set_provisioned(self, name: str, qualifier: str, requested: int | None, last_modified: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(provisioned_concurrency).where(provisioned_concurrency.c.function_name == name)
                         .where(provisioned_concurrency.c.qualifier == qualifier))
            if requested is not None:
                conn.execute(insert(provisioned_concurrency).values(
                    function_name=name, qualifier=qualifier, requested=requested, last_modified=last_modified))

    def set_event_config(self, name: str, qualifier: str, config: dict | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(event_invoke_configs).where(event_invoke_configs.c.function_name == name)
                         .where(event_invoke_configs.c.qualifier == qualifier))
            if config is not None:
                conn.execute(insert(event_invoke_configs).values(function_name=name, qualifier=qualifier,
                                                                 config=json.dumps(config)))

    def set_tags(self, name: str, tags: dict[str, str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(functions).where(functions.c.name == name).values(tags=json.dumps(tags)))

    def put_alias(self, alias: Alias) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(aliases).where(aliases.c.function_name == alias.function_name)
                         .where(aliases.c.name == alias.name))
            conn.execute(insert(aliases).values(function_name=alias.function_name, name=alias.name,
                                                config=json.dumps(alias.to_record())))

    def delete_alias(self, function_name: str, name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(aliases).where(aliases.c.function_name == function_name)
                         .where(aliases.c.name == name))

    def set_reserved_concurrency(self, name: str, reserved: int | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(function_concurrency).where(function_concurrency.c.function_name == name))
            if reserved is not None:
                conn.execute(insert(function_concurrency).values(function_name=name, reserved=reserved))

    def delete(self, name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(function_concurrency).where(function_concurrency.c.function_name == name))
            conn.execute(delete(function_version_counters).where(function_version_counters.c.function_name == name))
            conn.execute(delete(aliases).where(aliases.c.function_name == name))
            conn.execute(delete(policies).where(policies.c.function_name == name))
            conn.execute(delete(event_invoke_configs).where(event_invoke_configs.c.function_name == name))
            conn.execute(delete(provisioned_concurrency).where(provisioned_concurrency.c.function_name == name))
            conn.execute(delete(function_versions).where(function_versions.c.function_name == name))
            conn.execute(delete(functions).where(functions.c.name == name))
