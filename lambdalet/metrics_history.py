"""What the console charts: each function's metrics over the last 24 hours.

A sampler reads the Prometheus series `metrics.py` already counts (through prometheus_client's
public `collect()`) every 10 s and keeps, per (function, version, alias), what changed since the
previous sample: invocations, errors, throttles, cold starts, the duration histogram's buckets,
and the concurrent executions at that moment. The invoke path pays nothing for it. A sample is
kept only when something happened (or executions were running), so an idle function costs no
memory; samples older than 24 h are dropped. The history lives in this process's memory: a
restart starts it again (the Prometheus counters restart too). Each node of a cluster keeps its
own, and the console's chart adds up every live node's `steps` (console/__init__.py).

`steps()` adds samples up into steps (10 s over the last hour, 1 or 5 minutes beyond); `render()`
charts them, estimating p50/p99 durations from the bucket counts as Prometheus's
`histogram_quantile` does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from lambdalet.metrics import DURATION_BUCKETS, Metrics

INTERVAL_S = 10.0
KEEP_S = 24 * 3600
Key = tuple[str, str, str]  # function, version, alias


@dataclass
class Sample:
    at: float
    invocations: float = 0.0
    errors: float = 0.0
    throttles: float = 0.0
    cold_starts: float = 0.0
    concurrent: float = 0.0
    buckets: list[float] = field(default_factory=lambda: [0.0] * (len(DURATION_BUCKETS) + 1))

    @property
    def empty(self) -> bool:
        return not (self.invocations or self.errors or self.throttles or self.cold_starts or self.concurrent)


def _totals(metric: Any, suffix: str) -> dict[Key, float]:
    values: dict[Key, float] = {}
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith(suffix):
                labels = sample.labels
                values[(labels["function"], labels["version"], labels["alias"])] = sample.value
    return values


def _bucket_totals(metric: Any) -> dict[Key, list[float]]:
    """Cumulative bucket counts per series, in DURATION_BUCKETS order then +Inf."""
    bounds = {str(float(b)): i for i, b in enumerate(DURATION_BUCKETS)}
    out: dict[Key, list[float]] = {}
    for family in metric.collect():
        for sample in family.samples:
            if not sample.name.endswith("_bucket"):
                continue
            labels = sample.labels
            key = (labels["function"], labels["version"], labels["alias"])
            index = bounds.get(str(float(labels["le"])), len(DURATION_BUCKETS))
            out.setdefault(key, [0.0] * (len(DURATION_BUCKETS) + 1))[index] = sample.value
    return out


def quantile(q: float, buckets: list[float]) -> float | None:
    """The q-quantile (seconds) of per-bucket counts (not cumulative), interpolated within its
    bucket as histogram_quantile does; None without observations."""
    total = sum(buckets)
    if total <= 0:
        return None
    rank, seen = q * total, 0.0
    for index, count in enumerate(buckets):
        if seen + count >= rank and count > 0:
            lower = DURATION_BUCKETS[index - 1] if index > 0 else 0.0
            if index >= len(DURATION_BUCKETS):
                return DURATION_BUCKETS[-1]
            upper = DURATION_BUCKETS[index]
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    return DURATION_BUCKETS[-1]


class MetricsHistory:
    def __init__(self, metrics: Metrics, interval_s: float = INTERVAL_S, keep_s: float = KEEP_S) -> None:
        self._metrics = metrics
        self.interval_s, self._keep_s = interval_s, keep_s
        self._last: dict[Key, tuple[float, float, float, float, list[float]]] = {}
        self._samples: dict[Key, deque[Sample]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.sample()

    def sample(self, now: float | None = None) -> None:
        """Take one sample of every series (what changed since the last one)."""
        now = time.time() if now is None else now
        m = self._metrics
        invocations, errors = _totals(m.invocations, "_total"), _totals(m.errors, "_total")
        throttles, cold = _totals(m.throttles, "_total"), _totals(m.cold_starts, "_total")
        concurrent, buckets = _totals(m.concurrent, "executions"), _bucket_totals(m.duration)
        for key in set(invocations) | set(throttles) | set(concurrent):
            current = (invocations.get(key, 0.0), errors.get(key, 0.0), throttles.get(key, 0.0), cold.get(key, 0.0),
                       buckets.get(key, [0.0] * (len(DURATION_BUCKETS) + 1)))
            last = self._last.get(key)
            self._last[key] = current
            if last is None:
                last = (0.0, 0.0, 0.0, 0.0, [0.0] * (len(DURATION_BUCKETS) + 1))
            cumulative = [max(0.0, c - p) for c, p in zip(current[4], last[4])]
            per_bucket = [cumulative[0]] + [max(0.0, cumulative[i] - cumulative[i - 1]) for i in range(1, len(cumulative))]
            sample = Sample(now, *(max(0.0, c - p) for c, p in zip(current[:4], last[:4])),
                            concurrent=concurrent.get(key, 0.0), buckets=per_bucket)
            if not sample.empty:
                self._samples.setdefault(key, deque()).append(sample)
        horizon = now - self._keep_s
        for key, samples in list(self._samples.items()):
            while samples and samples[0].at < horizon:
                samples.popleft()
            if not samples:
                del self._samples[key]

    def qualifiers(self, function: str) -> list[str]:
        """The versions and aliases the function's history has (for the console's picker)."""
        names = {part for key in self._samples if key[0] == function for part in key[1:] if part}
        return sorted(names)

    def steps(self, function: str, period_s: float, qualifier: str = "", now: float | None = None) -> dict[str, Any]:
        """The function's samples of the last `period_s` seconds (ending `now`) added up into steps,
        all versions and aliases together or those of one (`qualifier`: a version or an alias), as
        JSON: what `render` charts, and what one node of a cluster sends another (the same `now`
        gives every node the same steps)."""
        now = time.time() if now is None else now
        self.sample(now)  # what happened since the last sample counts too: the charts are live
        step = self.interval_s if period_s <= 3600 else 60.0 if period_s <= 6 * 3600 else 300.0
        count = max(1, math.ceil(period_s / step))
        start = now - count * step
        steps = [Sample(start + (i + 1) * step) for i in range(count)]
        for key, samples in self._samples.items():
            if key[0] != function or (qualifier and qualifier not in (key[1], key[2])):
                continue
            for sample in samples:
                if sample.at <= start:
                    continue
                into = steps[min(count - 1, int((sample.at - start) // step))]
                into.invocations += sample.invocations
                into.errors += sample.errors
                into.throttles += sample.throttles
                into.cold_starts += sample.cold_starts
                into.buckets = [a + b for a, b in zip(into.buckets, sample.buckets)]
                into.concurrent = max(into.concurrent, sample.concurrent)  # the step's peak
        return {"stepSeconds": step, "qualifiers": self.qualifiers(function),
                "steps": [dataclasses.asdict(into) for into in steps]}

    def series(self, function: str, period_s: float, qualifier: str = "", now: float | None = None) -> dict[str, Any]:
        """This node's chart of the function (`render` of its own `steps`)."""
        return render(function, qualifier, period_s, [self.steps(function, period_s, qualifier, now)])


