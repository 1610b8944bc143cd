"""The statistics of an experiment, from sufficient statistics (count, mean, variance per arm) alone.

- Estimates with always-valid confidence sequences and the mixture sequential probability ratio test (mSPRT) with
  a normal mixing distribution, in its normal approximation for means and proportions: Johari, Koomen, Pekelis,
  Walsh, "Always Valid Inference: Continuous Monitoring of A/B Tests", Operations Research 70(3), 2022. A report
  may be read every day: by Ville's inequality the chance that the mixture likelihood ratio ever crosses 1/alpha
  under the null is at most alpha, so each look is valid whenever it is taken.
- The relative difference treatment/control - 1 and its variance by the delta method: Deng, Knoblich, Lu,
  "Applying the Delta Method in Metric Analytics", KDD 2018.
- Histogram moments from Prometheus buckets as grouped data (bucket midpoints); grouping adds about h^2/12 per
  bucket of width h (Sheppard, "On the calculation of the most probable values of frequency-constants, for data
  arranged according to equidistant divisions of a scale", Proc. London Math. Soc. 1898), which is left in: the
  variance errs on the large side, so the test errs on the cautious side.
- The variance of a bounded score from its mean alone: Bhatia and Davis, "A Better Bound on the Variance",
  American Mathematical Monthly 107(4), 2000: var <= (max - mean)(mean - min).
- A fixed-horizon sample size (two-sided z-test, power 1 - beta) as the estimate of the traffic still needed:
  Kohavi, Tang, Xu, "Trustworthy Online Controlled Experiments", Cambridge University Press 2020, ch. 17.
- Thompson sampling: Thompson, "On the likelihood that one unknown probability exceeds another in view of the
  evidence of two samples", Biometrika 25, 1933; Russo, Van Roy, Kazerouni, Osband, Wen, "A Tutorial on Thompson
  Sampling", Foundations and Trends in Machine Learning 11(1), 2018.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from statistics import NormalDist

_NORMAL = NormalDist()


@dataclass(frozen=True)
class Arm:
    """Sufficient statistics of one arm: n independent units, their mean and their variance."""

    n: float
    mean: float
    variance: float

    def standard_error(self) -> float:
        """Standard error of the mean (infinite with no data)."""
        return math.sqrt(self.variance / self.n) if self.n > 0 else math.inf


@dataclass(frozen=True)
class Sequential:
    """An estimate judged by the mSPRT: its always-valid p-value and confidence sequence at level alpha."""

    estimate: float
    variance: float
    p_value: float
    low: float
    high: float


def histogram_moments(bounds: list[float], cumulative: list[float], total: float, count: float) -> Arm:
    """Mean and variance of a Prometheus histogram: the mean exact (`_sum / _count`), the variance from the
    buckets' midpoints around it (Prometheus keeps no sum of squares). The first bucket spans [0, le]; the +Inf
    bucket is put at its lower edge, the largest finite bound (an underestimate only for what exceeds every
    bucket). `bounds` are the finite `le` values in rising order, `cumulative` their counts and the +Inf count."""
    if count <= 0:
        return Arm(0.0, math.nan, math.nan)
    mean = total / count
    squares, previous_bound, previous_count = 0.0, 0.0, 0.0
    for bound, cum in zip([*bounds, bounds[-1]], cumulative):
        in_bucket = max(0.0, cum - previous_count)
        middle = (previous_bound + bound) / 2
        squares += in_bucket * (middle - mean) ** 2
        previous_bound, previous_count = bound, cum
    return Arm(count, mean, squares / max(count - 1, 1.0))


def proportion(successes: float, n: float) -> Arm:
    """A Bernoulli proportion: variance p(1 - p)."""
    if n <= 0:
        return Arm(0.0, math.nan, math.nan)
    p = successes / n
    return Arm(n, p, p * (1 - p))


def bounded_mean(total: float, count: float, low: float, high: float) -> Arm:
    """A mean of scores in [low, high] known only by sum and count: variance at its Bhatia-Davis upper bound."""
    if count <= 0:
        return Arm(0.0, math.nan, math.nan)
    mean = total / count
    return Arm(count, mean, max(0.0, (high - mean) * (mean - low)))


def mixture_likelihood_ratio(estimate: float, variance: float, tau2: float, null: float = 0.0) -> float:
    """Johari et al.'s normal-mixture likelihood ratio for an asymptotically normal estimate with variance V,
    mixing N(null, tau^2) over the effect: sqrt(V/(V+tau^2)) exp((est-null)^2 tau^2 / (2 V (V+tau^2)))."""
    exponent = (estimate - null) ** 2 * tau2 / (2 * variance * (variance + tau2))
    return math.sqrt(variance / (variance + tau2)) * math.exp(min(exponent, 700.0))


def sequential(estimate: float, variance: float, tau2: float, alpha: float) -> Sequential:
    """The mSPRT at one look: p = min(1, 1/Lambda) and the confidence sequence {theta : Lambda(theta) < 1/alpha}.
    The p-value is the look's own, at least the running minimum over earlier looks, so never anti-conservative."""
    if not (variance > 0 and math.isfinite(variance) and math.isfinite(estimate)):
        return Sequential(estimate, variance, 1.0, -math.inf, math.inf)
    ratio = mixture_likelihood_ratio(estimate, variance, tau2)
    half = math.sqrt(variance * (variance + tau2) / tau2 * (2 * math.log(1 / alpha) + math.log((variance + tau2)
                                                                                               / variance)))
    return Sequential(estimate, variance, min(1.0, 1 / ratio), estimate - half, estimate + half)


