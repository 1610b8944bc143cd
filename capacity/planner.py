"""The capacity plan of one model version: its autoscaling policy replayed on a trace, next to the baselines.

The trace is taken as the whole stream of requests to the model version, all clusters together: one autoscaled
Deployment with the version's replica bounds serves all of it (what one cluster carries when it takes the whole
load, e.g. in a failover; spread over clusters, each one's autoscaler sees a share and the bounds multiply).
The performance profile, cold start and SLO come from the model's spec; the GPU price from the model's pool in
its first cluster (or the one named).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from llmplane.facts.gpus import DENSE_BF16_TFLOPS, GPU_HOUR_USD, GPU_MEMORY_GB
from llmplane.spec.autoscaling_policy import AutoscalingPolicy
from llmplane.spec.models import Engine, GpuPool, PlatformSpec
from llmplane.spec.startup import Startup

from .baselines import (
    WINDOW_SECONDS,
    Windows,
    feasible,
    fluid_replicas,
    oracle,
    static_peak,
    window_attainment,
    window_need,
)
from .bound import Bound, startup_bound
from .engine_effects import DoesNotFit, prefill_scale, replica_rates
from .simulator import PolicyController, Profile, Result, Simulator
from .trace import Trace, credit


class PlanError(ValueError):
    """A model, version or cluster the spec does not have."""


@dataclass(frozen=True)
class Target:
    """What the planner replays: a model version, its policy, its replica profile and the pool it runs on."""

    environment: str
    model: str
    version: str
    cluster: str
    pool: GpuPool
    policy: AutoscalingPolicy
    profile: Profile
    startup: Startup
    """How the replica's start-up was derived from the configuration."""
    gpus_per_node: int = 1
    """GPUs on one node of the pool: the most tensor parallelism a replica can have there."""


VLLM_LARGE_GPU_GB = 70 * 2**30 / 1e9
"""vLLM gives GPUs of at least 70 GiB (other than the A100) a larger default step budget."""


def step_token_budget(engine: Engine, gpu_type: str) -> int:
    """Tokens one vLLM step carries (`--max-num-batched-tokens`): the spec's, or the OpenAI server's default for
    the GPU, 8192 on GPUs of 70 GiB or more other than the A100 and 2048 below (vLLM
    `EngineArgs.get_batch_defaults`)."""
    if engine.max_num_batched_tokens is not None:
        return engine.max_num_batched_tokens
    large = GPU_MEMORY_GB[gpu_type] >= VLLM_LARGE_GPU_GB and "a100" not in gpu_type
    return 8192 if large else 2048


def target(spec: PlatformSpec, model: str | None = None, version: str | None = None,
           cluster: str | None = None) -> Target:
    """Resolve the model (default: the first), the version (default: the stable one with the most traffic) and
    the cluster whose pool prices the GPU-hours (default: the model's first); the replica's rates are the
    model's performance with its engine features applied (`engine_effects`)."""
    if model is None:
        model = next(iter(spec.models))
    if model not in spec.models:
        raise PlanError(f"environment '{spec.environment}' has no model '{model}' (models: {', '.join(spec.models)})")
    m = spec.models[model]
    if version is None:
        stable = [v for v in m.versions if v.role == "stable"] or list(m.versions)
        chosen = max(stable, key=lambda v: v.weight)
    else:
        found = [v for v in m.versions if v.version == version]
        if not found:
            raise PlanError(f"model '{model}' deploys no version '{version}' "
                            f"(deployed: {', '.join(v.version for v in m.versions)})")
        chosen = found[0]
    clusters = spec.clusters_of(m)
    if cluster is None:
        where = clusters[0]
    else:
        named = [c for c in clusters if c.name == cluster]
        if not named:
            raise PlanError(f"model '{model}' is not deployed to cluster '{cluster}' "
                            f"(deployed to: {', '.join(c.name for c in clusters)})")
        where = named[0]
    pool = m.pool_in(where)
    policy = spec.autoscaling_policy(model, chosen)
    try:
        rates = replica_rates(m, pool.gpu_type)
    except DoesNotFit as error:
        raise PlanError(f"model '{model}' on {where.name}/{pool.name}: {error}") from None
    startup = m.startup_on(where.cloud, pool)
    streamed = m.streams_weights() and m.uses_node_cache(pool)
    profile = Profile(
        prefill_tokens_per_second=rates.prefill_tokens_per_second,
        decode_tokens_per_second=rates.decode_tokens_per_second,
        max_concurrent_sequences=rates.max_concurrent_sequences,
        node_seconds=startup.node_seconds,
        image_pull_seconds=startup.image_pull_seconds,
        load_seconds=startup.load_seconds,
        reload_seconds=startup.reload_seconds if streamed else None,
        prefetch_seconds=startup.prefetch_seconds,
        warm_slots=pool.warm_headroom.slots if pool.warm_headroom else 0,
        tensor_parallel_size=m.engine.tensor_parallel_size,
        gpu_hour_usd=pool.gpu_hour_usd or GPU_HOUR_USD[pool.gpu_type],
        ttft_seconds=m.slo.ttft_seconds,
        ttft_objective=m.slo.ttft_objective,
        prefill_chunk_tokens=step_token_budget(m.engine, pool.gpu_type),
    )
    return Target(spec.environment, model, chosen.version, where.name, pool, policy, profile, startup,
                  pool.gpus_per_node)


