"""The floor under a cold `llmplane plan prod`, run by plan_scaling.py in a fresh process: the same base imports as
the CLI, the SDK modules the plan's program imports (listed by the parent, in order), then the bare program (the
same resources and inputs as plain custom resources) through the same offline plan, its JSON written to stdout.
What `plan prod` pays above this is the composition itself: typed SDK classes, their outputs, components.
With PHASES.json, the seconds of each phase (since the interpreter started) are written there: where the floor goes.

    .venv/bin/python benchmarks/cold_floor.py MODULES.json RESOURCES.json [PHASES.json]
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import atexit  # noqa: E402 - the clock first, so that every import is counted
import gc  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

gc.disable()  # as `llmplane plan` runs (stacks.cli.SHORT_LIVED_HEAP), frozen at exit as there
atexit.register(gc.freeze)

from llmplane.stacks.environments import read_stack_config  # noqa: E402
from llmplane.stacks.plan import PlannedResource, run_plan  # noqa: E402
from llmplane.stacks.plan_policies import evaluate  # noqa: E402 - the CLI's imports, after the collector is off
from llmplane.stacks.report import as_json  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from plan_scaling import bare_program  # noqa: E402

BASE_IMPORTS = time.perf_counter()
SDK_PACKAGES = ("pulumi_gcp", "pulumi_aws", "pulumi_kubernetes")
"""The providers whose modules the plan loads, each timed on its own; the rest (random, docker-build...) together."""


def main() -> None:
    phases = {"base imports (CLI, spec, plan, policies)": BASE_IMPORTS - STARTED}
    modules = json.loads(Path(sys.argv[1]).read_text())
    for package in (*SDK_PACKAGES, None):
        start = time.perf_counter()
        for module in modules:
            if (module.split(".")[0] == package) if package else module.split(".")[0] not in SDK_PACKAGES:
                importlib.import_module(module)
        phases[f"{package or 'other SDK'} modules the program loads"] = time.perf_counter() - start
    resources = [PlannedResource(**r) for r in json.loads(Path(sys.argv[2]).read_text())]
    start = time.perf_counter()
    plan = run_plan(read_stack_config("prod"), bare_program(resources))
    phases["the bare program's offline plan"] = time.perf_counter() - start
    start = time.perf_counter()
    violations = evaluate(plan)
    phases["policy evaluation"] = time.perf_counter() - start
    start = time.perf_counter()
    print(as_json(plan, violations))
    phases["JSON output"] = time.perf_counter() - start
    if len(sys.argv) > 3:
        Path(sys.argv[3]).write_text(json.dumps(phases))


if __name__ == "__main__":
    main()
