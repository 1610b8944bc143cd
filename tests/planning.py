"""Offline plans for tests: each environment planned once per session, or a mutated copy planned fresh."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from functools import cache
from typing import Any

from llmplane.stacks.environments import StackConfig, read_stack_config
from llmplane.stacks.plan import Plan, PlannedResource, run_plan

Mutation = Callable[[dict[str, Any]], None]


@cache
def plan_of(environment: str) -> Plan:
    """The shipped environment's plan (cached: plans are deterministic)."""
    return run_plan(read_stack_config(environment))


def plan_with(environment: str, mutate: Mutation) -> Plan:
    """Plan of a shipped environment after `mutate` edits its parsed `llmplane:*` values in place."""
    base = read_stack_config(environment)
    values = {key: _parse(value) for key, value in base.values.items()}
    mutate(values)
    raw = {key: value if isinstance(value, str) else json.dumps(value) for key, value in values.items()}
    return run_plan(StackConfig(environment, raw, base.secret_keys))


def _parse(value: str) -> Any:
    try:
        return copy.deepcopy(json.loads(value))
    except ValueError:
        return value


def named(plan: Plan, type_: str, name: str) -> list[PlannedResource]:
    """Resources of one type whose Kubernetes metadata.name is `name` (one per cluster that has it)."""
    found = [r for r in plan.of_type(type_) if r.inputs.get("metadata", {}).get("name") == name]
    assert found, f"no {type_} named {name}"
    return found


DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
HTTP_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"


def model_servers(plan: Plan) -> list[PlannedResource]:
    """The vLLM Deployments (not the warm-headroom placeholders or other Deployments)."""
    return [d for d in plan.of_type(DEPLOYMENT)
            if d.inputs["metadata"]["labels"].get("app.kubernetes.io/component") == "model-server"]
