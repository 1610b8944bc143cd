"""A/A experiments simulated at the statistics level, read at every look as a team reading the report daily would.

Each run gives both arms the same behaviour: time to first token drawn from one lognormal and recorded in vLLM's
TTFT buckets (so the variance comes from the buckets, as in a report), and errors at one rate. The arms split the
traffic 2:1 as a canary would; a run counts as flagged when any look's comparison on the primary metric leaves
`inconclusive`. Shared by tests/test_experiment_stats.py and benchmarks/experiment_aa.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from llmplane.experiments import report, stats
from llmplane.monitoring import vllm_metrics as vm
from llmplane.spec.models import Experiment

TTFT_MEDIAN_SECONDS = 0.04
TTFT_SIGMA = 0.6
ERROR_RATE = 0.02
CONTROL_PER_LOOK, TREATMENT_PER_LOOK = 200, 100


@dataclass(frozen=True)
class Rates:
    """Share of A/A runs flagged at any look: by the report (mSPRT) and by a z-test peeked at every look."""

    runs: int
    looks: int
    msprt: float
    peeking: float


def _experiment(primary: str, alpha: float) -> Experiment:
    return Experiment(name="a-a", control="1.0.0", treatments=["1.0.1"], primary=primary,
                      minimum_detectable_effect=0.05, max_days=90, alpha=alpha)


def _ttft_arms(rng: np.random.Generator, per_look: int, looks: int) -> list[stats.Arm]:
    """One arm's TTFT as a report reads it at each look: cumulative buckets and sum."""
    bounds = np.array(vm.TIME_TO_FIRST_TOKEN.buckets)
    values = rng.lognormal(math.log(TTFT_MEDIAN_SECONDS), TTFT_SIGMA, size=(looks, per_look))
    counts = np.stack([np.bincount(np.searchsorted(bounds, row), minlength=len(bounds) + 1) for row in values])
    cumulative = np.cumsum(np.cumsum(counts, axis=0), axis=1)  # over looks, then over buckets (le)
    sums = np.cumsum(values.sum(axis=1))
    return [stats.histogram_moments(list(bounds), list(cumulative[k]), float(sums[k]), float(cumulative[k, -1]))
            for k in range(looks)]


def _error_arms(rng: np.random.Generator, per_look: int, looks: int) -> list[stats.Arm]:
    failed = np.cumsum(rng.binomial(per_look, ERROR_RATE, size=looks))
    return [stats.proportion(float(f), float(per_look * (k + 1))) for k, f in enumerate(failed)]


def aa_rates(primary: str = "ttft", runs: int = 1000, looks: int = 30, alpha: float = 0.05,
             seed: int = 27) -> Rates:
    """Run `runs` A/A experiments of `looks` looks each on `primary` (ttft or error_rate)."""
    experiment = _experiment(primary, alpha)
    draw = _ttft_arms if primary == "ttft" else _error_arms
    z = NormalDist().inv_cdf(1 - alpha / 2)
    rng = np.random.default_rng(seed)
    flagged = peeked = 0
    for _ in range(runs):
        control, treatment = draw(rng, CONTROL_PER_LOOK, looks), draw(rng, TREATMENT_PER_LOOK, looks)
        verdict = naive = False
        for c, t in zip(control, treatment):
            comparison = report.compare(experiment, primary, c, t, "1.0.1", guardrail=False)
            verdict = verdict or comparison.state != "inconclusive"
            rel = comparison.relative
            naive = naive or (rel.variance > 0 and abs(rel.estimate) > z * math.sqrt(rel.variance))
        flagged += verdict
        peeked += naive
    return Rates(runs, looks, flagged / runs, peeked / runs)

