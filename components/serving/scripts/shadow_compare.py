"""llmplane shadow comparator: compares a model's shadow versions with its stable version on mirrored requests.

The model's HTTPRoute mirrors a share of its requests here (Gateway API RequestMirror; the gateway drops the
mirror's answer, so users never see a shadow). Each mirrored completion is answered at once with 202 and queued; a
worker sends the same body to stable's Service and to each shadow's Service, in parallel, and compares the answers.
This costs one extra stable generation per mirrored request (the user's own answer never reaches a mirror), so the
route's mirror percent bounds it.

Exported per model, shadow `version` and `arm` (stable or shadow), only from requests both arms answered:
- `llmplane_shadow_latency_seconds` (histogram): request sent to last byte read, stream or not;
- `llmplane_shadow_output_tokens` (histogram): the arm's `usage.completion_tokens`;
- `llmplane_shadow_refusals_total`: answers `is_refusal` flags;
- `llmplane_shadow_exact_agreements_total` and `llmplane_shadow_similarity` (histogram, per `decoding`: greedy
  when the request's temperature is 0, else sampled): the two answers equal, and their token-level ROUGE-L F1.
And `llmplane_shadow_mirrored_requests_total{outcome}` (queued, dropped when the queue is full, skipped_*, failed),
`llmplane_shadow_arm_errors_total` (an arm failed or timed out: no comparison) and the queue's depth.

Similarity is ROUGE-L F1 (Lin, "ROUGE: A Package for Automatic Evaluation of Summaries", ACL workshop 2004) on
word tokens: 2 LCS / (len a + len b), which is exactly rapidfuzz's normalized Indel similarity of the two token
lists, so it is computed by rapidfuzz (bit-parallel LCS) instead of rouge-score and its nltk, absl and numpy.
ROUGE-L is order-aware (a reshuffled answer scores lower), standard for comparing generated text, and cheap.

Requests are compared as clients sent them, with three changes: a pinned `<model>:<version>` name becomes the
model's name (each arm serves it), a request without `seed` gets one shared seed (common random numbers), and a
stream asks for its usage (`stream_options.include_usage`); streams are compared once assembled. Only the first
choice is compared. Prompts and answers are held in memory for one comparison and never logged or exported.

Usage: python3 shadow_compare.py --config CONFIG.json [--host 0.0.0.0] [--port 8080] [--metrics-port 9090]
CONFIG.json: {"model": "<model>", "stable": {"version": "<v>", "url": "http://<service>:8000"},
              "shadows": [{"version": "<v>", "url": "http://<service>:8000"}, ...]}
"""

from __future__ import annotations

import argparse
import json
import queue
import random
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, start_http_server
from rapidfuzz.distance import Indel

GENERATION_PATHS = ("/v1/chat/completions", "/v1/completions")
"""Paths compared (the route rewrites `/<model>/v1` to `/v1` before mirroring); others are counted as skipped."""
HEALTH_PATH = "/healthz"
"""Probe path."""
MAX_BODY_BYTES = 2 * 2**20
"""Largest mirrored body queued: with `--queue` it bounds the memory held."""
FORWARDED_HEADERS = ("authorization",)
"""Request headers passed on to the arms: the vLLM key the gateway's filter set on the request."""
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, 300.0)
TOKEN_BUCKETS = tuple(float(2 ** i) for i in range(15))
SIMILARITY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
REFUSAL_WINDOW = 200
"""Characters at the start of an answer searched for a refusal: a refusal opens an answer, it is not quoted in
the middle of one."""
REFUSAL = re.compile(
    r"\b(?:i(?:'m| am)? sorry|i apologi[sz]e|unfortunately)\b[^.!?\n]{0,60}?"
    r"\b(?:i can ?not|i can't|i won't|i will not|i'm (?:not able|unable)|i am (?:not able|unable))\b"
    r"|\bi (?:can ?not|can't|won't|will not|must decline to|(?:'m|am) (?:not able|unable) to) "
    r"(?:help|assist|comply|provide|fulfil|fulfill|answer|do that|support|engage|create|generate|share)\b"
    r"|\bas an ai(?: language model)?, i (?:can ?not|can't|won't|am not able|'m not able)\b")
