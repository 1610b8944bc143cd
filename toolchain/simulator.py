"""A stand-in for one model rolling out on vLLM, for proving dashboards and alerts.

Two replicas, the baseline and the canary version of one model, run a small
queueing model of a vLLM engine in real time: Poisson arrivals, a waiting
queue, admission while the KV cache has room, prefill then token-by-token
decode that slows as the batch grows, and preemption when the cache fills.
Each replica exposes the catalog's vLLM and DCGM series (as Prometheus sees a
model's pods and their GPUs) on `/metrics/<role>`; kube-state-metrics series
for both deployments are on `/metrics/kube-state-metrics`. `/targets` is a
Prometheus HTTP service-discovery document that describes the replicas the
way Kubernetes discovery describes pods, so Prometheus's relabeling adds
`model` and `version` as it does in a cluster. Every finished request is one
JSON line in the request log.

Fault modes: `overload` (traffic beyond capacity), `error_burst` (a fifth of
requests fail), `slow_canary` (the canary's prefill and decode are slower),
`gpu_fault` (the canary's GPU reports XID 79 and its pod is not ready).

Experiment modes, arms of known behaviour for `llmplane experiment report`: `ttft_regression` (the canary's
prefill, hence its time to first token, exactly 10 % slower; nothing else differs) and `canary_errors` (the
canary fails a fifth of its requests, the baseline none: a guardrail breach).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import signal
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any

import prometheus_client
from llmplane.monitoring import vllm_metrics as vm
from llmplane.toolchain import completions
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

MODES = ("normal", "overload", "error_burst", "slow_canary", "gpu_fault")
EXPERIMENT_MODES = ("ttft_regression", "canary_errors")
"""Planted differences between the arms, for proving the experiment report (no alert is expected of them)."""
TTFT_REGRESSION = 1.10
"""The canary's prefill time (so its TTFT) relative to the baseline's in `ttft_regression`."""
IDLE = "idle"
"""No traffic at all: what an autoscaler sees once load stops (not a fault mode)."""
NAMESPACE = "llm"
TICK_SECONDS = 0.1
GPU_MEMORY_MIB = 81_559


@dataclass(frozen=True)
class Behaviour:
    """How one replica behaves in a mode."""

    utilisation: float  # arrival rate as a share of the engine's capacity
    error_ratio: float = 0.0  # failures are evenly spaced: short windows see this ratio too
    prefill_slowdown: float = 1.0
    decode_slowdown: float = 1.0
    xid: int = 0  # last XID error its GPU reports
    ready: bool = True


def behaviours(mode: str) -> dict[str, Behaviour]:
    """The baseline's and the canary's behaviour in a mode; the canary gets less traffic."""
    baseline, canary = Behaviour(utilisation=0.5), Behaviour(utilisation=0.25)
    return {
        "normal": {"baseline": baseline, "canary": canary},
        # Both versions equally overloaded: neither looks worse than the other.
        "overload": {"baseline": Behaviour(utilisation=2.5), "canary": Behaviour(utilisation=2.5)},
        "error_burst": {"baseline": Behaviour(utilisation=0.5, error_ratio=0.2),
                        "canary": Behaviour(utilisation=0.25, error_ratio=0.2)},
        "slow_canary": {"baseline": baseline,
                        "canary": Behaviour(utilisation=0.25, prefill_slowdown=6.0, decode_slowdown=1.25)},
        # The router sends nothing to a pod that is not ready.
        "gpu_fault": {"baseline": baseline, "canary": Behaviour(utilisation=0.0, xid=79, ready=False)},
        IDLE: {"baseline": Behaviour(utilisation=0.0), "canary": Behaviour(utilisation=0.0)},
        "ttft_regression": {"baseline": baseline,
                            "canary": Behaviour(utilisation=0.25, prefill_slowdown=TTFT_REGRESSION)},
        "canary_errors": {"baseline": baseline, "canary": Behaviour(utilisation=0.25, error_ratio=0.2)},
    }[mode]


@dataclass(frozen=True)
class Engine:
    """The shape of one vLLM engine: small numbers so a laptop can run it."""

    max_num_seqs: int = 64
    kv_capacity_tokens: int = 12_000
    prompt_tokens: tuple[int, int] = (100, 500)
    output_tokens: tuple[int, int] = (20, 120)
    prefill_seconds_per_token: float = 0.0002
    itl_seconds: float = 0.01
    itl_seconds_per_running: float = 0.0005
    queue_timeout_seconds: float = 60.0

    def capacity_rps(self) -> float:
        """Requests per second the engine sustains with a full KV cache."""
        prompt = sum(self.prompt_tokens) / 2
        output = sum(self.output_tokens) / 2
        concurrency = min(self.max_num_seqs, self.kv_capacity_tokens / (prompt + output / 2))
        itl = self.itl_seconds + self.itl_seconds_per_running * concurrency
        return concurrency / (prompt * self.prefill_seconds_per_token + output * itl)


@dataclass
class Request:
    id: str
    arrived: float
    prompt_tokens: int
    cached_tokens: int
    output_tokens: int
    finished_reason: str
    admitted: float | None = None
    prefill_left: float = 0.0
    first_token: float | None = None
    generated: int = 0
    credit: float = 0.0
    preemptions: int = 0


@dataclass
class _Series:
    """The replica's metric children, bound to its label values."""

    registry: CollectorRegistry
    vllm: dict[str, Any] = field(default_factory=dict)
    success: dict[str, Any] = field(default_factory=dict)
    gpu: dict[str, Any] = field(default_factory=dict)


