"""The cheapest configuration that meets a model's TTFT objective on a trace: a search over what the environment
could be changed to, each candidate replayed with the planner's simulator.

Searched: the GPU types the cloud offers in the planned cluster's region (`facts.clouds.REGIONS_BY_CLOUD`, with a
machine shape for them), tensor parallelism 1-8 within the largest node offered, an fp8 KV cache where the GPU
has native FP8 (`facts.gpus.FP8_KV_MIN_CAPABILITY`), speculative decoding by ngram (no draft weights), the queue
threshold per replica (`QUEUES`) and the replica bounds: the maximum is the fewest fixed replicas that meet the
objective on the trace, the minimum the fewest under which the policy still meets it. Each candidate's replica
rates come from `engine_effects`, its start-up from the spec (`Model.startup_on`), its price from the pool (the
list price for another GPU type).

Kept fast by pruning, each step exact within the space or stated: a configuration whose KV cache holds no
maxModelLen sequence is skipped (vLLM would not start); one whose prefill alone misses the SLO for more requests
than the objective allows is skipped; hardware is tried cheapest work first, and skipped once even its work at
full speed (`fluid_cost`, a lower bound on any fleet's cost) costs more than the best found; within a hardware
option a minimum whose replicas alone cost more than the best is not tried, and replays stop at the first late
request beyond the allowance. Meeting the objective is taken as monotone in the minimum (more standing replicas
never serve worse), which the binary search over it relies on.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from llmplane.facts.clouds import REGIONS_BY_CLOUD, shapes_offered
from llmplane.facts.gpus import COMPUTE_CAPABILITY, FP8_KV_MIN_CAPABILITY, GPU_HOUR_USD
from llmplane.spec import SpecError, load_spec
from llmplane.spec.autoscaling_policy import AutoscalingPolicy
from llmplane.spec.models import Model, PlatformSpec, Speculative

from .baselines import SEARCH_CEILING, _search, late_allowance
from .engine_effects import DoesNotFit, plain, replica_rates
from .planner import Target, replay_policy, settle_seconds, start_replicas, step_token_budget, target
from .simulator import EPS, PolicyController, Profile, Simulator
from .trace import Trace

TENSOR_PARALLEL = (1, 2, 4, 8)
"""Tensor parallel sizes tried (powers of two: vLLM shards attention heads evenly)."""

QUEUES = (1.0, 2.0, 4.0)
"""Waiting requests per replica that add a replica, tried for each hardware option."""

NGRAM = Speculative(method="ngram", num_speculative_tokens=4)
"""The speculative decoding tried where the model has none: prompt lookup of 4 tokens (vLLM's n-gram example
drafts 4-5), at the spec's default acceptance rate, which the report asks to measure."""

SHOWN = 5
"""Configurations in the cost-versus-SLO table."""


@dataclass(frozen=True)
class Hardware:
    """What a replica runs on and with: GPU, tensor parallelism, node shape and engine features."""

    gpu_type: str
    tensor_parallel: int
    gpus_per_node: int
    fp8_kv: bool
    ngram: bool

    @property
    def features(self) -> str:
        """The engine features in words, for the table."""
        named = [name for name, on in (("fp8 KV", self.fp8_kv), ("ngram spec", self.ngram)) if on]
        return ", ".join(named) or "-"


@dataclass
class Outcome:
    """One configuration replayed."""

    hardware: Hardware
    min_replicas: int
    max_replicas: int
    queue_per_replica: float
    profile: Profile
    within_slo: float
    gpu_hours: float
    cost_usd: float


@dataclass
class Recommendation:
    """What the search found, and what it could not serve."""

    target: Target
    requests: int
    """Requests in the trace as given."""
    rejected: int
    """Prompts at or beyond maxModelLen: vLLM answers them with an error."""
    cut_short: int
    """Prompt plus output beyond maxModelLen: vLLM stops them early, at maxModelLen."""
    longest: int
    """The longest prompt plus output among the rejected and cut-short requests (0 without any)."""
    target_max_model_len: int
    """The engine's maxModelLen the trace is held to."""
    context_length: int
    """The model's architecture.contextLength: the most maxModelLen may be."""
    today: Outcome
    """The environment's own configuration, replayed the same way."""
    meeting: list[Outcome] = field(default_factory=list)
    """The cheapest configuration meeting the objective per hardware option replayed, cheapest first (hardware is
    pruned against the SHOWN-th cheapest, so the first SHOWN are exact within the search space)."""
    best_reached: Outcome | None = None
    """When none meets it: the configuration closest to the objective."""
    hardware_tried: int = 0
    hardware_skipped: Counter[str] = field(default_factory=Counter)
    """Hardware options not replayed, by reason."""
    replays: int = 0
    seconds: float = 0.0


