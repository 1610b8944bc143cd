"""A shadow experiment judged: each shadow version against stable on the same mirrored requests (what
`shadow.summarise` reads of the comparator), with a verdict of its own kind, as Markdown for a pull request.

A shadow takes no traffic, so there is nothing to promote or roll back: the verdict says whether the shadow is
ready to become a canary (a pull request giving it `role: canary` and the first step, judged then by the canary's
own experiment).

- **ready to canary**: no metric (latency, output tokens, refusal rate, failed calls) is worse beyond the
  experiment's minimum detectable effect, as the report's guardrails are judged (absolute where stable's rate is
  0: any significant rise), and the answers agree: the always-valid interval of the mean ROUGE-L similarity on
  greedy requests (on all pairs when none is greedy) lies wholly at or above `MIN_SIMILARITY`;
- **not ready**: otherwise, with the reasons.

Failed calls: the comparator counts per arm the calls that failed or timed out, and compares only the pairs both
arms answered, so a shadow failing half its calls would otherwise look as good as its answered half. Each arm's
rate is its failures over the requests sent (compared pairs plus every failure; a request both arms failed counts
twice, which only makes the rates lower and equal on both sides).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from llmplane.spec.models import Experiment

from . import shadow, stats
from .metrics import Prometheus
from .shadow import _arm_metric

ShadowVerdict = Literal["ready to canary", "not ready"]

MIN_SIMILARITY = 0.5
"""Least mean token-level ROUGE-L F1 (its always-valid lower bound) for a shadow to be ready. Exact agreement is
shown but not required: vLLM's greedy decoding is not batch-invariant, so the same weights on another engine
release (or even batch) diverge somewhere in a long answer, and a new fine-tune is meant to word things its own
way. What must not pass is a shadow that answers something else: a wrong chat template or tokenizer, a truncated
or looping answer, a refusal. Those share almost no words in order with stable's answer (near 0), while an
answer reworded by a sibling version keeps most of them (the tests' "The cat sat on the mat." against "the cat lay
on the mat" scores 10/12); half the words in the same order separates the two."""
FAILED_CALLS = "failed_calls"


@dataclass(frozen=True)
class Judged:
    """One metric of one shadow: the comparator's estimates, and whether it blocks a canary."""

    metric: shadow.ArmMetric
    result: str
    """worse (blocks), worse within tolerance, better, or inconclusive."""
    blocks: bool


@dataclass
class ShadowEvaluation:
    """Every shadow of the experiment against stable over one window."""

    experiment: Experiment
    summaries: dict[str, shadow.ShadowSummary]
    judged: dict[str, list[Judged]]
    verdicts: dict[str, ShadowVerdict]
    reasons: dict[str, list[str]]
    weights_after: None = None
    """A shadow takes no traffic: never a weight change."""

    @property
    def verdict(self) -> ShadowVerdict:
        return "not ready" if "not ready" in self.verdicts.values() else "ready to canary"


def failed_calls(summary: shadow.ShadowSummary, mde: float, alpha: float) -> shadow.ArmMetric:
    """Each arm's failed calls over the requests sent to both, and the shadow's change."""
    pairs = summary.agreement[shadow.ALL].pairs if shadow.ALL in summary.agreement else 0.0
    sent = pairs + sum(summary.errors.values())
    arms = {arm: stats.proportion(summary.errors.get(arm, 0.0), sent) for arm in (shadow.STABLE, shadow.SHADOW)}
    return _arm_metric(FAILED_CALLS, "failed calls", "", True, True, arms, mde, alpha)


def judge_metric(metric: shadow.ArmMetric, mde: float) -> Judged:
    """The change towards worse against a tolerance of `mde` (0 where stable's rate is 0: no ratio exists)."""
    change = metric.change
    sign = 1 if metric.lower_is_better else -1
    worse_low, worse_high = sorted((sign * change.low, sign * change.high))
    tolerance = 0.0 if metric.absolute else mde
    if worse_low > tolerance:
        return Judged(metric, "worse (blocks)", True)
    if worse_low > 0:
        return Judged(metric, "worse, within tolerance", False)
    return Judged(metric, "better" if worse_high < 0 else "inconclusive", False)


def agreement_judged(summary: shadow.ShadowSummary) -> tuple[str, shadow.Agreement] | None:
    """The agreement the verdict reads: greedy requests' (equal versions answer them alike), else all pairs'."""
    for key in ("greedy", shadow.ALL):
        if key in summary.agreement:
            return key, summary.agreement[key]
    return None


def judge(experiment: Experiment, summaries: dict[str, shadow.ShadowSummary], alpha: float) -> ShadowEvaluation:
    """Each shadow's metrics and agreement judged; `alpha` is each shadow's share of the experiment's."""
    mde = experiment.minimum_detectable_effect
    judged, verdicts, reasons = {}, {}, {}
    for version, summary in summaries.items():
        rows = [judge_metric(m, mde) for m in (*summary.metrics, failed_calls(summary, mde, alpha))]
        why = [f"{j.metric.title} is worse beyond the tolerance of {mde:.1%} "
               f"({_change(j.metric.change.estimate, j.metric.absolute)})" for j in rows if j.blocks]
        agreement, agrees = agreement_judged(summary), ""
        if agreement is None:
            why.append("no mirrored request has been compared yet")
        else:
            key, found = agreement
            similarity = found.similarity
            shown = (f"mean similarity on {key} requests {similarity.mean:.3f}, always-valid interval "
                     f"[{similarity.low:.3f}, {similarity.high:.3f}] over {found.pairs:,.0f} pairs")
            if similarity.low < MIN_SIMILARITY:
                why.append(f"{shown}, is not wholly at or above {MIN_SIMILARITY}")
            else:
                agrees = f"{shown}, at or above {MIN_SIMILARITY}"
        judged[version] = rows
        verdicts[version] = "not ready" if why else "ready to canary"
        reasons[version] = why or [f"no metric is worse beyond the tolerance of {mde:.1%}; {agrees}"]
    return ShadowEvaluation(experiment, summaries, judged, verdicts, reasons)


def evaluate(prom: Prometheus, experiment: Experiment, model: str, window_seconds: float) -> ShadowEvaluation:
    """Read the comparator's series for every shadow of the experiment over the window and judge them; the
    shadows share the experiment's alpha (Bonferroni)."""
    alpha = experiment.alpha / len(experiment.treatments)
    summaries = {v: shadow.summarise(prom, model, v, window_seconds, experiment.minimum_detectable_effect, alpha)
                 for v in experiment.treatments}
    return judge(experiment, summaries, alpha)


def _change(value: float, absolute: bool) -> str:
    if not math.isfinite(value):
        return "–"
    return f"{value:+.4g} (absolute)" if absolute else f"{value * 100:+.2f} %"


def _value(value: float, unit: str) -> str:
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if math.isnan(value):
        return "–"
    if unit == "s":
        return f"{value * 1000:.4g} ms"
    return f"{value:.4g}"


def _window(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.4g} {unit}"
    return f"{seconds:.4g} s"


def _estimate(estimate: shadow.Estimate, unit: str) -> str:
    return (f"{_value(estimate.mean, unit)} [{_value(estimate.low, unit)}, {_value(estimate.high, unit)}]"
            if estimate.n > 0 else "–")


def markdown(evaluation: ShadowEvaluation, model: str) -> str:
    """The report for a pull request: per shadow the arms, the agreement, the mirror's counts and the verdict."""
    experiment = evaluation.experiment
    lines = [f"## Shadow experiment `{experiment.name}` on `{model}`: **{evaluation.verdict}**", "",
             f"shadow; stable {experiment.control}, shadow(s) {', '.join(experiment.treatments)}, compared on the "
             f"same mirrored requests by the shadow comparator; tolerance (minimum detectable effect) "
             f"{experiment.minimum_detectable_effect:.1%}; alpha {experiment.alpha} (always valid: mSPRT, Johari et "
             f"al. 2022); agreement needed: mean ROUGE-L similarity at least {MIN_SIMILARITY}."]
    for version, summary in evaluation.summaries.items():
        mirrored = ", ".join(f"{outcome} {count:,.0f}" for outcome, count in sorted(summary.mirrored.items()))
        failed = ", ".join(f"{arm} {count:,.0f}" for arm, count in sorted(summary.errors.items()))
        lines += ["", f"### Shadow {version} against stable {experiment.control}", "",
                  f"Mirrored requests of `{model}` over {_window(summary.window_seconds)}: {mirrored or 'none'}. "
                  f"Failed calls: {failed or 'none'}.", "",
                  "| metric | stable [always-valid interval] | shadow [always-valid interval] | change "
                  "| always-valid interval | always-valid p | result |",
                  "|---|---|---|---:|---|---:|---|"]
        for row in evaluation.judged[version]:
            m = row.metric
            lines.append(f"| {m.title} | {_estimate(m.stable, m.unit)} | {_estimate(m.shadow, m.unit)} | "
                         f"{_change(m.change.estimate, m.absolute)} | [{_change(m.change.low, m.absolute)}, "
                         f"{_change(m.change.high, m.absolute)}] | {m.change.p_value:.4g} | {row.result} |")
        lines += ["", "| agreement | pairs | exact [always-valid interval] | mean similarity, ROUGE-L F1 "
                      "[always-valid interval] |", "|---|---:|---|---|"]
        for key, found in summary.agreement.items():
            lines.append(f"| {key} | {found.pairs:,.0f} | {_estimate(found.exact, '')} | "
                         f"{_estimate(found.similarity, '')} |")
        if not summary.agreement:
            lines.append("| – | 0 | – | – |")
    lines += ["", "### Verdict", ""]
    for version, verdict in evaluation.verdicts.items():
        lines.append(f"- {version}: **{verdict}**: {'; '.join(evaluation.reasons[version])}")
    lines += ["", "No weight change: a shadow takes no traffic. A shadow ready to canary becomes one in its own pull "
                  "request (`role: canary`, the first step's weight), judged then by a canary experiment."]
    return "\n".join(lines) + "\n"