def render(function: str, qualifier: str, period_s: float, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The console's chart from the `steps` of one node or several: counts and buckets add up (the
    percentiles are the cluster's), and so do the nodes' concurrency peaks (at most the cluster's
    peak, as the nodes' peaks within a step may not coincide)."""
    first = parts[0]
    merged = [Sample(**step) for step in first["steps"]]
    for part in parts[1:]:
        for into, step in zip(merged, part["steps"]):
            into.invocations += step["invocations"]
            into.errors += step["errors"]
            into.throttles += step["throttles"]
            into.cold_starts += step["cold_starts"]
            into.concurrent += step["concurrent"]
            into.buckets = [a + b for a, b in zip(into.buckets, step["buckets"])]
    points = []
    for into in merged:
        p50, p99 = quantile(0.5, into.buckets), quantile(0.99, into.buckets)
        points.append({"time": round(into.at * 1000), "invocations": into.invocations, "errors": into.errors,
                       "throttles": into.throttles, "coldStarts": into.cold_starts, "concurrent": into.concurrent,
                       "durationP50Ms": None if p50 is None else round(p50 * 1000, 3),
                       "durationP99Ms": None if p99 is None else round(p99 * 1000, 3)})
    qualifiers = sorted({name for part in parts for name in part["qualifiers"]})
    return {"function": function, "qualifier": qualifier, "periodSeconds": period_s,
            "stepSeconds": first["stepSeconds"], "qualifiers": qualifiers, "points": points}
