"""A lower bound on the GPU-hours of any autoscaler that pays for start-up, even one that knows the future.

The oracle adds replicas for free at window starts. A real autoscaler pays for a replica from the moment it asks
for it, at least `Profile.startup_floor_seconds` (weights into GPU memory and the engine start, on a node that
holds everything) before the replica serves, however early it asks. This bound is the oracle charged exactly that
and nothing more, so no autoscaler, clairvoyant or not, can meet the TTFT objective on the trace with fewer
GPU-hours. When it is above a GPU-hour target, tuning the policy cannot reach that target; only a faster start-up,
a different GPU or a different objective can.

The problem bounded, over fleets that change size at window starts (as the oracle's do), with each window's late
requests as a function of its replicas measured as the oracle measures them:

    minimise    sum over windows of replicas x window length  +  start-up charges
    subject to  late requests over the trace <= the objective's allowance

The k-th replica (level k) serves in a window when the fleet has at least k replicas there. A level that serves
again after being off for g seconds is charged min(g, startup): it was kept (billed through the gap) or asked
for anew (billed while it loads). Levels serving at the trace's start are free.

Three relaxations turn that into one small dynamic programme per level: each window's late requests are replaced
by their lower convex envelope over replica counts (never above them, so the allowance only gets easier to
meet); each late request is priced at lambda replica-seconds instead of capped (Lagrangian relaxation); and each
level chooses its windows on its own (dropping "level k only where level k-1"), which the envelope makes nearly
free since a level's savings then shrink as k grows. Each step only lowers the optimum, so every lambda gives a
valid bound; the bound is concave in lambda and its maximum is found by a golden-section search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .baselines import SEARCH_CEILING, WINDOW_SECONDS, Windows, late_allowance
from .simulator import EPS, Profile
from .trace import Trace

GOLDEN = (math.sqrt(5) - 1) / 2
SEARCH_STEPS = 60
"""Golden-section steps over lambda: the bracket shrinks to 0.618^60 of its width, far below a replica-second."""


@dataclass(frozen=True)
class Bound:
    """The lower bound and where it came from."""

    gpu_hours: float
    startup_seconds: float
    """What each replica added costs at least before it serves: the weight load and engine start on a node that
    holds everything (`Profile.startup_floor_seconds`)."""
    price: float
    """The price of one late request, in replica-seconds, at which the bound is tightest."""


def miss_curves(windows: Windows) -> list[list[int]]:
    """Per window, its late requests with 0, 1, 2, ... replicas, up to the fewest replicas at which only the
    requests that no replica could serve in time are late."""
    curves = []
    for w in range(windows.count):
        floor = windows.unavoidable(w)
        curve = [windows.misses(w, 0)]
        while curve[-1] > floor and len(curve) <= SEARCH_CEILING:
            curve.append(windows.misses(w, len(curve)))
        curves.append(curve)
    return curves


def convex_envelope(curve: list[int]) -> list[float]:
    """The largest convex function of the replica count that stays at or below `curve`, at 0, 1, 2, ...

    Late requests fall in steps (nothing changes until the fleet nearly keeps up, then everything does); the
    envelope spreads a step over the replicas it takes, so each replica is credited its average saving."""
    hull: list[int] = []
    for n in range(len(curve)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            if (curve[b] - curve[a]) * (n - a) >= (curve[n] - curve[a]) * (b - a):
                hull.pop()
            else:
                break
        hull.append(n)
    envelope = []
    for a, b in zip(hull, hull[1:]):
        envelope += [curve[a] + (curve[b] - curve[a]) * (n - a) / (b - a) for n in range(a, b)]
    envelope.append(float(curve[hull[-1]]))
    return envelope


def _level_cost(gains: list[float], window: float, startup: float) -> float:
    """The cheapest on/off schedule of one replica level: window seconds for each window it serves, minus the
    value of the late requests it saves there (`gains`), plus min(gap, startup) each time it serves again."""
    gaps = max(1, math.ceil(startup / window - EPS))
    restart = [min(j * window, startup) for j in range(gaps + 1)]
    on = 0.0  # serving when the trace starts: free
    off = [math.inf] * (gaps + 1)  # off[j]: off for the last j windows (j = gaps: long enough to pay full start-up)
    off[gaps] = 0.0
    for gain in gains:
        serve = on
        for j in range(1, gaps + 1):
            if off[j] + restart[j] < serve:
                serve = off[j] + restart[j]
        new_off = [math.inf] * (gaps + 1)
        new_off[1] = on
        for j in range(1, gaps + 1):
            k = min(gaps, j + 1)
            if off[j] < new_off[k]:
                new_off[k] = off[j]
        on, off = serve + window - gain, new_off
    return min(on, *off)


def relaxed_seconds(curves: list[list[float]], allowed: int, window: float, startup: float, price: float) -> float:
    """The bound (replica-seconds) at one price of a late request: the relaxed problem's optimum."""
    levels = max((len(c) - 1 for c in curves), default=0)
    total = price * (sum(c[0] for c in curves) - allowed)
    for k in range(1, levels + 1):
        gains = [price * (c[k - 1] - c[k]) if k < len(c) else 0.0 for c in curves]
        total += _level_cost(gains, window, startup)
    return total


def lower_bound_seconds(curves: list[list[float]], allowed: int, window: float,
                        startup: float) -> tuple[float, float]:
    """The best bound over prices (replica-seconds) and its price, for convex miss curves. Past a price of
    window + startup every level already serves wherever it saves a request, so the maximum lies below it."""
    lo, hi = 0.0, window + startup

    def value(price: float) -> float:
        return relaxed_seconds(curves, allowed, window, startup, price)

    a, b = hi - GOLDEN * (hi - lo), lo + GOLDEN * (hi - lo)
    fa, fb = value(a), value(b)
    for _ in range(SEARCH_STEPS):
        if fa < fb:
            lo, a, fa = a, b, fb
            b = lo + GOLDEN * (hi - lo)
            fb = value(b)
        else:
            hi, b, fb = b, a, fa
            a = hi - GOLDEN * (hi - lo)
            fa = value(a)
    candidates = [(value(0.0), 0.0), (fa, a), (fb, b)]
    best, price = max(candidates)
    return max(0.0, best), price


def startup_bound(trace: Trace, profile: Profile, windows: Windows | None = None,
                  window: float = WINDOW_SECONDS) -> Bound:
    """The fewest GPU-hours any autoscaler that pays the weight load of each replica it adds can meet the TTFT
    objective with on this trace (`windows`: the oracle's, to share its replays)."""
    windows = windows or Windows(trace, profile, window)
    curves = [convex_envelope(curve) for curve in miss_curves(windows)]
    startup = profile.startup_floor_seconds
    seconds, price = lower_bound_seconds(curves, late_allowance(trace, profile), windows.window, startup)
    return Bound(seconds * profile.tensor_parallel_size / 3600.0, startup, price)
