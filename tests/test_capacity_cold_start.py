"""Cold start derived from the configuration (issue 18): what each setting removes from a replica's start-up, warm
headroom slots in the replay, scale from zero with the gateway holding requests, and requests no fleet can serve."""

from __future__ import annotations

import dataclasses
import math

import pytest
from llmplane.capacity.planner import format_table, plan, replay_policy, target
from llmplane.capacity.simulator import PolicyController, Profile, Simulator
from llmplane.capacity.trace import Trace, synthetic_trace
from llmplane.spec.autoscaling_policy import AutoscalingPolicy
from llmplane.spec.startup import StartupConfig, derive

PROFILE = Profile(prefill_tokens_per_second=4000, decode_tokens_per_second=80, max_concurrent_sequences=8,
                  node_seconds=120, image_pull_seconds=60, load_seconds=150, reload_seconds=20,
                  prefetch_seconds=15, ttft_seconds=2.0, ttft_objective=0.99, gpu_hour_usd=2.0)
POLICY = AutoscalingPolicy(served_model_name="m:1.0.0", min_replicas=1, max_replicas=20, keda=True,
                           queue_per_replica=2, kv_cache_target=0.8, scale_up_seconds=0, scale_down_seconds=300,
                           polling_seconds=15, scale_to_zero=False, activation_queue=0, cooldown_seconds=120)
STREAMED = StartupConfig(weight_bytes=16e9, load_format="runai_streamer", load_seconds=300, node_seconds=180,
                         image_pull_seconds=90, image_prepull=False, cache_medium="nvme", machine_type="g6.xlarge",
                         engine_start_seconds=60, compile_cache=False)


# -- the derivation -----------------------------------------------------------------------------------------------


def test_the_download_path_without_pre_pull_is_issue_5s_570_seconds():
    before = derive(dataclasses.replace(STREAMED, load_format="download", cache_medium=None))
    assert before.cold_start_seconds == 180 + 90 + 300
    assert before.reload_seconds == 300


def test_pre_pull_removes_the_image_pull():
    pulled = derive(STREAMED)
    prepulled = derive(dataclasses.replace(STREAMED, image_prepull=True))
    assert pulled.cold_start_seconds - prepulled.cold_start_seconds == pytest.approx(90)
    assert prepulled.image_pull_seconds == 0


def test_a_warm_node_skips_the_join_and_the_object_store():
    startup = derive(STREAMED)
    assert startup.reload_seconds < startup.load_seconds
    assert startup.cold_start_seconds - startup.reload_seconds > 180 + 90


def test_the_compile_cache_shortens_only_the_warm_start():
    plain, compiled = derive(STREAMED), derive(dataclasses.replace(STREAMED, compile_cache=True))
    assert compiled.load_seconds == plain.load_seconds
    assert compiled.reload_seconds < plain.reload_seconds


def test_a_machine_with_a_faster_network_streams_faster():
    small = derive(STREAMED)
    big = derive(dataclasses.replace(STREAMED, machine_type="g6.48xlarge"))
    assert big.prefetch_seconds < small.prefetch_seconds
    assert big.reload_seconds == small.reload_seconds  # the local read does not depend on the network


def test_the_planner_derives_prods_start_up_from_its_configuration(env_config, load):
    spec = load(env_config("prod"), "prod")
    t = target(spec, "llama-3-8b")
    assert t.profile.image_pull_seconds == 0  # the L4 pools pre-pull the image
    assert t.profile.startup_floor_seconds < t.profile.cold_start_seconds < 570
    config = env_config("prod")
    model = config["llmplane:models"]["llama-3-8b"]
    model["weights"] = {"loadFormat": "download"}
    model["compileCache"] = False
    for cluster in config["llmplane:clusters"]:
        for pool in cluster["pools"]:
            pool["imagePrepull"] = False
    downloaded = target(load(config, "prod"), "llama-3-8b").profile
    assert (downloaded.node_seconds, downloaded.image_pull_seconds, downloaded.load_seconds) == (180, 90, 300)
    assert downloaded.cold_start_seconds == 570


# -- warm headroom in the replay ----------------------------------------------------------------------------------


def _ready_at_after_scale_up(slots: int, at: float = 0.0) -> list[float]:
    sim = Simulator(Trace("none", (), (), ()), PROFILE, start_replicas=0, sample_every=None, warm_slots=slots)
    sim.now = at
    sim.scale_to(2)
    return sorted(r.ready_at - at for r in sim.replicas)