def arm_sequence(arm: Arm, mde: float, alpha: float) -> Sequential:
    """An arm's mean with its always-valid interval; the mixture's scale is the effect worth detecting
    (mde x mean), the choice Johari et al. recommend: tau matched to the effects one expects."""
    scale = (mde * abs(arm.mean)) ** 2 or mde ** 2
    return sequential(arm.mean, arm.variance / arm.n if arm.n > 0 else math.nan, scale, alpha)


def relative_difference(control: Arm, treatment: Arm, mde: float, alpha: float) -> Sequential:
    """treatment/control - 1 by the delta method (Deng et al. 2018), judged by the mSPRT with tau = mde:
    Var = (mt/mc)^2 (vt/(nt mt^2) + vc/(nc mc^2)), arms independent."""
    if control.n <= 0 or treatment.n <= 0 or not control.mean:
        return sequential(math.nan, math.nan, mde ** 2, alpha)
    ratio = treatment.mean / control.mean
    variance = (treatment.variance / treatment.n + ratio ** 2 * control.variance / control.n) / control.mean ** 2
    return sequential(ratio - 1, variance, mde ** 2, alpha)


def absolute_difference(control: Arm, treatment: Arm, bernoulli: bool, mde: float, alpha: float) -> Sequential:
    """treatment - control where no ratio exists (the control's mean is 0): for proportions with the pooled
    variance, the variance under the null of equal rates (a control without events has an estimated variance of
    0); tau = mde x the pooled mean."""
    n = control.n + treatment.n
    pooled = (control.mean * control.n + treatment.mean * treatment.n) / n
    if bernoulli:
        variance = pooled * (1 - pooled) * (1 / control.n + 1 / treatment.n)
    else:
        variance = control.variance / control.n + treatment.variance / treatment.n
    return sequential(treatment.mean - control.mean, variance, (mde * pooled) ** 2 or mde ** 2, alpha)


def required_units(control: Arm, treatment: Arm, share_treatment: float, mde: float, alpha: float,
                   power: float = 0.8) -> float:
    """Units (both arms together) a fixed-horizon two-sided z-test needs to detect a relative change of `mde` with
    `power` when the treatment takes `share_treatment` of them (Kohavi et al. 2020, ch. 17, for unequal shares):
    N = (z_{1-alpha/2} + z_power)^2 (cv_c^2/w_c + cv_t^2/w_t) / mde^2, cv from the arms' current estimates. An
    estimate: the sequential test pays for its freedom to stop early with more units at the same power."""
    cv2 = [a.variance / a.mean ** 2 if a.n > 0 and a.mean else math.nan for a in (control, treatment)]
    if any(math.isnan(v) for v in cv2) or not 0 < share_treatment < 1:
        return math.nan
    z = _NORMAL.inv_cdf(1 - alpha / 2) + _NORMAL.inv_cdf(power)
    return z ** 2 * (cv2[0] / (1 - share_treatment) + cv2[1] / share_treatment) / mde ** 2


def thompson_shares(arms: dict[str, Arm], bernoulli: bool, lower_is_better: bool, seed: str,
                    draws: int = 20_000) -> dict[str, float]:
    """Each arm's posterior probability of being best, by Monte Carlo (Thompson 1933; Russo et al. 2018): Beta(1+x,
    1+n-x) for a proportion, Normal(mean, var/n) for a mean (flat prior). Seeded, so one report gives one
    proposal."""
    names = list(arms)
    if any(arm.n <= 0 for arm in arms.values()):
        return {name: 1 / len(names) for name in names}
    rng = random.Random(seed)
    wins = dict.fromkeys(arms, 0)

    def draw(arm: Arm) -> float:
        if bernoulli:
            hits = arm.mean * arm.n
            return rng.betavariate(1 + hits, 1 + arm.n - hits)
        return rng.gauss(arm.mean, arm.standard_error())

    for _ in range(draws):
        sample = {name: draw(arms[name]) for name in names}
        best = (min if lower_is_better else max)(names, key=sample.__getitem__)
        wins[best] += 1
    return {name: wins[name] / draws for name in names}
