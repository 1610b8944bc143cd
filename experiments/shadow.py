"""Shadow evaluation from Prometheus: what the shadow comparator (components/serving/scripts/shadow_compare.py)
measured of a shadow version against stable on the same mirrored requests, summarised per metric.

Per arm: mean latency, mean output tokens and refusal rate, each with its always-valid interval, and the shadow's
change against stable judged by the mSPRT (`stats`, as the experiment report judges its arms). Per pair: the
exact-agreement rate and the mean token-level ROUGE-L similarity, for greedy requests (temperature 0, where equal
versions answer alike, so disagreement is the versions' own), sampled ones, and all.

The two arms answer the same requests, so their measurements are paired; they are judged here as independent
samples, which overstates the variance of the change when the arms are positively correlated (a long prompt is
slow on both): the intervals err on the wide side. Latency and similarity variances come from the histograms'
buckets (`stats.histogram_moments`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmplane.monitoring import vllm_metrics as vm

from . import stats
from .metrics import Prometheus

LATENCY = "llmplane_shadow_latency_seconds"
OUTPUT_TOKENS = "llmplane_shadow_output_tokens"
REFUSALS = "llmplane_shadow_refusals_total"
EXACT = "llmplane_shadow_exact_agreements_total"
SIMILARITY = "llmplane_shadow_similarity"
MIRRORED = "llmplane_shadow_mirrored_requests_total"
ERRORS = "llmplane_shadow_arm_errors_total"
"""The comparator's series; `model` and `version` (the shadow's) are its own labels."""
ARM_LABEL, DECODING_LABEL = "arm", "decoding"
STABLE, SHADOW = "stable", "shadow"
DECODINGS = ("greedy", "sampled")
ALL = "all"
"""The agreement over every compared pair, beside each decoding's."""


@dataclass(frozen=True)
class Estimate:
    """A mean or a rate over n units, with its always-valid interval [low, high] at the summary's alpha."""

    n: float
    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class ArmMetric:
    """A metric both arms are measured on: each arm's estimate and the shadow's change against stable."""

    name: str
    title: str
    unit: str
    lower_is_better: bool
    stable: Estimate
    shadow: Estimate
    change: stats.Sequential
    """shadow / stable - 1, or shadow - stable when `absolute` (stable's mean is 0: no ratio exists)."""
    absolute: bool


@dataclass(frozen=True)
class Agreement:
    """How alike the two arms' answers are over `pairs` compared requests."""

    pairs: float
    exact: Estimate
    """Share of pairs whose answers are equal."""
    similarity: Estimate
    """Mean token-level ROUGE-L F1 (1: same words in the same order)."""


@dataclass(frozen=True)
class ShadowSummary:
    """A shadow version against stable over one window."""

    model: str
    shadow: str
    window_seconds: float
    mirrored: dict[str, float]
    """Mirrored requests of the model by outcome: queued, dropped (queue full), skipped_*, failed."""
    errors: dict[str, float]
    """Calls per arm that failed or timed out (their requests are not compared)."""
    metrics: list[ArmMetric]
    agreement: dict[str, Agreement]
    """Per decoding (greedy, sampled) and over all pairs."""


def _selector(model: str, shadow: str) -> str:
    return f'{{{vm.MODEL_LABEL}="{model}",{vm.VERSION_LABEL}="{shadow}"}}'


def _increase(prom: Prometheus, series: str, selector: str, by: str, window: str) -> dict[str, float]:
    return {labels.get(by, ""): value
            for labels, value in prom.query(f"sum by ({by}) (increase({series}{selector}[{window}]))")}


def _histograms(prom: Prometheus, name: str, selector: str, by: str, window: str) -> dict[str, stats.Arm]:
    """Count, mean and bucket variance of a histogram per value of `by` over the window."""
    counts = _increase(prom, f"{name}_count", selector, by, window)
    sums = _increase(prom, f"{name}_sum", selector, by, window)
    buckets: dict[str, dict[float, float]] = {}
    for labels, value in prom.query(f"sum by ({by}, le) (increase({name}_bucket{selector}[{window}]))"):
        buckets.setdefault(labels.get(by, ""), {})[float(labels["le"])] = value
    moments = {}
    for key, count in counts.items():
        edges = sorted(buckets.get(key, {}))
        finite = [e for e in edges if e != math.inf]
        if count > 0 and finite:
            moments[key] = stats.histogram_moments(finite, [buckets[key][e] for e in edges], sums.get(key, 0.0),
                                                   count)
    return moments


