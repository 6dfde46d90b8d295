"""Prometheus metrics: what `/metrics` serves.

Two kinds, kept apart so that the invoke path pays only for counter increments:

- **Counted as it happens** (`Metrics`): invocations, function errors, throttles, durations, init
  durations, cold starts and concurrent executions, per function, executed version and alias (""
  when the invoke did not name one), plus function URL requests. The labelled children of one
  (function, version, alias) are created once and cached in `FunctionMetrics`, so an invocation
  costs a dict lookup and a few increments: no label objects, no locks held across an await.
- **Read at scrape time** (`PlatformCollector`): execution environments by state, provisioned
  environments in use, sandbox and zygote start failures, the asynchronous queue's depth and oldest
  event, concurrency and memory limits. Nothing on the invoke path counts these; the scrape walks
  the pools once.

`docs/metrics.md` lists every metric with its labels. The exposition itself is prometheus_client's
(`choose_encoder` answers OpenMetrics to a scraper that asks for it, Prometheus text otherwise).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from lambdalet.functions import FunctionRegistry
    from lambdalet.invoke.leases import ConcurrencyLimiter
    from lambdalet.invoke.pool import Pools
    from lambdalet.invoke.types import InvocationResult
    from lambdalet.model import FunctionConfig
    from lambdalet.sandbox.base import SandboxBackend

LABELS = ("function", "version", "alias")
#: Seconds: Lambda's durations run from under a millisecond to the 900 s timeout.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    120.0, 300.0, 900.0)
INIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
ENV_STATES = ("starting", "idle", "busy", "stopping")


class FunctionMetrics:
    """The series of one (function, executed version, alias), bound once and reused."""

    __slots__ = ("invocations", "errors", "throttles", "duration", "init_duration", "cold_starts", "concurrent")

    def __init__(self, metrics: "Metrics", labels: tuple[str, str, str]) -> None:
        self.invocations = metrics.invocations.labels(*labels)
        self.errors = metrics.errors.labels(*labels)
        self.throttles = metrics.throttles.labels(*labels)
        self.duration = metrics.duration.labels(*labels)
        self.init_duration = metrics.init_duration.labels(*labels)
        self.cold_starts = metrics.cold_starts.labels(*labels)
        self.concurrent = metrics.concurrent.labels(*labels)

    def cold_start(self, init_ms: float | None) -> None:
        """An invocation waited for a new environment; `init_ms` is None when no runtime ever started."""
        self.cold_starts.inc()
        if init_ms is not None:
            self.init_duration.observe(init_ms / 1000)

    def finished(self, result: "InvocationResult", duration_ms: float) -> None:
        self.invocations.inc()
        if result.function_error:
            self.errors.inc()
        self.duration.observe(duration_ms / 1000)


class Metrics:
    def __init__(self, node: str = "") -> None:
        """`node`: the value of the `node` label every exposed sample carries ("" for none)."""
        self.registry = CollectorRegistry()
        r = self.registry
        self._exposed = r
        if node:
            self._exposed = CollectorRegistry(auto_describe=False)
            self._exposed.register(NodeLabelled(r, node))  # type: ignore[arg-type]
        self.invocations = Counter("lambdalet_invocations", "Invocations that ran (successful or with a function "
                                   "error); throttled requests are not counted.", LABELS, registry=r)
        self.errors = Counter("lambdalet_errors", "Invocations that ended in a function error (unhandled "
                              "exception, timeout, crash, out of memory, init failure).", LABELS, registry=r)
        self.throttles = Counter("lambdalet_throttles", "Invocation requests refused with "
                                 "TooManyRequestsException (sync, async attempts and function URLs).", LABELS,
                                 registry=r)
        self.duration = Histogram("lambdalet_duration_seconds", "Time the function code ran (REPORT's Duration).",
                                  LABELS, buckets=DURATION_BUCKETS, registry=r)
        self.init_duration = Histogram("lambdalet_init_duration_seconds", "Init of the environments that "
                                       "cold starts waited for (REPORT's Init Duration).", LABELS,
                                       buckets=INIT_BUCKETS, registry=r)
        self.cold_starts = Counter("lambdalet_cold_starts", "Invocations that waited for a new execution "
                                   "environment.", LABELS, registry=r)
        self.concurrent = Gauge("lambdalet_concurrent_executions", "Invocations in progress (from the "
                                "concurrency lease to the result).", LABELS, registry=r)
        self.url_requests = Counter("lambdalet_function_url_requests", "Requests to function URLs, by the URL's "
                                    "qualifier and the HTTP status answered.", ("function", "alias", "code"),
                                    registry=r)
        self.async_dropped = Counter("lambdalet_async_events_dropped", "Asynchronous events given up on, by "
                                     "condition: RetriesExhausted or EventAgeExceeded (AsyncEventsDropped).",
                                     ("function", "condition"), registry=r)
        self.recursive_dropped = Counter("lambdalet_recursive_invocations_dropped", "Invocations stopped "
                                         "because their event had invoked the function in a recursive loop 16 "
                                         "times (RecursiveInvocationsDropped).", ("function",), registry=r)
        self.destination_failures = Counter("lambdalet_destination_delivery_failures", "Invocation records that "
                                            "could not be delivered to a destination (DestinationDeliveryFailures).",
                                            ("function",), registry=r)
        self.dead_letter_errors = Counter("lambdalet_dead_letter_errors", "Events that could not be sent to the "
                                          "dead-letter queue (DeadLetterErrors).", ("function",), registry=r)
        self.mapping_records = Counter("lambdalet_event_source_mapping_records", "Records of an event source "
                                       "mapping, by what became of them: polled (read from the source), filtered "
                                       "(matched no filter: deleted or skipped), delivered (in a batch the function "
                                       "processed), failed (in a batch or item that failed).",
                                       ("mapping", "function", "outcome"), registry=r)
        self.mapping_poll_latency = Histogram("lambdalet_event_source_mapping_poll_seconds", "How long one read "
                                              "of an event source mapping's source took (SQS ReceiveMessage, "
                                              "Kinesis/DynamoDB GetRecords; long polls included).", ("mapping",),
                                              buckets=DURATION_BUCKETS, registry=r)
        self._labelled = (self.invocations, self.errors, self.throttles, self.duration, self.init_duration,
                          self.cold_starts, self.concurrent)
        self._functions: dict[tuple[str, str, str], FunctionMetrics] = {}
        self._urls: dict[tuple[str, str, int], object] = {}
        ProcessCollector(registry=r)

    def of(self, config: "FunctionConfig", alias: str) -> FunctionMetrics:
        """The series an invocation of `config` through `alias` ("" for none) counts in; O(1)."""
        key = (config.name, config.version, alias)
        bound = self._functions.get(key)
        if bound is None:
            bound = self._functions[key] = FunctionMetrics(self, key)
        return bound

    def url_request(self, function: str, alias: str, status: int) -> None:
        key = (function, alias, status)
        child = self._urls.get(key)
        if child is None:
            child = self._urls[key] = self.url_requests.labels(function, alias, str(status))
        child.inc()  # type: ignore[attr-defined]

    def forget(self, function: str, qualifier: str | None = None) -> None:
        """Drop the series of a deleted function (`qualifier` None), version or alias. An invocation
        still running keeps counting into its detached children, which are no longer exposed."""
        for key in [k for k in self._functions if k[0] == function and qualifier in (None, k[1], k[2])]:
            del self._functions[key]
            for metric in self._labelled:
                metric.remove(*key)
        for url_key in [k for k in self._urls if k[0] == function and qualifier in (None, k[1])]:
            del self._urls[url_key]
            self.url_requests.remove(url_key[0], url_key[1], str(url_key[2]))
        if qualifier is None:
            for condition in ("RetriesExhausted", "EventAgeExceeded", "RecursiveInvocationDetected"):
                _remove_if_present(self.async_dropped, function, condition)
            _remove_if_present(self.destination_failures, function)
            _remove_if_present(self.recursive_dropped, function)
            _remove_if_present(self.dead_letter_errors, function)

    def expose(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition (body, content type) in the format the scraper's Accept header prefers."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self._exposed), content_type


class NodeLabelled:
    """A registry's metrics with a `node` label on every sample, added as a scrape reads them (a
    Prometheus scraping several nodes tells their series apart; the invoke path pays nothing)."""

    def __init__(self, registry: CollectorRegistry, node: str) -> None:
        self._registry, self._node = registry, node

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            labelled = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            labelled.samples = [sample._replace(labels={**sample.labels, "node": self._node})
                                for sample in metric.samples]
            yield labelled


def _remove_if_present(metric: Counter, *labels: str) -> None:
    try:
        metric.remove(*labels)
    except KeyError:
        pass


class PlatformCollector:
    """Gauges and counters computed when scraped, from the pools, limits and sandbox backend."""

    def __init__(self, pools: "Pools", limiter: "ConcurrencyLimiter", functions: "FunctionRegistry",
                 sandbox: "SandboxBackend") -> None:
        self._pools = pools
        self._limiter = limiter
        self._functions = functions
        self._sandbox = sandbox
        #: The asynchronous queue's depth by function: (events, enqueue time of the oldest), read from
        #: the database by the /metrics handler just before each scrape (it must not block the loop).
        self.queue_depth: dict[str, tuple[int, float | None]] = {}

    def collect(self) -> Iterator[Metric]:
        by_version = GaugeMetricFamily("lambdalet_execution_environments", "Execution environments of existing "
                                       "functions by version and state.", labels=("function", "version", "state"))
        provisioned = GaugeMetricFamily("lambdalet_provisioned_environments", "Provisioned-concurrency "
                                        "environments, initialised (allocated) and running an invocation (in_use).",
                                        labels=("function", "version", "use"))
        platform = GaugeMetricFamily("lambdalet_environments", "Every execution environment on this server by "
                                     "state, including those of retired configurations and deleted functions.",
                                     labels=("state",))
        totals = dict.fromkeys(ENV_STATES, 0)
        for (name, version), census in sorted(self._pools.census().items()):
            for state in ENV_STATES:
                totals[state] += census.states[state]
            if not self._functions.exists(name):
                continue
            for state in ENV_STATES:
                by_version.add_metric((name, version, state), census.states[state])
            if census.provisioned or census.provisioned_busy:
                provisioned.add_metric((name, version, "allocated"), census.provisioned)
                provisioned.add_metric((name, version, "in_use"), census.provisioned_busy)
        for state, n in totals.items():
            platform.add_metric((state,), n)
        yield from (by_version, provisioned, platform)

        depth = GaugeMetricFamily("lambdalet_async_queue_depth", "Asynchronous events stored and not yet done "
                                  "with, by function.", labels=("function",))
        age = GaugeMetricFamily("lambdalet_async_queue_oldest_age_seconds", "Age of the oldest stored "
                                "asynchronous event, by function.", labels=("function",))
        now = time.time()
        for name, (events, oldest) in sorted(self.queue_depth.items()):
            if not self._functions.exists(name):
                continue
            depth.add_metric((name,), events)
            if oldest is not None:
                age.add_metric((name,), max(0.0, now - oldest))
        yield from (depth, age)

        limiter = self._limiter
        yield GaugeMetricFamily("lambdalet_account_concurrency_limit", "The account's concurrent-execution limit.",
                                value=limiter.account_limit)
        yield GaugeMetricFamily("lambdalet_unreserved_concurrency_limit", "Concurrency left to functions without "
                                "a reservation.", value=limiter.unreserved_limit)
        reserved = GaugeMetricFamily("lambdalet_reserved_concurrency", "Reserved concurrency by function.",
                                     labels=("function",))
        for name, n in sorted(limiter.reserved.items()):
            reserved.add_metric((name,), n)
        yield reserved
        budget = self._pools.budget
        yield GaugeMetricFamily("lambdalet_memory_budget_bytes", "Most MemorySize all environments together "
                                "may have.", value=budget.limit_mb * 2**20)
        yield GaugeMetricFamily("lambdalet_memory_budget_used_bytes", "MemorySize of the environments that exist.",
                                value=budget.used_mb * 2**20)

        counts = self._sandbox.counts
        backend = (self._sandbox.name,)
        for name, help_text, value in (
            ("lambdalet_sandbox_starts", "Runtime processes the sandbox backend was asked to start.", counts.starts),
            ("lambdalet_sandbox_start_failures", "Runtime processes the sandbox backend failed to start (not "
             "function init errors).", counts.start_failures),
            ("lambdalet_zygote_starts", "Zygotes (fork servers) started.", counts.zygote_starts),
            ("lambdalet_zygote_start_failures", "Zygotes (fork servers) that failed to start.",
             counts.zygote_start_failures),
            ("lambdalet_zygote_exits", "Zygotes (fork servers) that exited while in use, taking their "
             "environments with them.", counts.zygote_exits),
        ):
            family = CounterMetricFamily(name, help_text, labels=("backend",))
            family.add_metric(backend, value)
            yield family
