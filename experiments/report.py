"""An experiment judged: per arm and per treatment the estimates with always-valid intervals, the mSPRT on the
primary metric, the guardrails, the traffic still needed, a verdict and the weights of the next step; as Markdown.

Verdicts, per treatment (the experiment's is the worst of them):
- roll back: a guardrail is breached, the primary metric is significantly worse, or `maxDays` have passed without
  a promote verdict (a forced decision keeps the version that is known);
- promote: the primary metric is significantly better, no guardrail is breached, and the arms have had the
  traffic the power calculation planned for the minimum detectable effect. The sequential test may stop early for
  harm at any look, but not for benefit: an early stop for benefit overstates the effect, and a guardrail (a rare
  error) has then seen too little traffic to be breached;
- hold: otherwise; keep the weights and look again.

A guardrail compares the treatment's relative change with a tolerance equal to the experiment's minimum
detectable effect (a change smaller than what the experiment is powered to see is not acted on): it is breached
when its always-valid interval lies wholly beyond the tolerance on the worse side, holds when it lies wholly within
it, and is inconclusive between. Only a breach stops a step: proving that a rare event (errors at 0.5 %) rose by
less than 5 % takes millions of requests, so demanding "holds" would block every promote, while the sequential
test keeps watching for a breach at every later look. Against a control at 0 (no errors yet) there is no ratio:
the absolute difference is judged and any significant rise is a breach. Several treatments share alpha
(Bonferroni).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from llmplane.spec.models import Experiment

from . import metrics, stats

Verdict = Literal["promote", "hold", "roll back"]
GuardrailState = Literal["breached", "holds", "inconclusive"]
_ORDER: dict[Verdict, int] = {"promote": 0, "hold": 1, "roll back": 2}


@dataclass(frozen=True)
class Comparison:
    """One treatment against the control on one metric."""

    metric: str
    treatment: str
    relative: stats.Sequential
    state: Literal["better", "worse", "inconclusive"]
    guardrail: GuardrailState | None = None
    absolute: bool = False
    """Judged on the absolute difference: the control's mean is 0 (no errors yet), where no ratio exists."""


@dataclass(frozen=True)
class Need:
    """The fixed-horizon estimate of the units still needed to detect the minimum detectable effect."""

    total_units: float
    still_needed: dict[str, float]
    days: float


@dataclass
class Evaluation:
    """The whole judgement of an experiment at one look."""

    experiment: Experiment
    readings: dict[str, dict[str, stats.Arm]]
    per_arm: dict[str, dict[str, stats.Sequential]]
    comparisons: list[Comparison]
    needs: dict[str, Need]
    elapsed_days: float
    verdicts: dict[str, Verdict]
    reasons: dict[str, list[str]]
    weights_before: dict[str, int]
    weights_after: dict[str, int] | None = None
    bandit_shares: dict[str, float] = field(default_factory=dict)

    @property
    def verdict(self) -> Verdict:
        return max(self.verdicts.values(), key=_ORDER.__getitem__)


def _alpha(experiment: Experiment) -> float:
    return experiment.alpha / len(experiment.treatments)


def compare(experiment: Experiment, metric: str, control: stats.Arm, treatment: stats.Arm, name: str,
            guardrail: bool) -> Comparison:
    """The relative difference of one treatment, its direction, and as a guardrail its state."""
    definition = metrics.DEFINITIONS[metric]
    mde, alpha = experiment.minimum_detectable_effect, _alpha(experiment)
    absolute = control.n > 0 and treatment.n > 0 and control.mean == 0
    if absolute:
        rel = stats.absolute_difference(control, treatment, definition.bernoulli, mde, alpha)
    else:
        rel = stats.relative_difference(control, treatment, mde, alpha)
    sign = 1 if definition.lower_is_better else -1
    worse_low, worse_high = sorted((sign * rel.low, sign * rel.high))  # the change towards worse
    state = "worse" if worse_low > 0 else "better" if worse_high < 0 else "inconclusive"
    held: GuardrailState | None = None
    if guardrail:
        # From a control at 0, any real rise exceeds every relative tolerance.
        tolerance = 0.0 if absolute else mde
        held = "breached" if worse_low > tolerance else "holds" if worse_high < mde and not absolute \
            else "inconclusive"
    return Comparison(metric, name, rel, state, held, absolute)


