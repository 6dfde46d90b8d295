"""Function rows: create, update, delete and load everything at start-up."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from lambdalet.change_signals import CHANNEL
from lambdalet.errors import ResourceConflictException
from lambdalet.model import LATEST, Alias, FunctionConfig, now_iso
from lambdalet.store.schema import (
    aliases,
    function_changes,
    event_invoke_configs,
    function_url_ports,
    function_recursion_configs,
    function_urls,
    policies,
    runtime_management_configs,
    provisioned_concurrency,
    function_concurrency,
    function_version_counters,
    function_versions,
    functions,
)


class UrlPortTaken(Exception):
    """Another function URL already has this port (`function_url_ports`)."""

    def __init__(self, port: int) -> None:
        super().__init__(f"port {port} is another function URL's")
        self.port = port


@dataclass(frozen=True)
class RuntimePin:
    """A runtime management config (PutRuntimeManagementConfig): Auto, FunctionUpdate, or Manual
    with the runtime version it pins and that build's interpreter binary."""

    update_runtime_on: str
    runtime_version_arn: str | None = None
    interpreter: str | None = None


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
    urls: dict[str, dict] = field(default_factory=dict)  # qualifier → FunctionUrlConfig (with its UrlId)
    recursive_loop: str | None = None  # None: Lambda's default (Terminate)
    runtime_configs: dict[str, RuntimePin] = field(default_factory=dict)  # qualifier → runtime management


