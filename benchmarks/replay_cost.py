"""Benchmark: what a capacity plan costs against the size of the trace. Replay cost grows with requests (and the
scaling they cause), not with calendar time: a two-request trace a year long, and a million requests (the
conversational trace's shape repeated, about two days of traffic).

    .venv/bin/python benchmarks/replay_cost.py [--requests 1000000]
"""

from __future__ import annotations

import argparse
import time

from llmplane.capacity.planner import plan
from llmplane.capacity.trace import Trace, azure_trace_path, read_trace
from llmplane.spec import load_spec
from llmplane.stacks.environments import read_stack_config


def _repeated(base: Trace, requests: int) -> Trace:
    """The trace played back to back until it holds `requests` requests."""
    arrivals, prompts, outputs = [], [], []
    offset = 0.0
    while len(arrivals) < requests:
        for t, p, o in zip(base.arrivals, base.prompt_tokens, base.output_tokens):
            if len(arrivals) == requests:
                break
            arrivals.append(offset + t)
            prompts.append(p)
            outputs.append(o)
        offset += base.duration + 1.0
    return Trace(f"{base.name} x{requests // len(base)}", tuple(arrivals), tuple(prompts), tuple(outputs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    args = parser.parse_args()
    config = read_stack_config("prod")
    spec = load_spec(config.values, "prod")
    year = Trace("two requests a year apart", (0.0, 365 * 86400.0 - 3600), (100, 100), (10, 10))
    base = read_trace(azure_trace_path("conv"))
    for trace in (year, _repeated(base, args.requests)):
        started = time.perf_counter()
        result = plan(spec, trace)
        seconds = time.perf_counter() - started
        hours = result.span_seconds / 3600
        print(f"{trace.name}: {len(trace):,} requests over {hours:,.1f} h planned in {seconds:.1f} s "
              f"({seconds / max(hours, 1e-9):.3f} s per trace-hour, {seconds / len(trace) * 1e6:.0f} us per request)")


if __name__ == "__main__":
    main()