def _family(metric: vm.Metric, registry: CollectorRegistry) -> Any:
    """A prometheus-client metric for a catalog entry."""
    if metric.kind is vm.Kind.COUNTER:  # prometheus-client appends `_total` itself
        return Counter(metric.name.removesuffix("_total"), metric.help, metric.labels, registry=registry)
    if metric.kind is vm.Kind.HISTOGRAM:
        return Histogram(metric.name, metric.help, metric.labels, registry=registry, buckets=metric.buckets)
    return Gauge(metric.name, metric.help, metric.labels, registry=registry)


class Replica:
    """One pod of one version: engine state, its /metrics page and its GPU."""

    def __init__(self, model: str, version: str, role: str, behaviour: Behaviour,
                 engine: Engine, rng: random.Random, log: IO[str]) -> None:
        self.model, self.version, self.role = model, version, role
        self.behaviour, self.engine, self.rng, self.log = behaviour, engine, rng, log
        self.pod = f"{deployment_name(model, version)}-0"
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.kv_used = 0
        self.served = 0
        self.gpu_labels = {
            "gpu": "0", "UUID": f"GPU-{zlib.crc32(self.pod.encode()):08x}", "device": "nvidia0",
            "modelName": "NVIDIA H100 80GB HBM3", "Hostname": f"gpu-node-{role}",
            "container": "vllm", "namespace": NAMESPACE, "pod": self.pod,
        }
        self.series = self._register()

    def _register(self) -> _Series:
        series = _Series(CollectorRegistry(auto_describe=True))
        served_name = f"{self.model}:{self.version}"
        for metric in vm.VLLM:
            family = _family(metric, series.registry)
            if metric is vm.REQUEST_SUCCESS:
                # vLLM creates every finished_reason up front: zeros are data.
                for reason in vm.FINISHED_REASONS:
                    series.success[reason] = family.labels(served_name, "0", reason)
            else:
                series.vllm[metric.name] = family.labels(served_name, "0")
        for metric in vm.DCGM:
            series.gpu[metric.name] = _family(metric, series.registry).labels(**self.gpu_labels)
        return series

    def _metric(self, metric: vm.Metric) -> Any:
        return self.series.vllm[metric.name]

    def step(self, now: float, dt: float) -> None:
        """Advance the engine by dt seconds of wall time."""
        self._decode(now, dt)
        self._preempt_while_full()
        self._time_out(now)
        self._arrive(now, dt)
        self._admit(now)
        self._publish()

    def _arrive(self, now: float, dt: float) -> None:
        rate = self.behaviour.utilisation * self.engine.capacity_rps()
        for _ in range(_poisson(self.rng, rate * dt)):
            prompt = self.rng.randint(*self.engine.prompt_tokens)
            self.served += 1
            ratio = self.behaviour.error_ratio
            fails = int(self.served * ratio) > int((self.served - 1) * ratio)
            self.waiting.append(Request(
                id=f"{self.pod}-{self.served}", arrived=now, prompt_tokens=prompt,
                cached_tokens=int(prompt * self.rng.choice((0.0, 0.25, 0.5, 0.75))),
                output_tokens=self.rng.randint(*self.engine.output_tokens),
                finished_reason="error" if fails else self.rng.choice(("stop",) * 6 + ("length",)),
            ))

    def _time_out(self, now: float) -> None:
        """Clients give up on requests that wait too long."""
        while self.waiting and now - self.waiting[0].arrived > self.engine.queue_timeout_seconds:
            request = self.waiting.popleft()
            request.finished_reason = "abort"
            self._finish(request, now)

    def _admit(self, now: float) -> None:
        while (self.waiting and len(self.running) < self.engine.max_num_seqs
               and self.kv_used + self.waiting[0].prompt_tokens <= self.engine.kv_capacity_tokens):
            request = self.waiting.popleft()
            if request.admitted is None:
                request.admitted = now
                self._metric(vm.PREFIX_CACHE_QUERIES).inc(request.prompt_tokens)
                self._metric(vm.PREFIX_CACHE_HITS).inc(request.cached_tokens)
            if request.finished_reason == "error":
                self._finish(request, now)
                continue
            self._metric(vm.PROMPT_TOKENS).inc(request.prompt_tokens)
            request.prefill_left = ((request.prompt_tokens - request.cached_tokens)
                                    * self.engine.prefill_seconds_per_token * self.behaviour.prefill_slowdown)
            self.running.append(request)
            self.kv_used += request.prompt_tokens

    def _decode(self, now: float, dt: float) -> None:
        itl = ((self.engine.itl_seconds + self.engine.itl_seconds_per_running * len(self.running))
               * self.behaviour.decode_slowdown)
        for request in list(self.running):
            budget = dt
            if request.prefill_left > 0:
                used = min(budget, request.prefill_left)
                request.prefill_left -= used
                budget -= used
                if request.prefill_left > 0:
                    continue
                if request.first_token is None:
                    request.first_token = now - budget
                    self._metric(vm.TIME_TO_FIRST_TOKEN).observe(request.first_token - request.arrived)
                self._emit(request, 1)
            request.credit += budget / itl
            tokens = min(int(request.credit), request.output_tokens - request.generated)
            request.credit -= tokens
            for _ in range(tokens):
                self._metric(vm.INTER_TOKEN_LATENCY).observe(itl * self.rng.uniform(0.8, 1.2))
            self._emit(request, tokens)
            if request.generated >= request.output_tokens:
                self.running.remove(request)
                self.kv_used -= request.prompt_tokens + request.generated
                self._finish(request, now)

    def _emit(self, request: Request, tokens: int) -> None:
        request.generated += tokens
        self.kv_used += tokens
        self._metric(vm.GENERATION_TOKENS).inc(tokens)

    def _preempt_while_full(self) -> None:
        """vLLM frees blocks by preempting the newest request, which restarts."""
        while self.kv_used > self.engine.kv_capacity_tokens and len(self.running) > 1:
            request = self.running.pop()
            self.kv_used -= request.prompt_tokens + request.generated
            request.generated, request.credit = 0, 0.0
            request.preemptions += 1
            self.waiting.appendleft(request)
            self._metric(vm.NUM_PREEMPTIONS).inc()

    def _finish(self, request: Request, now: float) -> None:
        queued = (request.admitted or now) - request.arrived
        self.series.success[request.finished_reason].inc()
        self._metric(vm.E2E_REQUEST_LATENCY).observe(now - request.arrived)
        self._metric(vm.REQUEST_QUEUE_TIME).observe(queued)
        error = request.finished_reason == "error"
        self.log.write(json.dumps({
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": "error" if error else "info",
            "msg": "request failed: engine error" if error else "request finished",
            "model_name": f"{self.model}:{self.version}",
            "pod": self.pod,
            "request_id": request.id,
            "status": 500 if error else 200,
            "finished_reason": request.finished_reason,
            "prompt_tokens": request.prompt_tokens,
            "generation_tokens": request.generated,
            "queue_seconds": round(queued, 4),
            "ttft_seconds": None if request.first_token is None
            else round(request.first_token - request.arrived, 4),
            "e2e_seconds": round(now - request.arrived, 4),
            "preemptions": request.preemptions,
        }) + "\n")

    def _publish(self) -> None:
        self._metric(vm.NUM_REQUESTS_WAITING).set(len(self.waiting))
        self._metric(vm.NUM_REQUESTS_RUNNING).set(len(self.running))
        usage = min(1.0, self.kv_used / self.engine.kv_capacity_tokens)
        self._metric(vm.KV_CACHE_USAGE).set(usage)
        # Batching keeps a busy GPU near 100% whatever the load: a poor scaling signal.
        self.series.gpu[vm.GPU_UTIL.name].set(min(100.0, 60 + 300 * usage) if self.running else 0.0)
        used = int(GPU_MEMORY_MIB * 0.9)  # vLLM reserves --gpu-memory-utilization up front
        self.series.gpu[vm.GPU_FB_USED.name].set(used)
        self.series.gpu[vm.GPU_FB_FREE.name].set(GPU_MEMORY_MIB - used)
        self.series.gpu[vm.GPU_XID_ERRORS.name].set(self.behaviour.xid)