def start_replicas(trace: Trace, profile: Profile, policy: AutoscalingPolicy) -> int:
    """The policy's fleet at the trace's start: a trace is cut from a running service, so the fleet starts as
    large as the first minute needs (the fewest replicas that serve it, as the oracle sizes it), within the
    policy's bounds."""
    if not len(trace):
        return policy.hpa_min_replicas
    guess = max(1, math.ceil(fluid_replicas(trace, profile, 0.0, WINDOW_SECONDS)))
    first = window_need(trace, profile, 0.0, WINDOW_SECONDS, guess)
    return max(policy.hpa_min_replicas, min(policy.max_replicas, first))


def replay_policy(trace: Trace, profile: Profile, policy: AutoscalingPolicy,
                  sample_every: float | None = 15.0) -> Result:
    """The policy's replay."""
    controller = PolicyController(policy)
    sim = Simulator(trace, profile, controller, start_replicas=start_replicas(trace, profile, policy),
                    sample_every=sample_every, warm_slots=profile.warm_slots)
    return sim.run("policy")


@dataclass
class Row:
    """One line of the table."""

    name: str
    replicas: str
    result: Result


@dataclass
class Plan:
    """The three rows for one trace."""

    target: Target
    trace: Trace
    rows: list[Row]
    oracle_counts: list[int]
    static_replicas: int
    bound: Bound
    rejected: int = 0
    """Requests vLLM refuses outright (prompt at or beyond maxModelLen): in no row, and not within the SLO."""
    max_model_len: int = 0
    """The engine's maxModelLen the trace was held to."""
    span_seconds: float = 0.0
    """The trace's span from first to last request, idle gaps included."""
    idle_removed_seconds: float = 0.0
    """Idle time cut from long gaps before replaying (billed to the fleets that hold replicas through it)."""
    unservable: int = 0
    """Requests whose prefill alone, on an idle replica, takes longer than the TTFT SLO: no fleet serves them."""
    advice: list[str] = field(default_factory=list)
    """Configurations that would serve the unservable requests within the SLO."""

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)

    def worst_minute(self, row: Row) -> float:
        """The lowest share of a minute's requests within the SLO."""
        shares = [g / c for c, g, _ in window_attainment(self.trace, row.result.ttft, self.target.profile) if c]
        return min(shares, default=1.0)