def _estimate(arm: stats.Arm, mde: float, alpha: float, high: float = math.inf) -> Estimate:
    """The arm's mean with its always-valid interval, cut to the values the quantity can take ([0, high]): the
    cut interval covers whenever the uncut one does."""
    if arm.n <= 0:
        return Estimate(0.0, math.nan, 0.0, high)
    sequence = stats.arm_sequence(arm, mde, alpha)
    return Estimate(arm.n, arm.mean, max(sequence.low, 0.0), min(sequence.high, high))


def _arm_metric(name: str, title: str, unit: str, lower_is_better: bool, bernoulli: bool,
                arms: dict[str, stats.Arm], mde: float, alpha: float) -> ArmMetric:
    """Both arms' estimates of one metric and the shadow's change (a difference where stable's mean is 0)."""
    empty = stats.Arm(0.0, math.nan, math.nan)
    stable, shadow = arms.get(STABLE, empty), arms.get(SHADOW, empty)
    absolute = stable.n > 0 and shadow.n > 0 and stable.mean == 0
    change = (stats.absolute_difference(stable, shadow, bernoulli, mde, alpha) if absolute
              else stats.relative_difference(stable, shadow, mde, alpha))
    high = 1.0 if bernoulli else math.inf
    return ArmMetric(name, title, unit, lower_is_better, _estimate(stable, mde, alpha, high),
                     _estimate(shadow, mde, alpha, high), change, absolute)


def summarise(prom: Prometheus, model: str, shadow: str, window_seconds: float, mde: float = 0.05,
              alpha: float = 0.05) -> ShadowSummary:
    """Read the comparator's series for one shadow version of `model` over the last `window_seconds` and judge
    them; `mde` scales the sequential test's mixture (the change worth detecting), `alpha` its error rate."""
    window, selector = f"{int(window_seconds)}s", _selector(model, shadow)
    latency = _histograms(prom, LATENCY, selector, ARM_LABEL, window)
    tokens = _histograms(prom, OUTPUT_TOKENS, selector, ARM_LABEL, window)
    refusals = _increase(prom, REFUSALS, selector, ARM_LABEL, window)
    answered = {arm: moments.n for arm, moments in latency.items()}
    refusal_rates = {arm: stats.proportion(refusals.get(arm, 0.0), n) for arm, n in answered.items()}
    arm_metrics = [
        _arm_metric("latency", "end-to-end latency", "s", True, False, latency, mde, alpha),
        _arm_metric("output_tokens", "output tokens", "tokens", False, False, tokens, mde, alpha),
        _arm_metric("refusal_rate", "refusal rate", "", True, True, refusal_rates, mde, alpha),
    ]
    similarity = _histograms(prom, SIMILARITY, selector, DECODING_LABEL, window)
    exact = _increase(prom, EXACT, selector, DECODING_LABEL, window)
    pairs = {decoding: moments.n for decoding, moments in similarity.items()}
    total_pairs = sum(pairs.values())
    if total_pairs > 0:
        mean = sum(m.mean * m.n for m in similarity.values()) / total_pairs
        # Pooled variance: within each decoding's buckets plus between the decodings' means.
        within = sum(m.variance * max(m.n - 1, 0.0) for m in similarity.values())
        between = sum(m.n * (m.mean - mean) ** 2 for m in similarity.values())
        similarity[ALL] = stats.Arm(total_pairs, mean, (within + between) / max(total_pairs - 1, 1.0))
        pairs[ALL], exact[ALL] = total_pairs, sum(exact.get(d, 0.0) for d in DECODINGS)
    agreement = {key: Agreement(pairs[key],
                                _estimate(stats.proportion(exact.get(key, 0.0), pairs[key]), mde, alpha, 1.0),
                                _estimate(similarity[key], mde, alpha, 1.0))
                 for key in (*DECODINGS, ALL) if pairs.get(key, 0.0) > 0}
    mirrored = _increase(prom, MIRRORED, f'{{{vm.MODEL_LABEL}="{model}"}}', "outcome", window)
    errors = _increase(prom, ERRORS, selector, ARM_LABEL, window)
    return ShadowSummary(model, shadow, window_seconds, mirrored, errors, arm_metrics, agreement)
