"""The live set of functions: an in-memory index over the store.

Every read, including the invoke path, is a dict lookup; writes go to the database first (off the
event loop) and then replace the cached, immutable configuration. One lock serialises writes so
that read-modify-write updates never lose each other's changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from sqlalchemy.exc import SQLAlchemyError

from lambdalet.errors import (
    InvalidParameterValueException,
    ResourceConflictException,
    ResourceNotFoundException,
    check_revision,
)
from lambdalet.events.async_queue import EventInvokeSettings
from lambdalet.invoke.leases import ConcurrencyLimiter
from lambdalet.invoke.recursion import DEFAULT_RECURSIVE_LOOP, RecursionGuard
from lambdalet.model import LATEST, Alias, Arns, FunctionConfig, new_revision_id, now_iso
from lambdalet.network import NETWORK_TAG
from lambdalet.policies import apply_change
from lambdalet.store.functions import FunctionStore, RuntimePin, StoredFunction

log = logging.getLogger(__name__)

#: How long an update stays `InProgress` after it was answered. All its work is done by then; the
#: state is kept this long so that a client that does not wait for it (`function_updated_v2`) sees
#: the refusal of a second update AWS would give it, rather than code that works only here.
UPDATE_SETTLES_AFTER = 0.5
#: How often other nodes' changes are looked for, how far back, and how long the log keeps them.
CHANGES_POLL_S = 0.5
CHANGES_LOOKBACK_S = 60.0
CHANGES_KEEP_S = 600.0
#: A change-log read covers the rows since the previous one less this much; every CHANGES_FULL_S
#: the follower reads the whole lookback, for a transaction slower than that to commit.
CHANGES_SLACK_S = 5.0
CHANGES_FULL_S = 10.0


@dataclass
class Function:
    latest: FunctionConfig
    tags: dict[str, str] = field(default_factory=dict)
    versions: dict[str, FunctionConfig] = field(default_factory=dict)  # published, by number
    last_version: int = 0
    aliases: dict[str, Alias] = field(default_factory=dict)
    #: Resource policies by qualifier ("" for the unqualified function): (statements, RevisionId).
    policies: dict[str, tuple[list[dict], str]] = field(default_factory=dict)
    #: Provisioned concurrency by qualifier: (requested, LastModified).
    provisioned: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: Asynchronous invocation settings by qualifier ("" for the unqualified function).
    event_configs: dict[str, dict] = field(default_factory=dict)
    #: Function URL configs by qualifier ("" for the unqualified function, else an alias).
    urls: dict[str, dict] = field(default_factory=dict)
    #: Runtime management configs by qualifier ("" for $LATEST, else a version number).
    runtime_configs: dict[str, RuntimePin] = field(default_factory=dict)

    def uses_snapstart(self) -> bool:
        """Any configuration of the function (its $LATEST or a published version) has SnapStart on."""
        return any(config.snap_start == "PublishedVersions" for config in (self.latest, *self.versions.values()))

    def newest_version(self) -> FunctionConfig | None:
        return self.versions[max(self.versions, key=int)] if self.versions else None

    def settle(self) -> list[FunctionConfig]:
        """Settle $LATEST and every version still Pending (in memory); the configurations changed.
        A version published from $LATEST keeps counting as published from it (the no-op rule)."""
        changed = []
        latest = self.latest.settle()
        if latest is not self.latest:
            for number, version in self.versions.items():
                if version.source_revision == self.latest.revision_id:
                    self.versions[number] = version = version.replace(
                        source_revision=latest.revision_id, revision_id=version.revision_id,
                        last_modified=version.last_modified)
                    changed.append(version)
            self.latest = latest
            changed.append(latest)
        for number, version in self.versions.items():
            if not version.settled:
                self.versions[number] = version.settle()
                changed.append(self.versions[number])
        return list({(c.version): c for c in changed}.values())


#: An alias name (not a version number): what AWS's 404s call "Cannot find alias arn".
ALIAS_NAME = re.compile(r"^(?![0-9]+$)[a-zA-Z0-9-_]+$")


def event_config_key(qualifier: str | None) -> str:
    """Event invoke configs are kept per qualifier, "" for the unqualified function (= $LATEST)."""
    return "" if qualifier in (None, LATEST) else qualifier


def _runs_alike(old: Function, new: Function) -> bool:
    """Whether every environment `old` has may serve `new`: its versions differ at most in states
    and RevisionIds (FunctionConfig.runs_as), and nothing else an environment sees or provisioned
    concurrency keeps changed."""
    if (old.tags, old.runtime_configs, old.provisioned) != (new.tags, new.runtime_configs, new.provisioned):
        return False
    now = {LATEST: new.latest, **new.versions}
    return all(version in now and config.runs_as(now[version])
               for version, config in {LATEST: old.latest, **old.versions}.items())


class FunctionRegistry:
    def __init__(self, store: FunctionStore, arns: Arns, limiter: ConcurrencyLimiter,
                 on_change: Callable[[str, str | None], None],
                 on_delete: Callable[[str, str | None], None] | None = None,
                 recursion: RecursionGuard | None = None) -> None:
        self._store = store
        #: Which functions allow recursive loops; the invoker checks it (`invoke/recursion.py`).
        self.recursion = recursion or RecursionGuard()
        self._arns = arns
        self._limiter = limiter
        self._on_change = on_change
        #: Called with (name, None) when a function is deleted, (name, version) or (name, alias)
        #: when one of its versions or aliases is.
        self._on_delete = on_delete
        self._by_name: dict[str, Function] = {}
        self._by_url_id: dict[str, tuple[str, str]] = {}  # a function URL's id → (function, qualifier)
        #: Called with a URL's config when it goes (deleted, or with its alias or function).
        self.on_url_removed: Callable[[dict], None] | None = None
        #: Awaited with each URL config another node's change brought (new or kept): its listener.
        self.on_url_added: Callable[[dict], Awaitable[None]] | None = None
        self._write_lock = asyncio.Lock()
        self._settling: set[asyncio.Task] = set()
        #: Whether other nodes share the database now (server.py: the live nodes): a pending change
        #: is then settled in the database before this node shows it.
        self.has_peers: Callable[[], bool] | None = None
        #: The change-log rows (seq → when first read) already refreshed: catch_up takes each once.
        self._seen_changes: dict[int, float] = {}
        self._catch_up_lock = asyncio.Lock()
        self._last_read: float | None = None  # when catch_up last read the change log

    async def load(self) -> None:
        """Everything from the database. A change the server was still reporting as Pending or
        InProgress when it stopped had done all its work before it was answered: it is settled now."""
        for stored in await asyncio.to_thread(self._store.load_all):
            self._adopt(stored)
        for name, function in self._by_name.items():
            for config in function.settle():
                await asyncio.to_thread(self._store.update, config)

    def _adopt(self, stored: StoredFunction) -> None:
        """A function as the database has it becomes this server's view of it."""
        self._by_name[stored.latest.name] = Function(stored.latest, dict(stored.tags), dict(stored.versions),
                                                     stored.last_version, dict(stored.aliases),
                                                     dict(stored.policies), dict(stored.provisioned),
                                                     dict(stored.event_configs), dict(stored.urls),
                                                     dict(stored.runtime_configs))
        self.recursion.set(stored.latest.name, stored.recursive_loop or DEFAULT_RECURSIVE_LOOP)
        self._limiter.reserve(stored.latest.name, stored.reserved_concurrency)
        self._limiter.set_provisioned(stored.latest.name, sum(n for n, _ in stored.provisioned.values()))
        for qualifier, url in stored.urls.items():
            self._by_url_id[url["UrlId"]] = (stored.latest.name, qualifier)

    async def refresh(self, names: set[str]) -> None:
        """Other nodes sharing the database changed these functions: read them again (one that is
        gone is dropped) and retire their warm environments here, as a local change would."""
        stored = {found.latest.name: found for found in await asyncio.to_thread(self._store.load_all, sorted(names))}
        alike: set[str] = set()
        async with self._write_lock:
            for name in names:
                if name not in stored:
                    if name in self._by_name:
                        self._drop(name)
                    continue
                old = self._by_name.pop(name, None)
                for url in (old.urls.values() if old is not None else ()):
                    self._by_url_id.pop(url["UrlId"], None)
                self._adopt(stored[name])
                new = self._by_name[name]
                kept = {url["UrlId"] for url in new.urls.values()}
                for url in (old.urls.values() if old is not None else ()):
                    if url["UrlId"] not in kept and self.on_url_removed is not None:
                        self.on_url_removed(url)
                if self.on_url_added is not None:
                    for url in new.urls.values():
                        await self.on_url_added(url)
                if old is not None and _runs_alike(old, new):
                    alike.add(name)
        for name in names - alike:  # (a change only settling, or an alias or policy, keeps them warm)
            self._on_change(name, None)
            if name not in stored and self._on_delete is not None:
                self._on_delete(name, None)

    async def follow_changes(self, interval_s: float = CHANGES_POLL_S, wake: asyncio.Event | None = None) -> None:
        """Read the change log (store/functions.py) every `interval_s`, and whenever `wake` is set
        (another node's NOTIFY: change_signals.py), and refresh what other nodes changed; old rows
        are pruned now and then."""
        next_prune = next_full = 0.0
        while True:
            if wake is None:
                await asyncio.sleep(interval_s)
            else:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(wake.wait(), interval_s)
                wake.clear()  # before reading: a notification during the read wakes another
            try:
                full = time.time() >= next_full
                await self.catch_up(full)
                if full:
                    next_full = time.time() + CHANGES_FULL_S
                if time.time() >= next_prune:
                    await asyncio.to_thread(self._store.prune_changes, time.time() - CHANGES_KEEP_S)
                    next_prune = time.time() + CHANGES_KEEP_S / 10
            except SQLAlchemyError as exc:  # the database is away a moment: the next poll catches up
                log.warning("reading other nodes' changes failed: %s", exc)

    async def catch_up(self, full: bool = False) -> None:
        """Refresh every function other nodes changed that this node has not seen yet: what was
        committed before this call is then seen here (read-your-writes through any node). Each row
        is taken once. A read covers the rows since the previous read (less CHANGES_SLACK_S, for a
        transaction that wrote its row before that read and committed after it), or with `full`
        the last CHANGES_LOOKBACK_S, for one slower still (the follower's every CHANGES_FULL_S)."""
        async with self._catch_up_lock:  # one at a time: a row is taken only once it is refreshed
            now = time.time()
            since = now - CHANGES_LOOKBACK_S
            if not full and self._last_read is not None:
                since = max(since, self._last_read - CHANGES_SLACK_S)
            changes = await asyncio.to_thread(self._store.recent_changes, since)
            seen = self._seen_changes
            names = {name for seq, name, node in changes if seq not in seen and node != self._store.node}
            if names:
                await self.refresh(names)
            self._last_read = now
            for seq, _, _ in changes:
                seen.setdefault(seq, now)
            for seq in [seq for seq, at in seen.items() if at < now - CHANGES_LOOKBACK_S]:
                del seen[seq]

    def settle_later(self, name: str, delay: float = 0.0) -> None:
        """Settle the function's pending change `delay` seconds from now (0: once the event loop
        has written the answer that reported it). It is then persisted, so every node and a
        restart see it; a function deleted or changed again meanwhile is left alone."""
        revision = self.get(name).latest.revision_id
        asyncio.get_running_loop().call_later(delay, self._settle, name, revision)

    def _settle(self, name: str, revision: str) -> None:
        function = self._by_name.get(name)
        if function is None or function.latest.revision_id != revision:
            return
        if self.has_peers is not None and self.has_peers():
            task = asyncio.get_running_loop().create_task(self._settle_shared(name, revision))
        else:
            changed = function.settle()  # at once, in memory: the next request sees it
            if not changed:
                return
            task = asyncio.get_running_loop().create_task(self._persist_settled(name, [c.version for c in changed]))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle_shared(self, name: str, revision: str) -> None:
        """Settle in the database first, then here: with peers, a client told Active by this node
        may ask another next, which must then find Active in the database (api/consistency.py)."""
        async with self._write_lock:
            function = self._by_name.get(name)
            if function is None or function.latest.revision_id != revision:
                return
            settled = dataclasses.replace(function, versions=dict(function.versions))
            try:
                for config in settled.settle():
                    await asyncio.to_thread(self._store.update, config)
            except Exception:  # settled here all the same (and in the database at the next start-up)
                log.exception("could not store the settled state of %s", name)
            self._by_name[name] = settled

    async def _persist_settled(self, name: str, versions: list[str]) -> None:
        async with self._write_lock:  # the configurations as they are now: a later change wins
            function = self._by_name.get(name)
            if function is None:
                return
            for version in versions:
                config = function.latest if version == LATEST else function.versions.get(version)
                if config is not None:
                    try:
                        await asyncio.to_thread(self._store.update, config)
                    except Exception:  # settled again at the next start-up
                        log.exception("could not store the settled state of %s:%s", name, version)

    def check_settled(self, name: str) -> FunctionConfig:
        """$LATEST, refused as AWS refuses a change while the function is created or updated."""
        latest = self.get(name).latest
        arn = self._arns.function(name)
        if latest.state == "Pending":
            raise ResourceConflictException(
                f"The operation cannot be performed at this time. The resource {arn} is currently in the "
                "following state: 'Pending'. StateReasonCode: 'Creating'")
        if latest.last_update_status == "InProgress":
            raise ResourceConflictException(
                f"The operation cannot be performed at this time. An update is in progress for resource: {arn}")
        return latest

    def get(self, name: str, qualifier: str | None = None) -> Function:
        function = self._by_name.get(name)
        if function is None:
            raise ResourceNotFoundException(f"Function not found: {self._arns.function(name, qualifier)}")
        return function

    def require_qualifier(self, name: str, qualifier: str) -> Function:
        """The function, when `qualifier` (an alias or a published version) exists; else AWS's 404,
        which names an alias's ARN even when the function itself does not exist."""
        function = self._by_name.get(name)
        if ALIAS_NAME.match(qualifier):
            if function is None or qualifier not in function.aliases:
                raise ResourceNotFoundException(f"Cannot find alias arn: {self._arns.function(name, qualifier)}")
        elif function is None or (qualifier != LATEST and qualifier not in function.versions):
            raise ResourceNotFoundException(f"Function not found: {self._arns.function(name, qualifier)}")
        return function

    def config(self, name: str, qualifier: str | None = None, draw: float | None = None) -> FunctionConfig:
        """The configuration a name and qualifier resolve to: $LATEST (none given), a version, or the
        version an alias points to — with `draw` (a uniform random number), the one its weights pick."""
        function = self.get(name, qualifier)
        if qualifier is None or qualifier == LATEST:
            return function.latest
        alias = function.aliases.get(qualifier)
        if alias is not None:
            qualifier = alias.pick_version(draw) if draw is not None else alias.function_version
            if qualifier == LATEST:
                return function.latest
        version = function.versions.get(qualifier)
        if version is None:
            raise ResourceNotFoundException(f"Function not found: {self._arns.function(name, qualifier)}")
        return version

    async def change_policy(self, name: str, qualifier: str,
                            change: Callable[[list[dict], str | None], list[dict]]) -> tuple[list[dict], str]:
        """Apply `change(statements, revision)` to one resource policy under the write lock."""
        async with self._write_lock:
            return await apply_change(self.get(name).policies, qualifier, change,
                                      lambda updated, revision: self._store.set_policy(name, qualifier, updated, revision))

    def provisioned_target(self, name: str, qualifier: str) -> FunctionConfig:
        """The published version a provisioned-concurrency config on `qualifier` keeps warm."""
        function = self.get(name, qualifier)
        alias = function.aliases.get(qualifier)
        if qualifier == LATEST or (alias is not None and alias.function_version == LATEST):
            raise InvalidParameterValueException(
                "Provisioned Concurrency Configs cannot be applied to unpublished function versions.")
        if alias is not None and alias.weights:
            raise InvalidParameterValueException(
                "Provisioned concurrency on an alias with weighted routing is not supported by this "
                "Lambdalet server yet; put it on each version.")
        return self.config(name, qualifier)

    async def set_provisioned(self, name: str, qualifier: str, requested: int | None) -> tuple[int, str] | None:
        """Put (requested) or delete (None) a provisioned-concurrency config, with Lambda's checks."""
        async with self._write_lock:
            function = self.get(name)
            if requested is not None:
                target = self.provisioned_target(name, qualifier).version
                for other in function.provisioned:
                    if other != qualifier and self.provisioned_target(name, other).version == target:
                        raise ResourceConflictException(  # AWS's words, for each way round
                            "Alias can't be used for Provisioned Concurrency configuration on an already "
                            "Provisioned version" if qualifier in function.aliases
                            else "Version is pointed by a Provisioned Concurrency alias")
                others = sum(n for q, (n, _) in function.provisioned.items() if q != qualifier)
                reserved = self._limiter.reserved.get(name)
                if reserved is not None and others + requested > reserved:
                    raise InvalidParameterValueException(
                        "Requested Provisioned Concurrency should not be greater than the "
                        "reservedConcurrentExecution for function")
                unreserved = self._limiter.unreserved_limit
                if reserved is None and requested > unreserved:
                    raise InvalidParameterValueException(
                        "Specified ConcurrentExecutions for function is greater than account's unreserved "
                        f"concurrency [{unreserved}].")
                if reserved is None and unreserved - others - requested < self._limiter.unreserved_minimum:
                    raise InvalidParameterValueException(
                        "Specified ConcurrentExecutions for function decreases account's "
                        "UnreservedConcurrentExecution below its minimum value of "
                        f"[{self._limiter.unreserved_minimum}].")
            last_modified = now_iso()
            await asyncio.to_thread(self._store.set_provisioned, name, qualifier, requested, last_modified)
            if requested is None:
                function.provisioned.pop(qualifier, None)
            else:
                function.provisioned[qualifier] = (requested, last_modified)
            self._limiter.set_provisioned(name, sum(n for n, _ in function.provisioned.values()))
            return function.provisioned.get(qualifier)

    def event_invoke_settings(self, name: str, qualifier: str | None) -> EventInvokeSettings:
        """How asynchronous invocations of a qualifier are retried and where their outcomes go."""
        return EventInvokeSettings.from_config(self.get(name).event_configs.get(event_config_key(qualifier), {}))

    async def set_event_config(self, name: str, qualifier: str, config: dict | None) -> None:
        async with self._write_lock:
            function = self.get(name)
            await asyncio.to_thread(self._store.set_event_config, name, qualifier, config)
            if config is None:
                function.event_configs.pop(qualifier, None)
            else:
                function.event_configs[qualifier] = config

    async def set_recursive_loop(self, name: str, recursive_loop: str) -> None:
        """PutFunctionRecursionConfig: stored (only when not the default), then in effect at once."""
        async with self._write_lock:
            self.get(name)
            stored = None if recursive_loop == DEFAULT_RECURSIVE_LOOP else recursive_loop
            await asyncio.to_thread(self._store.set_recursive_loop, name, stored)
            self.recursion.set(name, recursive_loop)

    async def set_runtime_config(self, name: str, qualifier: str, config: RuntimePin) -> None:
        """PutRuntimeManagementConfig of one qualifier ("" for $LATEST). Its environments are
        retired: a pin changes which interpreter build they run."""
        async with self._write_lock:
            function = self.get(name)
            await asyncio.to_thread(self._store.set_runtime_config, name, qualifier, config)
            function.runtime_configs[qualifier] = config
        self._on_change(name, None)

    def url_target(self, url_id: str) -> tuple[str, str] | None:
        """The (function, qualifier) a function URL's id serves, or None."""
        return self._by_url_id.get(url_id)

    async def set_url(self, name: str, qualifier: str, config: dict | None) -> None:
        """Create, update or (None) delete the function URL config of a function or alias."""
        async with self._write_lock:
            function = self.get(name)
            await asyncio.to_thread(self._store.set_url, name, qualifier, config)
            if config is None:
                self._forget_url(function, qualifier)
            else:  # an update keeps the URL's id and port
                function.urls[qualifier] = config
                self._by_url_id[config["UrlId"]] = (name, qualifier)

    def url_configs(self) -> list[dict]:
        """Every function URL's config."""
        return [config for function in self._by_name.values() for config in function.urls.values()]

    def _forget_url(self, function: Function, qualifier: str) -> None:
        url = function.urls.pop(qualifier, None)
        if url is not None:
            self._by_url_id.pop(url["UrlId"], None)
            if self.on_url_removed is not None:
                self.on_url_removed(url)

    async def change_tags(self, name: str, add: dict[str, str] | None = None, remove: list[str] | None = None,
                          check: Callable[[Function, dict[str, str]], None] | None = None) -> None:
        """TagResource / UntagResource; a function has at most 50 tags, as on Lambda. `check` may
        refuse the resulting tags. A changed network tag retires the function's environments."""
        async with self._write_lock:
            function = self.get(name)
            tags = {k: v for k, v in function.tags.items() if k not in (remove or [])}
            tags.update(add or {})
            if len(tags) > 50:
                raise InvalidParameterValueException("Number of tags exceeds resource tag limit.")  # test_tag_limits
            if check is not None:
                check(function, tags)
            await asyncio.to_thread(self._store.set_tags, name, tags)
            network_changed = tags.get(NETWORK_TAG) != function.tags.get(NETWORK_TAG)
            function.tags = tags
        if network_changed:
            self._on_change(name, None)

    def alias(self, name: str, alias_name: str) -> Alias:
        alias = self.get(name).aliases.get(alias_name)
        if alias is None:
            raise ResourceNotFoundException(f"Alias not found: {self._arns.function(name, alias_name)}")
        return alias

    async def put_alias(self, alias: Alias, create: bool, revision_id: str | None = None) -> Alias:
        """CreateAlias (`create`) or UpdateAlias: validated against the function's versions."""
        async with self._write_lock:
            function = self.get(alias.function_name, alias.function_version if create else None)
            if not create:
                check_revision(revision_id, self.alias(alias.function_name, alias.name).revision_id)
            elif alias.name in function.aliases:
                raise ResourceConflictException(
                    f"Alias already exists: {self._arns.function(alias.function_name, alias.name)}")
            self._check_alias_versions(function, alias)
            await asyncio.to_thread(self._store.put_alias, alias)
            function.aliases[alias.name] = alias
            return alias

    def _check_alias_versions(self, function: Function, alias: Alias) -> None:
        for version in (alias.function_version, *alias.weights):
            if version != LATEST and version not in function.versions:
                raise ResourceNotFoundException(
                    f"Function not found: {self._arns.function(function.latest.name, version)}")
        if alias.weights and alias.function_version == LATEST:
            raise InvalidParameterValueException(
                "$LATEST is not supported for an alias pointing to more than 1 version")
        if LATEST in alias.weights:
            raise InvalidParameterValueException("$LATEST is not supported as an additional version of an alias.")
        if alias.function_version in alias.weights:
            raise InvalidParameterValueException(
                f"Invalid function version {alias.function_version}. Function version "
                f"{alias.function_version} is already included in routing configuration.")
        primary = function.versions[alias.function_version] if alias.weights else None
        for version in alias.weights:  # AWS: both versions share one execution role and one DLQ
            other = function.versions[version]
            if other.role != primary.role:
                raise InvalidParameterValueException(
                    f"Invalid routing configuration. Function versions {alias.function_version} and {version} "
                    "must have the same execution role.")
            if other.dead_letter_target != primary.dead_letter_target:
                raise InvalidParameterValueException(
                    f"Invalid routing configuration. Function versions {alias.function_version} and {version} "
                    "must have the same dead-letter queue configuration.")

    async def delete_alias(self, name: str, alias_name: str) -> None:
        async with self._write_lock:
            self.alias(name, alias_name)
            await asyncio.to_thread(self._store.delete_alias, name, alias_name)
            function = self.get(name)
            del function.aliases[alias_name]
            self._forget_url(function, alias_name)
        if self._on_delete is not None:
            self._on_delete(name, alias_name)

    def hot_reload_users(self) -> list[tuple[str, str]]:
        """(function, directory) for every version whose code is a hot-reload directory."""
        return [(name, config.hot_reload_dir) for name, function in self._by_name.items()
                for config in (function.latest, *function.versions.values()) if config.hot_reload_dir]

    def find(self, name: str) -> Function | None:
        """The function of that name, or None."""
        return self._by_name.get(name)

    def exists(self, name: str) -> bool:
        return name in self._by_name

    def names(self) -> list[str]:
        return sorted(self._by_name)

    async def create(self, config: FunctionConfig, tags: dict[str, str]) -> Function:
        """Create the function, Pending until `settle_later` settles it."""
        config = config.unsettled(pending=True)
        async with self._write_lock:
            await asyncio.to_thread(self._store.create, config, tags)
            function = self._by_name[config.name] = Function(config, dict(tags))
        self._on_change(config.name, LATEST)
        return function

    async def update(self, name: str, change: Callable[[FunctionConfig], FunctionConfig]) -> FunctionConfig:
        """Apply `change` to $LATEST under the write lock; `change` may raise to refuse the update.
        Refused while another change is in progress; InProgress until `settle_later` settles it."""
        async with self._write_lock:
            function = self.get(name)
            config = change(self.check_settled(name)).unsettled(pending=False)
            await asyncio.to_thread(self._store.update, config)
            function.latest = config
        self._on_change(name, LATEST)
        return config

    async def publish(self, name: str, code_sha256_b64: str | None = None, revision_id: str | None = None,
                      description: str | None = None, with_change: bool = False) -> FunctionConfig:
        """PublishVersion: snapshot $LATEST as the next version, unless nothing changed since the last one.
        Refused while a change is in progress, unless it is part of that change (`with_change`:
        Publish of CreateFunction or an update), whose version is then Pending as the change is."""
        async with self._write_lock:
            function = self.get(name)
            latest = function.latest if with_change else self.check_settled(name)
            current_sha = latest.to_api(self._arns)["CodeSha256"]
            if code_sha256_b64 is not None and code_sha256_b64 != current_sha:
                raise InvalidParameterValueException(
                    f"CodeSHA256 ({code_sha256_b64}) is different from current CodeSHA256 in $LATEST "
                    f"({current_sha}). Please try again with the CodeSHA256 in $LATEST."
                )
            check_revision(revision_id, latest.revision_id)
            newest = function.newest_version()
            if newest is not None and newest.source_revision == latest.revision_id:
                return newest  # nothing changed since: Lambda publishes no new version
            number = str(function.last_version + 1)
            version = latest.replace(version=number, source_revision=latest.revision_id,
                                     revision_id=new_revision_id(), last_modified=now_iso(),
                                     description=latest.description if description is None else description)
            if not latest.settled:
                version = version.unsettled(pending=True)
            # publishing gives $LATEST a new RevisionId too, as AWS does; the version counts as published from it
            latest = dataclasses.replace(latest, revision_id=new_revision_id())
            version = dataclasses.replace(version, source_revision=latest.revision_id)
            await asyncio.to_thread(self._store.publish, version, latest)
            function.versions[number] = version
            function.last_version = int(number)
            function.latest = latest
            return version

    async def delete_version(self, name: str, version: str) -> None:
        async with self._write_lock:
            function = self.get(name)
            if version not in function.versions:
                raise ResourceNotFoundException(f"Function not found: {self._arns.function(name, version)}")
            users = sorted(a.name for a in function.aliases.values()
                           if version == a.function_version or version in a.weights)
            if users:
                raise ResourceConflictException(
                    f"Unable to delete version because the following aliases reference it: {users}")
            if version in function.provisioned:
                raise ResourceConflictException(
                    "Unable to delete version because it has a provisioned concurrency configuration.")
            await asyncio.to_thread(self._store.delete_version, name, version)
            del function.versions[version]
            function.runtime_configs.pop(version, None)
        self._on_change(name, version)
        if self._on_delete is not None:
            self._on_delete(name, version)

    async def delete(self, name: str) -> None:
        async with self._write_lock:
            self.get(name)
            await asyncio.to_thread(self._store.delete, name)
            self._drop(name)
        self._on_change(name, None)
        if self._on_delete is not None:
            self._on_delete(name, None)

    def _drop(self, name: str) -> None:
        """A deleted function leaves this server's view: its URLs, concurrency and recursion setting."""
        function = self._by_name.pop(name)
        for qualifier in list(function.urls):
            self._forget_url(function, qualifier)
        self._limiter.set_provisioned(name, 0)
        self._limiter.reserve(name, None)
        self.recursion.set(name, DEFAULT_RECURSIVE_LOOP)

    def reserved_concurrency(self, name: str) -> int | None:
        self.get(name)
        return self._limiter.reserved.get(name)

    async def set_reserved_concurrency(self, name: str, reserved: int | None) -> None:
        """PutFunctionConcurrency / DeleteFunctionConcurrency, keeping the unreserved minimum."""
        async with self._write_lock:
            function = self.get(name, None if reserved is None else LATEST)  # AWS names $LATEST on a put
            if reserved is not None and reserved > self._limiter.max_reservable(name):
                raise InvalidParameterValueException(
                    "Specified ReservedConcurrentExecutions for function decreases account's "
                    "UnreservedConcurrentExecution below its minimum value of "
                    f"[{self._limiter.unreserved_minimum}]."
                )
            provisioned = sum(n for n, _ in function.provisioned.values())
            if reserved is not None and reserved < provisioned:  # AWS's words, spaces included
                raise InvalidParameterValueException(
                    f" ReservedConcurrentExecutions  {reserved} should not be lower than function's total "
                    f"provisioned concurrency [{provisioned}].")
            await asyncio.to_thread(self._store.set_reserved_concurrency, name, reserved)
            self._limiter.reserve(name, reserved)

    def total_code_size(self) -> int:
        """The functions' part of GetAccountSettings' TotalCodeSize: every version's code, as AWS counts it."""
        return sum(config.code_size for function in self._by_name.values()
                   for config in (function.latest, *function.versions.values()))
