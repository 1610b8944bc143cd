"""Usage and cost per tenant, from the gateway's access logs.

Every request through a gateway leaves one JSON access line (`log="llmplane-access"`) with the tenant, the model
that answered and vLLM's token counts. Loki's ruler turns those lines into Prometheus series (LogQL recording rules,
remote-written to the cluster's Prometheus): tokens and requests per tenant and model. Prometheus then apportions
each model's GPUs to its tenants by their share of its tokens: the GPU-hours behind the cost-per-tenant panel.

Each cluster's gateway counts the tokens of the answers it serves and apportions its own GPUs.
"""

from __future__ import annotations

from typing import Any

from llmplane.facts.namespaces import GATEWAY_NAMESPACE
from llmplane.monitoring import vllm_metrics as vm

ACCESS_LOG_KIND = "llmplane-access"
"""Value of the access line's `log` field (the EnvoyProxy's access-log format writes it)."""
ACCESS_LINES = f'{{namespace="{GATEWAY_NAMESPACE}"}} | json | log="{ACCESS_LOG_KIND}"'
"""LogQL selecting the gateway's access lines, their JSON fields as labels."""
TOKENS = "llmplane:gateway_tokens:sum1m"
"""Tokens (prompt and output) per tenant and model over the last minute."""
REQUESTS = "llmplane:gateway_requests:count1m"
"""Requests per tenant, model and status over the last minute."""
GPUS = "llmplane:tenant_gpus:apportioned"
"""GPUs of a model attributed to a tenant by its share of the model's tokens; summed over time, GPU-hours."""


def loki_rule_groups() -> dict[str, Any]:
    """Loki ruler's recording rules: LogQL metric queries over the access lines, written to Prometheus. A line
    whose token count is not a number (a refused request logs `-`) counts as a request, never as tokens."""
    return {"groups": [{"name": "llmplane-tenant-usage", "interval": "1m", "rules": [
        {"record": TOKENS, "expr": (f"sum by (tenant, model) (sum_over_time({ACCESS_LINES} | unwrap total_tokens "
                                    '| __error__="" [1m]))')},
        {"record": REQUESTS, "expr": f"sum by (tenant, model, status) (count_over_time({ACCESS_LINES} [1m]))"},
    ]}]}


def tenant_cost_rules() -> list[dict[str, Any]]:
    """Prometheus' recording rule apportioning each model's GPUs (DCGM's per-GPU series of its pods) to tenants."""
    return [{"record": GPUS, "expr": (
        f"sum by (tenant, model) ({TOKENS})\n"
        f"/ on (model) group_left ()\nsum by (model) ({TOKENS})\n"
        f"* on (model) group_left ()\ncount by (model) ({vm.GPU_UTIL.name}{{model!=\"\"}})\n")}]
