"""The metrics llmplane's dashboards, alerts and autoscalers read: one catalog.

Names, types and labels follow vLLM's V1 Prometheus logger, the DCGM exporter
and kube-state-metrics. When the pinned vLLM changes a name, change it here:
the simulator exposes exactly this catalog and a test rejects any query that
uses a name missing from it.

Series labels `model` and `version`: a model's pods carry the labels
`llmplane.dev/model` and `llmplane.dev/model-version`, and Prometheus turns
them into the target labels `model` and `version` (see `POD_RELABEL_CONFIGS`),
so every vLLM series and every DCGM series of a GPU held by those pods carries
them. vLLM's own `model_name` is the served name `<model>:<version>`.
kube-state-metrics instead reports the pod labels as
`label_llmplane_dev_model` and `label_llmplane_dev_model_version` on
`kube_deployment_labels` (its `--metric-labels-allowlist` must name them).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    GAUGE = "gauge"
    COUNTER = "counter"
    HISTOGRAM = "histogram"
    SUMMARY = "summary"


@dataclass(frozen=True)
class Metric:
    """One metric family as it appears on a /metrics page."""

    name: str
    kind: Kind
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] = ()

    def series_names(self) -> tuple[str, ...]:
        """Names PromQL may select: histograms expose three series."""
        if self.kind is Kind.HISTOGRAM:
            return tuple(f"{self.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        if self.kind is Kind.SUMMARY:
            return tuple(f"{self.name}_{suffix}" for suffix in ("sum", "count"))
        return (self.name,)


# Target labels Prometheus adds from the pod labels (see module docstring).
MODEL_LABEL = "model"
VERSION_LABEL = "version"
POD_RELABEL_CONFIGS: tuple[dict[str, object], ...] = (
    {"source_labels": ["__meta_kubernetes_pod_label_llmplane_dev_model"], "target_label": MODEL_LABEL},
    {
        "source_labels": ["__meta_kubernetes_pod_label_llmplane_dev_model_version"],
        "target_label": VERSION_LABEL,
    },
)

VLLM_LABELS = ("model_name", "engine")
# vLLM v0.14.0's FinishReason strings (vllm/v1/engine/__init__.py FINISH_REASON_STRINGS);
# "error" is the platform's failure signal,
# "abort" is mostly clients going away.
FINISHED_REASONS = ("stop", "length", "abort", "error")

_TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
    5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)
_TOKEN_LATENCY_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
    5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)
_REQUEST_LATENCY_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
    60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)

NUM_REQUESTS_WAITING = Metric(
    "vllm:num_requests_waiting", Kind.GAUGE, VLLM_LABELS, "Number of requests waiting to be processed.")
NUM_REQUESTS_RUNNING = Metric(
    "vllm:num_requests_running", Kind.GAUGE, VLLM_LABELS, "Number of requests in model execution batches.")
KV_CACHE_USAGE = Metric(
    "vllm:kv_cache_usage_perc", Kind.GAUGE, VLLM_LABELS, "KV-cache usage. 1 means 100 percent usage.")
TIME_TO_FIRST_TOKEN = Metric(
    "vllm:time_to_first_token_seconds", Kind.HISTOGRAM, VLLM_LABELS,
    "Histogram of time to first token in seconds.", _TTFT_BUCKETS)
INTER_TOKEN_LATENCY = Metric(
    "vllm:inter_token_latency_seconds", Kind.HISTOGRAM, VLLM_LABELS,
    "Histogram of inter-token latency in seconds.", _TOKEN_LATENCY_BUCKETS)
E2E_REQUEST_LATENCY = Metric(
    "vllm:e2e_request_latency_seconds", Kind.HISTOGRAM, VLLM_LABELS,
    "Histogram of e2e request latency in seconds.", _REQUEST_LATENCY_BUCKETS)
REQUEST_QUEUE_TIME = Metric(
    "vllm:request_queue_time_seconds", Kind.HISTOGRAM, VLLM_LABELS,
    "Histogram of time spent in WAITING phase for request.", _REQUEST_LATENCY_BUCKETS)
PROMPT_TOKENS = Metric(
    "vllm:prompt_tokens_total", Kind.COUNTER, VLLM_LABELS, "Number of prefill tokens processed.")
GENERATION_TOKENS = Metric(
    "vllm:generation_tokens_total", Kind.COUNTER, VLLM_LABELS, "Number of generation tokens processed.")
NUM_PREEMPTIONS = Metric(
    "vllm:num_preemptions_total", Kind.COUNTER, VLLM_LABELS, "Cumulative number of preemption from the engine.")
REQUEST_SUCCESS = Metric(
    "vllm:request_success_total", Kind.COUNTER, VLLM_LABELS + ("finished_reason",),
    "Count of successfully processed requests.")
PREFIX_CACHE_QUERIES = Metric(
    "vllm:prefix_cache_queries_total", Kind.COUNTER, VLLM_LABELS,
    "Prefix cache queries, in terms of number of queried tokens.")
PREFIX_CACHE_HITS = Metric(
    "vllm:prefix_cache_hits_total", Kind.COUNTER, VLLM_LABELS,
    "Prefix cache hits, in terms of number of cached tokens.")

VLLM: tuple[Metric, ...] = (
    NUM_REQUESTS_WAITING, NUM_REQUESTS_RUNNING, KV_CACHE_USAGE, TIME_TO_FIRST_TOKEN,
    INTER_TOKEN_LATENCY, E2E_REQUEST_LATENCY, REQUEST_QUEUE_TIME, PROMPT_TOKENS,
    GENERATION_TOKENS, NUM_PREEMPTIONS, REQUEST_SUCCESS, PREFIX_CACHE_QUERIES, PREFIX_CACHE_HITS,
)

# The DCGM exporter's labels with its Kubernetes pod mapping switched on.
DCGM_LABELS = ("gpu", "UUID", "device", "modelName", "Hostname", "container", "namespace", "pod")
GPU_UTIL = Metric("DCGM_FI_DEV_GPU_UTIL", Kind.GAUGE, DCGM_LABELS, "GPU utilization (in %).")
GPU_FB_USED = Metric("DCGM_FI_DEV_FB_USED", Kind.GAUGE, DCGM_LABELS, "Framebuffer memory used (in MiB).")
GPU_FB_FREE = Metric("DCGM_FI_DEV_FB_FREE", Kind.GAUGE, DCGM_LABELS, "Framebuffer memory free (in MiB).")
GPU_XID_ERRORS = Metric(
    "DCGM_FI_DEV_XID_ERRORS", Kind.GAUGE, DCGM_LABELS, "Value of the last XID error encountered.")

DCGM: tuple[Metric, ...] = (GPU_UTIL, GPU_FB_USED, GPU_FB_FREE, GPU_XID_ERRORS)

DEPLOYMENT_LABELS = ("namespace", "deployment")
DEPLOYMENT_SPEC_REPLICAS = Metric(
    "kube_deployment_spec_replicas", Kind.GAUGE, DEPLOYMENT_LABELS,
    "Number of desired pods for a deployment.")
DEPLOYMENT_READY_REPLICAS = Metric(
    "kube_deployment_status_replicas_ready", Kind.GAUGE, DEPLOYMENT_LABELS,
    "The number of ready replicas per deployment.")
DEPLOYMENT_LABELS_INFO = Metric(
    "kube_deployment_labels", Kind.GAUGE,
    DEPLOYMENT_LABELS + ("label_llmplane_dev_model", "label_llmplane_dev_model_version"),
    "Kubernetes labels converted to Prometheus labels.")

KUBE_STATE: tuple[Metric, ...] = (DEPLOYMENT_SPEC_REPLICAS, DEPLOYMENT_READY_REPLICAS, DEPLOYMENT_LABELS_INFO)

ALL: tuple[Metric, ...] = VLLM + DCGM + KUBE_STATE
"""What the serving stack's exporters expose (and the simulator imitates)."""

