"""Per experiment metric: the PromQL that reads each arm's sufficient statistics over the experiment's window, and
how they become an `Arm` (count, mean, variance).

Latency histograms: the mean is `_sum / _count` (exact) and the variance comes from the buckets (grouped data,
`stats.histogram_moments`), because a Prometheus histogram keeps no sum of squares and the buckets are the only
trace of the spread. Time per output token is observed per token, but tokens of one request (and one batch) are
not independent: its unit is the request (e2e count), with the per-token variance, which bounds the variance of a
request's mean token time from above. Error, task-success and refusal rates are proportions; the feedback score
is a bounded mean whose variance is its Bhatia-Davis bound; cost per million tokens is a ratio of time series,
judged by batch means (one batch per `COST_BATCHES`-th of the window: Schmeiser, "Batch Size Effects in the
Analysis of Simulation Output", Operations Research 30(3), 1982).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from llmplane.monitoring import vllm_metrics as vm

from . import stats

# The feedback service's series (components/serving/scripts/feedback_server.py), named once, from the catalog.
FEEDBACK_TOTAL = vm.FEEDBACK_TOTAL.name
"""Counter of labelled feedback, labels model, version, tenant, label."""
FEEDBACK_SCORE_SUM = f"{vm.FEEDBACK_SCORE.name}_sum"
FEEDBACK_SCORE_COUNT = f"{vm.FEEDBACK_SCORE.name}_count"
"""Sum and count of posted scores, labels model, version, tenant."""
FEEDBACK_LABEL = "label"
SUCCESS, FAILURE, REFUSAL = vm.FEEDBACK_OUTCOMES
"""Label values: task success or failure, and a refusal (a safety signal)."""
FEEDBACK_SCORE_RANGE = (0.0, 1.0)
"""The service accepts scores from 0 to 1; the bound gives the score's variance (Bhatia-Davis)."""

COST_BATCHES = 24
"""Batches the window is cut into for cost per million tokens."""


class Prometheus(Protocol):
    """What the metrics need from Prometheus: instant and range queries, samples as (labels, value)."""

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]: ...

    def query_range(self, expr: str, seconds: float, step: float) -> list[tuple[dict[str, str], list[float]]]: ...


@dataclass(frozen=True)
class Context:
    """Where and how long to read: the model's label selector (model and the arms' versions) and the window."""

    model: str
    versions: tuple[str, ...]
    window_seconds: float
    replica_hour_usd: float

    def selector(self, extra: str = "") -> str:
        versions = "|".join(v.replace(".", "\\\\.") for v in self.versions)
        return f'{{{vm.MODEL_LABEL}="{self.model}",{vm.VERSION_LABEL}=~"{versions}"{extra}}}'

    def window(self) -> str:
        return f"{int(self.window_seconds)}s"


def increase_by(series: str, ctx: Context, by: str = "", extra: str = "") -> str:
    """Each arm's increase of a counter over the window (counter resets handled by `increase`)."""
    labels = ", ".join([vm.VERSION_LABEL, *([by] if by else [])])
    return f"sum by ({labels}) (increase({series}{ctx.selector(extra)}[{ctx.window()}]))"


@dataclass(frozen=True)
class Definition:
    """One experiment metric: which way is better, whether it is a proportion, the counter that counts its units,
    and its reader."""

    title: str
    unit: str
    lower_is_better: bool
    bernoulli: bool
    unit_series: str
    unit_extra: str
    read: Callable[[Prometheus, Context], dict[str, stats.Arm]]


def _by_version(samples: list[tuple[dict[str, str], float]]) -> dict[str, float]:
    return {labels.get(vm.VERSION_LABEL, ""): value for labels, value in samples}


def _histogram(name: str, units_from: str | None = None) -> Callable[[Prometheus, Context], dict[str, stats.Arm]]:
    """Mean from sum/count, variance from the buckets; `units_from` counts the units when they are not the
    histogram's own observations."""

    def read(prom: Prometheus, ctx: Context) -> dict[str, stats.Arm]:
        counts = _by_version(prom.query(increase_by(f"{name}_count", ctx)))
        sums = _by_version(prom.query(increase_by(f"{name}_sum", ctx)))
        buckets: dict[str, dict[float, float]] = {}
        for labels, value in prom.query(increase_by(f"{name}_bucket", ctx, by="le")):
            buckets.setdefault(labels[vm.VERSION_LABEL], {})[float(labels["le"])] = value
        units = _by_version(prom.query(increase_by(units_from, ctx))) if units_from else counts
        arms = {}
        for version in ctx.versions:
            edges = sorted(buckets.get(version, {}))
            finite = [e for e in edges if e != float("inf")]
            if not finite or counts.get(version, 0) <= 0:
                arms[version] = stats.Arm(0.0, float("nan"), float("nan"))
                continue
            moments = stats.histogram_moments(finite, [buckets[version][e] for e in edges], sums.get(version, 0.0),
                                              counts[version])
            arms[version] = stats.Arm(units.get(version, 0.0), moments.mean, moments.variance)
        return arms

    return read


def _errors(prom: Prometheus, ctx: Context) -> dict[str, stats.Arm]:
    """Requests finished with `error` among all finished (vLLM's finished_reason)."""
    total: dict[str, float] = {}
    failed: dict[str, float] = {}
    for labels, value in prom.query(increase_by(vm.REQUEST_SUCCESS.name, ctx, by="finished_reason")):
        version = labels[vm.VERSION_LABEL]
        total[version] = total.get(version, 0.0) + value
        if labels.get("finished_reason") == "error":
            failed[version] = failed.get(version, 0.0) + value
    return {v: stats.proportion(failed.get(v, 0.0), total.get(v, 0.0)) for v in ctx.versions}


