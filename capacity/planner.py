"""The capacity plan of one model version: its autoscaling policy replayed on a trace, next to the baselines.

The trace is taken as the whole stream of requests to the model version, all clusters together: one autoscaled
Deployment with the version's replica bounds serves all of it (what one cluster carries when it takes the whole
load, e.g. in a failover; spread over clusters, each one's autoscaler sees a share and the bounds multiply).
The performance profile, cold start and SLO come from the model's spec; the GPU price from the model's pool in
its first cluster (or the one named).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from facts.gpus import GPU_HOUR_USD, GPU_MEMORY_GB
from stacks.autoscaling import policy_of
from stacks.spec.models import Engine, GpuPool, PlatformSpec

from .baselines import WINDOW_SECONDS, Windows, fluid_replicas, oracle, static_peak, window_attainment, window_need
from .bound import Bound, startup_bound
from .policy import AutoscalingPolicy
from .simulator import PolicyController, Profile, Result, Simulator
from .trace import ATTRIBUTION, Trace


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
    the cluster whose pool prices the GPU-hours (default: the model's first)."""
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
    pool = next(p for p in where.pools if p.name == m.pool)
    policy = policy_of(spec.autoscaling, m, chosen, model)
    perf, cold = m.performance, m.cold_start
    profile = Profile(
        prefill_tokens_per_second=perf.prefill_tokens_per_second,
        decode_tokens_per_second=perf.decode_tokens_per_second,
        max_concurrent_sequences=perf.max_concurrent_sequences,
        node_seconds=cold.node_seconds,
        image_pull_seconds=cold.image_pull_seconds,
        load_seconds=m.load_seconds,
        tensor_parallel_size=m.engine.tensor_parallel_size,
        gpu_hour_usd=pool.gpu_hour_usd or GPU_HOUR_USD[pool.gpu_type],
        ttft_seconds=m.slo.ttft_seconds,
        ttft_objective=m.slo.ttft_objective,
        prefill_chunk_tokens=step_token_budget(m.engine, pool.gpu_type),
    )
    return Target(spec.environment, model, chosen.version, where.name, pool, policy, profile)


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
                    sample_every=sample_every)
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

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)

    def worst_minute(self, row: Row) -> float:
        """The lowest share of a minute's requests within the SLO."""
        shares = [g / c for c, g, _ in window_attainment(self.trace, row.result.ttft, self.target.profile) if c]
        return min(shares, default=1.0)


def plan(spec: PlatformSpec, trace: Trace, model: str | None = None, version: str | None = None,
         cluster: str | None = None) -> Plan:
    """Replay the policy and both baselines, and bound what any autoscaler could reach."""
    t = target(spec, model, version, cluster)
    max_model_len = spec.models[t.model].engine.max_model_len
    trace, rejected = trace.servable(max_model_len)
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
    return Plan(t, trace, rows, counts, n, startup_bound(trace, t.profile, windows), rejected, max_model_len,
                span, sum(removed for _, removed in cuts))


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


def format_table(p: Plan) -> str:
    """The plan as text: what was replayed, a table, the attribution."""
    t, prof, pol = p.target, p.target.profile, p.target.policy
    oracle_hours = p.row("oracle").result.gpu_hours
    lines = [
        f"capacity plan: {t.environment} · {t.model}:{t.version} · trace {p.trace.name} "
        f"({len(p.trace):,} requests over {p.span_seconds / 60:.1f} min, taken as the version's whole stream)",
        f"replica: {prof.prefill_tokens_per_second:g} prefill tok/s, {prof.decode_tokens_per_second:g} decode tok/s "
        f"at {prof.max_concurrent_sequences} sequences, {prof.prefill_chunk_tokens} tokens per step, "
        f"tp={prof.tensor_parallel_size}; cold start "
        f"{prof.cold_start_seconds:g} s (node {prof.node_seconds:g} + image {prof.image_pull_seconds:g} + load "
        f"{prof.load_seconds:g}); {t.pool.gpu_type} at ${prof.gpu_hour_usd:.2f}/GPU-hour ({t.cluster}/{t.pool.name})",
        f"policy: replicas {pol.hpa_min_replicas}-{pol.max_replicas}, queue {pol.queue_per_replica:g}/replica, "
        f"KV cache {pol.kv_cache_target:g}, windows up {pol.scale_up_seconds} s / down {pol.scale_down_seconds} s, "
        f"polling {pol.polling_seconds} s" + (f", to zero after {pol.cooldown_seconds} s" if pol.scale_to_zero else ""),
        f"SLO: {prof.ttft_objective:.0%} of requests with TTFT <= {prof.ttft_seconds:g} s",
        "",
    ]
    if p.idle_removed_seconds:
        lines[-1:-1] = [f"idle: {p.idle_removed_seconds / 3600:.1f} h without requests replayed as settled fleets "
                        "(replicas held through them are billed); the percentiles are of the requests"]
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
    lines += ["", f"bound: no autoscaler that pays the {p.bound.startup_seconds:g} s weight load of each replica it "
              f"adds, even one that knows the future, meets the TTFT objective on this trace with fewer than "
              f"{p.bound.gpu_hours:.2f} GPU-hours ({ratio:.2f}x oracle)", "", ATTRIBUTION]
    return "\n".join(lines)
