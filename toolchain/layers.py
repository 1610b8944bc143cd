"""The project's layers, bottom to top: a module may import its own layer's package and any layer below, never one
above, and no two packages import each other (tests/test_layers.py checks both). The README's architecture picture
lists them (toolchain/architecture.py), so the picture and the check read one table."""

from __future__ import annotations

LAYERS: dict[str, int] = {
    "facts": 0,
    "monitoring": 1,
    "spec": 2,
    "components": 3,
    "toolchain": 3,
    "capacity": 4,
    "policies": 4,
    "experiments": 4,
    "stacks": 5,
    "stacks.cli": 6,
    "stacks.__main__": 6,
    "benchmarks": 7,
}
"""Each package's layer (a module named here, like `stacks.cli`, sits above the rest of its package)."""

ROLES: dict[str, str] = {
    "facts": "what several layers share: GPUs, clouds, image pins, addressing, load rates with their sources",
    "monitoring": "the vLLM metric catalog, dashboards, alert rules, the runbook",
    "spec": "PlatformSpec (pydantic + rules) and what derives from it: a model's pool, node cache, streaming, "
            "start-up, autoscaling policy",
    "components": "ComponentResources with plain-value args: clusters, serving, networking, autoscaling, "
                  "observability, hybrid, gateway",
    "toolchain": "the harness, what only builds or tests llmplane: Go tools built or downloaded and cached, "
                 "stand-ins for what this machine cannot get (vLLM simulators, the local gateway, the Python "
                 "language host), the docs builder and this picture",
    "capacity": "the trace-replay planner, reading the spec",
    "policies": "the CrossGuard policy pack, reading the spec",
    "experiments": "experiment statistics: per-arm PromQL, the always-valid sequential test (mSPRT), guardrails, "
                   "traffic still needed, verdicts and the next step's weights, reading the spec, the monitoring "
                   "catalog and Prometheus over HTTP",
    "stacks": "compose(), the offline plan and its policy check, diffs and reports; stacks/local: the local "
              "target (the embedded cluster, make up's safe update and summary)",
    "stacks.cli": "the `llmplane` command",
    "stacks.__main__": "the Pulumi program (Pulumi.yaml: `main: stacks/`)",
    "benchmarks": "figures for speed targets (plan scaling, cold start, capacity replay), printed, never asserted",
}
"""One line per entry of LAYERS: what lives there."""