def deployment_name(model: str, version: str) -> str:
    return f"{model}-{version}".replace(".", "-").replace(":", "-").lower()


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: fine for the small means of one tick."""
    if mean <= 0:
        return 0
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def kube_state_registry(replicas: list[Replica]) -> CollectorRegistry:
    """kube-state-metrics' view of the replicas' deployments."""
    registry = CollectorRegistry(auto_describe=True)
    families = {m.name: _family(m, registry) for m in vm.KUBE_STATE}
    for replica in replicas:
        keys = {"namespace": NAMESPACE, "deployment": deployment_name(replica.model, replica.version)}
        families[vm.DEPLOYMENT_SPEC_REPLICAS.name].labels(**keys).set(1)
        families[vm.DEPLOYMENT_READY_REPLICAS.name].labels(**keys).set(int(replica.behaviour.ready))
        families[vm.DEPLOYMENT_LABELS_INFO.name].labels(
            **keys, label_llmplane_dev_model=replica.model,
            label_llmplane_dev_model_version=replica.version).set(1)
    return registry


class Simulator:
    """The replicas of one model, stepped by a background thread."""

    def __init__(self, model: str, baseline: str, canary: str, mode: str,
                 log: IO[str], seed: int = 0, engine: Engine = Engine()) -> None:
        prometheus_client.disable_created_metrics()  # vLLM does too: no `_created` series
        modes = behaviours(mode)
        self.replicas = [
            Replica(model, version, role, modes[role], engine, random.Random(f"{seed}-{role}"), log)
            for role, version in (("baseline", baseline), ("canary", canary))
        ]
        self.registries = {r.role: r.series.registry for r in self.replicas}
        self.registries["kube-state-metrics"] = kube_state_registry(self.replicas)
        self.lock = threading.Lock()
        self._stop = threading.Event()

    def set_mode(self, mode: str) -> None:
        """Change the traffic and faults from now on (load on, load off), keeping what is queued and running."""
        modes = behaviours(mode)
        with self.lock:
            for replica in self.replicas:
                replica.behaviour = modes[replica.role]

    def step(self, now: float, dt: float) -> None:
        with self.lock:
            for replica in self.replicas:
                replica.step(now, dt)

    def run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(TICK_SECONDS):
            now = time.monotonic()
            self.step(now, min(now - last, 0.5))
            last = now

    def stop(self) -> None:
        self._stop.set()

    def scrape(self, target: str) -> bytes | None:
        registry = self.registries.get(target)
        if registry is None:
            return None
        with self.lock:
            return prometheus_client.generate_latest(registry)

    def targets(self, address: str) -> list[dict[str, object]]:
        """HTTP service discovery: the replicas as Kubernetes describes their pods."""
        groups: list[dict[str, object]] = [
            {"targets": [address], "labels": {
                "__metrics_path__": f"/metrics/{r.role}",
                "__meta_kubernetes_namespace": NAMESPACE,
                "__meta_kubernetes_pod_name": r.pod,
                "__meta_kubernetes_pod_label_llmplane_dev_model": r.model,
                "__meta_kubernetes_pod_label_llmplane_dev_model_version": r.version,
            }} for r in self.replicas
        ]
        groups.append({"targets": [address], "labels": {"__metrics_path__": "/metrics/kube-state-metrics"}})
        return groups


def serve(simulator: Simulator, host: str, port: int) -> ThreadingHTTPServer:
    """Start the HTTP server in a thread; the caller shuts it down."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/targets":
                self._reply(200, "application/json",
                            json.dumps(simulator.targets(f"{host}:{server.server_port}")).encode())
            elif self.path == "/health":
                self._reply(200, "text/plain", b"ok\n")
            elif self.path.startswith("/metrics/") and (body := simulator.scrape(self.path[9:])):
                self._reply(200, prometheus_client.CONTENT_TYPE_LATEST, body)
            else:
                self._reply(404, "text/plain", b"not found\n")

        def do_POST(self) -> None:
            """The OpenAI API of the pod the local gateway names (toolchain/completions.py)."""
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            names = tuple(n for n in self.headers.get(completions.SERVED_NAMES_HEADER, "").split(",") if n)
            if self.path not in (completions.COMPLETIONS_PATH, completions.CHAT_PATH) or not names:
                self._reply(404, "text/plain", b"not found\n")
                return
            try:
                answer, status = completions.answer(self.path, body, names), 200
            except completions.RequestError as error:
                answer, status = error.body, error.status
            self._reply(status, "application/json", json.dumps(answer).encode())

        def do_PUT(self) -> None:
            """`PUT /mode` with a mode name as the body switches the traffic (e.g. overload, then idle)."""
            mode = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode().strip()
            if self.path != "/mode" or mode not in (*MODES, *EXPERIMENT_MODES, IDLE):
                self._reply(400, "text/plain",
                            f"PUT /mode with one of {', '.join((*MODES, *EXPERIMENT_MODES, IDLE))}\n".encode())
                return
            simulator.set_mode(mode)
            self._reply(200, "text/plain", f"{mode}\n".encode())

        def _reply(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            """Scrapes every second would drown the output."""

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m llmplane.toolchain.simulator",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=(*MODES, *EXPERIMENT_MODES, IDLE), default="normal")
    parser.add_argument("--log", required=True, help="file that receives one JSON line per request")
    parser.add_argument("--model", default="llama-3-8b")
    parser.add_argument("--baseline", default="1.0.0", help="the version most traffic goes to")
    parser.add_argument("--canary", default="1.1.0", help="the version being rolled out")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with open(args.log, "a", buffering=1, encoding="utf-8") as log:
        simulator = Simulator(args.model, args.baseline, args.canary, args.mode, log, args.seed)
        server = serve(simulator, args.host, args.port)
        signal.signal(signal.SIGTERM, lambda *_: simulator.stop())
        try:
            simulator.run()
        except KeyboardInterrupt:
            pass
        server.shutdown()


if __name__ == "__main__":
    main()