"""English refusal openings: an apology followed by "I can't/won't/am unable", or "I can't/won't/am unable to"
followed by help/assist/comply/provide/..., or "As an AI (language model), I cannot". vLLM has no refusal finish
reason (its finish reasons are stop, length, abort, error), so the text is all there is."""
ARMS = ("stable", "shadow")
DECODINGS = ("greedy", "sampled")
"""greedy: the request's temperature is 0, so equal versions answer alike; sampled: any other request."""
OUTCOMES = ("queued", "dropped", "skipped_path", "skipped_too_large", "skipped_not_json", "failed")
"""What became of a mirrored request: queued for comparison, dropped (queue full), skipped (not a completion
path, over `MAX_BODY_BYTES`, not a JSON object) or failed (an unexpected error; the type is logged)."""


def is_refusal(text: str, refusal_field: str | None = None) -> bool:
    """Whether an answer refuses: the OpenAI message's `refusal` field is set, or `REFUSAL` matches the first
    `REFUSAL_WINDOW` characters (case folded, typographic apostrophes made plain). English only; a refusal worded
    otherwise is missed, and an answer opening with such words while complying is counted."""
    if refusal_field:
        return True
    opening = text[:REFUSAL_WINDOW].casefold().replace("\u2019", "'")
    return REFUSAL.search(opening) is not None


def tokens(text: str) -> list[str]:
    """Word tokens as ROUGE compares them: case folded, punctuation dropped (Unicode word characters, where
    rouge-score keeps only a-z0-9 and so ignores non-English answers)."""
    return re.findall(r"\w+", text.casefold())


def similarity(a: str, b: str) -> float:
    """Token-level ROUGE-L F1 of two answers: 2 LCS / (|a| + |b|), rapidfuzz's normalized Indel similarity."""
    return Indel.normalized_similarity(tokens(a), tokens(b))


@dataclass(frozen=True)
class Arm:
    """Where one version answers."""

    version: str
    url: str


@dataclass(frozen=True)
class Config:
    """The model, its stable version and the shadows compared with it."""

    model: str
    stable: Arm
    shadows: tuple[Arm, ...]

    @staticmethod
    def read(document: Mapping[str, Any]) -> Config:
        """The configuration file's content, or a ValueError naming what is wrong."""
        def arm(value: Any, where: str) -> Arm:
            if not isinstance(value, dict) or not isinstance(value.get("version"), str) or not str(
                    value.get("url", "")).startswith(("http://", "https://")):
                raise ValueError(f"shadow comparator config: {where} is {json.dumps(value)[:80]}; give "
                                 "{\"version\": \"1.0.0\", \"url\": \"http://<service>:8000\"}")
            return Arm(value["version"], value["url"].rstrip("/"))

        model, shadows = document.get("model"), document.get("shadows")
        if not isinstance(model, str) or not model:
            raise ValueError("shadow comparator config: 'model' is missing; give the model's name")
        if not isinstance(shadows, list) or not shadows:
            raise ValueError("shadow comparator config: 'shadows' is empty; give at least one shadow version")
        return Config(model, arm(document.get("stable"), "stable"),
                      tuple(arm(s, f"shadows[{i}]") for i, s in enumerate(shadows)))


class Meters:
    """The comparator's series, in their own registry."""

    def __init__(self, registry: CollectorRegistry, config: Config, depth: queue.Queue) -> None:
        model = config.model
        arm = ("model", "version", "arm")
        pair = ("model", "version", "decoding")
        self.mirrored = Counter("llmplane_shadow_mirrored_requests", "Mirrored requests by what became of them.",
                                ("model", "outcome"), registry=registry)
        self.latency = Histogram("llmplane_shadow_latency_seconds", "Seconds from request sent to answer read.",
                                 arm, buckets=LATENCY_BUCKETS, registry=registry)
        self.output_tokens = Histogram("llmplane_shadow_output_tokens", "Tokens generated per answer.", arm,
                                       buckets=TOKEN_BUCKETS, registry=registry)
        self.refusals = Counter("llmplane_shadow_refusals", "Answers that refuse.", arm, registry=registry)
        self.errors = Counter("llmplane_shadow_arm_errors", "Calls to an arm that failed or timed out.", arm,
                              registry=registry)
        self.exact = Counter("llmplane_shadow_exact_agreements", "Compared pairs whose answers are equal.", pair,
                             registry=registry)
        self.similarity = Histogram("llmplane_shadow_similarity", "Token-level ROUGE-L F1 of the two answers.",
                                    pair, buckets=SIMILARITY_BUCKETS, registry=registry)
        Gauge("llmplane_shadow_queue_depth", "Mirrored requests waiting for comparison.", ("model",),
              registry=registry).labels(model).set_function(depth.qsize)
        # Every series exists at 0 from the start: Prometheus's increase() counts nothing a series held when first
        # scraped, so a series born at 1 would lose its first event.
        for outcome in OUTCOMES:
            self.mirrored.labels(model, outcome)
        for shadow in config.shadows:
            for arm in ARMS:
                for family in (self.latency, self.output_tokens, self.refusals, self.errors):
                    family.labels(model, shadow.version, arm)
            for decoding in DECODINGS:
                self.exact.labels(model, shadow.version, decoding)
                self.similarity.labels(model, shadow.version, decoding)


