"""The PromQL that autoscalers (KEDA's Prometheus trigger) scale a model version on.

KEDA needs one number per query, so each query aggregates over the
version's pods. Queue depth and KV-cache usage are the signals: GPU
utilisation sits near 100% whenever vLLM batches, so it cannot tell a busy
replica from an overloaded one.
"""

from __future__ import annotations

from monitoring import vllm_metrics as vm


def _selector(model: str, version: str) -> str:
    for name, value in (("model", model), ("version", version)):
        if not value or '"' in value or "\\" in value:
            raise ValueError(f"{name} {value!r} cannot be used in a PromQL label matcher")
    return f'{{model="{model}", version="{version}"}}'


def queue_depth(model: str, version: str) -> str:
    """Requests waiting across the version's replicas (scale on an average per replica)."""
    return f"sum({vm.NUM_REQUESTS_WAITING.name}{_selector(model, version)})"


def kv_cache_usage(model: str, version: str) -> str:
    """KV-cache usage of the version's fullest replica, 0 to 1."""
    return f"max({vm.KV_CACHE_USAGE.name}{_selector(model, version)})"


def triggers(model: str, version: str) -> dict[str, str]:
    """Every autoscaling query for one model version, by signal."""
    return {"queue_depth": queue_depth(model, version), "kv_cache_usage": kv_cache_usage(model, version)}