def gpu_types_in(spec: PlatformSpec, cluster: str) -> list[str]:
    """The GPU types the cluster's cloud offers in its region with a machine shape; the pool's own type on-prem."""
    c = spec.cluster(cluster)
    offered = REGIONS_BY_CLOUD.get(c.cloud, {}).get(c.region)
    if offered is None:
        return sorted({p.gpu_type for p in c.pools})
    return sorted(g for g in offered if shapes_offered(c.cloud, g))


def gpu_after(spec: PlatformSpec, cluster: str, pool: str, gpu: str) -> str:
    """The GPU type of `pool` in `cluster` once `gpu` is chosen: it, where the region offers it, else the pool's
    own (an on-prem pool, a region without that GPU)."""
    if gpu in gpu_types_in(spec, cluster):
        return gpu
    return next(p.gpu_type for p in spec.cluster(cluster).pools if p.name == pool)


def hardware_options(spec: PlatformSpec, t: Target) -> list[Hardware]:
    """Every GPU, tensor parallelism (within the largest node offered) and feature combination to try."""
    c = spec.cluster(t.cluster)
    m = spec.models[t.model]
    options = []
    for gpu in gpu_types_in(spec, t.cluster):
        shapes = shapes_offered(c.cloud, gpu) or [p.gpus_per_node for p in c.pools if p.gpu_type == gpu]
        for tp in TENSOR_PARALLEL:
            fitting = [n for n in shapes if n >= tp]
            if not fitting:
                continue
            kept = [gpu_after(spec, other.name, m.pool, gpu) for other in spec.clusters_of(m)]
            native = all(COMPUTE_CAPABILITY[g] >= FP8_KV_MIN_CAPABILITY for g in [gpu, *kept])
            fp8 = (False, True) if native else (False,)
            ngram = (False,) if m.engine.speculative else (False, True)
            options += [Hardware(gpu, tp, min(fitting), f, g) for f in fp8 for g in ngram]
    return options


def candidate_model(m: Model, hw: Hardware) -> Model:
    """The model with the hardware option's engine settings (its other features kept)."""
    update: dict[str, Any] = {"tensor_parallel_size": hw.tensor_parallel,
                              "kv_cache_dtype": "fp8" if hw.fp8_kv else "auto"}
    if hw.ngram:
        update["speculative"] = NGRAM
    return m.model_copy(update={"engine": m.engine.model_copy(update=update)})


def candidate_profile(spec: PlatformSpec, t: Target, hw: Hardware) -> Profile:
    """The replica profile of a hardware option: rates from `engine_effects`, start-up on that GPU's machine,
    the pool's price for its own GPU type, else the list price. Raises DoesNotFit."""
    m = spec.models[t.model]
    model = candidate_model(m, hw)
    rates = replica_rates(m, t.pool.gpu_type, model, hw.gpu_type)
    pool = t.pool.model_copy(update={"gpu_type": hw.gpu_type, "gpus_per_node": hw.gpus_per_node})
    startup = model.startup_on(spec.cluster(t.cluster).cloud, pool)
    own_price = t.pool.gpu_hour_usd if hw.gpu_type == t.pool.gpu_type else None
    return dataclasses.replace(
        t.profile, prefill_tokens_per_second=rates.prefill_tokens_per_second,
        decode_tokens_per_second=rates.decode_tokens_per_second,
        max_concurrent_sequences=rates.max_concurrent_sequences, node_seconds=startup.node_seconds,
        image_pull_seconds=startup.image_pull_seconds, load_seconds=startup.load_seconds,
        reload_seconds=startup.reload_seconds if t.profile.reload_seconds is not None else None,
        prefetch_seconds=startup.prefetch_seconds, tensor_parallel_size=hw.tensor_parallel,
        gpu_hour_usd=own_price or GPU_HOUR_USD[hw.gpu_type],
        prefill_chunk_tokens=step_token_budget(model.engine, hw.gpu_type))


def node_fill(hw: Hardware, replicas: int) -> float:
    """The share of its nodes' GPUs a fleet of `replicas` uses: a cloud bills a node whole, so replicas that leave
    GPUs of a node empty (tp 2 on an 8-GPU p5) pay for them. Taken at the fleet's most replicas, which errs cheap
    when it runs fewer."""
    gpus = replicas * hw.tensor_parallel
    return gpus / (math.ceil(gpus / hw.gpus_per_node) * hw.gpus_per_node)