@dataclass(frozen=True)
class Answer:
    """What is compared of one arm's answer; never logged."""

    text: str
    output_tokens: int
    refused: bool
    seconds: float


class ArmFailed(Exception):
    """An arm did not answer with a completion; the message has no request or answer text."""


def _first_choice(document: Mapping[str, Any]) -> tuple[str, str | None]:
    """Text and refusal field of choice 0 of a completion or chat completion."""
    choices = document.get("choices") or [{}]
    choice = next((c for c in choices if c.get("index", 0) == 0), choices[0])
    message = choice.get("message")
    if isinstance(message, dict):
        return message.get("content") or "", message.get("refusal")
    return choice.get("text") or "", None


def _assemble(lines: Any) -> dict[str, Any]:
    """A server-sent event stream of chunks as one completion: choice 0's text, refusal and the usage chunk."""
    text: list[str] = []
    refusal: list[str] = []
    usage: dict[str, Any] = {}
    for raw in lines:
        line = raw.decode("utf-8").strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                text.append(delta.get("content") or "")
                refusal.append(delta.get("refusal") or "")
            else:
                text.append(choice.get("text") or "")
    return {"choices": [{"index": 0, "message": {"content": "".join(text), "refusal": "".join(refusal) or None}}],
            "usage": usage}


