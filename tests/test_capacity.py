"""The capacity planner's simulator, policy replay and baselines: invariants on synthetic traces and on small
excerpts of the Azure traces cut at run time (skipped when ../shared/traces is absent)."""

from __future__ import annotations

import dataclasses
import math

import pytest
from llmplane.capacity.baselines import fluid_replicas, oracle, static_peak, window_attainment
from llmplane.capacity.planner import start_replicas, step_token_budget, target
from llmplane.capacity.simulator import FixedController, PolicyController, Profile, Simulator
from llmplane.capacity.trace import ATTRIBUTION, Trace, TraceError, azure_trace_path, read_trace, synthetic_trace
from llmplane.spec import load_spec
from llmplane.spec.autoscaling_policy import AutoscalingPolicy
from llmplane.spec.models import Engine
from llmplane.stacks.environments import known_environments, read_stack_config

# A small replica: 1,000 prompt tokens take 0.25 s alone; 8 sequences decode 10 tokens/s each.
PROFILE = Profile(prefill_tokens_per_second=4000, decode_tokens_per_second=80, max_concurrent_sequences=8,
                  node_seconds=60, image_pull_seconds=30, load_seconds=90, ttft_seconds=2.0, ttft_objective=0.99,
                  gpu_hour_usd=2.0)
POLICY = AutoscalingPolicy(served_model_name="m:1.0.0", min_replicas=1, max_replicas=20, keda=True,
                           queue_per_replica=2, kv_cache_target=0.8, scale_up_seconds=60, scale_down_seconds=300,
                           polling_seconds=15, scale_to_zero=False, activation_queue=0, cooldown_seconds=120)


def traces_present() -> bool:
    return azure_trace_path("conv").is_file() and azure_trace_path("code").is_file()


needs_traces = pytest.mark.traces
"""Reads the Azure traces from ../shared/traces (or LLMPLANE_TRACES); without them the test fails saying where
they were looked for: they are data the project may not copy."""


def excerpt(kind: str, start: float, minutes: float) -> Trace:
    """A few minutes of a real trace, cut at run time."""
    return read_trace(azure_trace_path(kind)).window(start, start + minutes * 60, name=f"{kind}-excerpt")


def replay(trace: Trace, replicas: int, profile: Profile = PROFILE):
    return Simulator(trace, profile, FixedController(), start_replicas=replicas).run("fixed")


def policy_run(trace: Trace, policy: AutoscalingPolicy = POLICY, profile: Profile = PROFILE, start: int = 1):
    controller = PolicyController(policy)
    sim = Simulator(trace, profile, controller, start_replicas=start)
    return sim, controller, sim.run("policy")


# -- traces -------------------------------------------------------------------------------------------------------


def test_reads_the_azure_format_relative_to_the_first_request(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                    "2023-11-16 18:15:46.6805900,374,44\n"
                    "2023-11-16 18:15:50.9951690,396,109\n"
                    "2023-11-16 18:16:46.6805900,10,1\n")
    trace = read_trace(path)
    assert trace.arrivals == pytest.approx((0.0, 4.314579, 60.0))
    assert trace.prompt_tokens == (374, 396, 10)
    assert trace.output_tokens == (44, 109, 1)