def test_a_warm_slot_removes_the_node_join_and_the_image_pull():
    assert _ready_at_after_scale_up(0) == [PROFILE.cold_start_seconds] * 2
    assert _ready_at_after_scale_up(1) == [PROFILE.slot_start_seconds, PROFILE.cold_start_seconds]
    assert PROFILE.slot_start_seconds == PROFILE.reload_seconds


def test_a_taken_slot_is_warm_again_after_its_refill():
    sim = Simulator(Trace("none", (), (), ()), PROFILE, start_replicas=0, sample_every=None, warm_slots=1)
    sim.scale_to(1)
    sim.scale_to(0)
    sim.idle_nodes.clear()  # forget the released node: only the slot may make the next start fast
    sim.now = PROFILE.refill_seconds - 1
    sim.scale_to(1)
    assert sim.replicas[-1].ready_at - sim.now == PROFILE.cold_start_seconds
    sim.scale_to(0)
    sim.idle_nodes.clear()
    sim.now = PROFILE.refill_seconds + 1
    sim.scale_to(1)
    assert sim.replicas[-1].ready_at - sim.now == PROFILE.slot_start_seconds


def test_warm_slots_are_billed_all_the_time():
    trace = synthetic_trace([(600, 0.5)], prompt=200, output=10)
    without = Simulator(trace, PROFILE, start_replicas=1).run("fixed")
    with_two = Simulator(trace, PROFILE, start_replicas=1, warm_slots=2).run("fixed")
    assert with_two.ttft == without.ttft
    assert with_two.gpu_hours - without.gpu_hours == pytest.approx(2 * with_two.horizon / 3600)


def test_more_headroom_never_lowers_attainment():
    bursts = synthetic_trace([(300, 1.0), (120, 14.0), (300, 1.0), (120, 14.0), (300, 1.0)], prompt=1500, output=60)
    attained = [replay_policy(bursts, dataclasses.replace(PROFILE, warm_slots=n), POLICY).within_slo
                for n in range(5)]
    assert all(b >= a for a, b in zip(attained, attained[1:])), attained
    assert attained[-1] > attained[0]


# -- scale from zero ----------------------------------------------------------------------------------------------


def _from_zero(activation: float) -> tuple[Simulator, object]:
    policy = dataclasses.replace(POLICY, min_replicas=0, scale_to_zero=True, activation_queue=activation)
    trace = Trace("lone", (30.0,), (400,), (20,))
    sim = Simulator(trace, PROFILE, PolicyController(policy), start_replicas=0)
    return sim, sim.run("policy")


def test_a_request_held_at_zero_replicas_is_served_after_the_cold_start():
    sim, result = _from_zero(0)
    assert sim.finished()
    ttft = result.ttft[0]
    # held by the gateway until the next poll wakes the version, then the whole cold start, then its prefill
    assert PROFILE.cold_start_seconds < ttft <= PROFILE.cold_start_seconds + POLICY.polling_seconds + 1
    assert math.isfinite(result.percentile(100))


def test_an_activation_threshold_of_one_leaves_a_lone_request_waiting():
    sim, result = _from_zero(1)
    assert not sim.finished()
    assert math.isinf(result.ttft[0])


# -- requests no fleet can serve ----------------------------------------------------------------------------------


def test_an_over_long_prompt_is_reported_unservable_with_what_would_serve_it(env_config, load):
    config = env_config("prod")
    config["llmplane:models"]["llama-3-8b"]["architecture"]["contextLength"] = 131072  # a Llama 3.1 8B
    config["llmplane:models"]["llama-3-8b"]["engine"]["maxModelLen"] = 16384
    spec = load(config, "prod")
    # 4,000 prompt tokens/s on an L4: a 12,000-token prompt needs 3 s of prefill, beyond the 2.5 s SLO
    trace = Trace("long", (0.0, 1.0, 2.0), (500, 12_000, 600), (10, 10, 10))
    p = plan(spec, trace, "llama-3-8b")
    assert p.unservable == 1 and p.rejected == 0
    assert any("more GPUs per node" in line for line in p.advice)  # tp 2 does not fit a 1-GPU L4 node
    assert any(line.startswith("gpuType: nvidia-a100") for line in p.advice)
    text = format_table(p)
    assert "unservable: 1 requests" in text and "no number of replicas serves them" in text


def test_a_prompt_beyond_max_model_len_is_rejected_not_replayed(env_config, load):
    spec = load(env_config("prod"), "prod")
    trace = Trace("too long", (0.0, 1.0), (500, 9000), (10, 10))
    p = plan(spec, trace, "llama-3-8b")
    assert p.rejected == 1 and len(p.trace) == 1 and p.unservable == 0
