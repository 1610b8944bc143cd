"""The planner's engine-feature effects (issue 26 item 5) and `llmplane capacity ENV --recommend`: the cheapest
configuration meeting the TTFT objective, checked against brute-force replays, its environment diff, and the
requests no configuration serves."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import yaml
from llmplane.capacity.engine_effects import DoesNotFit, replica_rates
from llmplane.capacity.planner import replay_policy, target
from llmplane.capacity.recommend import QUEUES, Hardware, candidate_profile, recommend, unservable_lines
from llmplane.capacity.trace import Trace, synthetic_trace
from llmplane.stacks.cli import main
from llmplane.stacks.config_edit import set_value, unified_diff
from llmplane.stacks.environments import environment_file

BURST = synthetic_trace([(60, 2), (30, 12), (60, 2)], prompt=1500, output=40, name="burst")
"""A quiet minute, half a minute at six times the rate, a quiet minute: 2.5 min, 480 requests."""


@pytest.fixture
def prod(env_config):
    return env_config("prod")


def _engine(config, **values):
    """prod's llama-3-8b with these engine settings, on the AWS clusters (L4: FP8; on-prem A100s have none)."""
    config = copy.deepcopy(config)
    model = config["llmplane:models"]["llama-3-8b"]
    model["clusters"] = ["aws-use1", "aws-usw2"]
    model.setdefault("engine", {}).update(values)
    return config


def _rates(load, config):
    spec = load(config, "prod")
    return replica_rates(spec.models["llama-3-8b"], "nvidia-l4")


# -- engine features: what one replica holds and decodes ------------------------------------------------------------
# prod's llama-3-8b on one L4: 0.9 x 24 GB - 16.06 GB of bf16 weights = 5.54 GB of KV room, 128 KiB per token
# (32 layers x 8 KV heads x 128 dims x 2 x 2 bytes): 42,267 tokens for the profile's 16 sequences at 180 tok/s.


def test_the_plain_engine_keeps_the_measured_profile(load, prod):
    rates = _rates(load, prod)
    assert (rates.max_concurrent_sequences, rates.decode_tokens_per_second, rates.prefill_tokens_per_second) == (
        16, 180, 4000)


def test_fp8_kv_doubles_the_sequences_and_the_decode_they_share(load, prod):
    rates = _rates(load, _engine(prod, kvCacheDtype="fp8"))
    assert rates.max_concurrent_sequences == 32  # half the bytes per token: twice the tokens
    # the step reads the same bytes (weights + a full cache), so twice the sequences decode in the same time
    assert rates.decode_tokens_per_second == pytest.approx(360)


def test_fp8_kv_stops_at_max_num_seqs(load, prod):
    assert _rates(load, _engine(prod, kvCacheDtype="fp8", maxNumSeqs=20)).max_concurrent_sequences == 20


def test_lora_slots_take_kv_room(load, prod):
    adapter = {"uri": "s3://adapters/sql/1/adapter.tar", "sha256": "a" * 64, "rank": 16, "sizeMib": 640}
    rates = _rates(load, _engine(prod, lora={"adapters": {"sql": adapter}, "maxLoras": 4, "maxLoraRank": 16}))
    # 4 slots x 640 MiB = 2.68 GB of the 5.54 GB: 51.5 % of the tokens, 8 of 16 sequences
    assert rates.max_concurrent_sequences == 8


def test_ngram_speculation_speeds_decode_by_the_accepted_tokens(load, prod):
    rates = _rates(load, _engine(prod, speculative={"method": "ngram", "numSpeculativeTokens": 4,
                                                    "acceptanceRate": 0.6}))
    # (1 - 0.6^5) / (1 - 0.6) = 2.3056 tokens per step, no draft cost, the step still memory bound
    assert rates.decode_tokens_per_second == pytest.approx(180 * 2.3056)
    assert rates.max_concurrent_sequences == 16