def test_trace_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(TraceError, match="does not exist"):
        read_trace(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("time,prompt\n1,2\n")
    with pytest.raises(TraceError, match="lacks column"):
        read_trace(bad)


@needs_traces
def test_the_azure_traces_load_whole():
    conv, code = read_trace(azure_trace_path("conv")), read_trace(azure_trace_path("code"))
    assert len(conv) == 19366 and len(code) == 8819
    assert conv.arrivals[0] == 0.0 and 3400 < conv.duration < 3600
    assert "Splitwise" in ATTRIBUTION and "Azure Public Dataset" in ATTRIBUTION


# -- the replica model --------------------------------------------------------------------------------------------


def test_ttft_of_a_lone_request_is_its_prefill():
    trace = Trace("one", (0.0,), (2000,), (50,))
    result = replay(trace, 1)
    assert result.ttft[0] == pytest.approx(2000 / PROFILE.prefill_tokens_per_second)


def test_gpu_hours_are_replica_seconds_times_tensor_parallel():
    trace = synthetic_trace([(600, 1.0)], prompt=200, output=10)
    profile = dataclasses.replace(PROFILE, tensor_parallel_size=4)
    result = replay(trace, 3, profile)
    assert result.gpu_hours == pytest.approx(3 * 4 * result.horizon / 3600)
    assert result.cost_usd == pytest.approx(result.gpu_hours * profile.gpu_hour_usd)


@pytest.mark.parametrize("trace", [
    synthetic_trace([(120, 2.0), (60, 12.0), (120, 2.0)], prompt=1500, output=80),
    pytest.param("conv", marks=needs_traces),
    pytest.param("code", marks=needs_traces),
])
def test_more_replicas_never_worsen_ttft(trace):
    if isinstance(trace, str):
        trace = excerpt(trace, 1200, 4)
    previous = None
    for n in range(1, 13):
        result = replay(trace, n)
        if previous is not None:
            assert result.within_slo >= previous.within_slo - 1e-12
            assert result.percentile(99) <= previous.percentile(99) + 1e-9
            assert sum(result.ttft) <= sum(previous.ttft) + 1e-6
        previous = result


# -- the autoscaler -----------------------------------------------------------------------------------------------


def test_a_burst_scales_up_after_the_stabilisation_window_and_the_cold_start():
    burst_at = 300.0
    trace = synthetic_trace([(burst_at, 0.5), (600, 20.0)], prompt=1000, output=100)
    sim, controller, _ = policy_run(trace)
    ups = [(t, cur, new) for t, cur, new in controller.decisions if new > cur]
    assert ups, "the burst must add replicas"
    first = ups[0][0]
    earliest = burst_at + POLICY.scale_up_seconds
    assert earliest <= first <= earliest + 3 * POLICY.polling_seconds
    # The first added replicas serve only after the cold start (no idle node to reuse yet).
    ready = [s for s in sim.samples if s.t >= first]
    assert all(s.ready == 1 for s in ready if s.t < first + PROFILE.cold_start_seconds)
    assert any(s.ready > 1 for s in ready if s.t >= first + PROFILE.cold_start_seconds)


def test_scale_down_waits_for_its_window():
    drop_at = 600.0
    trace = synthetic_trace([(drop_at, 12.0), (900, 0.2)], prompt=1000, output=100)
    _, controller, _ = policy_run(trace, start=8)
    downs = [t for t, cur, new in controller.decisions if new < cur]
    assert downs, "the fleet must shrink once traffic falls"
    assert downs[0] >= drop_at + POLICY.scale_down_seconds - POLICY.polling_seconds
    # The HPA removes at most one replica per rate-limit period.
    assert all(b - a >= POLICY.scale_down_period_seconds - 1e-9 for a, b in zip(downs, downs[1:]))


def test_scale_to_zero_after_the_cooldown_and_back_on_demand():
    policy = dataclasses.replace(POLICY, min_replicas=0, scale_to_zero=True, cooldown_seconds=120,
                                 activation_queue=0)
    trace = Trace("gap", (0.0, 1.0, 1200.0), (500, 500, 500), (5, 5, 5))
    sim, controller, result = policy_run(trace, policy)
    zero = [t for t, cur, new in controller.decisions if new == 0]
    # KEDA counts the cooldown from the last poll that saw activity (t=0 here: the requests end within 2 s).
    assert zero and policy.cooldown_seconds <= zero[0] <= policy.cooldown_seconds + 2 * policy.polling_seconds
    wake = [t for t, cur, new in controller.decisions if cur == 0 and new > 0]
    assert wake and wake[0] >= 1200.0
    # The request that woke the model waited for a whole cold start: the idle node was consolidated long ago.
    assert result.ttft[2] >= PROFILE.cold_start_seconds
    assert result.gpu_hours < 1200 / 3600  # billed for less than the whole gap


def test_no_scale_to_zero_when_the_minimum_is_above_zero():
    policy = dataclasses.replace(POLICY, min_replicas=1, scale_to_zero=False)
    trace = Trace("gap", (0.0, 1500.0), (500, 500), (5, 5))
    sim, controller, _ = policy_run(trace, policy)
    assert all(new >= 1 for _, _, new in controller.decisions)
    assert min(s.replicas for s in sim.samples) >= 1


def test_the_kv_trigger_scales_by_ready_replicas_and_the_queue_by_its_target():
    controller = PolicyController(POLICY)
    # Queue: AverageValue -> ceil(waiting / target); KV: Value -> ceil(ready * usage / target).
    assert controller.desired(current=4, ready=4, waiting=20, kv=0.5) == 10
    assert controller.desired(current=4, ready=2, waiting=0, kv=1.0) == 3
    # Within the 10 % tolerance nothing moves.
    assert controller.desired(current=4, ready=4, waiting=8, kv=0.85) == 4


# -- baselines ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("trace", [
    synthetic_trace([(240, 1.0), (120, 10.0), (240, 1.0)], prompt=1200, output=60, name="burst"),
    pytest.param("conv", marks=needs_traces),
    pytest.param("code", marks=needs_traces),
])
def test_oracle_is_below_static_and_policy(trace):
    if isinstance(trace, str):
        trace = excerpt(trace, 600, 6)
    n, static = static_peak(trace, PROFILE)
    counts, best = oracle(trace, PROFILE, static=n)
    assert best.gpu_hours <= static.gpu_hours + 1e-9
    # Any policy that meets the objective pays at least the oracle: the shipped-style one when it does, and one
    # that keeps half the static fleet and scales from there.
    checked = 0
    for policy in (POLICY, dataclasses.replace(POLICY, min_replicas=max(1, n // 2), max_replicas=max(20, n)),
                   dataclasses.replace(POLICY, min_replicas=n, max_replicas=2 * n)):
        _, _, result = policy_run(trace, policy, start=start_replicas(trace, PROFILE, policy))
        if result.within_slo >= PROFILE.ttft_objective:
            assert best.gpu_hours <= result.gpu_hours + 1e-9
            checked += 1
    assert checked
    assert best.within_slo >= PROFILE.ttft_objective and static.within_slo >= PROFILE.ttft_objective
    # Static is the smallest fixed fleet that meets the objective.
    assert n == 1 or replay(trace, n - 1).within_slo < PROFILE.ttft_objective
    assert max(counts) >= 1 and len(counts) == len(window_attainment(trace, best.ttft, PROFILE))


def test_fluid_bound_counts_prefill_and_decode_work():
    trace = Trace("two", (0.0, 30.0), (4000, 4000), (81, 81))
    expected = 2 * (4000 / 4000 + 80 / 80) / 60
    assert fluid_replicas(trace, PROFILE, 0, 60) == pytest.approx(expected)
    assert math.isclose(fluid_replicas(trace, PROFILE, 60, 120), 0.0)


# -- the spec's thresholds are the ones replayed -----------------------------------------------------------------


@pytest.mark.parametrize("environment", known_environments())
def test_replayed_thresholds_equal_the_spec(environment):
    config = read_stack_config(environment)
    spec = load_spec(config.values, environment)
    a = spec.autoscaling
    for name, model in spec.models.items():
        for version in model.versions:
            t = target(spec, name, version.version)
            policy = t.policy
            bounds = model.replicas_of(version)
            assert (policy.min_replicas, policy.max_replicas) == (bounds.min, bounds.max)
            assert policy.queue_per_replica == a.queue_per_replica
            assert policy.kv_cache_target == a.kv_cache_target
            assert (policy.scale_up_seconds, policy.scale_down_seconds) == (a.scale_up_seconds,
                                                                           a.scale_down_seconds)
            assert (policy.polling_seconds, policy.cooldown_seconds) == (a.polling_seconds, a.cooldown_seconds)
            assert policy.activation_queue == a.activation_queue
            assert policy.scale_to_zero == (a.scale_to_zero and bounds.min == 0)
            assert policy.served_model_name == f"{name}:{version.version}"
            assert f'model_name="{name}:{version.version}"' in policy.queue_query
            # The profile replayed is the model's.
            assert t.profile.prefill_tokens_per_second == model.performance.prefill_tokens_per_second
            assert t.profile.decode_tokens_per_second == model.performance.decode_tokens_per_second
            assert t.profile.max_concurrent_sequences == model.performance.max_concurrent_sequences
            assert t.profile.node_seconds == model.cold_start.node_seconds
            pool = t.pool
            assert t.profile.image_pull_seconds == (0 if pool.image_prepull else model.cold_start.image_pull_seconds)
            if model.weights.load_format == "download" or pool.node_cache is None:
                assert t.profile.load_seconds == model.load_seconds
            else:  # streamed through the node cache: faster than the download path's worst case
                assert t.profile.startup_floor_seconds < t.profile.load_seconds < model.load_seconds
            assert t.profile.warm_slots == (pool.warm_headroom.slots if pool.warm_headroom else 0)
            assert t.profile.ttft_seconds == model.slo.ttft_seconds
            # The controller replays exactly that policy object.
            assert PolicyController(policy).policy is policy


@pytest.mark.parametrize(("gpu", "budget"), [("nvidia-l4", 2048), ("nvidia-a100-80gb", 2048),
                                             ("nvidia-h100-80gb", 8192), ("nvidia-h200-141gb", 8192)])
def test_a_step_carries_vllms_default_token_budget_for_the_gpu_unless_the_spec_sets_one(gpu, budget):
    assert step_token_budget(Engine(), gpu) == budget
    assert step_token_budget(Engine(max_num_batched_tokens=4096), gpu) == 4096


def test_a_larger_step_budget_amortises_decode_steps_over_more_prompt_tokens():
    trace = synthetic_trace([(120, 4.0)], prompt=1500, output=40, name="steady")
    small, large = (replay(trace, 2, dataclasses.replace(PROFILE, prefill_chunk_tokens=budget))
                    for budget in (512, 4096))
    assert large.percentile(99) < small.percentile(99)


def test_behaviour_carries_the_windows_and_rate_limits():
    b = POLICY.behavior()
    assert b["scaleUp"]["stabilizationWindowSeconds"] == POLICY.scale_up_seconds
    assert b["scaleDown"]["stabilizationWindowSeconds"] == POLICY.scale_down_seconds
    assert {p["type"]: p["value"] for p in b["scaleUp"]["policies"]} == {"Pods": POLICY.scale_up_pods,
                                                                        "Percent": POLICY.scale_up_percent}
    assert b["scaleDown"]["policies"] == [{"type": "Pods", "value": POLICY.scale_down_pods,
                                           "periodSeconds": POLICY.scale_down_period_seconds}]


def test_a_versions_default_max_tokens_shortens_the_outputs_the_planner_replays(env_config, load):
    """Generation defaults' planner effect: `maxTokens` caps the output of requests that set none (the traces do not
    say which do, so all are taken not to), and shorter answers free replicas sooner."""
    from llmplane.capacity.planner import plan

    config = env_config("prod")
    trace = synthetic_trace([(120, 3)], prompt=800, output=400, name="long answers")
    before = plan(load(config, "prod"), trace, "llama-3-8b")
    config["llmplane:models"]["llama-3-8b"]["catalog"]["1.0.0"]["generationDefaults"] = {"maxTokens": 100}
    capped = plan(load(config, "prod"), trace, "llama-3-8b")
    assert set(before.trace.output_tokens) == {400} and set(capped.trace.output_tokens) == {100}
    assert capped.row("static").result.gpu_hours < before.row("static").result.gpu_hours
