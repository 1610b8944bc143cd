"""The shadow comparator, run for real on 127.0.0.1 between two stand-in vLLM servers (stable and shadow) whose
answers and delays each test sets: agreement, similarity, refusals, output tokens and latency counted per arm;
streams compared once assembled; the mirror answered at once and a full queue dropping and counting; and no
prompt or answer text in the metrics or the logs."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from llmplane.components.serving.shadow_compare import SCRIPT
from llmplane.toolchain.localstack import free_port
from prometheus_client.parser import text_string_to_metric_families

MODEL = "llama-3-8b"
STABLE, SHADOW = "1.0.0", "1.1.0"
SECRET_PROMPT = "zebra-violet-prompt-7731"
SECRET_ANSWER = "quokka-amber-answer-4410"
VLLM_KEY = "Bearer sk-vllm-not-to-be-logged"


@dataclass
class Reply:
    """What a stand-in arm answers to one prompt."""

    text: str
    tokens: int = 5
    delay: float = 0.0
    status: int = 200


@dataclass
class Arm:
    """A stand-in vLLM server: OpenAI-shaped chat and text completions, streamed or not, as vLLM writes them."""

    replies: dict[str, Reply] = field(default_factory=dict)
    received: list[tuple[str, dict, dict]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> Arm:
        arm = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                arm.received.append((self.path, request, dict(self.headers)))
                prompt = (request["messages"][-1]["content"] if "messages" in request else request["prompt"])
                reply = arm.replies[prompt]
                time.sleep(reply.delay)
                if reply.status != 200:
                    self._send(reply.status, "application/json", b'{"error": {"message": "failed"}}')
                    return
                chat = self.path == "/v1/chat/completions"
                if request.get("stream"):
                    self._send(200, "text/event-stream", _stream(reply, chat))
                    return
                choice = ({"index": 0, "message": {"role": "assistant", "content": reply.text, "refusal": None},
                           "finish_reason": "stop"} if chat else
                          {"index": 0, "text": reply.text, "logprobs": None, "finish_reason": "stop"})
                self._send(200, "application/json", json.dumps({
                    "id": "chatcmpl-1", "object": "chat.completion" if chat else "text_completion",
                    "model": request["model"], "choices": [choice],
                    "usage": {"prompt_tokens": 3, "completion_tokens": reply.tokens,
                              "total_tokens": 3 + reply.tokens}}).encode())

            def _send(self, status: int, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self


def _stream(reply: Reply, chat: bool) -> bytes:
    """vLLM's server-sent events: a chunk per word, the finish reason, the usage chunk, then [DONE]."""
    words = reply.text.split(" ")
    pieces = [w if i == 0 else f" {w}" for i, w in enumerate(words)]
    events = []
    for piece in pieces:
        choice = ({"index": 0, "delta": {"content": piece}, "finish_reason": None} if chat else
                  {"index": 0, "text": piece, "finish_reason": None})
        events.append({"id": "chatcmpl-1", "choices": [choice]})
    events.append({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"} if chat else
                                                   {"index": 0, "text": "", "finish_reason": "stop"}]})
    events.append({"id": "chatcmpl-1", "choices": [],
                   "usage": {"prompt_tokens": 3, "completion_tokens": reply.tokens, "total_tokens": 3 + reply.tokens}})
    return b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events) + b"data: [DONE]\n\n"


@dataclass
class Comparator:
    api: str
    metrics: str
    process: subprocess.Popen[str]
    stable: Arm
    shadow: Arm

    def mirror(self, prompt: str, path: str = "/v1/chat/completions", **extra: Any) -> tuple[int, float]:
        """Send a request as the gateway's mirror does; the status and the seconds until the answer."""
        body = ({"model": MODEL, "messages": [{"role": "user", "content": prompt}], **extra}
                if path == "/v1/chat/completions" else {"model": MODEL, "prompt": prompt, **extra})
        request = urllib.request.Request(f"{self.api}{path}", data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json", "Authorization": VLLM_KEY})
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()
            return answer.status, time.perf_counter() - started

    def page(self) -> str:
        with urllib.request.urlopen(f"{self.metrics}/metrics", timeout=5) as page:
            return page.read().decode()

    def samples(self) -> dict[tuple[str, frozenset], float]:
        return {(s.name, frozenset(s.labels.items())): s.value
                for family in text_string_to_metric_families(self.page()) for s in family.samples}

    def value(self, name: str, **labels: str) -> float:
        return self.samples().get((name, frozenset({"model": MODEL, **labels}.items())), 0.0)

    def wait_for(self, name: str, expected: float, **labels: str) -> None:
        deadline = time.monotonic() + 15
        while self.value(name, **labels) < expected:
            assert time.monotonic() < deadline, f"{name}{labels} never reached {expected}: {self.page()}"
            time.sleep(0.05)

    def logs(self) -> str:
        self.process.terminate()
        out, err = self.process.communicate(timeout=10)
        return out + err


def _start(tmp_path: Path, *options: str) -> Comparator:
    stable, shadow = Arm().start(), Arm().start()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model": MODEL, "stable": {"version": STABLE, "url": stable.url},
                                  "shadows": [{"version": SHADOW, "url": shadow.url}]}))
    api, metrics = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--config", str(config), "--host", "127.0.0.1", "--port", str(api),
         "--metrics-port", str(metrics), *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while True:
        assert process.poll() is None, f"the comparator exited: {process.communicate()}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{api}/healthz", timeout=1):
                return Comparator(f"http://127.0.0.1:{api}", f"http://127.0.0.1:{metrics}", process, stable, shadow)
        except OSError:
            assert time.monotonic() < deadline, "the comparator never answered /healthz"
            time.sleep(0.1)


