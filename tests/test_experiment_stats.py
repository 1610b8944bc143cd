"""The experiment statistics against hand-worked cases and textbook figures, and the always-valid test's promise:
over many A/A runs read at every look it flags no more than alpha (tests/experiment_simulation.py)."""

from __future__ import annotations

import math
import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st
from llmplane.experiments import metrics, report, stats
from llmplane.spec.models import Experiment, ExperimentMetric

from tests.experiment_simulation import aa_rates


def experiment(**changes) -> Experiment:
    fields = {"name": "e", "control": "1.0.0", "treatments": ["1.0.1"], "primary": "ttft",
              "guardrails": ["error_rate"], "minimum_detectable_effect": 0.05, "max_days": 14}
    return Experiment(**{**fields, **changes})


def test_every_metric_of_the_spec_has_a_definition():
    assert set(metrics.DEFINITIONS) == set(typing.get_args(ExperimentMetric))


def test_histogram_mean_is_sum_over_count_and_variance_comes_from_bucket_midpoints():
    # 5 requests in (0, 1], 5 in (1, 2], none above; sum 10 s: mean 1 s, midpoints 0.5 and 1.5 -> 10 x 0.25 / 9.
    arm = stats.histogram_moments([1.0, 2.0], [5, 10, 10], total=10.0, count=10)
    assert arm.n == 10 and arm.mean == 1.0
    assert arm.variance == pytest.approx(2.5 / 9)
    # Everything in one bucket whose midpoint is the mean: no spread seen.
    assert stats.histogram_moments([0.04, 0.06], [0, 4, 4], total=0.2, count=4).variance == 0


def test_a_score_known_by_sum_and_count_gets_the_bhatia_davis_variance():
    assert stats.bounded_mean(total=75, count=100, low=0, high=1).variance == pytest.approx(0.25 * 0.75)


def test_no_difference_gives_p_one_and_an_interval_around_zero():
    seq = stats.sequential(0.0, 0.01, 0.0025, 0.05)
    assert seq.p_value == 1.0 and seq.low < 0 < seq.high


@given(st.floats(-1, 1), st.floats(1e-6, 1), st.floats(1e-4, 1), st.sampled_from([0.01, 0.05, 0.1]))
def test_the_p_value_rejects_exactly_when_the_confidence_sequence_excludes_zero(estimate, variance, tau2, alpha):
    """Johari et al.'s duality: p <= alpha iff 0 is outside {theta : Lambda(theta) < 1/alpha}."""
    seq = stats.sequential(estimate, variance, tau2, alpha)
    if not math.isclose(seq.p_value, alpha, rel_tol=1e-9):
        assert (seq.p_value < alpha) == (not seq.low <= 0 <= seq.high)


def test_the_always_valid_interval_is_wider_than_the_fixed_horizon_one_and_shrinks_with_data():
    for n in (100, 10_000):
        variance = 1 / n
        seq = stats.sequential(0.0, variance, 0.01, 0.05)
        assert seq.high > 1.96 * math.sqrt(variance)
    assert stats.sequential(0.0, 1e-4, 0.01, 0.05).high < stats.sequential(0.0, 1e-2, 0.01, 0.05).high


def test_required_traffic_matches_kohavis_rule_of_thumb():
    """16 sigma^2 / delta^2 per arm for alpha 0.05 and power 0.8 (Kohavi et al. 2020): with a coefficient of
    variation of 1 and a 10 % change, 1,600 a side."""
    arm = stats.Arm(1000, 1.0, 1.0)
    total = stats.required_units(arm, arm, 0.5, mde=0.10, alpha=0.05)
    assert total == pytest.approx(3200, rel=0.02)
    # A 10 % canary needs more traffic in all than an even split.
    assert stats.required_units(arm, arm, 0.1, 0.10, 0.05) > 2.7 * total


def test_a_large_regression_rolls_back_and_a_large_improvement_promotes_to_the_next_step():
    control = stats.Arm(20_000, 0.040, 0.0004)
    errors = stats.proportion(100, 20_000)
    for treatment_mean, verdict, weight in ((0.048, "roll back", 0), (0.032, "promote", 25)):
        readings = {"ttft": {"1.0.0": control, "1.0.1": stats.Arm(10_000, treatment_mean, 0.0004)},
                    "error_rate": {"1.0.0": errors, "1.0.1": stats.proportion(50, 10_000)}}
        evaluation = report.judge(experiment(), readings, {"1.0.0": 90, "1.0.1": 10}, 1.0,
                                  {"1.0.0": 1e5, "1.0.1": 1e4})
        assert evaluation.verdict == verdict
        assert evaluation.weights_after == {"1.0.0": 100 - weight, "1.0.1": weight}


def test_a_breached_guardrail_rolls_back_even_when_the_primary_metric_improves():
    readings = {"ttft": {"1.0.0": stats.Arm(20_000, 0.040, 0.0004), "1.0.1": stats.Arm(10_000, 0.030, 0.0004)},
                "error_rate": {"1.0.0": stats.proportion(0, 20_000), "1.0.1": stats.proportion(500, 10_000)}}
    evaluation = report.judge(experiment(), readings, {"1.0.0": 90, "1.0.1": 10}, 1.0, {})
    assert evaluation.verdict == "roll back"
    assert evaluation.reasons["1.0.1"] == ["guardrail breached: error_rate"]
    assert evaluation.weights_after == {"1.0.0": 100, "1.0.1": 0}