def plan(spec: PlatformSpec, trace: Trace, model: str | None = None, version: str | None = None,
         cluster: str | None = None, profile: Profile | None = None) -> Plan:
    """Replay the policy and both baselines, and bound what any autoscaler could reach (`profile`: replay another
    replica profile than the spec's, e.g. an older start-up, for comparisons)."""
    t = target(spec, model, version, cluster)
    if profile is not None:
        t = dataclasses.replace(t, profile=profile)
    max_model_len = spec.models[t.model].engine.max_model_len
    trace, rejected = trace.servable(max_model_len)
    defaults = spec.models[t.model].generation_defaults_of(t.version)
    trace = trace.capped(defaults.max_tokens if defaults else None)
    span = trace.duration
    trace, cuts = trace.without_long_gaps(settle_seconds(t.profile, t.policy))
    policy = replay_policy(trace, t.profile, t.policy)
    n, static = static_peak(trace, t.profile)
    windows = Windows(trace, t.profile, WINDOW_SECONDS)
    counts, best = oracle(trace, t.profile, static=n, windows=windows)
    # Through a removed stretch of idle time each fleet holds what it held when the stretch ended: the policy its
    # settled size, static its fleet; the oracle and the bound hold nothing where no request arrives.
    _bill_cut_time(policy, t.profile, cuts, lambda at: _replicas_at(policy, at))
    _bill_cut_time(static, t.profile, cuts, lambda _at: n)
    lo, hi = policy.replica_range
    rows = [
        Row("policy", f"{lo}-{hi}", policy),
        Row("static", str(n), static),
        Row("oracle", f"{min(counts, default=0)}-{max(counts, default=0)}", best),
    ]
    unservable = sum(1 for rid in range(len(trace)) if not feasible(trace, t.profile, rid))
    return Plan(t, trace, rows, counts, n, startup_bound(trace, t.profile, windows), rejected, max_model_len,
                span, sum(removed for _, removed in cuts), unservable,
                serving_advice(t, max(trace.prompt_tokens, default=0)) if unservable else [])


def serving_advice(t: Target, longest_prompt: int) -> list[str]:
    """What would prefill `longest_prompt` within the SLO: more tensor parallelism (prefill scales at best with
    the GPUs, so this is the least that could do), a faster GPU (prefill is compute bound: the profile's rate
    scaled by dense BF16 throughput, `facts.gpus.DENSE_BF16_TFLOPS`), or prefix caching (hits skip the cached
    part of a prompt's prefill; the trace cannot tell whether prompts share prefixes)."""
    prof = t.profile
    factor = longest_prompt / (prof.prefill_tokens_per_second * prof.ttft_seconds)
    tp = prof.tensor_parallel_size
    needed_tp = math.ceil(factor * tp - 1e-9)
    advice = []
    if needed_tp <= t.gpus_per_node:
        advice.append(f"engine.tensorParallelSize: {needed_tp} (from {tp}; prefill at best {needed_tp / tp:g}x "
                      "faster)")
    else:
        advice.append(f"tensor parallelism of {needed_tp} GPUs, beyond the {t.gpus_per_node} GPUs per node of "
                      f"{t.cluster}/{t.pool.name}: a pool with more GPUs per node")
    faster = [gpu for gpu in sorted(DENSE_BF16_TFLOPS, key=DENSE_BF16_TFLOPS.get)
              if prefill_scale(t.pool.gpu_type, gpu) >= factor]
    if faster:
        advice.append(f"gpuType: {faster[0]} (~{prefill_scale(t.pool.gpu_type, faster[0]):.1f}x the prefill of "
                      f"{t.pool.gpu_type} at the same tensor parallelism)")
    advice.append(f"prefix caching (engine.enablePrefixCaching) helps only if at least {1 - 1 / factor:.0%} of the "
                  "longest prompts' tokens are a shared, cached prefix")
    return advice


def settle_seconds(profile: Profile, policy: AutoscalingPolicy) -> float:
    """Idle time after which any fleet in the replay has settled: every window, cooldown and start-up has run
    out (an hour at least). Longer gaps between requests are shortened to this before replaying."""
    return max(3600.0, profile.cold_start_seconds + policy.scale_down_seconds + policy.cooldown_seconds
               + 4 * policy.polling_seconds + WINDOW_SECONDS)


def _replicas_at(result: Result, at: float) -> int:
    """The fleet (pending replicas included) at the last sample before `at`."""
    before = [s.replicas for s in result.samples if s.t <= at]
    return before[-1] if before else 0


def _bill_cut_time(result: Result, profile: Profile, cuts: list[tuple[float, float]], replicas_at) -> None:
    extra = sum(removed * replicas_at(at) for at, removed in cuts) * profile.tensor_parallel_size / 3600.0
    result.gpu_hours += extra
    result.cost_usd += extra * profile.gpu_hour_usd


def _seconds(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.2f}"