def test_a_draft_model_costs_its_size_per_drafted_token(load, prod):
    draft = {"uri": "s3://drafts/llama-1b/draft.tar", "sha256": "b" * 64, "rank": 1, "sizeMib": 1532}
    ngram = _rates(load, _engine(prod, speculative={"method": "ngram", "numSpeculativeTokens": 4}))
    drafted = _rates(load, _engine(prod, speculative={
        "method": "draft_model", "numSpeculativeTokens": 4, "draft": draft}))
    assert drafted.decode_tokens_per_second < ngram.decode_tokens_per_second
    assert drafted.max_concurrent_sequences < 16  # its weights take KV room


def test_kv_offload_holds_more_sequences_at_the_gpu_batchs_throughput(load, prod):
    rates = _rates(load, _engine(prod, kvOffload={"cpuGib": 8}))
    # 8 GiB of host memory hold 65,536 more tokens: 16 x (42,267 + 65,536) / 42,267 = 40.8 sequences
    assert rates.max_concurrent_sequences == 40
    assert rates.decode_tokens_per_second == pytest.approx(180)


def test_weights_that_leave_no_kv_room_do_not_fit(load, prod):
    spec = load(prod, "prod")
    with pytest.raises(DoesNotFit, match="fewer than one maxModelLen"):
        replica_rates(spec.models["llama-3-8b"], "nvidia-l4", spec.models["llama-3-70b"], "nvidia-l4")


def test_the_plan_replays_the_specs_features(load, prod):
    spec = load(_engine(prod, kvCacheDtype="fp8"), "prod")
    assert target(spec, "llama-3-8b").profile.max_concurrent_sequences == 32


# -- the recommendation ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def burst_recommendation(env_config_module):
    return recommend(env_config_module, BURST)


@pytest.fixture(scope="module")
def env_config_module():
    from llmplane.spec import load_spec
    from llmplane.stacks.environments import read_stack_config
    return load_spec(read_stack_config("prod").values, "prod")


def _within(trace: Trace, result) -> float:
    slo = 2.5
    return sum(1 for x in result.ttft if x <= slo + 1e-9) / len(trace)


def test_the_recommendation_meets_the_slo_and_no_hand_picked_fleet_is_cheaper(burst_recommendation,
                                                                            env_config_module):
    rec = burst_recommendation
    best = rec.meeting[0]
    spec = env_config_module
    t = target(spec, "llama-3-8b")
    policy = dataclasses.replace(t.policy, min_replicas=best.min_replicas, max_replicas=best.max_replicas,
                                 queue_per_replica=best.queue_per_replica)
    assert _within(BURST, replay_policy(BURST, best.profile, policy)) >= 0.99
    # brute force: every bound up to 10 replicas and every threshold on three hand-picked options
    cheapest = float("inf")
    for hw in (Hardware("nvidia-l4", 1, 1, False, False), Hardware("nvidia-l40s", 1, 1, False, False),
               Hardware("nvidia-l4", 1, 1, True, False)):
        profile = candidate_profile(spec, t, hw)
        for high in range(1, 11):
            for low in range(1, high + 1):
                for queue in QUEUES:
                    tried = dataclasses.replace(t.policy, min_replicas=low, max_replicas=high, queue_per_replica=queue)
                    r = replay_policy(BURST, profile, tried)
                    if _within(BURST, r) >= 0.99:
                        cheapest = min(cheapest, r.cost_usd)
    assert cheapest < float("inf")
    assert best.cost_usd <= cheapest + 1e-9
    assert rec.today.within_slo == 1.0 and best.cost_usd < rec.today.cost_usd  # prod's 10-14 L4s idle here


def test_the_table_is_cheapest_first_and_every_row_meets_the_slo(burst_recommendation):
    costs = [o.cost_usd for o in burst_recommendation.meeting]
    assert costs == sorted(costs)
    assert all(o.within_slo >= 0.99 for o in burst_recommendation.meeting)


