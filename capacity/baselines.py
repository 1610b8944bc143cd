"""The two baselines a policy is judged against, and the per-window SLO test both use.

A window (one minute) is *served* when at least the TTFT objective's share (e.g. 99 %) of the requests arriving
in it get their first token within the SLO. Requests that no replica could serve in time even alone (a prompt
longer than SLO x prefill rate) are left out of the count when the objective would demand them.

- static: a fixed fleet provisioned for the peak: the fewest replicas, all ready from the start, whose replay
  meets the TTFT objective over the whole trace (the peak minutes are where fewer fail);
- oracle: knows the future and has no cold start. It sizes each window (one minute) on its own, from a fleet
  that served the window before as warm-up: first the fewest replicas under which that window alone meets the
  objective, then it takes replicas away where that costs the fewest late requests while the whole trace still
  meets the objective (the trace's 1 % of allowed misses spent where they save the most GPU time). The fleet
  follows that schedule, changing size at once at window starts; removed replicas finish their sequences
  (billed), no idle node is billed; the replay checks the result. A constant fleet (static) is one of its
  options, so it is never above static. It is the lower bound a reactive policy, which pays cold starts and
  must guess, is measured against.
"""

from __future__ import annotations

import math
from heapq import heappop, heappush

from .simulator import EPS, INF, FixedController, Profile, Result, Simulator
from .trace import Trace

WINDOW_SECONDS = 60.0
"""The length of a window: the oracle re-sizes the fleet once per window."""

SEARCH_CEILING = 1024
"""No baseline searches beyond this many replicas."""


def fluid_replicas(trace: Trace, profile: Profile, start: float, end: float) -> float:
    """Replica-seconds of work arriving in [start, end) divided by its length: prompts at the prefill rate,
    output tokens at the full-batch decode rate. No fleet serves that window with fewer replicas."""
    work = 0.0
    p, d = profile.prefill_tokens_per_second, profile.decode_tokens_per_second
    for t, prompt, out in zip(trace.arrivals, trace.prompt_tokens, trace.output_tokens):
        if start <= t < end:
            work += prompt / p + (out - 1) / d
    return work / (end - start)


def feasible(trace: Trace, profile: Profile, rid: int) -> bool:
    """Whether a request's prompt can be prefilled within the SLO on an otherwise idle replica."""
    return trace.prompt_tokens[rid] / profile.prefill_tokens_per_second <= profile.ttft_seconds + EPS


def required(profile: Profile, count: int, feasible_count: int) -> int:
    """Requests of a window that must meet the SLO for the window to count as served."""
    return min(math.ceil(profile.ttft_objective * count - EPS), feasible_count)


def late_allowance(trace: Trace, profile: Profile) -> int:
    """Late first tokens the TTFT objective allows over the whole trace."""
    return math.floor((1 - profile.ttft_objective) * len(trace) + EPS)


