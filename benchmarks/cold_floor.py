"""The floor under a cold `llmplane plan prod`, run by plan_scaling.py in a fresh process: the same base imports as
the CLI, the SDK modules the plan's program imports (listed by the parent, in order), then the bare program (the
same resources and inputs as plain custom resources) through the same offline plan, its JSON written to stdout.
What `plan prod` pays above this is the composition itself: typed SDK classes, their outputs, components.

    .venv/bin/python benchmarks/cold_floor.py MODULES.json RESOURCES.json
"""

from __future__ import annotations

import atexit
import gc
import importlib
import json
import sys
from pathlib import Path

gc.disable()  # as `llmplane plan` runs (stacks.cli.SHORT_LIVED_HEAP), frozen at exit as there
atexit.register(gc.freeze)

from stacks.environments import read_stack_config  # noqa: E402
from stacks.plan import PlannedResource, run_plan  # noqa: E402
from stacks.plan_policies import evaluate  # noqa: E402 - the CLI's imports, after the collector is off
from stacks.report import as_json  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from plan_scaling import bare_program  # noqa: E402


def main() -> None:
    for module in json.loads(Path(sys.argv[1]).read_text()):
        importlib.import_module(module)
    resources = [PlannedResource(**r) for r in json.loads(Path(sys.argv[2]).read_text())]
    plan = run_plan(read_stack_config("prod"), bare_program(resources))
    print(as_json(plan, evaluate(plan)))


if __name__ == "__main__":
    main()
