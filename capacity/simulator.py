"""A discrete-event simulator of one model version's vLLM fleet under a request trace.

The model, in full (every choice errs towards the pessimistic side where a choice was needed):

Load balancer. Requests wait in one FIFO queue in front of the fleet; the head goes to the ready replica with
the fewest running sequences as soon as one has a free sequence slot. This stands for the sum of vLLM's
per-replica waiting queues under a queue-aware gateway; it is what `vllm:num_requests_waiting` summed over the
version reports. With no replica at all (scaled to zero) the gateway holds the requests.

Replica. Holds at most `max_concurrent_sequences` sequences (the KV cache's capacity in typical sequences).
Admitted sequences are prefilled first come first served, then decoded together. Metrics as vLLM reports them:
a prompt queued behind the one in prefill counts as waiting (`vllm:num_requests_waiting`); the decoding
sequences and the one in prefill fill the KV cache (`vllm:kv_cache_usage_perc` = their count /
max_concurrent_sequences). vLLM runs steps; a step decodes one token of every decoding
sequence (memory bound: its time hardly depends on the batch, so a full batch's step time is used,
tau = max_concurrent_sequences / decode_tokens_per_second) and, with chunked prefill, adds up to
`PREFILL_CHUNK_TOKENS` prompt tokens at `prefill_tokens_per_second` (compute bound, added to the step time):
- prefill only: prompt tokens at prefill_tokens_per_second;
- decode only: every sequence gains 1 token per tau (decode_tokens_per_second / max_concurrent_sequences each);
- both: a step takes tau + chunk / prefill rate; the prompt at the head gains `chunk` tokens and every decoding
  sequence 1 token per step.
The prefill emits the first token: TTFT = wait at the balancer + wait behind earlier prompts + own prefill.
No prefix-cache hits and no speculative decoding are assumed.

Replica lifecycle. A replica the autoscaler adds is billed at once (its GPU node is) and serves after its start-up
(`spec.startup` derives the steps from the configuration). It lands, in this order of preference, on the idle
node of a replica removed less than `NODE_CONSOLIDATION_SECONDS` ago (image pull unless pre-pulled, then the
weights from that node's cache), on a warm headroom slot (the placeholder pod is preempted; image and weights are
there, only the read from the node cache and the engine start remain; a replacement node for the slot is asked
for at once and is warm after joining and filling its cache), or on a new node (node join, image pull, weight
load). A removed replica stops taking requests, finishes its running sequences (graceful shutdown) and is billed
until it is empty; its node then idles, billed, until reused or consolidated. Warm slots are billed all the time.
GPU-hours = billed replica-seconds (and idle-node and slot seconds) x tensor_parallel_size / 3600.

Scale from zero. With no replica the gateway holds the requests (they wait, they are not lost) and the held count
is what wakes the version: one replica is asked for when it exceeds the activation threshold, and the held
requests are served once that replica is ready, their TTFT counting the whole wait.

Autoscaler: `spec.autoscaling` documents the HPA/KEDA semantics; `PolicyController` replays them every
`polling_seconds`.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from dataclasses import dataclass, field
from heapq import heappop, heappush
from typing import Protocol

from llmplane.spec.autoscaling_policy import AutoscalingPolicy

from .trace import Trace

INF = math.inf
EPS = 1e-9

PREFILL_CHUNK_TOKENS = 2048
"""Prompt tokens a mixed step carries unless the profile says otherwise: vLLM V1's default
`max_num_batched_tokens` for the OpenAI server on GPUs of less than 70 GiB (the planner takes the spec's
`engine.maxNumBatchedTokens`, or this default for the pool's GPU)."""

NODE_CONSOLIDATION_SECONDS = 600
"""How long an empty GPU node stays before the cluster removes it: cluster-autoscaler's
`--scale-down-unneeded-time` default (10 min); Karpenter's `consolidateAfter` is set per pool."""

DRAIN_LIMIT_SECONDS = 3600.0
"""The replay stops this long after the last arrival even if requests are still unserved (counted as misses)."""

PENDING, READY, DRAINING, GONE = 0, 1, 2, 3


@dataclass(frozen=True)
class Profile:
    """What one replica does and costs, and what users are promised."""

    prefill_tokens_per_second: float
    decode_tokens_per_second: float
    max_concurrent_sequences: int
    node_seconds: float = 180
    image_pull_seconds: float = 90
    load_seconds: float = 600
    tensor_parallel_size: int = 1
    gpu_hour_usd: float = 1.0
    ttft_seconds: float = 2.0
    ttft_objective: float = 0.99
    prefill_chunk_tokens: int = PREFILL_CHUNK_TOKENS
    consolidation_seconds: float = NODE_CONSOLIDATION_SECONDS
    reload_seconds: float | None = None
    """Weights and engine start on a node that already holds the model (a warm slot, a recent replica's node);
    None: no node cache, the same `load_seconds` as on a new node."""
    prefetch_seconds: float = 0.0
    """Filling a new node's cache with the weights: what a warm slot's replacement waits for after joining."""
    warm_slots: int = 0
    """Spare slots kept warm by placeholder pods (billed all the time); the policy's replay takes them first."""

    @property
    def decode_step_seconds(self) -> float:
        """tau: one decode step of a full batch."""
        return self.max_concurrent_sequences / self.decode_tokens_per_second

    @property
    def cold_start_seconds(self) -> float:
        """From request to serving, with a new node."""
        return self.node_seconds + self.image_pull_seconds + self.load_seconds

    @property
    def startup_floor_seconds(self) -> float:
        """The least any added replica waits: weights and engine on a node that holds everything."""
        return self.load_seconds if self.reload_seconds is None else self.reload_seconds

    @property
    def warm_start_seconds(self) -> float:
        """From request to serving on an idle node that is still there."""
        return self.image_pull_seconds + self.startup_floor_seconds

    @property
    def slot_start_seconds(self) -> float:
        """From request to serving on a warm slot: its placeholder already pulled the image and the weights."""
        return self.startup_floor_seconds

    @property
    def refill_seconds(self) -> float:
        """From taking a warm slot to its replacement being warm: a new node, the image, the cache filled."""
        return self.node_seconds + self.image_pull_seconds + self.prefetch_seconds


class Replica:
    """One vLLM replica's state; advanced lazily to the simulator's clock."""

    __slots__ = ("id", "state", "requested", "ready_at", "t", "prefill", "pf_left", "decode", "v", "next_time",
                 "billed_until")

    def __init__(self, ident: int, requested: float, ready_at: float) -> None:
        self.id = ident
        self.state = PENDING if ready_at > requested else READY
        self.requested = requested
        self.ready_at = ready_at
        self.t = max(requested, ready_at)
        self.prefill: deque[int] = deque()
        self.pf_left = 0.0
        self.decode: list[tuple[float, int]] = []
        self.v = 0.0
        self.next_time = ready_at if self.state == PENDING else INF
        self.billed_until = INF

    @property
    def running(self) -> int:
        return len(self.prefill) + len(self.decode)

    def clone(self) -> Replica:
        other = Replica.__new__(Replica)
        for name in Replica.__slots__:
            setattr(other, name, getattr(self, name))
        other.prefill = deque(self.prefill)
        other.decode = list(self.decode)
        return other


class Controller(Protocol):
    """Decides the replica count; called every `period` seconds (None: never)."""

    period: float | None

    def tick(self, sim: Simulator) -> None: ...

    def clone(self) -> Controller: ...


@dataclass
class Sample:
    """The fleet at one moment, for plots."""

    t: float
    replicas: int
    ready: int
    waiting: int
    kv_usage: float


@dataclass
class Result:
    """A replay's outcome."""

    name: str
    gpu_hours: float
    cost_usd: float
    ttft: list[float]
    ttft_seconds: float
    horizon: float
    samples: list[Sample] = field(default_factory=list)

    @property
    def within_slo(self) -> float:
        """Share of requests whose first token came within the TTFT SLO."""
        if not self.ttft:
            return 1.0
        return sum(1 for x in self.ttft if x <= self.ttft_seconds + EPS) / len(self.ttft)

    def percentile(self, q: float) -> float:
        """TTFT percentile (nearest rank), inf when requests went unserved."""
        if not self.ttft:
            return 0.0
        ordered = sorted(self.ttft)
        k = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
        return ordered[k]

    @property
    def replica_range(self) -> tuple[int, int]:
        """Fewest and most replicas (pending included) seen."""
        if not self.samples:
            return (0, 0)
        counts = [s.replicas for s in self.samples]
        return (min(counts), max(counts))


class Simulator:
    """Replays a trace against a fleet whose size a controller sets."""

    def __init__(self, trace: Trace, profile: Profile, controller: Controller | None = None,
                 start_replicas: int = 1, sample_every: float | None = 15.0, warm_slots: int = 0) -> None:
        self.trace = trace
        self.profile = profile
        self.controller = controller
        self.now = 0.0
        self.next_req = 0
        self.lbq: deque[int] = deque()
        n = len(trace)
        self.first = array("d", [INF]) * n
        self.done = array("d", [INF]) * n
        self.replicas: list[Replica] = []
        self.billed: list[tuple[float, float]] = []  # closed billing intervals: retired replicas, reused idle nodes
        self.idle_nodes: list[float] = []  # release times of idle nodes
        self.warm_slots = warm_slots
        """Headroom slots held by placeholder pods, billed from start to end whether warm or refilling."""
        self.slots: list[float] = [0.0] * warm_slots  # when each slot is (or becomes) warm again
        self.keep_nodes = True
        """Whether a released node idles (billed, reusable) until consolidated; the oracle's do not."""
        self.late = 0
        """First tokens recorded after the SLO."""
        self.next_id = 0
        self.completed = 0
        self.next_tick = 0.0 if controller and controller.period else INF
        self.sample_every = sample_every
        self.next_sample = 0.0 if sample_every else INF
        self.samples: list[Sample] = []
        p = profile
        tau = p.decode_step_seconds
        mixed = tau + p.prefill_chunk_tokens / p.prefill_tokens_per_second
        self._rates = (p.prefill_tokens_per_second, 1.0 / tau, p.prefill_chunk_tokens / mixed, 1.0 / mixed)
        for _ in range(start_replicas):
            self._add(ready=True)

    # -- snapshots (the oracle searches forward from them) ------------------------------------------------------

    def snapshot(self) -> Simulator:
        """An independent copy of the whole state (the trace is shared, it is immutable)."""
        other = Simulator.__new__(Simulator)
        other.__dict__.update(self.__dict__)
        other.lbq = deque(self.lbq)
        other.first = array("d", self.first)
        other.done = array("d", self.done)
        other.replicas = [r.clone() for r in self.replicas]
        other.idle_nodes = list(self.idle_nodes)
        other.slots = list(self.slots)
        other.billed = list(self.billed)
        other.samples = list(self.samples)
        other.controller = self.controller.clone() if self.controller else None
        return other

    # -- fleet --------------------------------------------------------------------------------------------------

    @property
    def active(self) -> list[Replica]:
        """Replicas the Deployment counts: pending or ready (not draining)."""
        return [r for r in self.replicas if r.state in (PENDING, READY)]

    @property
    def ready(self) -> list[Replica]:
        return [r for r in self.replicas if r.state == READY]

    def _take_idle_node(self) -> bool:
        now = self.now
        horizon = self.profile.consolidation_seconds
        while self.idle_nodes and now - self.idle_nodes[0] >= horizon:
            released = self.idle_nodes.pop(0)
            self.billed.append((released, released + horizon))
        if not self.idle_nodes:
            return False
        self.billed.append((self.idle_nodes.pop(), now))
        return True

    def _take_slot(self) -> bool:
        """Preempt the placeholder of a warm slot, if one is warm; its replacement node is asked for at once."""
        warm = [i for i, at in enumerate(self.slots) if at <= self.now]
        if not warm:
            return False
        self.slots[warm[0]] = self.now + self.profile.refill_seconds
        return True

    def _release_node(self, at: float) -> None:
        if not self.keep_nodes:
            return
        self.idle_nodes.append(at)
        self.idle_nodes.sort()

    def _add(self, ready: bool = False) -> Replica:
        p = self.profile
        if ready:
            ready_at = self.now
        elif self._take_idle_node():
            ready_at = self.now + p.warm_start_seconds
        elif self._take_slot():
            ready_at = self.now + p.slot_start_seconds
        else:
            ready_at = self.now + p.cold_start_seconds
        replica = Replica(self.next_id, self.now, ready_at)
        self.next_id += 1
        self.replicas.append(replica)
        return replica

    def _retire(self, replica: Replica) -> None:
        replica.state = GONE
        self.billed.append((replica.requested, self.now))
        self._release_node(self.now)
        self.replicas.remove(replica)

    def _remove(self, replica: Replica) -> None:
        if replica.state == PENDING or replica.running == 0:
            self._retire(replica)
        else:
            replica.state = DRAINING

    def scale_to(self, count: int, instant: bool = False) -> None:
        """Set the Deployment's replicas. Scale-down removes pending replicas first, then the newest ready ones
        (the ReplicaSet's order), or with `instant` the least busy; `instant` adds replicas ready at once."""
        active = self.active
        if count > len(active):
            for _ in range(count - len(active)):
                self._add(ready=instant)
            self._dispatch()
        elif count < len(active):
            if instant:
                order = sorted(active, key=lambda r: (r.running, -r.id))
            else:
                order = sorted(active, key=lambda r: (r.state != PENDING, -r.requested, -r.id))
            for replica in order[: len(active) - count]:
                if replica.state == READY:
                    self._advance(replica)
                self._remove(replica)

    # -- metrics as vLLM exports them ----------------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        """sum(vllm:num_requests_waiting): the balancer's queue plus the prompts queued inside replicas behind the
        one being prefilled (vLLM keeps a request waiting until its prefill is scheduled)."""
        return len(self.lbq) + sum(len(r.prefill) - 1 for r in self.replicas if len(r.prefill) > 1)

    def kv_usage(self) -> float | None:
        """avg(vllm:kv_cache_usage_perc) over ready replicas: decoding sequences and the one in prefill hold KV
        cache, each a 1/max_concurrent_sequences share; None when no replica reports."""
        ready = self.ready
        if not ready:
            return None
        cap = self.profile.max_concurrent_sequences
        return sum(len(r.decode) + (1 if r.prefill else 0) for r in ready) / (cap * len(ready))

    def running(self) -> int:
        return sum(r.running for r in self.replicas)

    # -- the event loop -------------------------------------------------------------------------------------------

    def _next_internal(self, r: Replica) -> float:
        if r.state == PENDING:
            return r.ready_at
        has_pf = bool(r.prefill)
        has_dec = bool(r.decode)
        if not has_pf and not has_dec:
            return INF
        full_pf, full_dec, mix_pf, mix_dec = self._rates
        if has_pf and has_dec:
            return r.t + min(r.pf_left / mix_pf, (r.decode[0][0] - r.v) / mix_dec)
        if has_pf:
            return r.t + r.pf_left / full_pf
        return r.t + (r.decode[0][0] - r.v) / full_dec

    def _advance(self, r: Replica) -> int:
        """Bring a serving replica to `now`, emitting first tokens and completions; return the slots freed."""
        t_end = self.now
        freed = 0
        full_pf, full_dec, mix_pf, mix_dec = self._rates
        outputs = self.trace.output_tokens
        prompts = self.trace.prompt_tokens
        slo = self.profile.ttft_seconds + EPS
        while True:
            has_pf = bool(r.prefill)
            has_dec = bool(r.decode)
            if not has_pf and not has_dec:
                break
            if has_pf and has_dec:
                pf_rate, dec_rate = mix_pf, mix_dec
            elif has_pf:
                pf_rate, dec_rate = full_pf, 0.0
            else:
                pf_rate, dec_rate = 0.0, full_dec
            dt_pf = r.pf_left / pf_rate if has_pf else INF
            dt_dec = (r.decode[0][0] - r.v) / dec_rate if has_dec else INF
            dt = dt_pf if dt_pf <= dt_dec else dt_dec
            span = t_end - r.t
            if dt > span + EPS:
                if has_pf:
                    r.pf_left -= pf_rate * span
                if has_dec:
                    r.v += dec_rate * span
                break
            if dt < 0:
                dt = 0.0
            r.t += dt
            if has_dec:
                r.v += dec_rate * dt
            if dt_pf <= dt_dec:
                rid = r.prefill.popleft()
                self.first[rid] = r.t
                if r.t - self.trace.arrivals[rid] > slo:
                    self.late += 1
                if outputs[rid] > 1:
                    heappush(r.decode, (r.v + outputs[rid] - 1, rid))
                else:
                    self.done[rid] = r.t
                    self.completed += 1
                    freed += 1
                r.pf_left = float(prompts[r.prefill[0]]) if r.prefill else 0.0
            else:
                rid = heappop(r.decode)[1]
                self.done[rid] = r.t
                self.completed += 1
                freed += 1
        r.t = t_end
        return freed

    def _admit(self, r: Replica, rid: int) -> None:
        if not r.prefill:
            r.pf_left = float(self.trace.prompt_tokens[rid])
        r.prefill.append(rid)

    def _dispatch(self) -> None:
        if not self.lbq:
            return
        cap = self.profile.max_concurrent_sequences
        candidates = [r for r in self.replicas if r.state == READY and r.running < cap]
        touched = set()
        while self.lbq and candidates:
            best = min(candidates, key=lambda r: (len(r.prefill), r.running))
            if best.id not in touched:
                self._advance(best)
                touched.add(best.id)
            self._admit(best, self.lbq.popleft())
            if best.running >= cap:
                candidates.remove(best)
        for r in self.replicas:
            if r.id in touched:
                r.next_time = self._next_internal(r)

    def _on_replica(self, r: Replica) -> None:
        if r.state == PENDING:
            r.state = READY
            r.t = self.now
            r.next_time = INF
            self._dispatch()
            return
        freed = self._advance(r)
        if r.state == DRAINING and r.running == 0:
            self._retire(r)
            return
        r.next_time = self._next_internal(r)
        if freed:
            self._dispatch()

    def _sample(self) -> None:
        kv = self.kv_usage()
        active = self.active
        self.samples.append(Sample(self.now, len(active), sum(1 for r in active if r.state == READY),
                                   self.waiting, kv if kv is not None else 0.0))

    def finished(self) -> bool:
        """Every request arrived and completed."""
        return self.next_req >= len(self.trace) and self.completed >= len(self.trace)

    def run_until(self, t_end: float) -> None:
        """Process every event up to and including `t_end`."""
        arrivals = self.trace.arrivals
        n = len(arrivals)
        while True:
            t_arr = arrivals[self.next_req] if self.next_req < n else INF
            t_rep = INF
            rep = None
            for r in self.replicas:
                if r.next_time < t_rep:
                    t_rep = r.next_time
                    rep = r
            t_ctl = self.next_tick
            t_smp = self.next_sample
            t = min(t_arr, t_rep, t_ctl, t_smp)
            if t > t_end:
                self.now = max(self.now, t_end)
                return
            self.now = t
            if rep is not None and t_rep == t:
                self._on_replica(rep)
            elif t_arr == t:
                self.lbq.append(self.next_req)
                self.next_req += 1
                self._dispatch()
            elif t_ctl == t:
                assert self.controller is not None and self.controller.period
                self.controller.tick(self)
                self.next_tick = t + self.controller.period
            else:
                self._sample()
                self.next_sample = t + (self.sample_every or INF)

    def run(self, name: str = "replay", give_up_after_late: int | None = None) -> Result:
        """Replay the whole trace until every request is served (or the drain limit passes); with
        `give_up_after_late`, stop early once more first tokens than that came late (the result is then partial)."""
        limit = self.trace.duration + DRAIN_LIMIT_SECONDS
        step = 60.0
        t = 0.0
        while not self.finished() and t < limit:
            t = min(t + step, limit)
            self.run_until(t)
            if give_up_after_late is not None and self.late > give_up_after_late:
                break
        horizon = max(self.trace.duration, max((d for d in self.done if d < INF), default=0.0))
        if not self.finished():
            horizon = limit
        return self.result(name, horizon)

    def billed_seconds(self, horizon: float) -> float:
        """Replica-seconds and idle-node seconds billed from 0 to `horizon`."""
        closed = sum(max(0.0, min(end, horizon) - start) for start, end in self.billed)
        live = sum(max(0.0, horizon - r.requested) for r in self.replicas)
        idle = sum(max(0.0, min(t + self.profile.consolidation_seconds, horizon) - t) for t in self.idle_nodes)
        return closed + live + idle + self.warm_slots * horizon

    def result(self, name: str, horizon: float) -> Result:
        p = self.profile
        gpu_hours = self.billed_seconds(horizon) * p.tensor_parallel_size / 3600.0
        arrivals = self.trace.arrivals
        ttft = [f - a for f, a in zip(self.first, arrivals)]
        return Result(name, gpu_hours, gpu_hours * p.gpu_hour_usd, ttft, p.ttft_seconds, horizon, self.samples)


class FixedController:
    """No autoscaler: the fleet keeps its size."""

    period = None

    def tick(self, sim: Simulator) -> None:  # pragma: no cover - never called
        pass

    def clone(self) -> FixedController:
        return self


class PolicyController:
    """The HPA (with KEDA's scale to zero) that `AutoscalingPolicy` describes."""

    def __init__(self, policy: AutoscalingPolicy) -> None:
        self.policy = policy
        self.period: float | None = float(policy.polling_seconds)
        self.history: deque[tuple[float, int]] = deque()
        self.last_active = 0.0
        self.started = False
        self.decisions: list[tuple[float, int, int]] = []  # (time, current, new)
        self.events: deque[tuple[float, int]] = deque()  # (time, replicas added (+) or removed (-))

    def clone(self) -> PolicyController:
        other = PolicyController.__new__(PolicyController)
        other.__dict__.update(self.__dict__)
        other.history = deque(self.history)
        other.decisions = list(self.decisions)
        other.events = deque(self.events)
        return other

    def desired(self, current: int, ready: int, waiting: int, kv: float | None) -> int:
        """The unstabilised HPA recommendation: the larger of the two triggers' proposals."""
        p = self.policy
        ratio = waiting / (p.queue_per_replica * current)
        by_queue = current if abs(ratio - 1.0) <= p.tolerance else math.ceil(waiting / p.queue_per_replica - EPS)
        by_kv = 0
        if kv is not None and ready > 0:
            ratio = kv / p.kv_cache_target
            by_kv = current if abs(ratio - 1.0) <= p.tolerance else math.ceil(ratio * ready - EPS)
        return max(by_queue, by_kv)

    def tick(self, sim: Simulator) -> None:
        p = self.policy
        now = sim.now
        active = sim.active
        current = len(active)
        waiting = sim.waiting
        kv = sim.kv_usage()
        if waiting > p.activation_queue or sim.running() > 0:
            self.last_active = now
        if current == 0:
            # KEDA owns 0 <-> 1: the HPA is off while at zero.
            if waiting > p.activation_queue:
                self._set(sim, now, current, max(1, p.hpa_min_replicas))
            return
        if p.scale_to_zero and now - self.last_active >= p.cooldown_seconds:
            self.history.clear()
            self._set(sim, now, current, 0)
            return
        if not self.started:
            # HPA `maybeInitScaleDownStabilizationWindow`: a new autoscaler first recommends what runs.
            self.history.append((now, current))
            self.started = True
        ready = sum(1 for r in active if r.state == READY)
        proposal = self.desired(current, ready, waiting, kv)
        # Stabilisation (HPA `stabilizeRecommendationWithBehaviors`).
        up_cut = now - p.scale_up_seconds
        down_cut = now - p.scale_down_seconds
        up = proposal
        down = proposal
        for stamp, rec in self.history:
            if stamp > up_cut:
                up = min(up, rec)
            if stamp > down_cut:
                down = max(down, rec)
        self.history.append((now, proposal))
        keep = now - max(p.scale_up_seconds, p.scale_down_seconds)
        while self.history and self.history[0][0] <= keep:
            self.history.popleft()
        new = current
        if new < up:
            new = up
        if new > down:
            new = down
        # Rate limits (HPA `convertDesiredReplicasWithBehaviorRate`), then the bounds.
        lowest = max(p.min_replicas, 1)
        if new > current:
            start = self._period_start(now, current, p.scale_up_period_seconds)
            limit = max(start + p.scale_up_pods, math.ceil(start * (1 + p.scale_up_percent / 100)), current)
            new = min(new, min(p.max_replicas, limit))
        elif new < current:
            start = self._period_start(now, current, p.scale_down_period_seconds)
            limit = min(start - p.scale_down_pods, current)
            new = max(new, max(lowest, limit))
        new = max(lowest, min(p.max_replicas, new))
        if new != current:
            self._set(sim, now, current, new)

    def _period_start(self, now: float, current: int, period: float) -> int:
        """Replicas at the start of the rate-limit period: current minus the net change within it."""
        change = sum(delta for stamp, delta in self.events if stamp > now - period)
        return current - change

    def _set(self, sim: Simulator, now: float, current: int, new: int) -> None:
        self.decisions.append((now, current, new))
        self.events.append((now, new - current))
        while self.events and self.events[0][0] <= now - 3600:
            self.events.popleft()
        sim.scale_to(new)
