"""Benchmark: what validating one environment costs (file read and YAML guards, pydantic shape checks, the
cross-field rules), per shipped environment, and the share each step takes. Measured in one run, here.

    .venv/bin/python benchmarks/validation_cost.py
"""

from __future__ import annotations

import time
from statistics import median

from llmplane.spec.load import spec_data
from llmplane.spec.models import PlatformSpec
from llmplane.spec.rules import check
from llmplane.stacks.environments import environment_file, known_environments, read_stack_config

REPEATS = 200


def _median_ms(fn) -> float:
    samples = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return median(samples)


def main() -> None:
    print(f"{'environment':<12} {'read+guards':>12} {'shape':>9} {'rules':>9} {'total':>9}   (median of {REPEATS}, ms)")
    for environment in known_environments():
        config = read_stack_config(environment)
        data = spec_data(config.values, environment)
        spec = PlatformSpec.model_validate(data)
        read = _median_ms(lambda env=environment: read_stack_config(env, environment_file(env)))
        shape = _median_ms(lambda env=environment, values=config.values:
                           PlatformSpec.model_validate(spec_data(values, env)))
        rules = _median_ms(lambda parsed=spec: check(parsed))
        total = read + shape + rules
        print(f"{environment:<12} {read:>12.2f} {shape:>9.2f} {rules:>9.2f} {total:>9.2f}   "
              f"(rules {rules / total:.0%} of it)")


if __name__ == "__main__":
    main()
