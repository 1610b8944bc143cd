"""Stand-in vLLM servers for the shadow comparator's tests, and the comparator run between them on 127.0.0.1:
each stand-in answers OpenAI-shaped chat and text completions, streamed or not, as vLLM writes them, with the
text, token count, delay and status a test sets per prompt."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

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

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.communicate(timeout=10)
        for arm in (self.stable, self.shadow):
            assert arm.server is not None
            arm.server.shutdown()


def start(tmp_path: Path, *options: str) -> Comparator:
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


def both(comparator: Comparator, prompt: str, stable: Reply, shadow: Reply) -> None:
    """Set what stable and the shadow answer to `prompt`."""
    comparator.stable.replies[prompt] = stable
    comparator.shadow.replies[prompt] = shadow