def judge(experiment: Experiment, readings: dict[str, dict[str, stats.Arm]], weights: dict[str, int],
          elapsed_days: float, daily_units: dict[str, float]) -> Evaluation:
    """The verdicts and next weights from each metric's arms (readings[metric][version]); weights are every
    deployed version's current weight, daily_units the primary metric's units per day per arm."""
    mde, alpha = experiment.minimum_detectable_effect, _alpha(experiment)
    control = experiment.control
    per_arm = {m: {v: stats.arm_sequence(arm, mde, alpha) for v, arm in arms.items()} for m, arms in readings.items()}
    comparisons, needs, verdicts, reasons = [], {}, {}, {}
    primary = readings[experiment.primary]
    for treatment in experiment.treatments:
        why: list[str] = []
        first = compare(experiment, experiment.primary, primary[control], primary[treatment], treatment, False)
        comparisons.append(first)
        guards = [compare(experiment, g, readings[g][control], readings[g][treatment], treatment, True)
                  for g in experiment.guardrails]
        comparisons.extend(guards)
        needs[treatment] = _need(experiment, primary[control], primary[treatment], control, treatment, daily_units)
        breached = [g.metric for g in guards if g.guardrail == "breached"]
        if breached:
            why.append(f"guardrail breached: {', '.join(breached)}")
        if first.state == "worse":
            why.append(f"{experiment.primary} is significantly worse")
        planned = _planned_reached(needs[treatment], primary, [readings[g] for g in experiment.guardrails])
        promote = first.state == "better" and not breached and planned
        if not why and not promote and elapsed_days >= experiment.max_days:
            why.append(f"{experiment.max_days} days (maxDays) passed without a promote verdict")
        if why:
            verdicts[treatment] = "roll back"
        elif promote:
            verdicts[treatment] = "promote"
            why.append(f"{experiment.primary} is significantly better and no guardrail is breached")
        else:
            verdicts[treatment] = "hold"
            why.append(f"{experiment.primary} is {first.state}" + (
                "; a promote waits for the planned traffic, so the guardrails see it too"
                if first.state == "better" else ""))
        reasons[treatment] = why
    evaluation = Evaluation(experiment, readings, per_arm, comparisons, needs, elapsed_days, verdicts, reasons,
                            dict(weights))
    evaluation.weights_after = _next_weights(evaluation)
    return evaluation


def _planned_reached(need: Need, primary: dict[str, stats.Arm], guardrails: list[dict[str, stats.Arm]]) -> bool:
    """Whether every arm has had the traffic planned for the primary metric, counted on the primary and on each
    guardrail (a counter that has not been read twice yet reads no traffic, and must not let a promote through)."""
    if any(math.isnan(left) or left > 0 for left in need.still_needed.values()):
        return False
    planned = {arm: primary[arm].n for arm in need.still_needed}
    return all(reading[arm].n >= units for reading in guardrails for arm, units in planned.items())


def _need(experiment: Experiment, control: stats.Arm, treatment: stats.Arm, control_name: str, name: str,
          daily: dict[str, float]) -> Need:
    """Units still needed per arm for the fixed-horizon power calculation at the arms' observed split, and the days
    they take at the arms' current rates."""
    share = treatment.n / (treatment.n + control.n) if treatment.n + control.n > 0 else math.nan
    total = stats.required_units(control, treatment, share, experiment.minimum_detectable_effect, _alpha(experiment))
    if math.isnan(total):
        return Need(math.nan, {control_name: math.nan, name: math.nan}, math.nan)
    still = {control_name: max(0.0, (1 - share) * total - control.n), name: max(0.0, share * total - treatment.n)}
    days = max((left / daily[arm] if daily.get(arm) else (0.0 if left == 0 else math.inf))
               for arm, left in still.items())
    return Need(total, still, days)


def next_step(steps: list[int], weight: int) -> int:
    """The first step above `weight` (the last step once it is reached)."""
    return next((s for s in steps if s > weight), steps[-1])


def _next_weights(evaluation: Evaluation) -> dict[str, int] | None:
    """Every version's weight after this step, or None when nothing changes. Canary and A/B: a promoted treatment
    moves to the next step, a rolled-back one to 0. Bandit: Thompson sampling's shares within [first step, next
    step], a rolled-back arm 0. Shadow versions take no traffic. The control takes the rest."""
    experiment, before = evaluation.experiment, evaluation.weights_before
    if experiment.strategy == "shadow":
        return None
    after = dict(before)
    if experiment.strategy == "bandit":
        evaluation.bandit_shares = _bandit(evaluation)
    for treatment in experiment.treatments:
        verdict = evaluation.verdicts[treatment]
        if verdict == "roll back":
            after[treatment] = 0
        elif experiment.strategy == "bandit":
            bound = next_step(experiment.steps, before[treatment])
            proposal = round(100 * evaluation.bandit_shares[treatment])
            after[treatment] = min(bound, max(experiment.steps[0], proposal))
        elif verdict == "promote":
            after[treatment] = next_step(experiment.steps, before[treatment])
    others = sum(w for v, w in before.items() if v != experiment.control and v not in experiment.treatments)
    after[experiment.control] = 100 - others - sum(after[t] for t in experiment.treatments)
    if after[experiment.control] < 0:
        return None
    return None if after == before else after


def _bandit(evaluation: Evaluation) -> dict[str, float]:
    experiment = evaluation.experiment
    definition = metrics.DEFINITIONS[experiment.primary]
    arms = {v: evaluation.readings[experiment.primary][v] for v in (experiment.control, *experiment.treatments)}
    seed = experiment.name + "".join(f"{a.n:.0f}" for a in arms.values())
    return stats.thompson_shares(arms, definition.bernoulli, definition.lower_is_better, seed)


def _number(value: float, unit: str = "") -> str:
    if not math.isfinite(value):
        return "–"
    if unit == "s":
        return f"{value * 1000:.4g} ms"
    if unit == "USD":
        return f"${value:,.4g}"
    return f"{value:.4g}"