def fluid_cost(trace: Trace, profile: Profile) -> float:
    """Dollars of the trace's work alone: every prompt at the prefill rate, every output token at the full-batch
    decode rate, nothing idle. No fleet of this profile serves the trace for less."""
    seconds = sum(p / profile.prefill_tokens_per_second + (o - 1) / profile.decode_tokens_per_second
                  for p, o in zip(trace.prompt_tokens, trace.output_tokens))
    return seconds * profile.tensor_parallel_size / 3600 * profile.gpu_hour_usd


class _Search:
    """The replays of one recommendation, with the allowance and the idle time they share."""

    def __init__(self, trace: Trace, cut_seconds: float, policy: AutoscalingPolicy) -> None:
        self.trace = trace
        self.cut_seconds = cut_seconds
        self.policy = policy
        self.replays = 0

    def policy_for(self, low: int, high: int, queue: float) -> AutoscalingPolicy:
        return dataclasses.replace(self.policy, min_replicas=low, max_replicas=high, queue_per_replica=queue)

    def meets(self, profile: Profile, policy: AutoscalingPolicy) -> bool:
        """Whether the policy's replay keeps late first tokens within the objective's allowance (stops early)."""
        allowed = late_allowance(self.trace, profile)
        self.replays += 1
        sim = Simulator(self.trace, profile, PolicyController(policy),
                        start_replicas=start_replicas(self.trace, profile, policy), sample_every=None,
                        warm_slots=profile.warm_slots)
        sim.run("candidate", give_up_after_late=allowed)
        return sim.finished() and sim.late <= allowed

    def outcome(self, hw: Hardware, profile: Profile, policy: AutoscalingPolicy) -> Outcome:
        """The full replay; idle time cut from the trace is billed to the settled fleet (its minimum) and slots,
        and the GPUs its nodes hold beside the replicas (`node_fill`)."""
        self.replays += 1
        r = replay_policy(self.trace, profile, policy, sample_every=None)
        settled = policy.hpa_min_replicas + profile.warm_slots
        hours = (r.gpu_hours + self.cut_seconds * settled * profile.tensor_parallel_size / 3600) / node_fill(
            hw, policy.max_replicas)
        return Outcome(hw, policy.hpa_min_replicas, policy.max_replicas, policy.queue_per_replica, profile,
                       r.within_slo, hours, hours * profile.gpu_hour_usd)

    def floor_cost(self, profile: Profile, replicas: int) -> float:
        """What `replicas` standing replicas cost over the replay: a fleet with that minimum costs at least this."""
        seconds = self.trace.duration + self.cut_seconds
        return replicas * profile.tensor_parallel_size * seconds / 3600 * profile.gpu_hour_usd

    def fixed_fleet(self, profile: Profile) -> int | None:
        """The fewest fixed replicas meeting the objective, or None within SEARCH_CEILING."""
        peak = max(1, math.ceil(fluid_cost(self.trace, profile) / max(self.floor_cost(profile, 1), EPS)))
        n = _search(lambda k: self.meets(profile, self.policy_for(k, k, 1.0)), 1, peak)
        return n if n < SEARCH_CEILING or self.meets(profile, self.policy_for(n, n, 1.0)) else None

    def cheapest(self, hw: Hardware, profile: Profile, budget: float) -> Outcome | None:
        """The cheapest policy of this hardware under `budget` dollars: per queue threshold, the fewest standing
        replicas below the fixed fleet that still meet the objective."""
        top = self.fixed_fleet(profile)
        if top is None:
            return None
        best = None
        for queue in QUEUES:
            affordable = top
            while affordable > 1 and self.floor_cost(profile, affordable) >= min(budget, best.cost_usd if best
                                                                                 else budget):
                affordable -= 1
            if affordable < top and not self.meets(profile, self.policy_for(affordable, top, queue)):
                continue
            low = _search(lambda k, q=queue: self.meets(profile, self.policy_for(k, top, q)), 1,
                          max(1, affordable // 2), affordable)
            found = self.outcome(hw, profile, self.policy_for(low, top, queue))
            if best is None or found.cost_usd < best.cost_usd:
                best = found
        return best


def _counts(trace: Trace, max_model_len: int) -> tuple[int, int, int]:
    """Rejected (prompt fills maxModelLen), cut short (prompt + output beyond it) and the longest of them."""
    rejected = cut = longest = 0
    for p, o in zip(trace.prompt_tokens, trace.output_tokens):
        if p >= max_model_len:
            rejected += 1
        elif p + o > max_model_len:
            cut += 1
        else:
            continue
        longest = max(longest, p + o)
    return rejected, cut, longest


def recommend(spec: PlatformSpec, trace: Trace, model: str | None = None, cluster: str | None = None) -> Recommendation:
    """Search the configurations the module docstring lists; the cheapest meeting the objective come first."""
    started = time.process_time()
    t = target(spec, model, None, cluster)
    m = spec.models[t.model]
    rejected, cut_short, longest = _counts(trace, m.engine.max_model_len)
    servable, _ = trace.servable(m.engine.max_model_len)
    servable, cuts = servable.without_long_gaps(settle_seconds(t.profile, t.policy))
    search = _Search(servable, sum(removed for _, removed in cuts), t.policy)
    today = search.outcome(Hardware(t.pool.gpu_type, t.profile.tensor_parallel_size, t.gpus_per_node,
                                    m.engine.kv_cache_dtype == "fp8", False), t.profile, t.policy)
    rec = Recommendation(t, len(trace), rejected, cut_short, longest, m.engine.max_model_len,
                         m.architecture.context_length, today)
    options = []
    for hw in hardware_options(spec, t):
        try:
            profile = candidate_profile(spec, t, hw)
        except DoesNotFit:
            rec.hardware_skipped["its KV cache holds no maxModelLen sequence"] += 1
            continue
        slow = sum(1 for p in servable.prompt_tokens if p / profile.prefill_tokens_per_second > profile.ttft_seconds)
        if slow > late_allowance(servable, profile):
            rec.hardware_skipped["its prefill alone misses the SLO too often"] += 1
            continue
        options.append((fluid_cost(servable, profile), hw, profile))
    options.sort(key=lambda option: option[0])
    for floor, hw, profile in options:
        costs = sorted(o.cost_usd for o in rec.meeting)
        budget = costs[SHOWN - 1] if len(costs) >= SHOWN else math.inf
        if floor >= budget:
            rec.hardware_skipped["its work alone costs more than the table's dearest"] += 1
            continue
        rec.hardware_tried += 1
        found = search.cheapest(hw, profile, budget)
        if found is None:
            continue
        if found.within_slo + EPS >= t.profile.ttft_objective:
            rec.meeting.append(found)
        elif rec.best_reached is None or found.within_slo > rec.best_reached.within_slo:
            rec.best_reached = found
    rec.meeting.sort(key=lambda o: o.cost_usd)
    rec.replays = search.replays
    rec.seconds = time.process_time() - started
    return rec


ConfigPath = tuple[str | int, ...]
"""Where a value sits in an environment's config: a top-level key (`llmplane:models`), then keys and list
indices."""


@dataclass
class Change:
    """The edits that apply an outcome to the environment, and what they leave as it is."""

    edits: list[tuple[ConfigPath, Any]]
    notes: list[str]


def _pool_gpus(spec: PlatformSpec, cluster_name: str, pool: str, model: str, o: Outcome) -> int:
    """GPUs the pool needs at the most replicas of every version on it, the model's stable bounds being the
    outcome's, and its warm slots (base plus the largest schedule) at the model's tensor parallelism."""
    cluster = spec.cluster(cluster_name)
    gpus = 0
    for name, mm in spec.models.items():
        if mm.pool != pool or cluster not in spec.clusters_of(mm):
            continue
        tp = o.hardware.tensor_parallel if name == model else mm.engine.tensor_parallel_size
        for v in mm.versions:
            most = o.max_replicas if name == model and v.replicas is None else mm.replicas_of(v).max
            gpus += most * tp
    headroom = next(p for p in cluster.pools if p.name == pool).warm_headroom
    if headroom:
        gpus += (headroom.slots + max((s.slots for s in headroom.schedules), default=0)) * o.hardware.tensor_parallel
    return gpus


def change_for(spec: PlatformSpec, t: Target, o: Outcome) -> Change:
    """The config edits that apply `o`: the model's pool in every cluster of the model whose region offers the
    GPU (nodes sized to its fleets), the engine settings, the replica bounds, the queue threshold and, on other
    hardware, the performance the planner derives there (an estimate to replace by a measurement)."""
    m = spec.models[t.model]
    hw = o.hardware
    edits: list[tuple[ConfigPath, Any]] = []
    notes = []
    for i, c in enumerate(spec.clusters):
        if c not in spec.clusters_of(m):
            continue
        j, pool = next((j, p) for j, p in enumerate(c.pools) if p.name == m.pool)
        base: ConfigPath = ("llmplane:clusters", i, "pools", j)
        gpu = gpu_after(spec, c.name, pool.name, hw.gpu_type)
        if gpu != hw.gpu_type:
            notes.append(f"{c.name} keeps {pool.gpu_type}: {c.region} offers no {hw.gpu_type}")
        shapes = shapes_offered(c.cloud, gpu) or [pool.gpus_per_node]
        size = pool.gpus_per_node if gpu == pool.gpu_type and pool.gpus_per_node >= hw.tensor_parallel else \
            min((n for n in shapes if n >= hw.tensor_parallel), default=pool.gpus_per_node)
        if gpu != pool.gpu_type:
            edits.append((base + ("gpuType",), gpu))
        if size != pool.gpus_per_node:
            edits.append((base + ("gpusPerNode",), size))
        nodes = max(1, math.ceil(_pool_gpus(spec, c.name, pool.name, t.model, o) / size))
        reshaped = (gpu, size) != (pool.gpu_type, pool.gpus_per_node)
        if c.cloud != "onprem" and (nodes > pool.nodes.max or reshaped and nodes != pool.nodes.max):
            edits.append((base + ("nodes",), {"min": min(pool.nodes.min, nodes), "max": nodes}))
            if pool.on_demand_base > nodes:
                edits.append((base + ("onDemandBase",), nodes))
    model: ConfigPath = ("llmplane:models", t.model)
    if (m.replicas.min, m.replicas.max) != (o.min_replicas, o.max_replicas):
        edits.append((model + ("replicas",), {"min": o.min_replicas, "max": o.max_replicas}))
    if hw.tensor_parallel != m.engine.tensor_parallel_size:
        edits.append((model + ("engine", "tensorParallelSize"), hw.tensor_parallel))
    if (m.engine.kv_cache_dtype == "fp8") != hw.fp8_kv:
        edits.append((model + ("engine", "kvCacheDtype"), "fp8" if hw.fp8_kv else "auto"))
    if hw.ngram:
        edits.append((model + ("engine", "speculative"),
                      {"method": NGRAM.method, "numSpeculativeTokens": NGRAM.num_speculative_tokens}))
        notes.append(f"ngram speculative decoding is planned at an acceptance rate of {NGRAM.acceptance_rate:g}: "
                     "measure it (vllm:spec_decode_num_accepted_tokens / vllm:spec_decode_num_draft_tokens)")
    if (hw.gpu_type, hw.tensor_parallel) != (t.pool.gpu_type, m.engine.tensor_parallel_size):
        rates = replica_rates(m, t.pool.gpu_type, plain(candidate_model(m, hw)), hw.gpu_type)
        edits.append((model + ("performance",), {
            "prefillTokensPerSecond": round(rates.prefill_tokens_per_second),
            "decodeTokensPerSecond": round(rates.decode_tokens_per_second),
            "maxConcurrentSequences": rates.max_concurrent_sequences}))
        notes.append(f"performance on {hw.gpu_type} at tp={hw.tensor_parallel} is derived from the "
                     f"{t.pool.gpu_type} profile (capacity/engine_effects.py): measure it")
    if o.queue_per_replica != t.policy.queue_per_replica:
        edits.append((("llmplane:autoscaling", "queuePerReplica"), o.queue_per_replica))
        notes.append("autoscaling.queuePerReplica applies to every model of the environment")
    return Change(edits, notes)


def set_path(data: Any, path: ConfigPath, value: Any) -> None:
    """Set `value` at `path` inside nested dicts and lists, creating missing mappings."""
    for key in path[:-1]:
        data = data[key] if isinstance(key, int) else data.setdefault(key, {})
    data[path[-1]] = value


def validate_change(values: dict[str, str], environment: str, change: Change) -> SpecError | None:
    """The environment's config with the edits applied, loaded as the spec: None when it is valid."""
    parsed = {key: json.loads(values.get(key, "{}")) for key in {path[0] for path, _ in change.edits}}
    for path, value in change.edits:
        set_path(parsed[path[0]], path[1:], value)
    try:
        load_spec({**values, **{key: json.dumps(v) for key, v in parsed.items()}}, environment)
    except SpecError as error:
        return error
    return None


def applicable(spec: PlatformSpec, values: dict[str, str], rec: Recommendation
               ) -> tuple[Outcome | None, Change | None, list[str]]:
    """The cheapest meeting outcome whose edits load as a valid spec, its change, and why cheaper ones were
    passed over."""
    passed = []
    for o in rec.meeting:
        change = change_for(spec, rec.target, o)
        error = validate_change(values, spec.environment, change)
        if error is None:
            return o, change, passed
        first = error.render().splitlines()[1].strip().removeprefix("- ")
        passed.append(f"{_label(o)}: the environment would be invalid: {first}")
    return None, None, passed


def _label(o: Outcome) -> str:
    return f"{o.hardware.gpu_type} tp={o.hardware.tensor_parallel}, replicas {o.min_replicas}-{o.max_replicas}"


def format_recommendation(rec: Recommendation, chosen: Outcome | None, notes: list[str]) -> str:
    """The search, the cost-versus-SLO table, the verdict and the requests no configuration serves."""
    t, prof = rec.target, rec.target.profile
    c = t.cluster
    skipped = "; ".join(f"{n}: {why}" for why, n in rec.hardware_skipped.items())
    lines = [
        f"capacity recommendation: {t.environment} · {t.model}:{t.version} · {rec.requests:,} requests",
        f"searched: GPU types offered where {c} runs, tensor parallelism {'/'.join(map(str, TENSOR_PARALLEL))}, fp8 "
        f"KV where the GPUs have FP8, ngram speculative decoding, queue {'/'.join(f'{q:g}' for q in QUEUES)} per "
        f"replica, replica bounds; {rec.hardware_tried} hardware options replayed"
        + (f" (skipped {skipped})" if skipped else "") + f", {rec.replays} replays in {rec.seconds:.1f} s CPU",
        f"SLO: {prof.ttft_objective:.0%} of requests with TTFT <= {prof.ttft_seconds:g} s",
        "",
    ]
    header = ("", "GPU", "TP", "replicas", "queue", "features", "within SLO", "GPU-hours", "cost USD")
    rows = [("today", rec.today)]
    rows += [(str(i + 1), o) for i, o in enumerate(rec.meeting[:SHOWN])]
    if not rec.meeting and rec.best_reached:
        rows.append(("best", rec.best_reached))
    body = [(name, o.hardware.gpu_type.removeprefix("nvidia-"), str(o.hardware.tensor_parallel),
             f"{o.min_replicas}-{o.max_replicas}", f"{o.queue_per_replica:g}", o.hardware.features,
             f"{o.within_slo:.2%}", f"{o.gpu_hours:.2f}", f"{o.cost_usd:.2f}") for name, o in rows]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines += ["  ".join(cell.ljust(w) if i < 6 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths)))
              for r in [header, *body]]
    lines.append("")
    if chosen is not None:
        lines.append(f"cheapest meeting the SLO: {_label(chosen)}, queue {chosen.queue_per_replica:g}, "
                     f"{chosen.hardware.features}: {chosen.within_slo:.2%} within {prof.ttft_seconds:g} s, "
                     f"{chosen.gpu_hours:.2f} GPU-h, ${chosen.cost_usd:.2f}")
    elif rec.best_reached is not None:
        lines.append(f"no configuration searched meets {prof.ttft_objective:.0%}; the best reached: "
                     f"{_label(rec.best_reached)}, {rec.best_reached.within_slo:.2%}")
    else:
        lines.append(f"no configuration searched meets {prof.ttft_objective:.0%}")
    lines += [f"  - {note}" for note in notes]
    lines += unservable_lines(rec)
    return "\n".join(lines)


def unservable_lines(rec: Recommendation) -> list[str]:
    """The requests no configuration serves as asked, and what would."""
    if not rec.rejected and not rec.cut_short:
        return []
    m_len = rec.target_max_model_len
    context = rec.context_length
    lines = [f"unservable by any configuration: {rec.rejected:,} requests have prompts of maxModelLen ({m_len}) "
             f"tokens or more (vLLM answers them with an error) and {rec.cut_short:,} more need prompt + output "
             f"beyond it (vLLM stops them at {m_len}); the longest needs {rec.longest:,} tokens. What would serve "
             "them:"]
    if rec.longest <= context:
        lines.append(f"  - engine.maxModelLen: {rec.longest} (the model's architecture.contextLength is {context})")
    else:
        lines.append(f"  - a model with a context of at least {rec.longest:,} tokens: this one's "
                     f"architecture.contextLength is {context}" + (
                         f" (engine.maxModelLen: {context} serves those up to it)" if context > m_len else ""))
    return lines