def test_an_experiment_past_max_days_without_promote_rolls_back():
    arm = stats.Arm(1000, 0.04, 0.0004)
    readings = {"ttft": {"1.0.0": arm, "1.0.1": arm},
                "error_rate": {"1.0.0": stats.proportion(1, 1000), "1.0.1": stats.proportion(1, 1000)}}
    weights = {"1.0.0": 90, "1.0.1": 10}
    assert report.judge(experiment(), readings, weights, 13.9, {}).verdict == "hold"
    assert report.judge(experiment(), readings, weights, 14.0, {}).verdict == "roll back"


def test_a_bandit_moves_weight_to_the_arm_thompson_sampling_favours_but_never_beyond_the_next_step():
    bandit = experiment(strategy="bandit", primary="task_success", guardrails=[], steps=[10, 25, 50])
    readings = {"task_success": {"1.0.0": stats.proportion(600, 1000), "1.0.1": stats.proportion(330, 500)}}
    evaluation = report.judge(bandit, readings, {"1.0.0": 90, "1.0.1": 10}, 1.0, {})
    assert evaluation.bandit_shares["1.0.1"] > 0.9  # 66 % against 60 % success: clearly ahead
    assert evaluation.weights_after == {"1.0.0": 75, "1.0.1": 25}  # capped at the next step
    behind = {"task_success": {"1.0.0": stats.proportion(660, 1000), "1.0.1": stats.proportion(300, 500)}}
    # Behind, it keeps the first step's weight (still explored) rather than none.
    assert report.judge(bandit, behind, {"1.0.0": 75, "1.0.1": 25}, 1.0, {}).weights_after == \
        {"1.0.0": 90, "1.0.1": 10}


@pytest.mark.parametrize("primary", ["ttft", "error_rate"])
def test_a_a_runs_read_at_every_look_are_flagged_no_more_often_than_alpha(primary, capsys):
    rates = aa_rates(primary, runs=600, looks=30, alpha=0.05)
    with capsys.disabled():
        print(f"\n{primary} A/A: {rates.runs} runs x {rates.looks} looks at alpha 0.05: the report flags "
              f"{rates.msprt:.2%}; a z-test peeked at every look flags {rates.peeking:.2%}")
    assert rates.msprt <= 0.05
    assert rates.peeking > 0.05  # the simulation does see what peeking costs


class _Feedback:
    """Prometheus answering the feedback counters' query as the feedback service's series would."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        self.asked.append(expr)
        counts = {("1.0.0", "success"): 60, ("1.0.0", "failure"): 40, ("1.0.0", "refusal"): 100,
                  ("1.0.1", "success"): 9, ("1.0.1", "failure"): 1}
        return [({"version": v, "label": label}, n) for (v, label), n in counts.items()]

    def query_range(self, expr: str, seconds: float, step: float) -> list:
        raise AssertionError("feedback needs no range query")


def test_task_success_counts_success_among_success_and_failure_and_refusals_among_all_feedback():
    prom = _Feedback()
    ctx = metrics.Context("llama-3-70b", ("1.0.0", "1.0.1"), 86_400, 1.0)
    success = metrics.DEFINITIONS["task_success"].read(prom, ctx)
    assert (success["1.0.0"].n, success["1.0.0"].mean) == (100, 0.6)
    assert (success["1.0.1"].n, success["1.0.1"].mean) == (10, 0.9)
    assert prom.asked == ['sum by (version, label) (increase(llmplane_feedback_total'
                          '{model="llama-3-70b",version=~"1\\\\.0\\\\.0|1\\\\.0\\\\.1"}[86400s]))']
    refusals = metrics.DEFINITIONS["refusal_rate"].read(prom, ctx)
    assert refusals["1.0.0"].mean == 0.5 and refusals["1.0.1"].mean == 0


def test_a_significant_improvement_holds_until_the_planned_traffic_is_reached():
    """Early stopping is for harm only: a treatment already significantly better on a few hundred requests waits
    for the traffic planned for the minimum detectable effect, so its guardrails get that traffic too."""
    control, better = stats.Arm(5_000, 0.040, 0.0004), stats.Arm(400, 0.030, 0.0004)
    readings = {"ttft": {"1.0.0": control, "1.0.1": better},
                "error_rate": {"1.0.0": stats.proportion(25, 5_000), "1.0.1": stats.proportion(2, 400)}}
    evaluation = report.judge(experiment(), readings, {"1.0.0": 90, "1.0.1": 10}, 1.0, {"1.0.0": 1e5, "1.0.1": 1e4})
    [primary] = [c for c in evaluation.comparisons if c.metric == "ttft"]
    assert primary.state == "better"
    assert evaluation.needs["1.0.1"].still_needed["1.0.1"] > 0
    assert evaluation.verdict == "hold" and evaluation.weights_after is None
    assert evaluation.reasons["1.0.1"] == ["ttft is better; a promote waits for the planned traffic, so the "
                                           "guardrails see it too"]