def _feedback(hit: str, among: tuple[str, ...] | None) -> Callable[[Prometheus, Context], dict[str, stats.Arm]]:
    """Feedback labelled `hit` among feedback labelled `among` (every label when None)."""

    def read(prom: Prometheus, ctx: Context) -> dict[str, stats.Arm]:
        total: dict[str, float] = {}
        hits: dict[str, float] = {}
        for labels, value in prom.query(increase_by(FEEDBACK_TOTAL, ctx, by=FEEDBACK_LABEL)):
            version, label = labels[vm.VERSION_LABEL], labels.get(FEEDBACK_LABEL)
            if among is None or label in among:
                total[version] = total.get(version, 0.0) + value
            if label == hit:
                hits[version] = hits.get(version, 0.0) + value
        return {v: stats.proportion(hits.get(v, 0.0), total.get(v, 0.0)) for v in ctx.versions}

    return read


def _score(prom: Prometheus, ctx: Context) -> dict[str, stats.Arm]:
    sums = _by_version(prom.query(increase_by(FEEDBACK_SCORE_SUM, ctx)))
    counts = _by_version(prom.query(increase_by(FEEDBACK_SCORE_COUNT, ctx)))
    return {v: stats.bounded_mean(sums.get(v, 0.0), counts.get(v, 0.0), *FEEDBACK_SCORE_RANGE) for v in ctx.versions}


def _cost(prom: Prometheus, ctx: Context) -> dict[str, stats.Arm]:
    """Per batch: the arm's scraped replicas x their hourly price x the batch's hours, over its generated tokens."""
    step = ctx.window_seconds / COST_BATCHES
    tokens = prom.query_range(f"sum by ({vm.VERSION_LABEL}) (increase({vm.GENERATION_TOKENS.name}"
                              f"{ctx.selector()}[{int(step)}s]))", ctx.window_seconds, step)
    replicas = prom.query_range(f"count by ({vm.VERSION_LABEL}) ({vm.NUM_REQUESTS_RUNNING.name}{ctx.selector()})",
                                ctx.window_seconds, step)
    pods = {labels[vm.VERSION_LABEL]: values for labels, values in replicas}
    arms = {v: stats.Arm(0.0, float("nan"), float("nan")) for v in ctx.versions}
    for labels, values in tokens:
        version = labels[vm.VERSION_LABEL]
        batches = [count * ctx.replica_hour_usd * step / 3600 / made * 1e6
                   for made, count in zip(values, pods.get(version, [])) if made > 0]
        if len(batches) >= 2:
            mean = sum(batches) / len(batches)
            variance = sum((b - mean) ** 2 for b in batches) / (len(batches) - 1)
            arms[version] = stats.Arm(float(len(batches)), mean, variance)
    return arms


DEFINITIONS: dict[str, Definition] = {
    "ttft": Definition("time to first token", "s", True, False, f"{vm.TIME_TO_FIRST_TOKEN.name}_count", "",
                       _histogram(vm.TIME_TO_FIRST_TOKEN.name)),
    "time_per_output_token": Definition(
        "time per output token", "s", True, False, f"{vm.E2E_REQUEST_LATENCY.name}_count", "",
        _histogram(vm.INTER_TOKEN_LATENCY.name, units_from=f"{vm.E2E_REQUEST_LATENCY.name}_count")),
    "e2e_latency": Definition("end-to-end latency", "s", True, False, f"{vm.E2E_REQUEST_LATENCY.name}_count", "",
                              _histogram(vm.E2E_REQUEST_LATENCY.name)),
    "error_rate": Definition("error rate", "", True, True, vm.REQUEST_SUCCESS.name, "", _errors),
    "cost_per_million_tokens": Definition("cost per million tokens", "USD", True, False, "", "", _cost),
    "feedback_score": Definition("feedback score", "", False, False, FEEDBACK_SCORE_COUNT, "", _score),
    "task_success": Definition("task success", "", False, True, FEEDBACK_TOTAL,
                               f',{FEEDBACK_LABEL}=~"{SUCCESS}|{FAILURE}"', _feedback(SUCCESS, (SUCCESS, FAILURE))),
    "refusal_rate": Definition("refusal rate", "", True, True, FEEDBACK_TOTAL, "", _feedback(REFUSAL, None)),
}
"""Every ExperimentMetric of the spec (tests check the two lists agree)."""


def daily_units(prom: Prometheus, ctx: Context, metric: str, rate_seconds: float) -> dict[str, float]:
    """Units per day each arm gets at its current rate (the last `rate_seconds`); cost's units are its batches."""
    definition = DEFINITIONS[metric]
    if not definition.unit_series:
        return dict.fromkeys(ctx.versions, 86_400 * COST_BATCHES / ctx.window_seconds)
    expr = (f"sum by ({vm.VERSION_LABEL}) (rate({definition.unit_series}{ctx.selector(definition.unit_extra)}"
            f"[{int(rate_seconds)}s])) * 86400")
    return _by_version(prom.query(expr))


def elapsed_seconds(prom: Prometheus, ctx: Context) -> dict[str, float]:
    """How long each arm has had traffic within the window: now less the first step its requests were seen."""
    step = max(1, int(ctx.window_seconds / 300))
    series = f"{vm.E2E_REQUEST_LATENCY.name}_count{ctx.selector()}"
    expr = (f"time() - min_over_time(timestamp(sum by ({vm.VERSION_LABEL}) ({series}))"
            f"[{ctx.window()}:{step}s])")
    return _by_version(prom.query(expr))
