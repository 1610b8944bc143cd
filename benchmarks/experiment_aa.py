"""Benchmark: the experiment report's false-positive rate over many A/A runs under continuous monitoring, next to a
fixed-horizon z-test read at every look (the peeking that the always-valid test exists to survive).

The runs (tests/experiment_simulation.py) give both arms one behaviour: TTFT in vLLM's buckets and errors at one
rate, split 2:1 as a canary; a run is flagged when any look's comparison is significant. Measured in one run, here,
from the repository's root:

    .venv/bin/python -m benchmarks.experiment_aa [--runs 2000] [--looks 30]
"""

from __future__ import annotations

import argparse
import math
import time

from tests.experiment_simulation import aa_rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--looks", type=int, default=30)
    args = parser.parse_args()
    for primary in ("ttft", "error_rate"):
        start = time.perf_counter()
        rates = aa_rates(primary, args.runs, args.looks)
        margin = 1.96 * math.sqrt(rates.msprt * (1 - rates.msprt) / rates.runs)
        print(f"{primary:<11} A/A, {rates.runs} runs x {rates.looks} looks, alpha 0.05: mSPRT flags "
              f"{rates.msprt:.2%} (±{margin:.2%}); a z-test peeked at every look flags {rates.peeking:.2%} "
              f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