def format_table(p: Plan, trace_credit: str | None = None) -> str:
    """The plan as text: what was replayed, a table, the attribution."""
    t, prof, pol = p.target, p.target.profile, p.target.policy
    oracle_hours = p.row("oracle").result.gpu_hours
    lines = [
        f"capacity plan: {t.environment} · {t.model}:{t.version} · trace {p.trace.name} "
        f"({len(p.trace):,} requests over {p.span_seconds / 60:.1f} min, taken as the version's whole stream)",
        f"replica: {prof.prefill_tokens_per_second:g} prefill tok/s, {prof.decode_tokens_per_second:g} decode tok/s "
        f"at {prof.max_concurrent_sequences} sequences, {prof.prefill_chunk_tokens} tokens per step, "
        f"tp={prof.tensor_parallel_size}; {t.pool.gpu_type} at ${prof.gpu_hour_usd:.2f}/GPU-hour "
        f"({t.cluster}/{t.pool.name})",
        f"start-up: {prof.cold_start_seconds:.0f} s on a new node, {prof.warm_start_seconds:.0f} s on a recent "
        f"replica's node" + (f", {prof.slot_start_seconds:.0f} s on one of {prof.warm_slots} warm slots (refilled in "
                             f"{prof.refill_seconds:.0f} s)" if prof.warm_slots else "") + f": {t.startup.steps}",
        f"policy: replicas {pol.hpa_min_replicas}-{pol.max_replicas}, queue {pol.queue_per_replica:g}/replica, "
        f"KV cache {pol.kv_cache_target:g}, windows up {pol.scale_up_seconds} s / down {pol.scale_down_seconds} s, "
        f"polling {pol.polling_seconds} s" + (f", to zero after {pol.cooldown_seconds} s" if pol.scale_to_zero else ""),
        f"SLO: {prof.ttft_objective:.0%} of requests with TTFT <= {prof.ttft_seconds:g} s",
        "",
    ]
    if p.idle_removed_seconds:
        lines[-1:-1] = [f"idle: {p.idle_removed_seconds / 3600:.1f} h without requests replayed as settled fleets "
                        "(replicas held through them are billed); the percentiles are of the requests"]
    if p.unservable:
        lines[-1:-1] = [f"unservable: {p.unservable:,} requests have prompts whose prefill alone takes longer than "
                        f"{prof.ttft_seconds:g} s on an idle replica ({t.pool.gpu_type}, "
                        f"tp={prof.tensor_parallel_size}); no number of replicas serves them within the SLO. What "
                        "would:",
                        *(f"  - {line}" for line in p.advice)]
    if p.rejected:
        total = len(p.trace) + p.rejected
        lines[-1:-1] = [f"rejected: {p.rejected:,} of {total:,} requests ({p.rejected / total:.2%}) have prompts "
                        f"that fill maxModelLen={p.max_model_len}; vLLM answers them with an error, so they are in "
                        "no row below and count against the SLO on top of each row's share"]
    header = ("strategy", "replicas", "GPU-hours", "vs oracle", "cost USD", "TTFT p50", "TTFT p99", "within SLO",
              "worst min")
    body = []
    for row in p.rows:
        r = row.result
        ratio = r.gpu_hours / oracle_hours if oracle_hours > 0 else math.inf
        body.append((row.name, row.replicas, f"{r.gpu_hours:.2f}", f"{ratio:.2f}x", f"{r.cost_usd:.2f}",
                     _seconds(r.percentile(50)), _seconds(r.percentile(99)), f"{r.within_slo:.2%}",
                     f"{p.worst_minute(row):.1%}"))
    widths = [max(len(str(x[i])) for x in [header, *body]) for i in range(len(header))]

    def fmt(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    lines.append(fmt(header))
    lines.extend(fmt(b) for b in body)
    ratio = p.bound.gpu_hours / oracle_hours if oracle_hours > 0 else math.inf
    lines += ["", f"bound: no autoscaler that pays the {p.bound.startup_seconds:.0f} s start-up of each replica it "
              f"adds on a node that holds everything, even one that knows the future, meets the TTFT objective on "
              f"this trace with fewer than {p.bound.gpu_hours:.2f} GPU-hours ({ratio:.2f}x oracle)", "",
              trace_credit or credit(p.trace.name)]
    return "\n".join(lines)