def test_requests_beyond_max_model_len_are_named_with_what_would_serve_them(env_config_module, load, prod):
    long = Trace("long", (0.0, 1.0, 2.0, 3.0), (500, 9000, 8000, 600), (10, 10, 500, 10))
    rec = recommend(env_config_module, long)
    assert (rec.rejected, rec.cut_short, rec.longest) == (1, 1, 9010)
    lines = unservable_lines(rec)
    assert "1 requests have prompts of maxModelLen (8192) tokens or more" in lines[0]
    assert lines[1] == "  - a model with a context of at least 9,010 tokens: this one's architecture.contextLength " \
                       "is 8192"
    prod["llmplane:models"]["llama-3-8b"]["architecture"]["contextLength"] = 131072  # a Llama 3.1 8B
    longer = recommend(load(prod, "prod"), long)
    assert unservable_lines(longer)[1] == "  - engine.maxModelLen: 9010 (the model's architecture.contextLength is " \
                                          "131072)"


# -- the environment diff --------------------------------------------------------------------------------------------


def test_an_edit_keeps_the_files_comments_and_adds_missing_keys():
    text = "config:\n  # the pool\n  llmplane:models:\n    m:\n      replicas: {min: 10, max: 14}  # sized\n" \
           "      engine:\n        maxNumSeqs: 128\n      pool: a\n"
    edited = set_value(text, ("llmplane:models", "m", "replicas"), {"min": 9, "max": 9})
    edited = set_value(edited, ("llmplane:models", "m", "engine", "speculative"),
                       {"method": "ngram", "numSpeculativeTokens": 4})
    assert "  # the pool\n" in edited and "{min: 9, max: 9}  # sized" in edited
    assert yaml.safe_load(edited)["config"]["llmplane:models"]["m"] == {
        "replicas": {"min": 9, "max": 9}, "pool": "a",
        "engine": {"maxNumSeqs": 128, "speculative": {"method": "ngram", "numSpeculativeTokens": 4}}}
    diff = unified_diff(text, edited, "environments/Pulumi.x.yaml")
    assert "-      replicas: {min: 10, max: 14}  # sized\n+      replicas: {min: 9, max: 9}  # sized" in diff


def test_recommend_prints_the_table_the_cheapest_and_a_diff_that_applies_it(capsys, tmp_path):
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for i, t in enumerate(BURST.arrivals):
        lines.append(f"2023-11-16 18:{15 + int(t // 60):02d}:{t % 60:010.7f},{BURST.prompt_tokens[i]},40")
    trace = tmp_path / "burst.csv"
    trace.write_text("\n".join(lines) + "\n")
    assert main(["capacity", "prod", "--recommend", "--trace", str(trace)]) == 0
    out = capsys.readouterr().out
    assert "within SLO  GPU-hours  cost USD" in out
    verdict = next(line for line in out.splitlines() if line.startswith("cheapest meeting the SLO: "))
    diff = out[out.index("--- a/environments/Pulumi.prod.yaml"):out.rindex("\n\nTrace: ")]
    before = environment_file("prod").read_text()
    after = _patched(before, diff)
    model = yaml.safe_load(after)["config"]["llmplane:models"]["llama-3-8b"]
    low, high = verdict.split("replicas ")[1].split(",")[0].split("-")
    assert model["replicas"] == {"min": int(low), "max": int(high)}
    assert out.rstrip().splitlines()[-1] == "Trace: burst.csv (name its source and licence with --trace-credit)"


def _patched(before: str, diff: str) -> str:
    """Apply a unified diff's hunks to `before` (the lines it removes must be there)."""
    lines = before.splitlines(keepends=True)
    out, at = [], 0
    for hunk in diff.split("\n@@ ")[1:]:
        header, *body = hunk.split("\n")
        start = int(header.split(" ")[0].split(",")[0].lstrip("-")) - 1
        out += lines[at:start]
        at = start
        for line in body:
            if line.startswith("+"):
                out.append(line[1:] + "\n")
            elif line.startswith("-"):
                assert lines[at] == line[1:] + "\n"
                at += 1
            elif line.startswith(" "):
                out.append(lines[at])
                at += 1
    return "".join(out + lines[at:])