def window_attainment(trace: Trace, ttft: list[float], profile: Profile,
                      window: float = WINDOW_SECONDS) -> list[tuple[int, int, int]]:
    """Per window: (requests, within the SLO, required)."""
    windows = int(trace.duration // window) + 1
    count = [0] * windows
    good = [0] * windows
    possible = [0] * windows
    slo = profile.ttft_seconds + EPS
    for rid, (t, x) in enumerate(zip(trace.arrivals, ttft)):
        w = int(t // window)
        count[w] += 1
        good[w] += x <= slo
        possible[w] += feasible(trace, profile, rid)
    return [(c, g, required(profile, c, f)) for c, g, f in zip(count, good, possible)]


def serves_every_window(trace: Trace, ttft: list[float], profile: Profile, window: float = WINDOW_SECONDS) -> bool:
    """Whether each window met its objective."""
    return all(g >= need for _, g, need in window_attainment(trace, ttft, profile, window))


def _search(ok, lo: int, guess: int, ceiling: int = SEARCH_CEILING) -> int:
    """Smallest n in [lo, ceiling] with ok(n), assuming ok is monotone; `guess` is where to start."""
    guess = max(lo, min(guess, ceiling))
    if ok(guess):
        hi = guess
    else:
        lo = guess + 1
        step = max(1, guess)
        hi = min(ceiling, guess + step)
        while not ok(hi):
            if hi >= ceiling:
                return ceiling
            lo = hi + 1
            step *= 2
            hi = min(ceiling, hi + step)
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return hi


def static_peak(trace: Trace, profile: Profile, sample_every: float | None = 15.0) -> tuple[int, Result]:
    """The fewest fixed replicas whose replay meets the TTFT objective over the whole trace (its peak minutes are
    where a smaller fleet fails), and that replay."""
    allowed = late_allowance(trace, profile)

    def ok(n: int) -> bool:
        if n == 0:
            return len(trace) == 0
        sim = Simulator(trace, profile, FixedController(), start_replicas=n, sample_every=None)
        sim.run("static", give_up_after_late=allowed)
        return sim.finished() and sim.late <= allowed

    peak = max((fluid_replicas(trace, profile, s, s + WINDOW_SECONDS)
                for s in range(0, int(trace.duration) + 1, int(WINDOW_SECONDS))), default=1.0)
    n = _search(ok, 1, math.ceil(peak))
    while n > 1 and ok(n - 1):  # the search assumes monotony; replays are not exactly monotone at the edge
        n -= 1
    sim = Simulator(trace, profile, FixedController(), start_replicas=n, sample_every=sample_every)
    return n, sim.run("static")


def _shifted(trace: Trace, start: float, end: float) -> tuple[Trace, int]:
    """The requests in [start, end), times relative to `start`; and the index of the first one."""
    ids = [i for i, t in enumerate(trace.arrivals) if start <= t < end]
    if not ids:
        return Trace(trace.name, (), (), ()), 0
    sub = Trace(trace.name, tuple(trace.arrivals[i] - start for i in ids),
                tuple(trace.prompt_tokens[i] for i in ids), tuple(trace.output_tokens[i] for i in ids))
    return sub, ids[0]


class Windows:
    """Each window's misses as a function of a fixed fleet size, sized on its own from a fleet that served the
    window before it as warm-up (cached: the oracle asks for many)."""

    def __init__(self, trace: Trace, profile: Profile, window: float) -> None:
        self.profile = profile
        self.window = window
        self.count = int(trace.duration // window) + 1
        self.subs: list[tuple[Trace, list[int], float]] = []
        for w in range(self.count):
            start = w * window
            warm = max(0.0, start - window)
            sub, _ = _shifted(trace, warm, start + window)
            offset = start - warm
            targets = [i for i, t in enumerate(sub.arrivals) if t >= offset]
            self.subs.append((sub, targets, offset))
        self.cache: dict[tuple[int, int], int] = {}

    def requests(self, w: int) -> int:
        return len(self.subs[w][1])

    def unavoidable(self, w: int) -> int:
        """Requests of window w that no replica could serve in time even alone."""
        sub, targets, _ = self.subs[w]
        return sum(1 for i in targets if not feasible(sub, self.profile, i))

    def misses(self, w: int, n: int) -> int:
        """Requests of window w whose first token misses the SLO with n replicas."""
        sub, targets, offset = self.subs[w]
        if not targets:
            return 0
        if n <= 0:
            return len(targets)
        key = (w, n)
        if key not in self.cache:
            sim = Simulator(sub, self.profile, FixedController(), start_replicas=n, sample_every=None)
            sim.run_until(offset + self.window + self.profile.ttft_seconds)
            slo = self.profile.ttft_seconds + EPS
            self.cache[key] = sum(1 for i in targets if sim.first[i] - sub.arrivals[i] > slo)
        return self.cache[key]

    def need(self, w: int, guess: int) -> int:
        """The fewest replicas under which window w alone meets the objective."""
        targets = self.subs[w][1]
        if not targets:
            return 0
        allowed = len(targets) - required(self.profile, len(targets), len(targets) - self.unavoidable(w))
        return _search(lambda n: self.misses(w, n) <= allowed, 1, guess)


def window_need(trace: Trace, profile: Profile, start: float, window: float = WINDOW_SECONDS,
                guess: int = 1) -> int:
    """The fewest replicas under which the window starting at `start` meets the objective on its own."""
    windows = Windows(_shifted(trace, max(0.0, start - window), start + window)[0], profile, window)
    return windows.need(windows.count - 1 if start >= window else 0, guess)


class ScheduleController:
    """Sets the fleet to a planned size at each window start, at once (the oracle)."""

    def __init__(self, counts: list[int], window: float) -> None:
        self.counts = counts
        self.window = window
        self.period: float | None = window

    def tick(self, sim: Simulator) -> None:
        w = int(round(sim.now / self.window))
        if w < len(self.counts):
            target = self.counts[w]
        else:
            target = 0 if sim.finished() else max(1, self.counts[-1] if self.counts else 1)
        if target == 0 and (sim.waiting or sim.next_req < len(sim.trace) and
                            sim.trace.arrivals[sim.next_req] < sim.now + self.window):
            target = 1
        sim.scale_to(target, instant=True)

    def clone(self) -> ScheduleController:
        return self


def _replay(trace: Trace, profile: Profile, counts: list[int], window: float, sample_every: float | None) -> Result:
    sim = Simulator(trace, profile, ScheduleController(counts, window), start_replicas=0, sample_every=sample_every)
    sim.keep_nodes = False
    return sim.run("oracle")


def _greedy(windows: Windows, top: list[int], budget: int) -> list[int]:
    """From `top`, take replicas away where it costs the fewest missed requests, while the misses stay within
    `budget` (a marginal-cost descent on the per-window miss curves)."""
    counts = list(top)
    spent = sum(windows.misses(w, n) for w, n in enumerate(counts))
    heap: list[tuple[int, int]] = []

    def push(w: int) -> None:
        floor = 1 if windows.requests(w) else 0
        if counts[w] > floor:
            heappush(heap, (windows.misses(w, counts[w] - 1) - windows.misses(w, counts[w]), w))

    for w in range(len(counts)):
        push(w)
    while heap:
        delta, w = heappop(heap)
        if spent + delta > budget:
            continue
        counts[w] -= 1
        spent += delta
        push(w)
    return counts


def oracle(trace: Trace, profile: Profile, window: float = WINDOW_SECONDS, sample_every: float | None = 15.0,
           static: int | None = None, windows: Windows | None = None) -> tuple[list[int], Result]:
    """The clairvoyant fleet: per-window replica counts and their replay.

    It starts from each window's own need (every window meets the objective alone), then takes replicas away
    where that costs the fewest late requests, as long as the whole trace still meets the objective; the
    replay checks the schedule (the budget tightens and the descent reruns when it does not). With `static`, a
    constant fleet of that size is one of its options too. `windows` may be shared with the start-up bound.
    """
    windows = windows or Windows(trace, profile, window)
    allowed = late_allowance(trace, profile)
    top: list[int] = []
    previous = 1
    for w in range(windows.count):
        start = w * window
        guess = max(1, min(previous, math.ceil(fluid_replicas(trace, profile, start, start + window)) + 1))
        top.append(windows.need(w, guess))
        previous = max(top[-1], 1)
    options: list[tuple[list[int], Result]] = []
    budget = allowed
    for _ in range(6):
        counts = _greedy(windows, top, budget)
        result = _replay(trace, profile, counts, window, sample_every)
        late = sum(1 for x in result.ttft if x > profile.ttft_seconds + EPS)
        if late <= allowed:
            options.append((counts, result))
            break
        budget -= max(1, late - allowed)
        if budget < 0:
            break
    if not options:
        options.append((top, _replay(trace, profile, top, window, sample_every)))
    if static is not None:
        flat = [static] * windows.count
        options.append((flat, _replay(trace, profile, flat, window, sample_every)))
    return min(options, key=lambda option: option[1].gpu_hours)


__all__ = ["INF", "SEARCH_CEILING", "WINDOW_SECONDS", "ScheduleController", "Windows", "fluid_replicas",
           "late_allowance", "oracle", "serves_every_window", "static_peak", "window_attainment", "window_need"]
