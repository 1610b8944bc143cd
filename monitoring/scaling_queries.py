"""The PromQL that autoscalers (KEDA's Prometheus trigger) scale a model version on.

KEDA needs one number per query, so each query aggregates over the
version's pods. Queue depth and KV-cache usage are the signals: GPU
utilisation sits near 100% whenever vLLM batches, so it cannot tell a busy
replica from an overloaded one.
"""

from __future__ import annotations

from llmplane.monitoring import vllm_metrics as vm


def _selector(served_model_name: str) -> str:
    """vLLM's own `model_name` label: the served name `<model>:<version>` (no relabelling needed)."""
    if not served_model_name or '"' in served_model_name or "\\" in served_model_name:
        raise ValueError(f"served model name {served_model_name!r} cannot be used in a PromQL label matcher")
    return f'{{model_name="{served_model_name}"}}'


def queue_depth(served_model_name: str) -> str:
    """Requests waiting across the version's replicas (an AverageValue target divides it per replica)."""
    return f"sum({vm.NUM_REQUESTS_WAITING.name}{_selector(served_model_name)})"


def kv_cache_usage(served_model_name: str) -> str:
    """Average KV-cache usage over the version's replicas, 0 to 1 (a Value target scales on it directly)."""
    return f"avg({vm.KV_CACHE_USAGE.name}{_selector(served_model_name)})"


def triggers(model: str, version: str) -> dict[str, str]:
    """Every autoscaling query for one model version, by signal."""
    served = f"{model}:{version}"
    return {"queue_depth": queue_depth(served), "kv_cache_usage": kv_cache_usage(served)}
