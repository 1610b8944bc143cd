"""The shadow comparator, run for real on 127.0.0.1 between two stand-in vLLM servers (stable and shadow) whose
answers and delays each test sets: agreement, similarity, refusals, output tokens and latency counted per arm;
streams compared once assembled; the mirror answered at once and a full queue dropping and counting; and no
prompt or answer text in the metrics or the logs."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from llmplane.components.serving.shadow_compare import SCRIPT

from tests.shadow_arms import (
    MODEL,
    SECRET_ANSWER,
    SECRET_PROMPT,
    SHADOW,
    STABLE,
    VLLM_KEY,
    Comparator,
    Reply,
    both,
    start,
)


@pytest.fixture()
def comparator(tmp_path: Path) -> Iterator[Comparator]:
    started = start(tmp_path)
    yield started
    started.stop()


def test_identical_answers_agree_exactly(comparator: Comparator):
    both(comparator, "q1", Reply("Paris is the capital of France.", tokens=7),
          Reply("Paris is the capital of France.", tokens=7))
    assert comparator.mirror("q1", temperature=0)[0] == 202
    comparator.wait_for("llmplane_shadow_similarity_count", 1, version=SHADOW, decoding="greedy")
    assert comparator.value("llmplane_shadow_exact_agreements_total", version=SHADOW, decoding="greedy") == 1
    assert comparator.value("llmplane_shadow_similarity_sum", version=SHADOW, decoding="greedy") == 1.0
    for arm in ("stable", "shadow"):
        assert comparator.value("llmplane_shadow_output_tokens_sum", version=SHADOW, arm=arm) == 7
        assert comparator.value("llmplane_shadow_latency_seconds_count", version=SHADOW, arm=arm) == 1
        assert comparator.value("llmplane_shadow_refusals_total", version=SHADOW, arm=arm) == 0


def test_different_answers_score_their_rouge_l_f1(comparator: Comparator):
    # Six tokens each, longest common subsequence "the cat on the mat" (5): 2 * 5 / (6 + 6).
    both(comparator, "q2", Reply("The cat sat on the mat."), Reply("the cat lay on the mat"))
    comparator.mirror("q2")
    comparator.wait_for("llmplane_shadow_similarity_count", 1, version=SHADOW, decoding="sampled")
    assert comparator.value("llmplane_shadow_exact_agreements_total", version=SHADOW, decoding="sampled") == 0
    assert comparator.value("llmplane_shadow_similarity_sum", version=SHADOW,
                            decoding="sampled") == pytest.approx(10 / 12)
    assert comparator.value("llmplane_shadow_similarity_bucket", version=SHADOW, decoding="sampled", le="0.8") == 0
    assert comparator.value("llmplane_shadow_similarity_bucket", version=SHADOW, decoding="sampled", le="0.9") == 1


def test_word_order_lowers_the_similarity(comparator: Comparator):
    # Same four tokens reversed: the longest common subsequence is one token, 2 * 1 / (4 + 4).
    both(comparator, "q3", Reply("one two three four"), Reply("four three two one"))
    comparator.mirror("q3")
    comparator.wait_for("llmplane_shadow_similarity_count", 1, version=SHADOW, decoding="sampled")
    assert comparator.value("llmplane_shadow_similarity_sum", version=SHADOW, decoding="sampled") == 0.25


def test_refusals_are_counted_per_arm(comparator: Comparator):
    both(comparator, "q4", Reply("Here is how to reset your password: open Settings."),
          Reply("I\u2019m sorry, but I can\u2019t help with that request."))
    both(comparator, "q5", Reply("I cannot assist with that."), Reply("I can help with that: open Settings."))
    both(comparator, "q6", Reply("Sorry for the wait! The answer is 42."), Reply("The answer is 42."))
    for prompt in ("q4", "q5", "q6"):
        comparator.mirror(prompt)
    comparator.wait_for("llmplane_shadow_latency_seconds_count", 3, version=SHADOW, arm="shadow")
    assert comparator.value("llmplane_shadow_refusals_total", version=SHADOW, arm="shadow") == 1
    assert comparator.value("llmplane_shadow_refusals_total", version=SHADOW, arm="stable") == 1


def test_streams_are_compared_assembled_with_their_usage(comparator: Comparator):
    both(comparator, "q7", Reply("a streamed answer of six words", tokens=9),
          Reply("a streamed answer of six words", tokens=11))
    comparator.mirror("q7", stream=True)
    comparator.mirror("q7", path="/v1/completions", stream=True)
    comparator.wait_for("llmplane_shadow_similarity_count", 2, version=SHADOW, decoding="sampled")
    assert comparator.value("llmplane_shadow_exact_agreements_total", version=SHADOW, decoding="sampled") == 2
    assert comparator.value("llmplane_shadow_output_tokens_sum", version=SHADOW, arm="stable") == 18
    assert comparator.value("llmplane_shadow_output_tokens_sum", version=SHADOW, arm="shadow") == 22
    for arm in (comparator.stable, comparator.shadow):
        assert all(body["stream_options"] == {"include_usage": True} for _, body, _ in arm.received)


def test_both_arms_get_the_same_request(comparator: Comparator):
    both(comparator, "q8", Reply("ok"), Reply("ok"))
    comparator.mirror("q8", model=f"{MODEL}:{STABLE}", max_tokens=32)
    comparator.wait_for("llmplane_shadow_similarity_count", 1, version=SHADOW, decoding="sampled")
    (_, stable, stable_headers), (_, shadow, shadow_headers) = comparator.stable.received[0], \
        comparator.shadow.received[0]
    assert stable == shadow, "one body for both arms, its seed shared"
    assert stable["model"] == MODEL, "a pinned version's name is replaced by the model's, which every arm serves"
    assert isinstance(stable["seed"], int) and stable["max_tokens"] == 32
    assert stable_headers["Authorization"] == shadow_headers["Authorization"] == VLLM_KEY


def test_a_failed_arm_is_counted_and_not_compared(comparator: Comparator):
    both(comparator, "q9", Reply("fine"), Reply("", status=500))
    comparator.mirror("q9")
    comparator.wait_for("llmplane_shadow_arm_errors_total", 1, version=SHADOW, arm="shadow")
    assert comparator.value("llmplane_shadow_arm_errors_total", version=SHADOW, arm="stable") == 0
    assert comparator.value("llmplane_shadow_latency_seconds_count", version=SHADOW, arm="stable") == 0
    assert comparator.value("llmplane_shadow_similarity_count", version=SHADOW, decoding="sampled") == 0


def test_other_paths_are_skipped(comparator: Comparator):
    request = urllib.request.Request(f"{comparator.api}/v1/embeddings", data=b'{"input": "x"}', method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 202
    assert comparator.value("llmplane_shadow_mirrored_requests_total", outcome="skipped_path") == 1
    assert comparator.stable.received == [] and comparator.shadow.received == []


def test_a_full_queue_drops_and_counts_without_slowing_the_mirror(tmp_path: Path):
    started = start(tmp_path, "--queue", "1", "--workers", "1")
    try:
        both(started, "slow", Reply("late", delay=3), Reply("late", delay=3))
        timings = [started.mirror("slow") for _ in range(6)]
        assert all(status == 202 for status, _ in timings)
        assert max(seconds for _, seconds in timings) < 0.5, "the mirror waits for no arm"
        # One request with the worker, one in the queue, four dropped.
        assert started.value("llmplane_shadow_mirrored_requests_total", outcome="queued") == 2
        assert started.value("llmplane_shadow_mirrored_requests_total", outcome="dropped") == 4
        started.wait_for("llmplane_shadow_similarity_count", 2, version=SHADOW, decoding="sampled")
    finally:
        started.stop()


def test_no_prompt_or_answer_text_in_metrics_or_logs(comparator: Comparator):
    both(comparator, SECRET_PROMPT, Reply(SECRET_ANSWER), Reply("I'm sorry, I can't share " + SECRET_ANSWER))
    comparator.shadow.replies["fails"] = Reply("", status=500)
    comparator.stable.replies["fails"] = Reply(SECRET_ANSWER)
    comparator.mirror(SECRET_PROMPT)
    comparator.mirror("fails")
    request = urllib.request.Request(f"{comparator.api}/v1/chat/completions", data=SECRET_PROMPT.encode(),
                                     method="POST", headers={"Authorization": VLLM_KEY})
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 202
    comparator.wait_for("llmplane_shadow_mirrored_requests_total", 1, outcome="skipped_not_json")
    comparator.wait_for("llmplane_shadow_arm_errors_total", 1, version=SHADOW, arm="shadow")
    page, logs = comparator.page(), comparator.logs()
    for secret in (SECRET_PROMPT, SECRET_ANSWER, "sk-vllm-not-to-be-logged"):
        assert secret not in page and secret not in logs
    assert f"{SHADOW} did not answer a mirrored request: HTTP 500" in logs


def test_a_bad_config_is_refused_with_what_to_give(tmp_path: Path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model": MODEL, "stable": {"version": STABLE, "url": "http://x:8000"},
                                  "shadows": []}))
    done = subprocess.run([sys.executable, str(SCRIPT), "--config", str(config)], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode != 0
    assert "shadow comparator config: 'shadows' is empty; give at least one shadow version" in done.stderr

