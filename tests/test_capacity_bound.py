"""The start-up bound: the fewest GPU-hours any autoscaler that pays each added replica's weight load can meet the
TTFT objective with. It must never exceed what a real schedule costs, and it must rise with start-up."""

from __future__ import annotations

import dataclasses

import pytest
from llmplane.capacity.baselines import WINDOW_SECONDS, Windows, oracle, static_peak
from llmplane.capacity.bound import convex_envelope, lower_bound_seconds, miss_curves, startup_bound
from llmplane.capacity.planner import start_replicas
from llmplane.capacity.simulator import PolicyController, Simulator
from llmplane.capacity.trace import synthetic_trace

from tests.test_capacity import POLICY, PROFILE

# Quiet minutes with a ten-minute burst in the middle: the burst needs replicas that quiet minutes do not.
BURSTY = synthetic_trace([(300, 1.0), (600, 6.0), (300, 1.0)], prompt=1200, output=60, name="bursty")


def test_the_envelope_spreads_a_step_over_the_replicas_it_takes():
    assert convex_envelope([30, 30, 30, 0]) == pytest.approx([30, 20, 10, 0])
    curve = [50, 48, 10, 9, 0]
    envelope = convex_envelope(curve)
    assert envelope[0] == curve[0] and envelope[-1] == curve[-1]
    assert all(e <= c + 1e-9 for e, c in zip(envelope, curve))
    savings = [a - b for a, b in zip(envelope, envelope[1:])]
    assert savings == sorted(savings, reverse=True)  # each further replica saves no more than the one before


def test_a_burst_replica_pays_its_start_up_once_it_has_been_away_long_enough():
    # Twenty one-minute windows; the burst in window 10 needs three replicas, every other window one. No late
    # request is allowed. The first replica serves throughout (free at the start). Each burst replica either
    # serves from the start until the burst (11 windows) or is asked for and loads (1 window + start-up).
    quiet, burst = [10.0, 0.0], [30.0, 20.0, 10.0, 0.0]
    curves = [burst if w == 10 else quiet for w in range(20)]
    seconds, _ = lower_bound_seconds(curves, allowed=0, window=60.0, startup=120.0)
    assert seconds == pytest.approx(20 * 60 + 2 * (60 + 120))
    # Start-up longer than keeping them from the start: keeping them is the cheaper schedule.
    seconds, _ = lower_bound_seconds(curves, allowed=0, window=60.0, startup=3600.0)
    assert seconds == pytest.approx(20 * 60 + 2 * 11 * 60)


def test_the_allowance_of_late_requests_is_spent_where_it_saves_the_most():
    # Allowing the burst's last 10 late requests saves one burst replica's minute and start-up.
    quiet, burst = [10.0, 0.0], [30.0, 20.0, 10.0, 0.0]
    curves = [burst if w == 10 else quiet for w in range(20)]
    strict, _ = lower_bound_seconds(curves, allowed=0, window=60.0, startup=120.0)
    loose, _ = lower_bound_seconds(curves, allowed=10, window=60.0, startup=120.0)
    assert loose == pytest.approx(strict - (60 + 120))


def test_miss_curves_fall_to_the_requests_no_replica_can_serve():
    windows = Windows(BURSTY, PROFILE, WINDOW_SECONDS)
    curves = miss_curves(windows)
    assert len(curves) == windows.count
    for w, curve in enumerate(curves):
        assert curve[0] == windows.requests(w)
        assert curve[-1] <= windows.unavoidable(w)
    assert max(len(c) for c in curves[5:15]) > max(len(c) for c in curves[:4])


def test_without_start_up_the_bound_is_at_most_the_oracle():
    instant = dataclasses.replace(PROFILE, load_seconds=0)
    windows = Windows(BURSTY, instant, WINDOW_SECONDS)
    counts, best = oracle(BURSTY, instant, windows=windows)
    bound = startup_bound(BURSTY, instant, windows)
    assert bound.gpu_hours <= sum(counts) * WINDOW_SECONDS / 3600 + 1e-9
    assert bound.gpu_hours <= best.gpu_hours + 1e-9


def test_the_bound_rises_with_start_up_and_stays_below_every_schedule_that_meets_the_objective():
    bounds = [startup_bound(BURSTY, dataclasses.replace(PROFILE, load_seconds=s)).gpu_hours for s in (0, 60, 600)]
    assert bounds == sorted(bounds) and bounds[-1] > bounds[0]
    bound = startup_bound(BURSTY, PROFILE)
    n, static = static_peak(BURSTY, PROFILE)
    assert bound.gpu_hours <= static.gpu_hours + 1e-9
    met = 0
    for policy in (POLICY, dataclasses.replace(POLICY, min_replicas=n, max_replicas=2 * n)):
        sim = Simulator(BURSTY, PROFILE, PolicyController(policy), start_replicas(BURSTY, PROFILE, policy))
        result = sim.run("policy")
        if result.within_slo >= PROFILE.ttft_objective:
            assert bound.gpu_hours <= result.gpu_hours + 1e-9
            met += 1
    assert met
