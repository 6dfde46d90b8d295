"""Wiring: build every service from Settings, serve the Lambda API, and shut down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy.exc
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from lambdalet import console, network, node_auth
from lambdalet.api import aliases as aliases_api
from lambdalet.api import cloudwatch_logs as cloudwatch_logs_api
from lambdalet.api import code_signing as code_signing_api
from lambdalet.api import concurrency as concurrency_api
from lambdalet.api import event_invoke_config as event_invoke_config_api
from lambdalet.api import event_source_mappings as event_source_mappings_api
from lambdalet.api import function_urls as function_urls_api
from lambdalet.api import functions as functions_api
from lambdalet.api import invoke as invoke_api
from lambdalet.api import invoke_stream
from lambdalet.api import layers as layers_api
from lambdalet.api import provisioned as provisioned_api
from lambdalet.api import recursion as recursion_api
from lambdalet.api import resource_policy as resource_policy_api
from lambdalet.api import runtime_management as runtime_management_api
from lambdalet.api import scheduler as scheduler_api
from lambdalet.api import iam as iam_api
from lambdalet.api import sts as sts_api
from lambdalet.api import policy as policy_api
from lambdalet.api import tags as tags_api
from lambdalet.api import url_requests
from lambdalet.api.url_listeners import UrlListeners
from lambdalet.api import versions as versions_api
from lambdalet.api.authentication import Authenticator, accounts_for, authenticate
from lambdalet.api.authorization import Decisions, ResourcePolicies, authorize_requests
from lambdalet.api.callers import ConnectionGate, function_admissions, refuse_cross_origin, refuse_functions
from lambdalet.api.common import SERVICES, json_response, read_body
from lambdalet.api.consistency import caught_up
from lambdalet.api.errors import lambda_errors
from lambdalet.api.model_params import check_parameters
from lambdalet.api.query_protocol import error_response as query_error
from lambdalet.api.query_protocol import IAM_VERSION, form_version, is_query_request
from lambdalet.api.signing import check_signing_region
from lambdalet.auth.accounts import AccountsError
from lambdalet.auth.execution_roles import ExecutionRoles
from lambdalet.auth.identities import Identities
from lambdalet.auth.sessions import SessionMinter
from lambdalet.auth.upstream_roles import UpstreamRoles
from lambdalet.code_signing import Profile, load_profiles
from lambdalet.config import LOOPBACK_HOSTS, Settings, parse_port_range
from lambdalet.events.async_queue import AsyncQueue
from lambdalet.events.pollers import MappingManager
from lambdalet.events.scheduler import ScheduleRunner
from lambdalet.store.events import EventStore
from lambdalet.errors import ResourceNotFoundException
from lambdalet.functions import FunctionRegistry
from lambdalet.hot_reload import HotReloader
from lambdalet.invoke.env_vars import server_passthrough
from lambdalet.invoke.environment import Environment
from lambdalet.invoke.invoker import Invoker
from lambdalet.invoke.grants import ConcurrencyGrants
from lambdalet.placement import Placement
from lambdalet.invoke.leases import ConcurrencyLimiter, MemoryBudget, default_memory_budget_mb
from lambdalet.invoke.pool import Pools
from lambdalet.invoke.recursion import RecursionGuard
from lambdalet.invoke.runtime_api import RuntimeApiServer
from lambdalet.layers import LayerRegistry
from lambdalet.change_signals import ChangeSignals
from lambdalet.cluster_logs import PEER_PATH
from lambdalet.log_groups import LogReader
from lambdalet.logs import LogStore
from lambdalet.metrics import Metrics, PlatformCollector
from lambdalet.metrics_history import MetricsHistory
from lambdalet.nodes import NodeRegistry
from lambdalet.peer_code import PeerCode
from lambdalet.provisioned_homes import ProvisionedHomes
from lambdalet.model import LATEST, Arns, FunctionConfig
from lambdalet.runtimes.python_sdk import compile_sdk_bytecode, prepare_python_sdk
from lambdalet.runtimes.registry import IMAGE_RUNTIME, RuntimeRegistry
from lambdalet.sandbox import create_backend
from lambdalet.sandbox.base import SandboxBackend
from lambdalet.s3_code import S3CodeSource
from lambdalet.store.blobs import BlobStore
from lambdalet.store.shared_blobs import SharedBlobs
from lambdalet.store.functions import FunctionStore
from lambdalet.data_lock import DataDirInUse, lock_data_dir
from lambdalet.images.registry import Credentials, default_docker_config
from lambdalet.images.store import ImageStore
from lambdalet.store.layer_dirs import LayerDirs
from lambdalet.store.code_signing import CodeSigningStore
from lambdalet.store.layers import LayerStore
from lambdalet.store.mappings import MappingStore
from lambdalet.store.schedules import DEFAULT_GROUP, ScheduleStore
from lambdalet.store.schema import DatabaseDriverMissing, make_engine
from lambdalet.store.iam import IamStore
from lambdalet.store.server_keys import shared_key
from lambdalet.store.test_events import TestEventStore

log = logging.getLogger("lambdalet")
#: Largest control-plane request: a 50 MB zip, base64-encoded inside JSON (Lambda's own limit).
MAX_REQUEST_BYTES = 70_167_211
#: How long the rest of a request body the server will not use is still read after an early answer
#: (a 413, a 408), so that the client sees the answer rather than a reset (aiohttp's default: 10 s).
LINGERING_S = 2.0


@dataclass
class Services:
    settings: Settings
    arns: Arns
    functions: FunctionRegistry
    blobs: BlobStore
    runtimes: RuntimeRegistry
    invoker: Invoker
    pools: Pools
    sandbox: SandboxBackend
    runtime_api: RuntimeApiServer
    queue: AsyncQueue
    layers: LayerRegistry
    layer_dirs: LayerDirs
    hot_reload: HotReloader
    metrics: Metrics
    platform_metrics: PlatformCollector
    logs: LogStore
    mappings: MappingManager
    images: ImageStore
    s3_code: S3CodeSource
    url_listeners: UrlListeners
    retention_sweeper: "asyncio.Task[None] | None" = None
    #: The uid function code runs as, where callers can be told apart by it (api/callers.py); None: no.
    function_uid: int | None = None
    #: EventBridge Scheduler's schedules (api/scheduler.py) and the loop that fires them (events/scheduler.py).
    schedule_store: ScheduleStore | None = None
    schedules: ScheduleRunner | None = None
    #: Code signing configs and which function uses one (api/code_signing.py).
    code_signing: CodeSigningStore | None = None  # type: ignore[assignment]
    #: --signing-profiles: the public keys signed code is verified with (code_signing.py).
    signing_profiles: dict[str, Profile] = field(default_factory=dict)
    #: Checks every request's signature under --auth iam (api/authentication.py); None: --auth open.
    authenticator: Authenticator | None = None
    #: The last 24 h of each function's metrics, for the console's charts (metrics_history.py).
    history: MetricsHistory | None = None
    #: The console's saved test events (console/test_events.py).
    test_events: TestEventStore | None = None  # type: ignore[assignment]
    #: IAM's users, roles and policies (api/iam.py), and the caches authorisation reads them through.
    iam: IamStore | None = None  # type: ignore[assignment]
    identities: Identities | None = None  # type: ignore[assignment]
    #: Mints and checks temporary credentials: AssumeRole's and execution roles' (auth/sessions.py).
    minter: SessionMinter | None = None  # type: ignore[assignment]
    #: --auth iam: the Role check and each environment's role credentials (auth/execution_roles.py).
    execution_roles: ExecutionRoles | None = None
    #: Compiled resource policies, by revision (api/authorization.py).
    resource_policies: ResourcePolicies = field(default_factory=ResourcePolicies)
    #: Allowances that read no condition key, by the policies they were decided under (api/authorization.py).
    decisions: Decisions = field(default_factory=Decisions)
    identity_follower: "asyncio.Task[None] | None" = None
    #: This server's row among the nodes sharing its database (nodes.py).
    nodes: NodeRegistry | None = None
    #: Packages this node lacks, read from the database or a peer (peer_code.py).
    peer_code: PeerCode | None = None
    #: Signs and checks what nodes of this database ask of each other (node_auth.py).
    node_key: bytes = b""
    #: Refreshes the functions other nodes change (FunctionRegistry.follow_changes).
    change_follower: "asyncio.Task[None] | None" = None
    #: Which provisioned configs this node keeps: those of functions it is home to (provisioned_homes.py).
    provisioned_homes: ProvisionedHomes | None = None
    #: On PostgreSQL: other nodes' NOTIFYs, which wake the follower (change_signals.py).
    change_signals: ChangeSignals | None = None
    #: On PostgreSQL: this node's share of the concurrency limits (invoke/grants.py).
    grants: ConcurrencyGrants | None = None
    #: Which node runs a function's synchronous invokes (placement.py).
    placement: Placement | None = None


async def build_services(settings: Settings) -> Services:
    signing_profiles = load_profiles(settings.signing_profiles)  # a bad file fails before anything starts
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    lock_data_dir(data_dir)  # its descriptor stays open, and the lock held, until the process ends
    accounts = accounts_for(settings, data_dir)  # a bad accounts file fails before anything starts
    if settings.auth == "open" and settings.host not in LOOPBACK_HOSTS:
        log.warning("--auth open on --host %s: anyone who reaches this port acts as the account's root",
                    settings.host or "(every address)")
    arns = Arns(settings.account_id, settings.region)
    blobs = BlobStore(data_dir)
    layer_dirs = LayerDirs(data_dir, blobs)
    runtimes = RuntimeRegistry(settings.python_interpreter, settings.node_binary)
    sdk = prepare_python_sdk(data_dir)
    if sdk is not None and sdk.min_python > (3, 9):
        log.warning("boto3 %s needs Python >= %d.%d: functions on older Python runtimes must bundle "
                    "their own boto3", sdk.boto3_version, *sdk.min_python)
    if sdk is not None:  # in the background: start-up does not wait, and it is idle work at nice 10
        threading.Thread(target=compile_sdk_bytecode, args=(sdk, runtimes.python_interpreters()),
                         name="lambdalet-sdk-bytecode", daemon=True).start()
    sandbox, why = create_backend(settings.sandbox, data_dir, sdk, uid=settings.sandbox_uid,
                                  network=settings.sandbox_network, max_parallel_starts=settings.max_parallel_starts,
                                  mb_per_vcpu=settings.sandbox_mb_per_vcpu)
    log.warning("Sandbox backend: %s [%s]", sandbox.describe(), why)
    runtime_api = RuntimeApiServer(settings.runtime_api_host)
    await runtime_api.start()
    log_store = LogStore(data_dir, max_group_bytes=settings.max_log_group_mb * 1024 * 1024)
    passthrough = server_passthrough()

    images = ImageStore(data_dir, Credentials.from_docker_config(
        Path(settings.registry_config) if settings.registry_config else default_docker_config()),
        settings.insecure_registry_set, settings.region)

    def new_environment(config: FunctionConfig, provisioned: bool) -> Environment:
        runtime = IMAGE_RUNTIME if config.image is not None else runtimes.get(config.runtime)
        pin = registry.get(config.name).runtime_configs.get("" if config.version == LATEST else config.version)
        if pin is not None and pin.runtime_version_arn and config.image is None:  # Manual: that build or none
            runtime = runtimes.pinned(config.runtime, pin.interpreter or "", pin.runtime_version_arn, settings.region)
        use_sdk = sdk is not None and runtime.is_python and sdk.supports(runtime.name)
        code_dir = (images.root(config.image) if config.image is not None
                    else config.hot_reload_dir or blobs.code_dir(config.code_sha256))
        env_passthrough, retire_at = (execution_roles.environment_variables(config.name, config.role)
                                      if execution_roles is not None else (passthrough, None))
        environment = Environment(
            config, runtime, registry=runtimes, sandbox=sandbox, runtime_api=runtime_api, log_store=log_store,
            code_dir=code_dir, images=images, region=settings.region,
            passthrough=env_passthrough,
            use_sdk=use_sdk, init_timeout=settings.init_timeout, snapshot_key=snapshot_key(config),
            provisioned=provisioned, layers_dir=layer_dirs.path(config.layers),
            isolated_network=network.isolated(registry.get(config.name).tags, sandbox.isolated_network_by_default),
            fetch_code=peer_code.ensure_function,
        )
        environment.retire_at = retire_at
        return environment

    def snapshot_key(config: FunctionConfig) -> str | None:
        """SnapStart environments of one exact configuration fork from one template: published
        versions with ApplyOn PublishedVersions, and $LATEST too with --snapstart-latest."""
        if config.snap_start != "PublishedVersions" or (config.version == LATEST and not settings.snapstart_latest):
            return None
        return f"{config.name}:{config.version}:{config.revision_id}"

    def retire_snapshot(config: FunctionConfig) -> None:
        key = snapshot_key(config)
        if key is not None:
            sandbox.retire(key)

    budget = MemoryBudget(settings.memory_budget_mb or default_memory_budget_mb())
    limiter = ConcurrencyLimiter(settings.account_concurrency, settings.unreserved_concurrency_min)
    pools = Pools(new_environment, settings.keep_alive, budget, on_retire=retire_snapshot)
    metrics = Metrics(settings.resolved_node_name)
    recursion = RecursionGuard()
    invoker = Invoker(pools, limiter, metrics, recursion)
    engine = make_engine(settings.resolved_database_url)
    if engine.dialect.name == "postgresql":  # other nodes may need any package uploaded here
        blobs.shared = SharedBlobs(engine)
    store = FunctionStore(engine, node=settings.resolved_node_name)
    iam = IamStore(engine)
    identities = Identities(iam)
    minter = SessionMinter(shared_key(engine, "session-minting"))
    authenticator = Authenticator(accounts, minter, identities) if accounts is not None else None
    # --auth iam or --role-credentials upstream: environments act with their functions' roles
    # (auth/execution_roles.py), minted here or assumed on an upstream STS (auth/upstream_roles.py)
    upstream = UpstreamRoles(settings.region) if settings.role_credentials == "upstream" else None
    execution_roles = (ExecutionRoles(minter, identities, settings.resolved_advertise_url, passthrough, upstream)
                       if accounts is not None or upstream is not None else None)

    # several nodes may share PostgreSQL, and so the limits: each holds its share of them (invoke/grants.py)
    grants = (ConcurrencyGrants(engine, settings.resolved_node_name, limiter.pool_usage)
              if engine.dialect.name == "postgresql" else None)

    def node_load() -> dict[str, object]:
        states = {"starting": 0, "idle": 0, "busy": 0}
        for counts in pools.counts().values():
            for state, count in counts.items():
                states[state] = states.get(state, 0) + count
        load: dict[str, object] = {"inFlight": limiter.total_in_flight, "environments": states,
                                   "memoryUsedMb": pools.budget.used_mb, "memoryLimitMb": pools.budget.limit_mb}
        if grants is not None:
            load["concurrencyGrants"] = dict(grants.granted)
        load["provisioned"] = homes.states() if homes is not None else {}
        return load

    node = NodeRegistry(engine, settings.resolved_node_name, settings.resolved_advertise_url, node_load)
    peer_code = PeerCode(blobs, layer_dirs, node)
    node_key = shared_key(engine, node_auth.KEY_NAME)
    placement = Placement(node, node_key)
    homes: ProvisionedHomes | None = None  # once the registry has loaded

    def changed(name: str, version: str | None) -> None:
        pools.retire_function(name, version)
        reloader.sync()
        if homes is not None:  # a retired pool's provisioned environments are made again
            homes.reconcile()

    registry = FunctionRegistry(store, arns, limiter, on_change=changed, on_delete=metrics.forget, recursion=recursion)
    url_listeners = UrlListeners(settings.host, parse_port_range(settings.function_url_ports),
                                 settings.advertised_url_host, settings.port)
    registry.on_url_removed = url_listeners.close
    registry.has_peers = lambda: len(node.peers) > 1
    registry.on_url_added = url_listeners.serve
    reloader = HotReloader(registry.hot_reload_users, retire=pools.retire_function)
    platform_metrics = PlatformCollector(pools, limiter, registry, sandbox)
    metrics.registry.register(platform_metrics)
    await registry.load()
    reloader.sync()
    layers = LayerRegistry(LayerStore(engine), arns)
    await layers.load()
    await prepare_layer_dirs(registry, layer_dirs)
    pools.start_reaper()
    role_session = ((lambda role: execution_roles.aws_session(*role))  # type: ignore[union-attr]
                    if upstream is not None else None)
    await node.start()  # before the queue: a claim holds only while its node's heartbeat is live
    homes = ProvisionedHomes(registry, pools, placement)
    homes.start()  # provisioned concurrency survives a restart, on the functions' homes
    if grants is not None:
        await grants.start()
        limiter.grants = grants
    queue = AsyncQueue(EventStore(engine, node.name), registry, invoker, workers=settings.async_workers,
                       backoff_scale=settings.async_backoff_scale, aws_session=role_session)
    await queue.start()
    manager = MappingManager(MappingStore(engine), registry, invoker, metrics, node_id=settings.resolved_node_name,
                             aws_session=role_session,
                             is_home=lambda function: polled_here(registry, placement, function))
    await manager.start()
    schedule_store = ScheduleStore(engine)
    await asyncio.to_thread(schedule_store.ensure_group, DEFAULT_GROUP, time.time())
    schedules = ScheduleRunner(schedule_store, registry, arns, poll_interval=settings.schedule_poll_interval)
    await schedules.start()
    sweeper = asyncio.create_task(sweep_retention(log_store, settings.log_retention_sweep_interval))
    function_uid = settings.sandbox_uid if sandbox.isolates else None
    if settings.sandbox_api_access == "invoke" and function_uid is None:
        log.warning("--sandbox-api-access invoke: under the %s backend functions run as the server's own user "
                    "and cannot be told apart from other callers, so they may call every operation", sandbox.name)
    history = MetricsHistory(metrics)
    history.start()

    signals = ChangeSignals(engine, settings.resolved_node_name) if engine.dialect.name == "postgresql" else None
    if signals is not None:
        signals.start()
    follower = asyncio.create_task(registry.follow_changes(  # what other nodes change, seen here
        settings.changes_poll_interval, signals.changed if signals is not None else None))
    return Services(settings, arns, registry, blobs, runtimes, invoker, pools, sandbox, runtime_api, queue,
                    layers, layer_dirs, reloader, metrics, platform_metrics, log_store, manager, images,
                    S3CodeSource(settings.region, blobs), url_listeners, sweeper,
                    function_uid, schedule_store, schedules, CodeSigningStore(engine),
                    signing_profiles, authenticator, history, TestEventStore(engine), iam, identities, minter,
                    execution_roles=execution_roles, nodes=node, peer_code=peer_code,
                    node_key=node_key, change_follower=follower,
                    change_signals=signals,
                    grants=grants,
                    placement=placement, provisioned_homes=homes,
                    # what other nodes change in IAM, seen here (only --auth iam reads it per request)
                    identity_follower=asyncio.create_task(identities.follow()) if authenticator else None)


async def sweep_retention(store: LogStore, interval: float) -> None:
    """Every `interval` seconds, remove log events past their group's retention from disk (readers
    never return them anyway)."""
    reader = LogReader(store)
    while True:
        await asyncio.sleep(interval)
        try:
            store.flush_all()
            changed = await asyncio.to_thread(reader.sweep, set(store.live))
            if changed:
                store.sizes_changed()
                log.info("log retention: %d stream file(s) trimmed or removed", changed)
        except Exception:  # never let one bad file stop the sweeps
            log.exception("log retention sweep failed")


def polled_here(registry: FunctionRegistry, placement: Placement, function: str) -> bool:
    """Whether this node polls the mappings of `function`: its home, or for hot-reload code the
    node whose host has the directory (api/invoke.py's `placed`)."""
    try:
        latest = registry.get(function).latest
    except ResourceNotFoundException:  # being deleted: its mapping too
        return placement.ranking(function)[0][0] == placement.node
    if latest.hot_reload_dir and latest.hot_reload_node:
        return placement.pinned(function, latest.hot_reload_node)[0][0] == placement.node
    return placement.ranking(function)[0][0] == placement.node


async def prepare_layer_dirs(registry: FunctionRegistry, layer_dirs: LayerDirs) -> None:
    """Make sure every function version's merged /opt exists (normally built when its layers were
    set; this rebuilds any that went missing), so that a warm start never builds one. A layer whose
    zip this node lacks (another node's upload) is fetched at the first cold start instead."""
    lists = {config.layers for name in registry.names()
             for config in (registry.get(name).latest, *registry.get(name).versions.values()) if config.layers}
    for layers in lists:
        try:
            await asyncio.to_thread(layer_dirs.ensure, layers)
        except FileNotFoundError:
            log.info("layers %s: not all here yet, fetched when a function needs them",
                     ", ".join(layer.arn for layer in layers))


async def query_or_json(request: web.Request) -> web.StreamResponse:
    """`POST /` carries two protocols: the form-encoded query API of STS and IAM (told apart by the
    form's `Version`), and CloudWatch Logs' JSON 1.1 (`X-Amz-Target: Logs_20140328.*`; anything else
    is answered as an unknown Lambda route there). A browser's `GET /` is sent to the console."""
    if console.wants_console(request):
        raise web.HTTPFound("/console/")
    if is_query_request(request):
        try:
            version = form_version(await read_body(request))
        except TimeoutError:
            response = query_error(408, "RequestTimeout", "The request body was not received in time.")
            response.force_close()
            return response
        return await (iam_api.dispatch if version == IAM_VERSION else sts_api.dispatch)(request)
    return await cloudwatch_logs_api.dispatch(request)


def root_denied(request: web.Request, message: str) -> web.Response:
    if is_query_request(request):  # STS's or IAM's: the same code, in STS's namespace (the body is not read)
        return query_error(403, "AccessDenied", message)
    return cloudwatch_logs_api.access_denied(message)


async def status(request: web.Request) -> web.Response:
    svc: Services = request.app[SERVICES]  # type: ignore[assignment]
    counts = svc.pools.counts()
    limiter = svc.invoker.limiter
    depth = await asyncio.to_thread(svc.queue.depth)
    now = time.time()
    return json_response({
        "sandbox": svc.sandbox.name,
        "concurrency": {"limit": limiter.account_limit, "unreserved_limit": limiter.unreserved_limit,
                        "in_flight": limiter.total_in_flight},
        "memory_budget_mb": {"limit": svc.pools.budget.limit_mb, "used": svc.pools.budget.used_mb},
        "nodes": [name for name, _url in svc.nodes.peers] if svc.nodes is not None else [],  # placement's view
        "functions": {name: {"environments": counts.get(name, {"starting": 0, "idle": 0, "busy": 0}),
                             "async_queue": {"depth": depth.get(name, (0, None))[0],
                                             "oldest_age_s": round(now - depth[name][1], 3) if name in depth else None}}
                      for name in svc.functions.names()},
    })


async def list_nodes(request: web.Request) -> web.Response:
    """The live nodes sharing this server's database (`lambdalet nodes`)."""
    svc: Services = request.app[SERVICES]  # type: ignore[assignment]
    assert svc.nodes is not None
    return json_response({"nodes": await asyncio.to_thread(svc.nodes.live)})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition (`lambdalet/metrics.py`, `docs/metrics.md`)."""
    svc: Services = request.app[SERVICES]  # type: ignore[assignment]
    svc.platform_metrics.queue_depth = await asyncio.to_thread(svc.queue.depth)
    body, content_type = svc.metrics.expose(request.headers.get("Accept"))
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


def create_app(settings: Settings) -> web.Application:
    # Under --auth iam every request's signature is checked after its region (api/authentication.py),
    # and what it asks for is authorised after its parameters (api/authorization.py); under open
    # neither middleware is there at all.
    middlewares = [lambda_errors, url_requests.route_by_host, refuse_cross_origin, check_signing_region,
                   *([authenticate] if settings.auth_mode == "iam" else []), check_parameters,
                   *([authorize_requests] if settings.auth_mode == "iam" else [])]
    app = web.Application(middlewares=middlewares, client_max_size=MAX_REQUEST_BYTES)
    # Invoke first: the router tries the routes under one path prefix in order, so the hot path's
    # is matched at once rather than after every other /2015-03-31/functions route (~8 regex tries).
    # Function code may call only Invoke and function URLs (api/callers.py); every other route refuses it.
    app.add_routes(invoke_api.routes())
    app.add_routes(invoke_stream.routes())
    for api in (functions_api, concurrency_api, versions_api, aliases_api, tags_api, policy_api,
                provisioned_api, event_invoke_config_api, event_source_mappings_api, code_signing_api, function_urls_api, layers_api,
                recursion_api, resource_policy_api, runtime_management_api):
        app.add_routes([refuse_functions(caught_up(route)) for route in api.routes()])
    app.add_routes([refuse_functions(route) for route in scheduler_api.routes()])  # /schedules, /schedule-groups
    app.add_routes(url_requests.routes())
    app.add_routes(console.routes())  # static pages; what they do is API calls, checked as any other
    app.add_routes([refuse_functions(caught_up(route)) for route in console.data_routes()])
    app.add_routes([refuse_functions(web.route("*", "/", query_or_json), root_denied)])  # Logs and STS
    app.add_routes([refuse_functions(web.get("/_lambdalet/status", status)),
                    refuse_functions(web.get("/_lambdalet/nodes", list_nodes)),
                    refuse_functions(web.post(PEER_PATH, cloudwatch_logs_api.peer_logs)),
                    refuse_functions(web.post(console.PEER_METRICS_PATH, console.peer_metrics)),
                    refuse_functions(web.get("/metrics", metrics))])

    async def startup(app: web.Application) -> None:
        services = await build_services(settings)
        app[SERVICES] = services
        log.info("Data in %s", Path(settings.data_dir).resolve())

    async def cleanup(app: web.Application) -> None:
        services: Services = app[SERVICES]  # type: ignore[assignment]
        for task in (services.change_follower, services.identity_follower):
            if task is not None:
                task.cancel()
        if services.change_signals is not None:
            await services.change_signals.stop()
        if services.provisioned_homes is not None:
            services.provisioned_homes.stop()
        await services.mappings.shutdown()  # its leases handed back
        if services.schedules is not None:
            await services.schedules.shutdown()
        await services.queue.shutdown(settings.drain_timeout)  # what runs finished, the rest handed back
        if services.grants is not None:
            await services.grants.stop()  # nothing runs here any more: every slot back to the others
        if services.nodes is not None:
            await services.nodes.stop()  # last: the queue's claims held while its heartbeat was live
        await services.hot_reload.close()
        if services.placement is not None:
            await services.placement.close()
        if services.retention_sweeper is not None:
            services.retention_sweeper.cancel()
        if services.history is not None:
            await services.history.close()
        await services.pools.shutdown()
        services.logs.flush_all()
        await services.runtime_api.shutdown()
        await services.sandbox.close()

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    return app


async def serve(settings: Settings) -> None:
    """Serve the API until a signal stops the server (as aiohttp's run_app does), with every
    connection admitted by `ConnectionGate`: function code may hold only so many (api/callers.py)."""
    runner = web.AppRunner(create_app(settings), access_log=None, handle_signals=True,
                           shutdown_timeout=settings.drain_timeout,  # requests in flight finish (a drain)
                           keepalive_timeout=settings.http_idle_timeout, lingering_time=LINGERING_S)
    await runner.setup()  # on_startup: the services
    try:
        svc: Services = runner.app[SERVICES]  # type: ignore[assignment]
        admissions = function_admissions()
        http = runner.server
        assert http is not None
        # The URLs' own listeners first: no URL can be created before they serve (the API is not up).
        await svc.url_listeners.start(lambda: ConnectionGate(http, admissions, svc.function_uid),
                                      svc.functions.url_configs())
        try:
            server = await asyncio.get_running_loop().create_server(
                lambda: ConnectionGate(http, admissions, svc.function_uid), settings.host, settings.port,
                reuse_address=True)
            log.info("Lambdalet listening on http://%s:%s", settings.host, settings.port)
            try:
                await asyncio.Event().wait()  # until SIGTERM/SIGINT raise GracefulExit out of the loop
            finally:
                server.close()
        finally:
            svc.url_listeners.shutdown()
    finally:
        await runner.cleanup()  # on_shutdown, in-flight requests, on_cleanup


class ClientErrorsInOneLine(logging.Filter):
    """aiohttp logs a request it could not parse (a line too long, an unknown Content-Encoding, a
    broken gzip body it was still reading after the answer) as an ERROR with a traceback: a client's mistake, which any client could repeat to flood the log.
    Such records become one INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, RequestPayloadError) or (isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 0) < 500):
            record.msg, record.args = "bad request from a client: %s", (" ".join(str(exc).split()),)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def run(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.server").addFilter(ClientErrorsInOneLine())
    try:
        import uvloop  # the invoke path's one event loop, a third faster than asyncio's own

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    main = loop.create_task(serve(settings))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):  # SIGTERM, SIGINT: serve's cleanup runs below
        pass
    except OSError as exc:  # the port is taken, the address is not ours, ...
        raise SystemExit(f"lambdalet: cannot serve on {settings.host}:{settings.port}: {exc.strerror or exc}") from None
    except (DatabaseDriverMissing, DataDirInUse, AccountsError) as exc:
        raise SystemExit(f"lambdalet: {exc}") from None
    except sqlalchemy.exc.OperationalError as exc:  # PostgreSQL down, wrong password, unwritable SQLite file
        raise SystemExit(f"lambdalet: cannot open the database: {exc.orig}") from None
    finally:
        try:
            if not main.done():  # stopped by a signal: serve's cleanup (runner.cleanup) runs now
                main.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    loop.run_until_complete(main)
        finally:
            leftover = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in leftover:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