def call(arm: Arm, path: str, body: bytes, headers: Mapping[str, str], stream: bool, timeout: float) -> Answer:
    """Send one request to one arm and read its whole answer."""
    request = urllib.request.Request(f"{arm.url}{path}", data=body, method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            document = _assemble(response) if stream else json.load(response)
        seconds = time.perf_counter() - started
        text, refusal = _first_choice(document)
        output_tokens = int((document.get("usage") or {}).get("completion_tokens") or 0)
    except urllib.error.HTTPError as error:
        raise ArmFailed(f"HTTP {error.code}") from None
    except (urllib.error.URLError, OSError) as error:
        raise ArmFailed(type(getattr(error, "reason", error)).__name__) from None
    except (ValueError, TypeError, AttributeError, IndexError, UnicodeDecodeError):
        raise ArmFailed("not a completion") from None
    return Answer(text, output_tokens, is_refusal(text, refusal), seconds)


@dataclass(frozen=True)
class Mirrored:
    """One queued mirrored request."""

    path: str
    body: bytes
    headers: Mapping[str, str]


class Comparator:
    """The bounded queue, the workers that empty it and the comparisons they record."""

    def __init__(self, config: Config, meters: Meters, jobs: queue.Queue, workers: int, timeout: float) -> None:
        self.config, self.meters, self.jobs, self.timeout = config, meters, jobs, timeout
        self.calls = ThreadPoolExecutor(max_workers=workers * (1 + len(config.shadows)))
        for _ in range(workers):
            threading.Thread(target=self._work, daemon=True).start()

    def offer(self, job: Mirrored) -> bool:
        """Queue a mirrored request without waiting; False (and counted) when the queue is full."""
        try:
            self.jobs.put_nowait(job)
        except queue.Full:
            self.meters.mirrored.labels(self.config.model, "dropped").inc()
            return False
        self.meters.mirrored.labels(self.config.model, "queued").inc()
        return True

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                self.compare(job)
            except Exception as error:  # a worker outlives any one comparison
                self.meters.mirrored.labels(self.config.model, "failed").inc()
                sys.stderr.write(f"a comparison failed: {type(error).__name__}\n")
            finally:
                self.jobs.task_done()

    def prepare(self, body: bytes) -> tuple[bytes, bool, str] | None:
        """The body both arms get, whether it streams, and its decoding; None if it is no completion request."""
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(request, dict):
            return None
        model = request.get("model")
        if isinstance(model, str) and model.startswith(f"{self.config.model}:"):
            request["model"] = self.config.model
        request.setdefault("seed", random.randrange(2**31))
        stream = request.get("stream") is True
        if stream:
            request["stream_options"] = {**(request.get("stream_options") or {}), "include_usage": True}
        decoding = DECODINGS[0] if request.get("temperature") == 0 else DECODINGS[1]
        return json.dumps(request).encode(), stream, decoding

    def compare(self, job: Mirrored) -> None:
        """Call stable and every shadow in parallel and record each shadow's comparison with stable."""
        model = self.config.model
        prepared = self.prepare(job.body)
        if prepared is None:
            self.meters.mirrored.labels(model, "skipped_not_json").inc()
            return
        body, stream, decoding = prepared
        arms = (self.config.stable, *self.config.shadows)
        futures = [self.calls.submit(call, arm, job.path, body, job.headers, stream, self.timeout) for arm in arms]
        answers: list[Answer | None] = []
        for arm, future in zip(arms, futures):
            try:
                answers.append(future.result())
            except ArmFailed as failure:
                answers.append(None)
                sys.stderr.write(f"{arm.version} did not answer a mirrored request: {failure}\n")
        stable, shadows = answers[0], answers[1:]
        for arm, shadow in zip(self.config.shadows, shadows):
            if stable is None or shadow is None:
                for name, answer in zip(ARMS, (stable, shadow)):
                    if answer is None:
                        self.meters.errors.labels(model, arm.version, name).inc()
                continue
            for name, answer in zip(ARMS, (stable, shadow)):
                self.meters.latency.labels(model, arm.version, name).observe(answer.seconds)
                self.meters.output_tokens.labels(model, arm.version, name).observe(answer.output_tokens)
                if answer.refused:
                    self.meters.refusals.labels(model, arm.version, name).inc()
            if stable.text.strip() == shadow.text.strip():
                self.meters.exact.labels(model, arm.version, decoding).inc()
            self.meters.similarity.labels(model, arm.version, decoding).observe(similarity(stable.text, shadow.text))


def handler(comparator: Comparator) -> type[BaseHTTPRequestHandler]:
    """The mirror's request handler: queue and answer 202 at once, never wait for a comparison."""
    model = comparator.config.model

    class Mirror(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "llmplane-shadow-compare"
        sys_version = ""

        def do_GET(self) -> None:
            if self.path == HEALTH_PATH:
                self._answer(200)
            else:
                self._skip()

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            length = self.headers.get("content-length", "")
            if path not in GENERATION_PATHS:
                self._skip()
            elif not length.isdigit() or int(length) > MAX_BODY_BYTES:
                # Not read: the connection is closed instead.
                self.close_connection = True
                comparator.meters.mirrored.labels(model, "skipped_too_large").inc()
                self._answer(202)
            else:
                body = self.rfile.read(int(length))
                headers = {k: v for k, v in self.headers.items() if k.lower() in FORWARDED_HEADERS}
                comparator.offer(Mirrored(path, body, headers))
                self._answer(202)

        def _skip(self) -> None:
            length = self.headers.get("content-length", "")
            if length.isdigit() and int(length) <= MAX_BODY_BYTES:
                self.rfile.read(int(length))
            else:
                self.close_connection = True
            comparator.meters.mirrored.labels(model, "skipped_path").inc()
            self._answer(202)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            """Mirrored requests are not logged one by one: the counters say what became of them."""

        def log_message(self, format: str, *args: Any) -> None:
            # The base class logs malformed requests with their request line: say only that one was refused.
            sys.stderr.write("refused a malformed request\n")

    return Mirror


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="JSON file naming the model, stable and the shadows")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port the mirror calls")
    parser.add_argument("--metrics-port", type=int, default=9090, help="port of /metrics (Prometheus')")
    parser.add_argument("--queue", type=int, default=32, help="mirrored requests held; more are dropped")
    parser.add_argument("--workers", type=int, default=4, help="comparisons in flight")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds an arm may take to answer")
    args = parser.parse_args(argv)
    with open(args.config, encoding="utf-8") as file:
        config = Config.read(json.load(file))
    disable_created_metrics()
    registry = CollectorRegistry()
    jobs: queue.Queue = queue.Queue(maxsize=args.queue)
    comparator = Comparator(config, Meters(registry, config, jobs), jobs, args.workers, args.timeout)
    start_http_server(args.metrics_port, addr=args.host, registry=registry)
    server = ThreadingHTTPServer((args.host, args.port), handler(comparator))
    sys.stderr.write(f"comparing {len(config.shadows)} shadow(s) of {config.model} with {config.stable.version} on "
                     f"{args.host}:{args.port}, metrics on :{args.metrics_port}/metrics\n")
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