@pytest.fixture()
def comparator(tmp_path: Path) -> Iterator[Comparator]:
    started = _start(tmp_path)
    yield started
    if started.process.poll() is None:
        started.process.terminate()
        started.process.wait(timeout=10)
    for arm in (started.stable, started.shadow):
        assert arm.server is not None
        arm.server.shutdown()


def _both(comparator: Comparator, prompt: str, stable: Reply, shadow: Reply) -> None:
    comparator.stable.replies[prompt] = stable
    comparator.shadow.replies[prompt] = shadow


def test_identical_answers_agree_exactly(comparator: Comparator):
    _both(comparator, "q1", Reply("Paris is the capital of France.", tokens=7),
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
    _both(comparator, "q2", Reply("The cat sat on the mat."), Reply("the cat lay on the mat"))
    comparator.mirror("q2")
    comparator.wait_for("llmplane_shadow_similarity_count", 1, version=SHADOW, decoding="sampled")
    assert comparator.value("llmplane_shadow_exact_agreements_total", version=SHADOW, decoding="sampled") == 0
    assert comparator.value("llmplane_shadow_similarity_sum", version=SHADOW,
                            decoding="sampled") == pytest.approx(10 / 12)
    assert comparator.value("llmplane_shadow_similarity_bucket", version=SHADOW, decoding="sampled", le="0.8") == 0
    assert comparator.value("llmplane_shadow_similarity_bucket", version=SHADOW, decoding="sampled", le="0.9") == 1


def test_word_order_lowers_the_similarity(comparator: Comparator):
    # Same four tokens reversed: the longest common subsequence is one token, 2 * 1 / (4 + 4).
    _both(comparator, "q3", Reply("one two three four"), Reply("four three two one"))
    comparator.mirror("q3")
    comparator.wait_for("llmplane_shadow_similarity_count", 1, version=SHADOW, decoding="sampled")
    assert comparator.value("llmplane_shadow_similarity_sum", version=SHADOW, decoding="sampled") == 0.25


def test_refusals_are_counted_per_arm(comparator: Comparator):
    _both(comparator, "q4", Reply("Here is how to reset your password: open Settings."),
          Reply("I\u2019m sorry, but I can\u2019t help with that request."))
    _both(comparator, "q5", Reply("I cannot assist with that."), Reply("I can help with that: open Settings."))
    _both(comparator, "q6", Reply("Sorry for the wait! The answer is 42."), Reply("The answer is 42."))
    for prompt in ("q4", "q5", "q6"):
        comparator.mirror(prompt)
    comparator.wait_for("llmplane_shadow_latency_seconds_count", 3, version=SHADOW, arm="shadow")
    assert comparator.value("llmplane_shadow_refusals_total", version=SHADOW, arm="shadow") == 1
    assert comparator.value("llmplane_shadow_refusals_total", version=SHADOW, arm="stable") == 1


def test_streams_are_compared_assembled_with_their_usage(comparator: Comparator):
    _both(comparator, "q7", Reply("a streamed answer of six words", tokens=9),
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
    _both(comparator, "q8", Reply("ok"), Reply("ok"))
    comparator.mirror("q8", model=f"{MODEL}:{STABLE}", max_tokens=32)
    comparator.wait_for("llmplane_shadow_similarity_count", 1, version=SHADOW, decoding="sampled")
    (_, stable, stable_headers), (_, shadow, shadow_headers) = comparator.stable.received[0], \
        comparator.shadow.received[0]
    assert stable == shadow, "one body for both arms, its seed shared"
    assert stable["model"] == MODEL, "a pinned version's name is replaced by the model's, which every arm serves"
    assert isinstance(stable["seed"], int) and stable["max_tokens"] == 32
    assert stable_headers["Authorization"] == shadow_headers["Authorization"] == VLLM_KEY


def test_a_failed_arm_is_counted_and_not_compared(comparator: Comparator):
    _both(comparator, "q9", Reply("fine"), Reply("", status=500))
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
    started = _start(tmp_path, "--queue", "1", "--workers", "1")
    try:
        _both(started, "slow", Reply("late", delay=3), Reply("late", delay=3))
        timings = [started.mirror("slow") for _ in range(6)]
        assert all(status == 202 for status, _ in timings)
        assert max(seconds for _, seconds in timings) < 0.5, "the mirror waits for no arm"
        # One request with the worker, one in the queue, four dropped.
        assert started.value("llmplane_shadow_mirrored_requests_total", outcome="queued") == 2
        assert started.value("llmplane_shadow_mirrored_requests_total", outcome="dropped") == 4
        started.wait_for("llmplane_shadow_similarity_count", 2, version=SHADOW, decoding="sampled")
    finally:
        started.process.terminate()
        started.process.wait(timeout=10)
        for arm in (started.stable, started.shadow):
            assert arm.server is not None
            arm.server.shutdown()


def test_no_prompt_or_answer_text_in_metrics_or_logs(comparator: Comparator):
    _both(comparator, SECRET_PROMPT, Reply(SECRET_ANSWER), Reply("I'm sorry, I can't share " + SECRET_ANSWER))
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