def _percent(value: float) -> str:
    return f"{value * 100:+.2f} %" if math.isfinite(value) else "–"


def markdown(evaluation: Evaluation, model: str, diff: str | None) -> str:
    """The report for a pull request: arms, comparisons, guardrails, traffic still needed, verdict, diff."""
    experiment = evaluation.experiment
    arms = (experiment.control, *experiment.treatments)
    lines = [f"## Experiment `{experiment.name}` on `{model}`: **{evaluation.verdict}**", "",
             f"{experiment.strategy}; control {experiment.control}, treatment(s) "
             f"{', '.join(experiment.treatments)}; primary `{experiment.primary}`, guardrails "
             f"{', '.join(f'`{g}`' for g in experiment.guardrails) or 'none'}; minimum detectable effect "
             f"{experiment.minimum_detectable_effect:.1%}; alpha {experiment.alpha} (always valid: mSPRT, Johari et "
             f"al. 2022); {evaluation.elapsed_days:.2f} of {experiment.max_days} days.", "",
             "### Arms", "",
             "| metric | version | weight | units | estimate | always-valid interval |",
             "|---|---|---:|---:|---:|---|"]
    for metric, per in evaluation.per_arm.items():
        unit = metrics.DEFINITIONS[metric].unit
        for version in arms:
            arm, seq = evaluation.readings[metric][version], per[version]
            lines.append(f"| {metric} | {version} | {evaluation.weights_before.get(version, 0)} % | {arm.n:,.0f} | "
                         f"{_number(arm.mean, unit)} | [{_number(seq.low, unit)}, {_number(seq.high, unit)}] |")
    lines += ["", "### Treatment against control (relative difference, mSPRT)", "",
              "| metric | treatment | change | always-valid interval | always-valid p | result |",
              "|---|---|---:|---|---:|---|"]
    for c in evaluation.comparisons:
        result = f"guardrail {c.guardrail}" if c.guardrail else c.state
        show = (lambda x: f"{x:+.4g} (absolute)") if c.absolute else _percent
        lines.append(f"| {c.metric}{' (guardrail)' if c.guardrail else ''} | {c.treatment} | "
                     f"{show(c.relative.estimate)} | [{show(c.relative.low)}, {show(c.relative.high)}] | "
                     f"{c.relative.p_value:.4g} | {result} |")
    lines += ["", "### Traffic still needed", "",
              f"Fixed-horizon estimate (two-sided z-test, power 80 %, alpha {experiment.alpha}) for a "
              f"{experiment.minimum_detectable_effect:.1%} change of `{experiment.primary}` at the current spread and "
              "split; the sequential test may stop earlier on a larger effect and needs more for one at the limit.", ""]
    for treatment, need in evaluation.needs.items():
        left = ", ".join(f"{arm} {n:,.0f}" for arm, n in need.still_needed.items())
        lines.append(f"- {treatment}: {need.total_units:,.0f} units in all; still needed: {left}; "
                     f"about {need.days:.2f} more days at current rates" if math.isfinite(need.total_units)
                     else f"- {treatment}: not estimable yet (no data or no spread)")
    lines += ["", "### Verdict", ""]
    for treatment, verdict in evaluation.verdicts.items():
        lines.append(f"- {treatment}: **{verdict}**: {'; '.join(evaluation.reasons[treatment])}")
    if evaluation.bandit_shares:
        shares = ", ".join(f"{v} {p:.1%}" for v, p in evaluation.bandit_shares.items())
        lines.append(f"- Thompson sampling, probability each arm is best: {shares} (weights bounded by "
                     f"{experiment.steps[0]} % and the next step)")
    if evaluation.weights_after is not None:
        change = ", ".join(f"{v} {evaluation.weights_before[v]} → {w} %" for v, w in evaluation.weights_after.items()
                           if w != evaluation.weights_before[v])
        lines += ["", f"### Next step: {change}", ""]
        if diff:
            lines += ["```diff", diff.rstrip("\n"), "```"]
    else:
        lines += ["", "No weight change."]
    return "\n".join(lines) + "\n"


def evaluate(prom: metrics.Prometheus, experiment: Experiment, model: str, weights: dict[str, int],
             window_seconds: float, replica_hour_usd: float) -> Evaluation:
    """Read the primary metric and the guardrails for every arm over the window, then judge them. Current rates
    are read over the last hour (or the window, if shorter)."""
    arms = (experiment.control, *experiment.treatments)
    ctx = metrics.Context(model, arms, window_seconds, replica_hour_usd)
    wanted = dict.fromkeys([experiment.primary, *experiment.guardrails])
    readings = {metric: metrics.DEFINITIONS[metric].read(prom, ctx) for metric in wanted}
    daily = metrics.daily_units(prom, ctx, experiment.primary, min(window_seconds, 3600.0))
    elapsed = metrics.elapsed_seconds(prom, ctx)
    elapsed_days = max((elapsed.get(t, 0.0) for t in experiment.treatments), default=0.0) / 86_400
    return judge(experiment, readings, weights, elapsed_days, daily)