# llmplane's own feedback service (components/serving/scripts/feedback_server.py): ratings of answers per arm.
# `model` and `version` are its own labels, validated against the deployed versions, not the pod's.
FEEDBACK_LABELS = (MODEL_LABEL, VERSION_LABEL, "tenant")
FEEDBACK_OUTCOMES = ("success", "failure", "refusal")
"""Values of the `label` label: the task succeeded, it failed, the model refused."""
FEEDBACK_TOTAL = Metric(
    "llmplane_feedback_total", Kind.COUNTER, FEEDBACK_LABELS + ("label",), "Feedback labels posted per arm.")
FEEDBACK_SCORE = Metric(
    "llmplane_feedback_score", Kind.SUMMARY, FEEDBACK_LABELS, "Feedback scores (0 to 1) posted per arm.")
FEEDBACK: tuple[Metric, ...] = (FEEDBACK_TOTAL, FEEDBACK_SCORE)


LORA_REQUESTS_INFO = Metric(
    "vllm:lora_requests_info", Kind.GAUGE, ("max_lora", "waiting_lora_adapters", "running_lora_adapters"),
    "Running stats on lora requests.")
"""Read by the endpoint picker's adapter-affinity scorer only (components/gateway/inference_pool.py), and exported
by vLLM only when LoRA is on, so the simulator leaves it out; every supported release exports it
(tests/test_engine_releases.py)."""
PICKER_ONLY: tuple[Metric, ...] = (LORA_REQUESTS_INFO,)


def series_names() -> frozenset[str]:
    """Every series name a query may select from the catalog."""
    return frozenset(name for metric in (*ALL, *FEEDBACK, *PICKER_ONLY) for name in metric.series_names())
