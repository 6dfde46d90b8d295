"""Metrics: bound series are cached per (function, version, alias) and forgotten on deletion."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from lambdalet.invoke.types import InvocationResult
from lambdalet.metrics import Metrics
from lambdalet.model import alias_of


def config(name: str, version: str = "$LATEST"):
    return SimpleNamespace(name=name, version=version)


def samples(metrics: Metrics, name: str) -> dict[tuple, float]:
    body, _ = metrics.expose(None)
    return {tuple(sorted(s.labels.items())): s.value for family in text_string_to_metric_families(body.decode())
            for s in family.samples if s.name == name}


def test_series_are_bound_once_per_function_version_and_alias():
    metrics = Metrics()
    first = metrics.of(config("f", "1"), "live")
    assert metrics.of(config("f", "1"), "live") is first
    assert metrics.of(config("f", "1"), "") is not first
    assert metrics.of(config("f", "2"), "live") is not first


def test_an_invocation_counts_once_with_its_duration_and_error():
    metrics = Metrics()
    counted = metrics.of(config("f"), "")
    counted.cold_start(120.0)
    counted.finished(InvocationResult(b"{}"), 2.0)
    counted.finished(InvocationResult(b"{}", function_error=True), 30.0)
    key = (("alias", ""), ("function", "f"), ("version", "$LATEST"))
    assert samples(metrics, "lambdalet_invocations_total")[key] == 2
    assert samples(metrics, "lambdalet_errors_total")[key] == 1
    assert samples(metrics, "lambdalet_duration_seconds_count")[key] == 2
    assert abs(samples(metrics, "lambdalet_duration_seconds_sum")[key] - 0.032) < 1e-9
    assert samples(metrics, "lambdalet_init_duration_seconds_sum")[key] == 0.12
    assert samples(metrics, "lambdalet_cold_starts_total")[key] == 1


def test_a_cold_start_without_an_init_has_no_init_duration():
    metrics = Metrics()
    metrics.of(config("f"), "").cold_start(None)
    key = (("alias", ""), ("function", "f"), ("version", "$LATEST"))
    assert samples(metrics, "lambdalet_cold_starts_total")[key] == 1
    assert samples(metrics, "lambdalet_init_duration_seconds_count")[key] == 0


def test_forget_drops_a_function_a_version_or_an_alias_and_nothing_else():
    metrics = Metrics()
    for name, version, alias in (("f", "$LATEST", ""), ("f", "1", "live"), ("f", "2", ""), ("g", "1", "live")):
        metrics.of(config(name, version), alias).invocations.inc()
    metrics.url_request("f", "live", 200)
    metrics.url_request("g", "", 502)

    def present() -> set[tuple[str, str, str]]:
        return {(dict(k)["function"], dict(k)["version"], dict(k)["alias"])
                for k in samples(metrics, "lambdalet_invocations_total")}

    metrics.forget("f", "live")
    assert present() == {("f", "$LATEST", ""), ("f", "2", ""), ("g", "1", "live")}
    assert [dict(k)["function"] for k in samples(metrics, "lambdalet_function_url_requests_total")] == ["g"]
    metrics.forget("f", "2")
    assert present() == {("f", "$LATEST", ""), ("g", "1", "live")}
    stale = metrics.of(config("g", "1"), "live")
    metrics.forget("g")
    assert present() == {("f", "$LATEST", "")}
    stale.invocations.inc()  # an invocation still running when its function went: not exposed again
    assert present() == {("f", "$LATEST", "")}
    assert metrics.of(config("g", "1"), "live") is not stale


def test_alias_of_names_only_aliases():
    assert [alias_of(q) for q in (None, "", "$LATEST", "7", "live", "v2")] == ["", "", "", "", "live", "v2"]


def test_a_node_labels_every_sample_it_exposes_in_either_format():
    metrics = Metrics("node-a")
    metrics.of(config("f", "1"), "live").invocations.inc()
    for accept in (None, "application/openmetrics-text; version=1.0.0"):
        body, _ = metrics.expose(accept)
        parse = text_string_to_metric_families if accept is None else openmetrics_families
        found = [s for family in parse(body.decode()) for s in family.samples]
        assert found and all(s.labels.get("node") == "node-a" for s in found)
        assert any(s.name == "lambdalet_invocations_total" and s.value == 1 and s.labels["alias"] == "live"
                   for s in found)
    unlabelled = Metrics()
    unlabelled.of(config("f"), "").invocations.inc()
    assert [dict(key) for key in samples(unlabelled, "lambdalet_invocations_total")] == [
        {"function": "f", "version": "$LATEST", "alias": ""}]
