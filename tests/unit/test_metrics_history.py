"""The console's history of a function's metrics, sampled from the real Prometheus series."""

from __future__ import annotations

from lambdalet.invoke.types import InvocationResult
from lambdalet.metrics import Metrics
from lambdalet.metrics_history import MetricsHistory, quantile
from lambdalet.model import FunctionConfig


def _config(version: str = "$LATEST") -> FunctionConfig:
    return FunctionConfig(name="fn", runtime="python3.12", handler="app.handler", role="arn:aws:iam::000000000000:role/r",
                          code_sha256="0" * 64, code_size=1, version=version)


def test_samples_count_what_changed_and_steps_add_them_up():
    metrics = Metrics()
    history = MetricsHistory(metrics)
    counted = metrics.of(_config(), "")
    for duration_ms in (1.0, 2.0, 3.0, 40.0):
        counted.finished(InvocationResult(b"{}"), duration_ms)
    counted.finished(InvocationResult(b"{}", function_error=True), 5.0)
    counted.throttles.inc()
    counted.cold_start(120.0)
    history.sample(now=1000.0)
    metrics.of(_config("1"), "live").finished(InvocationResult(b"{}"), 1.0)
    history.sample(now=1010.0)
    history.sample(now=1020.0)  # nothing happened: no sample kept

    series = history.series("fn", 900, now=1025.0)
    assert series["stepSeconds"] == 10.0 and len(series["points"]) == 90
    busy = [p for p in series["points"] if p["invocations"]]
    assert [(p["invocations"], p["errors"], p["throttles"], p["coldStarts"]) for p in busy] == [(5, 1, 1, 1), (1, 0, 0, 0)]
    assert 1.0 <= busy[0]["durationP50Ms"] <= 5.0 and 25.0 <= busy[0]["durationP99Ms"] <= 50.0
    assert series["qualifiers"] == ["$LATEST", "1", "live"]
    only_alias = history.series("fn", 900, qualifier="live", now=1025.0)
    assert sum(p["invocations"] for p in only_alias["points"]) == 1
    assert history.series("fn", 86400, now=1025.0)["stepSeconds"] == 300.0
    assert sum(p["invocations"] for p in history.series("fn", 900, now=1000.0 + 86400 + 100)["points"]) == 0  # aged out


def test_quantiles_interpolate_within_their_bucket():
    buckets = [0.0] * 19
    buckets[1] = 10.0  # ten observations between 1 and 2.5 ms
    assert abs(quantile(0.5, buckets) - 0.00175) < 1e-9
    assert quantile(0.5, [0.0] * 19) is None