class FunctionStore:
    """Synchronous repository; callers run it off the event loop (`asyncio.to_thread`)."""

    def __init__(self, engine: Engine, node: str = "") -> None:
        self.engine = engine
        self.node = node  # who writes: the change log's rows say so, and each node skips its own

    def load_all(self, names: list[str] | None = None) -> list[StoredFunction]:
        """Every function, or those of `names` (those of them that still exist)."""

        def rows(table: Table, column: str = "function_name"):  # type: ignore[no-untyped-def]
            query = select(table)
            if names is not None:
                query = query.where(table.c[column].in_(names))
            return conn.execute(query)

        with self.engine.connect() as conn:
            tags = {row.name: json.loads(row.tags) for row in rows(functions, "name")}
            reserved = {row.function_name: row.reserved for row in rows(function_concurrency)}
            counters = {row.function_name: row.last_version for row in rows(function_version_counters)}
            latest: dict[str, FunctionConfig] = {}
            published: dict[str, dict[str, FunctionConfig]] = {}
            for row in rows(function_versions):
                config = FunctionConfig.from_record(json.loads(row.config))
                if row.version == LATEST:
                    latest[row.function_name] = config
                else:
                    published.setdefault(row.function_name, {})[row.version] = config
            named: dict[str, dict[str, Alias]] = {}
            for row in rows(aliases):
                named.setdefault(row.function_name, {})[row.name] = Alias.from_record(json.loads(row.config))
            policy: dict[str, dict[str, tuple[list[dict], str]]] = {}
            for row in rows(policies):
                policy.setdefault(row.function_name, {})[row.qualifier] = (json.loads(row.statements), row.revision_id)
            provisioned: dict[str, dict[str, tuple[int, str]]] = {}
            for row in rows(provisioned_concurrency):
                provisioned.setdefault(row.function_name, {})[row.qualifier] = (row.requested, row.last_modified)
            invoke_configs: dict[str, dict[str, dict]] = {}
            for row in rows(event_invoke_configs):
                invoke_configs.setdefault(row.function_name, {})[row.qualifier] = json.loads(row.config)
            urls: dict[str, dict[str, dict]] = {}
            for row in rows(function_urls):
                urls.setdefault(row.function_name, {})[row.qualifier] = json.loads(row.config)
            recursion = {row.function_name: row.recursive_loop for row in rows(function_recursion_configs)}
            runtime_configs: dict[str, dict[str, RuntimePin]] = {}
            for row in rows(runtime_management_configs):
                runtime_configs.setdefault(row.function_name, {})[row.qualifier] = RuntimePin(
                    row.update_runtime_on, row.runtime_version_arn, row.interpreter)
            return [
                StoredFunction(config, tags.get(name, {}), reserved.get(name), published.get(name, {}),
                               counters.get(name, 0), named.get(name, {}), policy.get(name, {}),
                               provisioned.get(name, {}), invoke_configs.get(name, {}), urls.get(name, {}),
                               recursion.get(name), runtime_configs.get(name, {}))
                for name, config in latest.items()
            ]

    def create(self, config: FunctionConfig, tags: dict[str, str]) -> None:
        try:
            with self.engine.begin() as conn:
                self._changed(conn, config.name)
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
            self._changed(conn, config.name)
            conn.execute(
                update(function_versions)
                .where(function_versions.c.function_name == config.name)
                .where(function_versions.c.version == config.version)
                .values(config=json.dumps(config.to_record()))
            )

    def publish(self, config: FunctionConfig, latest: FunctionConfig) -> None:
        """Store a new published version, advance the function's version counter and store $LATEST as
        publishing left it (its new RevisionId), in one transaction."""
        with self.engine.begin() as conn:
            self._changed(conn, config.name)
            conn.execute(insert(function_versions).values(
                function_name=config.name, version=config.version, config=json.dumps(config.to_record())))
            conn.execute(update(function_versions).where(function_versions.c.function_name == latest.name)
                         .where(function_versions.c.version == latest.version)
                         .values(config=json.dumps(latest.to_record())))
            _replace(conn, function_version_counters, {"function_name": config.name},
                     {"last_version": int(config.version)})

    def delete_version(self, name: str, version: str) -> None:
        """A version goes with its runtime management config."""
        with self.engine.begin() as conn:
            self._changed(conn, name)
            _replace(conn, runtime_management_configs, {"function_name": name, "qualifier": version}, None)
            _replace(conn, function_versions, {"function_name": name, "version": version}, None)

    def set_policy(self, name: str, qualifier: str, statements: list[dict], revision_id: str) -> None:
        self._put(policies, {"function_name": name, "qualifier": qualifier},
                  {"statements": json.dumps(statements), "revision_id": revision_id} if statements else None)

    def set_provisioned(self, name: str, qualifier: str, requested: int | None, last_modified: str) -> None:
        self._put(provisioned_concurrency, {"function_name": name, "qualifier": qualifier},
                  None if requested is None else {"requested": requested, "last_modified": last_modified})

    def set_event_config(self, name: str, qualifier: str, config: dict | None) -> None:
        self._put(event_invoke_configs, {"function_name": name, "qualifier": qualifier},
                  None if config is None else {"config": json.dumps(config)})

    def set_url(self, name: str, qualifier: str, config: dict | None) -> None:
        """Store (None: delete) a URL config, with the port its `Port` names; UrlPortTaken when
        another URL has that port (another node gave it out first): nothing is then stored."""
        key = {"function_name": name, "qualifier": qualifier}
        try:
            with self.engine.begin() as conn:
                self._changed(conn, name)
                conn.execute(delete(function_urls).where(function_urls.c.function_name == name,
                                                         function_urls.c.qualifier == qualifier))
                if config is None:
                    return
                conn.execute(delete(function_url_ports).where(function_url_ports.c.url_id == config["UrlId"]))
                conn.execute(insert(function_urls).values(**key, url_id=config["UrlId"], config=json.dumps(config)))
                if config.get("Port") is not None:
                    conn.execute(insert(function_url_ports).values(port=config["Port"], url_id=config["UrlId"]))
        except IntegrityError as exc:
            if config is not None and config.get("Port") is not None:
                raise UrlPortTaken(config["Port"]) from exc
            raise

    def set_recursive_loop(self, name: str, recursive_loop: str | None) -> None:
        self._put(function_recursion_configs, {"function_name": name},
                  None if recursive_loop is None else {"recursive_loop": recursive_loop})

    def set_runtime_config(self, name: str, qualifier: str, config: "RuntimePin | None") -> None:
        self._put(runtime_management_configs, {"function_name": name, "qualifier": qualifier},
                  None if config is None else {"update_runtime_on": config.update_runtime_on,
                                               "runtime_version_arn": config.runtime_version_arn,
                                               "interpreter": config.interpreter})

    def set_tags(self, name: str, tags: dict[str, str]) -> None:
        with self.engine.begin() as conn:
            self._changed(conn, name)
            conn.execute(update(functions).where(functions.c.name == name).values(tags=json.dumps(tags)))

    def put_alias(self, alias: Alias) -> None:
        self._put(aliases, {"function_name": alias.function_name, "name": alias.name},
                  {"config": json.dumps(alias.to_record())})

    def delete_alias(self, function_name: str, name: str) -> None:
        """An alias goes with its function URL, as on Lambda."""
        with self.engine.begin() as conn:
            self._changed(conn, function_name)
            _replace(conn, aliases, {"function_name": function_name, "name": name}, None)
            _replace(conn, function_urls, {"function_name": function_name, "qualifier": name}, None)

    def set_reserved_concurrency(self, name: str, reserved: int | None) -> None:
        self._put(function_concurrency, {"function_name": name}, None if reserved is None else {"reserved": reserved})

    def _put(self, table: Table, key: dict[str, object], values: dict[str, object] | None) -> None:
        with self.engine.begin() as conn:
            self._changed(conn, str(key["function_name"]))
            _replace(conn, table, key, values)

    def delete(self, name: str) -> None:
        with self.engine.begin() as conn:
            self._changed(conn, name)
            for table in (function_concurrency, function_version_counters, aliases, policies, event_invoke_configs,
                          function_urls, provisioned_concurrency, function_recursion_configs,
                          runtime_management_configs, function_versions):
                conn.execute(delete(table).where(table.c.function_name == name))
            conn.execute(delete(functions).where(functions.c.name == name))


    # -- the change log: what other nodes read to refresh their view ------------------------------

    def _changed(self, conn: Connection, name: str) -> None:
        conn.execute(insert(function_changes).values(function_name=name, node=self.node, at=time.time()))
        if conn.dialect.name == "postgresql":  # delivered at commit: wakes the other nodes' followers
            conn.execute(select(func.pg_notify(CHANNEL, self.node)))

    def recent_changes(self, since: float) -> list[tuple[int, str, str]]:
        """(seq, function, node) of the changes committed at or after `since` (epoch seconds)."""
        with self.engine.connect() as conn:
            return [(row.seq, row.function_name, row.node) for row in conn.execute(
                select(function_changes).where(function_changes.c.at >= since).order_by(function_changes.c.seq))]

    def prune_changes(self, before: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(function_changes).where(function_changes.c.at < before))


def _replace(conn: Connection, table: Table, key: dict[str, object], values: dict[str, object] | None) -> None:
    """Replace the row of `table` with primary key `key` (delete it, with `values` None): one upsert
    that reads the same on SQLite and PostgreSQL."""
    conn.execute(delete(table).where(*(table.c[column] == value for column, value in key.items())))
    if values is not None:
        conn.execute(insert(table).values(**key, **values))
