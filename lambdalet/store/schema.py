"""The database schema (SQLAlchemy Core), shared by SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    inspect,
)
from sqlalchemy.engine import Connection, Engine

metadata = MetaData()

functions = Table(
    "functions",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("created", String(32), nullable=False),
    Column("tags", Text, nullable=False, default="{}"),
)

# One row per function version; today only "$LATEST". `config` is FunctionConfig.to_record() as JSON.
function_versions = Table(
    "function_versions",
    metadata,
    Column("function_name", String(64), ForeignKey("functions.name", ondelete="CASCADE"), primary_key=True),
    Column("version", String(16), primary_key=True),
    Column("config", Text, nullable=False),
)


# Reserved concurrency (PutFunctionConcurrency): a row only for functions that have one.
function_concurrency = Table(
    "function_concurrency",
    metadata,
    Column("function_name", String(64), ForeignKey("functions.name", ondelete="CASCADE"), primary_key=True),
    Column("reserved", Integer, nullable=False),
)


# The last version number published per function: numbers are never reused, even after a delete.
function_version_counters = Table(
    "function_version_counters",
    metadata,
    Column("function_name", String(64), ForeignKey("functions.name", ondelete="CASCADE"), primary_key=True),
    Column("last_version", Integer, nullable=False),
)


# Aliases: `config` is Alias.to_record() as JSON.
aliases = Table(
    "aliases",
    metadata,
    Column("function_name", String(64), ForeignKey("functions.name", ondelete="CASCADE"), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("config", Text, nullable=False),
)


# Resource policies (AddPermission), one per function and qualifier ("" for the unqualified function).
policies = Table(
    "policies",
    metadata,
    Column("function_name", String(64), ForeignKey("functions.name", ondelete="CASCADE"), primary_key=True),
    Column("qualifier", String(128), primary_key=True),
    Column("statements", Text, nullable=False),
    Column("revision_id", String(64), nullable=False),
)


# Recursive loop detection (PutFunctionRecursionConfig): a row only for functions that changed it
# from Lambda's default, Terminate.
function_recursion_configs = Table(
    "function_recursion_configs",
    metadata,
    Column("function_name", String(64), ForeignKey("functions.name", ondelete="CASCADE"), primary_key=True),
    Column("recursive_loop", String(16), nullable=False),
)

# Runtime management (PutRuntimeManagementConfig), by function and qualifier ("" for $LATEST):
# `update_runtime_on` (Auto, FunctionUpdate, Manual) and, for Manual, the pinned runtime version and
# the interpreter binary of that build (runtimes/registry.py checks it is unchanged at cold starts).
runtime_management_configs = Table(
    "runtime_management_configs",
    metadata,
    Column("function_name", String(64), ForeignKey("functions.name", ondelete="CASCADE"), primary_key=True),
    Column("qualifier", String(128), primary_key=True),
    Column("update_runtime_on", String(16), nullable=False),
    Column("runtime_version_arn", String(2048), nullable=True),
    Column("interpreter", String(4096), nullable=True),
)


# Provisioned concurrency configs, by function and qualifier (a version number or an alias).
provisioned_concurrency = Table(
    "provisioned_concurrency",
    metadata,
    Column("function_name", String(64), ForeignKey("functions.name", ondelete="CASCADE"), primary_key=True),
    Column("qualifier", String(128), primary_key=True),
    Column("requested", Integer, nullable=False),
    Column("last_modified", String(32), nullable=False),
)


# Asynchronous invocations waiting to run (or to run again). A row exists from the moment the 202
# is answered until the event is done with: that is what makes "never lost" true across a crash.
async_events = Table(
    "async_events",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("function_name", String(64), nullable=False),
    Column("qualifier", String(128), nullable=True),
    Column("invoked_arn", String(256), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("enqueued_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("claimed", Integer, nullable=False, default=0),
    # The node (nodes.name) whose claim it is; a claim of a node that is no longer live is released.
    Column("claimed_by", String(255), nullable=True),
    # The X-Ray trace header the event came with (its Lineage counts a recursive loop), else NULL.
    Column("trace", String(1024), nullable=True),
    # A PER_TENANT function's tenant id (X-Amz-Tenant-Id), else NULL.
    Column("tenant_id", String(256), nullable=True),
)
Index("async_events_due", async_events.c.claimed, async_events.c.next_attempt_at)

# Asynchronous invocation settings (PutFunctionEventInvokeConfig), by function and qualifier.
event_invoke_configs = Table(
    "event_invoke_configs",
    metadata,
    Column("function_name", String(64), ForeignKey("functions.name", ondelete="CASCADE"), primary_key=True),
    Column("qualifier", String(128), primary_key=True),
    Column("config", Text, nullable=False),
)

# Function URLs (CreateFunctionUrlConfig), by function and qualifier ("" or an alias). `config` is
# the stored FunctionUrlConfig as JSON; `url_id` is the URL's host label, unique for good.
function_urls = Table(
    "function_urls",
    metadata,
    Column("function_name", String(64), ForeignKey("functions.name", ondelete="CASCADE"), primary_key=True),
    Column("qualifier", String(128), primary_key=True),
    Column("url_id", String(64), nullable=False, unique=True),
    Column("config", Text, nullable=False),
)

# The port each function URL's own listener has (`api/url_listeners.py`): one URL a port across every
# node sharing the database. The URL's config (`function_urls.config`) says it too, as `Port`.
function_url_ports = Table(
    "function_url_ports",
    metadata,
    Column("port", Integer, primary_key=True),
    Column("url_id", String(64), ForeignKey("function_urls.url_id", ondelete="CASCADE"), nullable=False,
           unique=True),
)


# Layer versions (PublishLayerVersion): `config` is LayerVersion.to_record() as JSON. A deleted
# version's row goes; its content stays in the blob store for the functions that use it.
layer_versions = Table(
    "layer_versions",
    metadata,
    Column("name", String(140), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("config", Text, nullable=False),
)

# The last version number published per layer: numbers are never reused, even after a delete.
layer_version_counters = Table(
    "layer_version_counters",
    metadata,
    Column("name", String(140), primary_key=True),
    Column("last_version", Integer, nullable=False),
)

# Layer version permissions (AddLayerVersionPermission), one policy per layer version.
layer_policies = Table(
    "layer_policies",
    metadata,
    Column("name", String(140), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("statements", Text, nullable=False),
    Column("revision_id", String(64), nullable=False),
)

# EventBridge Scheduler schedule groups and schedules (store/schedules.py). `config` is the
# schedule as its API describes it (JSON); `scheduled_at` is its next scheduled time and `fire_at`
# when that fires (later within a flexible window), both NULL when it has none (disabled, or over).
# The firing loop reads only the soonest `fire_at` (an index), never every schedule.
schedule_groups = Table(
    "schedule_groups",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("created", Float, nullable=False),
    Column("modified", Float, nullable=False),
)

schedules = Table(
    "schedules",
    metadata,
    Column("group_name", String(64), ForeignKey("schedule_groups.name", ondelete="CASCADE"), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("config", Text, nullable=False),
    Column("created", Float, nullable=False),
    Column("modified", Float, nullable=False),
    Column("anchor", Float, nullable=False),  # where a rate counts from: StartDate, else the last write
    Column("revision", Integer, nullable=False),  # every write and firing adds one: firings are conditional on it
    Column("scheduled_at", Float, nullable=True),
    Column("fire_at", Float, nullable=True),
)
Index("schedules_due", schedules.c.fire_at)


# Event source mappings (CreateEventSourceMapping): `config` is EventSourceMapping.to_record() as
# JSON. No foreign key to the function: as on Lambda, a mapping outlives its function's deletion.
event_source_mappings = Table(
    "event_source_mappings",
    metadata,
    Column("uuid", String(36), primary_key=True),
    Column("function_name", String(64), nullable=False, index=True),
    Column("source_arn", String(1024), nullable=False, index=True),
    Column("config", Text, nullable=False),
    Column("tags", Text, nullable=False, default="{}"),
    # Bumped by every change of configuration or state, so that pollers on any node see it.
    Column("revision", Integer, nullable=False, default=0),
)

# Where a stream mapping's poller is in each shard: the last sequence number whose batch is done
# with (processed, or sent on to the on-failure destination), and a tumbling window's state.
stream_checkpoints = Table(
    "stream_checkpoints",
    metadata,
    Column("mapping_uuid", String(36), ForeignKey("event_source_mappings.uuid", ondelete="CASCADE"),
           primary_key=True),
    Column("shard_id", String(256), primary_key=True),
    Column("sequence_number", String(128), nullable=True),
    Column("closed", Integer, nullable=False, default=0),  # the shard ended and every record of it is done
    Column("window_state", Text, nullable=True),
    # A shard first read at LATEST: when the poller began (the records since are delivered even
    # when the server stops before the shard's first checkpoint).
    Column("started_at", Float, nullable=True),
)

# Leases: the one node that does a piece of background work (polls a mapping, ...) holds its row
# until `expires_at`, renewing it while it lives; a dead node's lease expires and another takes it.
leases = Table(
    "leases",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("owner", String(256), nullable=False),
    Column("expires_at", Float, nullable=False),
)


# Code signing configs (CreateCodeSigningConfig): `config` is the API's CodeSigningConfig as JSON.
code_signing_configs = Table(
    "code_signing_configs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("config", Text, nullable=False),
    Column("tags", Text, nullable=False, default="{}"),
)

# Which code signing config a function uses (PutFunctionCodeSigningConfig): a row only for those
# that have one. No foreign key to the config: DeleteCodeSigningConfig refuses one in use itself.
function_code_signing = Table(
    "function_code_signing",
    metadata,
    Column("function_name", String(64), ForeignKey("functions.name", ondelete="CASCADE"), primary_key=True),
    Column("config_id", String(32), nullable=False),
    Index("function_code_signing_by_config", "config_id"),
)


# The console's saved test events (console/test_events.py): a function's named events, private to
# this server as the AWS console's are to an account; gone with the function.
console_test_events = Table(
    "console_test_events",
    metadata,
    Column("function_name", String(64), ForeignKey("functions.name", ondelete="CASCADE"), primary_key=True),
    Column("name", String(25), primary_key=True),
    Column("event", Text, nullable=False),
    Column("modified", Float, nullable=False),
)


# Which function each committed change touched (store/functions.py writes one row in the same
# transaction as the change): the other nodes read the recent rows, take each once, and refresh
# those functions (functions.py `follow_changes`). Old rows are pruned.
function_changes = Table(
    "function_changes",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("function_name", String(64), nullable=False),
    Column("node", String(255), nullable=False),
    Column("at", Float, nullable=False),
    Index("function_changes_by_time", "at"),
)

# Secrets every node of one database shares, created once by whichever starts first: the key that
# temporary credentials are minted and checked under (auth/sessions.py).
server_keys = Table(
    "server_keys",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)

# The servers sharing this database (nodes.py): each heartbeats its own row; a row whose heartbeat
# is older than nodes.LIVE_S is a node that died.
nodes = Table(
    "nodes",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("url", String(1024), nullable=False),
    Column("started", Float, nullable=False),
    Column("heartbeat", Float, nullable=False),
    Column("load", Text, nullable=False, default="{}"),
)


# The concurrency slots each node holds per pool (invoke/grants.py): the unreserved pool or one
# function's reservation. A row counts until `expires` (wall-clock seconds), renewed while its node lives.
concurrency_grants = Table(
    "concurrency_grants",
    metadata,
    Column("pool", String(256), primary_key=True),
    Column("node", String(255), primary_key=True),
    Column("slots", Integer, nullable=False),
    Column("expires", Float, nullable=False),
)


# Every deployment package and layer zip, for the nodes that do not have it (store/shared_blobs.py;
# PostgreSQL only): the zip as uploaded, in pieces of shared_blobs.CHUNK_BYTES, numbered from 0.
code_blob_chunks = Table(
    "code_blob_chunks",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
)


# IAM (api/iam.py, store/iam.py): users, roles and customer managed policies of each account. Names
# are unique case-insensitively, as IAM's are: `name_key` is the lower-cased name. Children refer
# to their user, role or policy by its IAM id, which a rename (UpdateUser) does not change.
iam_users = Table(
    "iam_users",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("name_key", String(64), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("user_id", String(32), nullable=False, unique=True),
    Column("path", String(512), nullable=False),
    Column("created", String(32), nullable=False),
)

iam_access_keys = Table(
    "iam_access_keys",
    metadata,
    Column("access_key_id", String(32), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("user_id", String(32), ForeignKey("iam_users.user_id", ondelete="CASCADE"), nullable=False),
    Column("secret_access_key", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created", String(32), nullable=False),
    Index("iam_access_keys_by_user", "user_id"),
)

iam_roles = Table(
    "iam_roles",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("name_key", String(64), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("role_id", String(32), nullable=False, unique=True),
    Column("path", String(512), nullable=False),
    Column("created", String(32), nullable=False),
    Column("assume_role_policy_document", Text, nullable=False),
    Column("description", Text, nullable=True),
    Column("max_session_duration", Integer, nullable=False),
)

# Customer managed policies: one version (v1) each until CreatePolicyVersion is served.
iam_policies = Table(
    "iam_policies",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("name_key", String(128), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("policy_id", String(32), nullable=False, unique=True),
    Column("path", String(512), nullable=False),
    Column("description", Text, nullable=True),
    Column("document", Text, nullable=False),
    Column("default_version_id", String(16), nullable=False),
    Column("created", String(32), nullable=False),
    Column("updated", String(32), nullable=False),
)

iam_user_policies = Table(
    "iam_user_policies",
    metadata,
    Column("user_id", String(32), ForeignKey("iam_users.user_id", ondelete="CASCADE"), primary_key=True),
    Column("name_key", String(128), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("name", String(128), nullable=False),
    Column("document", Text, nullable=False),
)

iam_role_policies = Table(
    "iam_role_policies",
    metadata,
    Column("role_id", String(32), ForeignKey("iam_roles.role_id", ondelete="CASCADE"), primary_key=True),
    Column("name_key", String(128), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("name", String(128), nullable=False),
    Column("document", Text, nullable=False),
)

iam_user_policy_attachments = Table(
    "iam_user_policy_attachments",
    metadata,
    Column("user_id", String(32), ForeignKey("iam_users.user_id", ondelete="CASCADE"), primary_key=True),
    Column("policy_id", String(32), ForeignKey("iam_policies.policy_id", ondelete="CASCADE"), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Index("iam_user_policy_attachments_by_policy", "policy_id"),
)

iam_role_policy_attachments = Table(
    "iam_role_policy_attachments",
    metadata,
    Column("role_id", String(32), ForeignKey("iam_roles.role_id", ondelete="CASCADE"), primary_key=True),
    Column("policy_id", String(32), ForeignKey("iam_policies.policy_id", ondelete="CASCADE"), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Index("iam_role_policy_attachments_by_policy", "policy_id"),
)

# One row (id 1): bumped in the same transaction as every IAM write, so that every node's cache of
# compiled policies knows when to drop them (IamStore.generation). The bump comes first in each
# write, which also serialises IAM's writes (quota checks such as two access keys a user hold).
iam_generation = Table(
    "iam_generation",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("value", Integer, nullable=False),
)


#: The advisory lock (PostgreSQL) under which a starting server creates and migrates the schema.
SCHEMA_LOCK = 0x4C616D62  # "Lamb"


class DatabaseDriverMissing(RuntimeError):
    """The --database-url names a database whose Python driver is not installed."""


def make_engine(url: str) -> Engine:
    """Create the engine and the schema; SQLite gets WAL and foreign keys. A PostgreSQL URL without
    a driver (`postgresql://`) means psycopg 3, the one `lambdalet[postgres]` installs.

    A server database is pinged as a pooled connection is taken (`pool_pre_ping`), so a
    connection the server dropped (a restart, a failover, `pg_terminate_backend`) is replaced
    there rather than failing the request or background round that drew it."""
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    try:
        engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    except ModuleNotFoundError as exc:
        raise DatabaseDriverMissing(
            f"the database URL needs the {exc.name!r} driver, which is not installed; for PostgreSQL: "
            f"pip install 'lambdalet[postgres]'") from None
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # nodes starting at once on a new database: one at a time
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")
        metadata.create_all(conn)
        add_missing_columns(conn)
    return engine


def add_missing_columns(conn: Connection) -> None:
    """The migration a database made by an older Lambdalet needs: create_all makes missing tables
    but not the nullable columns added to existing ones since, which are added here."""
    existing = inspect(conn)
    for table in metadata.sorted_tables:
        if not existing.has_table(table.name):
            continue
        present = {column["name"] for column in existing.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present and column.nullable:
                kind = column.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}')
