"""Capacity planner benchmark: replay time of a one-hour trace, and the shipped prod policy on both Azure traces.

    .venv/bin/python benchmarks/capacity_replay.py [--environment prod] [--model llama-3-8b]

For each trace it times the policy replay (target: under 10 s for the hour) and the whole plan (policy, static
peak search, oracle search, start-up bound), then prints GPU-hours relative to the oracle and SLO attainment for
the three rows, the start-up bound (no autoscaler that pays its replicas' weight load can spend less), and the
policy against issue 5's targets: the objective met, at most 1.3x the oracle, fewer GPU-hours than static.
The traces are read from ../shared/traces (or $LLMPLANE_TRACES) at run time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llmplane.capacity.planner import plan, replay_policy, target
from llmplane.capacity.trace import ATTRIBUTION, AZURE_TRACES, azure_trace_path, read_trace
from llmplane.spec import load_spec
from llmplane.stacks.environments import read_stack_config

REPLAY_BUDGET_SECONDS = 10.0
ORACLE_RATIO_TARGET = 1.3


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--environment", default="prod")
    args.add_argument("--model", default=None)
    opts = args.parse_args(argv)
    config = read_stack_config(opts.environment)
    spec = load_spec(config.values, opts.environment)
    t = target(spec, opts.model)
    pol = t.policy
    print(f"capacity replay benchmark: {opts.environment} · {t.model}:{t.version} · replicas "
          f"{pol.hpa_min_replicas}-{pol.max_replicas}, queue {pol.queue_per_replica:g}/replica, KV "
          f"{pol.kv_cache_target:g}, windows {pol.scale_up_seconds}/{pol.scale_down_seconds} s")
    print(f"{'trace':<6} {'requests':>8} {'replay s':>8} {'plan s':>7}  {'row':<7} {'GPU-h':>7} {'vs oracle':>9} "
          f"{'within SLO':>10} {'TTFT p99':>8}")
    failures = []
    for kind in AZURE_TRACES:
        path = azure_trace_path(kind)
        if not path.is_file():
            print(f"{kind}: {path} is missing (set LLMPLANE_TRACES)", file=sys.stderr)
            return 2
        trace = read_trace(path)
        start = time.perf_counter()
        replay_policy(trace, t.profile, t.policy)
        replay_seconds = time.perf_counter() - start
        start = time.perf_counter()
        p = plan(spec, trace, opts.model)
        plan_seconds = time.perf_counter() - start
        oracle_hours = p.row("oracle").result.gpu_hours
        for i, row in enumerate(p.rows):
            r = row.result
            lead = (f"{kind:<6} {len(trace):>8,} {replay_seconds:>8.2f} {plan_seconds:>7.2f}" if i == 0
                    else " " * 33)
            print(f"{lead}  {row.name:<7} {r.gpu_hours:>7.2f} {r.gpu_hours / oracle_hours:>8.2f}x "
                  f"{r.within_slo:>10.2%} {r.percentile(99):>8.2f}")
        bound = p.bound.gpu_hours
        print(f"{'':33}  {'bound':<7} {bound:>7.2f} {bound / oracle_hours:>8.2f}x")
        policy, static = p.row("policy").result, p.row("static").result
        checks = [(f"within SLO {policy.within_slo:.2%} >= {p.target.profile.ttft_objective:.0%}",
                   policy.within_slo >= p.target.profile.ttft_objective),
                  (f"{policy.gpu_hours / oracle_hours:.2f}x oracle <= {ORACLE_RATIO_TARGET:g}x",
                   policy.gpu_hours <= ORACLE_RATIO_TARGET * oracle_hours),
                  (f"{policy.gpu_hours:.2f} < static {static.gpu_hours:.2f} GPU-h",
                   policy.gpu_hours < static.gpu_hours)]
        print(f"{'':33}  targets: " + "; ".join(f"{text} {'met' if ok else 'MISSED'}" for text, ok in checks))
        if bound > ORACLE_RATIO_TARGET * oracle_hours:
            print(f"{'':33}  the bound is above {ORACLE_RATIO_TARGET:g}x oracle: no autoscaler meets the objective "
                  f"on this trace within {ORACLE_RATIO_TARGET:g}x oracle")
        if replay_seconds > REPLAY_BUDGET_SECONDS:
            failures.append(f"{kind}: replay took {replay_seconds:.1f} s (budget {REPLAY_BUDGET_SECONDS:g} s)")
    print()
    print(ATTRIBUTION)
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
