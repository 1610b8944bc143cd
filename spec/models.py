"""The typed environment spec: what one `environments/Pulumi.<env>.yaml` holds.

Shapes and single-field limits live here, so pydantic reports every one of
them at once; rules that relate several fields live in `rules.py`.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from llmplane.facts.clouds import machine_shape
from llmplane.facts.engines import DEFAULT_RELEASE, RELEASES
from llmplane.facts.gpus import BYTES_PER_PARAMETER, FP8_KV_BYTES_PER_VALUE, GPU_MEMORY_GB, KV_CACHE_BYTES_PER_VALUE
from llmplane.facts.loading import ENGINE_START_SECONDS, NODE_JOIN_SECONDS
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from .autoscaling_policy import AutoscalingPolicy
from .startup import Startup, StartupConfig, derive

Name = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"),
]
"""A DNS-1123 label of at most 40 characters: it becomes part of Kubernetes and cloud names."""

SemVer = Annotated[
    str,
    StringConstraints(pattern=r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$"),
]
"""A semantic version, e.g. `1.2.0` or `2.0.0-rc.1`."""

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
"""A lowercase hex sha256 digest."""


def _network(value: str) -> str:
    """A CIDR the clouds accept: octets up to 255, a prefix up to 32, no host bits set."""
    try:
        ipaddress.IPv4Network(value)
    except ValueError as error:
        reason = str(error)
        raise PydanticCustomError(
            "cidr", "not an IPv4 network: {reason}", {"reason": reason[:1].lower() + reason[1:]}
        ) from None
    return value


Cidr = Annotated[str, StringConstraints(pattern=r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$"), AfterValidator(_network)]
"""An IPv4 CIDR block, given by its network address."""

def _address(value: str) -> str:
    """An IPv4 host address (octets up to 255)."""
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise PydanticCustomError("ip_address", "not an IPv4 address") from None
    return value


Ipv4 = Annotated[str, StringConstraints(pattern=r"^\d{1,3}(\.\d{1,3}){3}$"), AfterValidator(_address)]
"""An IPv4 address such as 203.0.113.10."""

CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
"""The five fields of a cron schedule and their ranges (day of week 0-7, both 0 and 7 are Sunday)."""


def _cron_field(text: str, name: str, low: int, high: int) -> str | None:
    """Why one cron field is wrong, or None: `*`, a number, a range `a-b`, each optionally `/step`, comma-separated."""
    for part in text.split(","):
        base, _, step = part.partition("/")
        if step and not (step.isdigit() and int(step) >= 1):
            return f"the {name} step '{step}' is not a positive number"
        if base == "*":
            continue
        start, _, end = base.partition("-")
        for number in (start, end) if end else (start,):
            if not number.isdigit():
                return f"the {name} field '{text}' is not *, a number or a range"
            if not low <= int(number) <= high:
                return f"the {name} {number} is outside {low}-{high}"
        if end and int(start) > int(end):
            return f"the {name} range {base} runs backwards"
    return None


def _cron(value: str) -> str:
    """A five-field cron schedule with numeric fields in range (KEDA's cron scaler reads the same syntax)."""
    fields = value.split()
    if len(fields) != len(CRON_FIELDS):
        raise PydanticCustomError("cron", "a cron schedule has 5 fields (minute hour day month weekday), not {count}",
                                  {"count": len(fields)})
    for text, (name, low, high) in zip(fields, CRON_FIELDS):
        reason = _cron_field(text, name, low, high)
        if reason:
            raise PydanticCustomError("cron", "{reason}", {"reason": reason})
    return value


Cron = Annotated[str, AfterValidator(_cron)]
"""A cron schedule such as `0 8 * * 1-5` (minute hour day-of-month month day-of-week, numbers only)."""


def _relative_file(value: str) -> str:
    """A file inside the version's folder: no absolute path, no `.` or `..` segments."""
    if any(part in (".", "..") for part in value.split("/")):
        raise PydanticCustomError("file_name", "a file name inside the version's folder may not use . or ..")
    return value


FileName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"),
                     AfterValidator(_relative_file)]
"""A file's path relative to the version's folder, e.g. `model-00001-of-00004.safetensors`."""

GpuType = Literal[tuple(GPU_MEMORY_GB)]  # type: ignore[valid-type]
EngineRelease = Literal[tuple(RELEASES)]  # type: ignore[valid-type]
DType = Literal[tuple(BYTES_PER_PARAMETER)]  # type: ignore[valid-type]
Cloud = Literal["aws", "gcp", "onprem"]
CapacityType = Literal["on-demand", "spot"]
Enforcement = Literal["mandatory", "advisory", "disabled"]


class Section(BaseModel):
    """Base of every spec section: camelCase keys as in Pulumi config, unknown keys rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
        strict=True,  # a boolean is not a number, "4" is not 4: the engine hands sections over as typed JSON
    )


class Bounds(Section):
    """A minimum and a maximum count (nodes or replicas)."""

    min: int = Field(ge=0, description="Fewest allowed; 0 allows scale to zero.")
    max: int = Field(ge=1, le=1000, description="Most allowed.")


DEFAULT_CACHE_PATH = "/var/lib/llmplane/model-cache"
"""Where an on-prem node keeps its model cache when `nodeCache.path` is not given."""


class NodeCache(Section):
    """A model cache on the GPU nodes' local disks, filled ahead of time with the weights deployed on the pool."""

    size_gi: int = Field(ge=1, le=100_000, description="Cache size in GiB; holds every version deployed on the pool.")
    medium: Literal["nvme", "local-ssd", "host-path"] = Field(
        description="nvme (AWS instance store, RAID0), local-ssd (GKE local SSDs) or host-path (on-prem disk).")
    path: str | None = Field(
        default=None, pattern=r"^/[A-Za-z0-9_./-]*$",
        description=f"Host folder of the cache (host-path only; default {DEFAULT_CACHE_PATH}).")

    @property
    def host_path(self) -> str:
        """The node folder the cache lives in."""
        return self.path or DEFAULT_CACHE_PATH


class HeadroomSchedule(Section):
    """Extra warm slots during a known daily peak."""

    cron: Cron = Field(description="When the window opens: a five-field cron schedule, e.g. `0 8 * * 1-5`.")
    duration_minutes: int = Field(ge=1, le=1440, description="How long the window stays open, in minutes.")
    slots: int = Field(ge=1, le=1000, description="Warm slots added on top of the pool's base slots.")


class WarmHeadroom(Section):
    """Spare GPU slots held by low-priority placeholder pods, which a real replica preempts at once."""

    slots: int = Field(default=0, ge=0, le=1000,
                       description="Slots kept warm, in replicas of the models on the pool.")
    schedules: list[HeadroomSchedule] = Field(default_factory=list, description="Extra slots in daily peaks.")


class GpuPool(Section):
    """A pool of identical GPU nodes in one cluster."""

    name: Name = Field(description="Pool name, unique in its cluster.")
    gpu_type: GpuType = Field(description="GPU model, e.g. nvidia-l4.")
    gpus_per_node: int = Field(ge=1, le=16, description="GPUs on each node.")
    nodes: Bounds = Field(description="Node count bounds of the pool.")
    capacity_type: CapacityType = Field(default="on-demand", description="on-demand, or spot above the on-demand base.")
    on_demand_base: int = Field(default=0, ge=0, description="Nodes kept on-demand under a spot pool.")
    gpu_hour_usd: float | None = Field(default=None, gt=0, description="Price of one GPU-hour; list price if omitted.")
    node_cache: NodeCache | None = Field(default=None, description="Model cache on the nodes' local disks.")
    image_prepull: bool = Field(default=True, description="Have the serving image on a node before a replica needs it.")
    warm_headroom: WarmHeadroom | None = Field(default=None, description="Spare slots kept warm by placeholder pods.")


class Cluster(Section):
    """One Kubernetes cluster: a cloud region's EKS/GKE cluster or an on-prem cluster."""

    name: Name = Field(description="Cluster name, unique in the environment.")
    cloud: Cloud = Field(description="aws, gcp or onprem.")
    region: str = Field(min_length=1, description="Cloud region (on-prem: a site name).")
    zones: list[str] = Field(
        default_factory=list,
        description="Zones of the region to spread over (AWS: at least two, e.g. us-east-1a; GCP: e.g. "
                    "us-central1-a); given here so plans stay offline.")
    kubernetes_version: str = Field(default="1.33", pattern=r"^1\.\d{2}$", description="Kubernetes minor version.")
    network_cidr: Cidr | None = Field(default=None, description="VPC/subnet CIDR (cloud clusters).")
    pools: list[GpuPool] = Field(min_length=1, description="GPU node pools.")
    kubeconfig_secret: str | None = Field(
        default=None, description="Key in `llmplane:secrets` holding this cluster's kubeconfig (on-prem)."
    )
    kubeconfig_file: str | None = Field(
        default=None, min_length=1,
        description="A kubeconfig file on the machine running Pulumi, relative to the project (the local stack's "
                    "embedded cluster: .state/cluster/kubeconfig, made by `llmplane cluster up`).",
    )
    render_dir: str | None = Field(
        default=None, description="Render manifests to this folder instead of deploying (GitOps: `make render`)."
    )
    addons: Literal["helm", "external"] = Field(
        default="helm",
        description="helm: the stack installs KEDA and the monitoring operator by their pinned charts (which bring "
                    "their CRDs); external: they run outside the stack (the embedded cluster runs KEDA beside its "
                    "control plane) and the stack installs only their CRDs, from the projects' pinned modules.",
    )


class GenerationDefaults(Section):
    """Sampling defaults a version applies when a request leaves them out (vLLM's `--override-generation-config`):
    the knobs parameter experiments compare."""

    temperature: float | None = Field(default=None, ge=0, le=2, description="Sampling temperature.")
    top_p: float | None = Field(default=None, gt=0, le=1, description="Nucleus sampling: the probability mass kept.")
    top_k: int | None = Field(default=None, ge=-1, le=1000, description="Most likely tokens kept; -1 keeps all.")
    max_tokens: int | None = Field(
        default=None, ge=1, le=1 << 20, description="Output tokens when a request sets none (`max_new_tokens`).")

    def overrides(self) -> dict[str, float | int]:
        """The keys vLLM's generation config takes, for the fields that are set."""
        named = {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                 "max_new_tokens": self.max_tokens}
        return {key: value for key, value in named.items() if value is not None}


class Artifact(Section):
    """One immutable model version in the catalog (the model registry): its weights and the engine that runs it."""

    uri: str | None = Field(
        default=None, pattern=r"^(s3|gs|https)://\S+$",
        description="Immutable weights location: s3://, gs:// or https:// (taken from `weightsOf` when that is set).")
    sha256: Sha256 | None = Field(default=None, description="Digest of the weights archive, checked before serving.")
    mirrors: dict[Cloud, Annotated[str, StringConstraints(pattern=r"^(s3|gs|https)://\S+$")]] = Field(
        default_factory=dict, description="The same archive in another cloud's storage, read there instead."
    )
    files: dict[FileName, Sha256] = Field(
        default_factory=dict,
        description="sha256 of every file of the version (safetensors, config, tokenizer), which sit in the folder "
                    "that holds the archive; required when the model streams its weights.")
    weights_of: SemVer | None = Field(
        default=None,
        description="Another catalog version whose weights this one serves unchanged (its uri, sha256, mirrors and "
                    "files): a version that differs only in its engine release or generation defaults.")
    engine_release: EngineRelease | None = Field(
        default=None, description="The vLLM release this version runs; the model's `engine.release` when omitted.")
    generation_defaults: GenerationDefaults | None = Field(
        default=None, description="Sampling defaults of this version; the model's `engine.generationDefaults` "
                                  "when omitted.")

    def uri_for(self, cloud: str) -> str:
        """Where a cluster in `cloud` fetches the archive: its mirror, else the primary URI."""
        return self.mirrors.get(cloud, self.uri)

    def folder_for(self, cloud: str) -> str:
        """The folder holding the version's files in the storage `cloud` reads: the archive's folder."""
        return self.uri_for(cloud).rsplit("/", 1)[0] + "/"


class Weights(Section):
    """How a replica gets its weights."""

    load_format: Literal["download", "runai_streamer"] = Field(
        default="download",
        description="download: the archive into the pod, verified, then loaded; runai_streamer: vLLM's "
                    "`--load-format runai_streamer` reads the safetensors files concurrently.")
    node_cache: bool = Field(default=True, description="Load from the pool's node cache when it has one.")


class Architecture(Section):
    """The figures of the model's `config.json` that size a sequence: how long one may be, and how much KV cache
    each of its tokens takes. Required: without them no rule can tell that vLLM would refuse the engine settings."""

    context_length: int = Field(
        ge=256, le=1 << 24,
        description="Longest sequence the model was trained for, in tokens: `max_position_embeddings` of its "
                    "config.json (Llama 3: 8192; Llama 3.1: 131072); `engine.maxModelLen` may not exceed it.")
    layers: int = Field(ge=1, le=1000, description="Transformer layers: `num_hidden_layers` (Llama 3 8B: 32).")
    kv_heads: int = Field(
        ge=1, le=1024, description="Key/value heads per layer: `num_key_value_heads` (Llama 3 8B and 70B: 8).")
    head_dim: int = Field(
        ge=1, le=1024,
        description="Dimensions per head: `head_dim`, or `hidden_size / num_attention_heads` (Llama 3: 128).")


class KvOffload(Section):
    """KV-cache blocks evicted from GPU memory kept in the replica's host memory, so a returning prefix is read
    back instead of recomputed (vLLM's `--kv-offloading-size`, `--kv-offloading-backend`)."""

    backend: Literal["native", "lmcache"] = Field(
        default="native", description="native (vLLM's own CPU offload) or lmcache (LMCache's connector).")
    cpu_gib: float = Field(gt=0, le=4096, description="Host memory for the KV cache per replica, in GiB (summed "
                                                      "over its tensor parallel ranks, as vLLM counts it).")


class LoraAdapter(Section):
    """A LoRA adapter of the model, published like a version: immutable location and digest."""

    uri: str = Field(pattern=r"^(s3|gs|https)://\S+$", description="The adapter's archive (safetensors and "
                                                                    "adapter_config.json).")
    sha256: Sha256 = Field(description="Digest of the archive, checked before the adapter is served.")
    rank: int = Field(ge=1, le=512, description="The adapter's rank (`r` of its adapter_config.json).")
    size_mib: float = Field(gt=0, le=100_000, description="Size of the adapter's weights, in MiB.")


class Lora(Section):
    """Adapters served by name beside the base model (vLLM's `--enable-lora`): a request names an adapter as its
    `model`, through the gateway like any model name."""

    adapters: dict[Name, LoraAdapter] = Field(min_length=1, description="Adapters by the name clients request.")
    max_loras: int = Field(default=1, ge=1, le=64, description="Adapters in one batch (`--max-loras`); each slot "
                                                               "takes GPU memory for an adapter of maxLoraRank.")
    max_lora_rank: int = Field(default=16, ge=1, le=512,
                               description="Largest adapter rank served (`--max-lora-rank`).")
    max_cpu_loras: int | None = Field(default=None, ge=1, le=1024,
                                      description="Adapters kept in host memory (`--max-cpu-loras`).")

    def slot_bytes(self) -> float:
        """GPU memory one adapter slot takes: vLLM sizes every slot for maxLoraRank, and an adapter's weights grow
        with its rank, so the largest adapter scaled to that rank."""
        return max(a.size_mib * 2**20 * self.max_lora_rank / a.rank for a in self.adapters.values())


class Speculative(Section):
    """Speculative decoding (vLLM's `--speculative-config`): a cheap proposer drafts tokens, the model checks
    them in one step."""

    method: Literal["ngram", "eagle", "eagle3", "draft_model"] = Field(
        description="ngram (prompt lookup, no extra weights), eagle/eagle3 (a trained head), draft_model (a "
                    "smaller model of the same tokenizer).")
    num_speculative_tokens: int = Field(ge=1, le=16, description="Tokens drafted per step.")
    draft: LoraAdapter | None = Field(
        default=None, description="The proposer's weights (eagle, eagle3, draft_model): location, digest and "
                                  "size (rank is ignored).")
    acceptance_rate: float = Field(
        default=0.6, gt=0, lt=1,
        description="Expected share of drafted tokens accepted, for the planner: measure it on your traffic "
                    "(vLLM's vllm:spec_decode_num_accepted_tokens over vllm:spec_decode_num_draft_tokens).")
    prompt_lookup_max: int = Field(default=4, ge=1, le=32, description="Longest n-gram matched (ngram only).")


class Engine(Section):
    """vLLM engine settings of a model."""

    tensor_parallel_size: int = Field(default=1, ge=1, le=16, description="GPUs one replica shards the model over.")
    gpu_memory_utilization: float = Field(default=0.9, gt=0.3, le=0.98, description="Share of GPU memory vLLM may use.")
    max_model_len: int = Field(default=8192, ge=256, le=1 << 20,
                               description="Longest prompt plus output, in tokens (no model reaches 2^20).")
    max_num_seqs: int = Field(default=128, ge=1, le=4096, description="Sequences batched at once per replica.")
    max_num_batched_tokens: int | None = Field(
        default=None, ge=16, le=1 << 20,
        description="Tokens one engine step carries, prompt chunks and decodes together: larger favours time to "
        "first token, smaller the gap between output tokens; unset, vLLM's default for the GPU.",
    )
    quantization: Literal["awq", "gptq", "fp8", "bitsandbytes"] | None = Field(
        default=None, description="Quantization method, or none."
    )
    enable_prefix_caching: bool = Field(default=True, description="Reuse KV cache across shared prompt prefixes.")
    release: EngineRelease = Field(
        default=DEFAULT_RELEASE,
        description="The vLLM release the model's versions run unless a catalog version names its own "
                    f"(`engineRelease`); one of {', '.join(RELEASES)} (facts/engines.py).")
    kv_cache_dtype: Literal["auto", "fp8"] = Field(
        default="auto",
        description="KV-cache element type: auto (the model's dtype) or fp8, half the bytes per token, so about "
                    "twice the tokens in the same memory; fp8 needs a GPU with FP8 (compute capability 8.9+).")
    calculate_kv_scales: bool = Field(
        default=False, description="Compute fp8 KV scales from the first batches (`--calculate-kv-scales`) instead "
                                   "of 1.0 or the checkpoint's; only some releases have the flag.")
    kv_offload: KvOffload | None = Field(default=None, description="Keep KV cache beyond GPU memory in host memory.")
    lora: Lora | None = Field(default=None, description="Serve LoRA adapters beside the base weights.")
    speculative: Speculative | None = Field(default=None, description="Speculative decoding.")
    generation_defaults: GenerationDefaults | None = Field(
        default=None, description="Sampling defaults of every version (a catalog version may set its own).")


class Slo(Section):
    """What users are promised for a model."""

    ttft_seconds: float = Field(
        default=2.5, gt=0, description="Time to first token that counts as fast; a bucket bound of vLLM's histogram."
    )
    ttft_objective: float = Field(default=0.99, gt=0.5, lt=1, description="Share of requests that must be fast.")
    availability: float = Field(default=0.995, gt=0.5, lt=1, description="Share of requests that must succeed.")


class Performance(Section):
    """What one replica of the model sustains on its pool's GPUs; the capacity planner replays traces with it."""

    prefill_tokens_per_second: float = Field(
        default=8000, gt=0, le=1_000_000,
        description="Prompt tokens processed per second (a replica of 8 H200s prefills well under a million).")
    decode_tokens_per_second: float = Field(
        default=1200, gt=0, le=200_000, description="Output tokens per second, summed over a full batch."
    )
    max_concurrent_sequences: int = Field(default=64, ge=1, le=4096, description="Sequences decoded at once.")


class ColdStart(Section):
    """How long a new replica takes before it serves, beyond loading the weights (`loadSeconds`)."""

    node_seconds: int = Field(default=NODE_JOIN_SECONDS, ge=0, le=3600,
                              description="A new GPU node joining the cluster.")
    image_pull_seconds: int = Field(default=90, ge=0, le=3600, description="Pulling the serving image.")


class Fallback(Section):
    """Where a model's requests would go when its pools in a cluster cannot answer. Parsed so that an environment
    that still has it gets a clear refusal (`spec.tenancy.fallbacks`): the pinned gateway cannot fail over."""

    other_clusters: bool = Field(default=True, description="Fail over to the model's other clusters first.")
    model: Name | None = Field(default=None, description="Model to answer with after the other clusters.")
    version: SemVer | None = Field(
        default=None, description="Deployed version of that model to pin; its traffic split when omitted.")


Role = Literal["stable", "canary", "ab", "shadow"]

ExperimentMetric = Literal["ttft", "time_per_output_token", "e2e_latency", "error_rate", "cost_per_million_tokens",
                           "feedback_score", "task_success", "refusal_rate"]
"""What an experiment compares per arm: performance and cost from vLLM and the gateway, quality and business from
the feedback endpoint, safety from refusals (`experiments/metrics.py` says how each is read)."""


class Verdict(Section):
    """The last verdict of an experiment's report, recorded in the environment file by the pull request that acts
    on it (the scheduled workflow writes it with the weight change): what the policy pack reads to allow a weight
    increase."""

    decision: Literal["promote", "hold", "rollback"] = Field(description="What the report decided.")
    weight: int = Field(ge=0, le=100, description="The treatment weight that decision allows, in percent.")
    report_sha256: Sha256 = Field(description="sha256 of the report's Markdown, as posted on the pull request.")
    decided_at: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?Z$",
                            description="When the report was computed, UTC, e.g. 2026-12-08T06:00Z.")


class Experiment(Section):
    """A controlled comparison of a model's deployed versions: which is better, decided before it takes the
    traffic, one reviewed step at a time."""

    name: Name = Field(description="Experiment name, unique per environment: it labels reports and pull requests.")
    control: SemVer = Field(description="The deployed version the others are compared with (usually stable).")
    treatments: list[SemVer] = Field(min_length=1, description="The deployed versions under test.")
    strategy: Literal["canary", "ab", "shadow", "bandit"] = Field(
        default="canary",
        description="canary (weight steps), ab (a share per arm, sticky per user), shadow (mirrored, compared "
                    "without exposing users) or bandit (Thompson-sampling weights, for arms that differ only in "
                    "generation defaults or engine settings).")
    primary: ExperimentMetric = Field(description="The metric the verdict is decided on.")
    guardrails: list[ExperimentMetric] = Field(
        default_factory=list, description="Metrics that must not get worse; a breach rolls the treatment back.")
    minimum_detectable_effect: float = Field(
        gt=0, lt=1, description="Smallest relative change of the primary metric worth detecting, e.g. 0.05 for 5 %.")
    max_days: int = Field(ge=1, le=90, description="Longest the experiment may run before a verdict is forced.")
    steps: list[int] = Field(
        default_factory=lambda: [10, 25, 50, 100],
        description="Treatment weights, in percent, each a reviewed pull request after a promote verdict.")
    alpha: float = Field(default=0.05, gt=0, lt=0.5, description="False-positive rate of the sequential test.")
    verdict: Verdict | None = Field(
        default=None, description="The last report's verdict, written by the pull request that acts on it.")

    def allowed_weight(self) -> int:
        """The most a treatment may take: what a promote verdict approved, else the first step (where every
        canary starts)."""
        if self.verdict is not None and self.verdict.decision == "promote":
            return self.verdict.weight
        if self.verdict is not None and self.verdict.decision == "rollback":
            return 0
        return self.steps[0] if self.steps else 0


class DeployedVersion(Section):
    """A catalog version that serves traffic (or mirrored traffic, for a shadow)."""

    version: SemVer = Field(description="A version listed in the model's catalog.")
    weight: int = Field(ge=0, le=100, description="Percent of the model's traffic; 0 for a shadow.")
    role: Role = Field(default="stable", description="stable, canary, ab (pinned by header) or shadow (mirrored).")
    replicas: Bounds | None = Field(default=None, description="Replica bounds; the model's when omitted.")


class Model(Section):
    """A model: its catalog entry (registry) and how it is deployed."""

    parameters_billions: float = Field(gt=0, le=2000, description="Parameter count, in billions.")
    dtype: DType = Field(description="Weight dtype as loaded.")
    license: str = Field(min_length=1, description="Licence of the weights, e.g. llama3.1.")
    catalog: dict[SemVer, Artifact] = Field(min_length=1, description="Every published version: the registry.")
    versions: list[DeployedVersion] = Field(min_length=1, description="Versions deployed, with traffic weights.")
    engine: Engine = Field(default_factory=Engine, description="vLLM engine settings.")
    architecture: Architecture = Field(
        description="Context window and KV-cache shape, from the model's config.json.")
    replicas: Bounds = Field(description="Replica bounds per version and cluster.")
    pool: Name = Field(description="GPU pool the model runs on, in every cluster it is deployed to.")
    clusters: list[Name] | None = Field(default=None, description="Clusters to deploy to; all when omitted.")
    slo: Slo = Field(default_factory=Slo, description="Service level objectives.")
    load_seconds: int = Field(default=600, ge=30, le=7200, description="Worst-case weight download and load time.")
    performance: Performance = Field(default_factory=Performance, description="Per-replica throughput profile.")
    cold_start: ColdStart = Field(default_factory=ColdStart, description="Node and image delays of a new replica.")
    weights: Weights = Field(default_factory=Weights, description="How replicas load the weights.")
    engine_start_seconds: int = Field(
        default=ENGINE_START_SECONDS, ge=0, le=3600,
        description="vLLM's start after the weights are in GPU memory (torch.compile, CUDA graphs).")
    compile_cache: bool = Field(
        default=False, description="Keep vLLM's compile cache on the node cache, so a restart does not recompile.")
    experiments: list[Experiment] = Field(default_factory=list, description="Experiments between its versions.")
    fallback: Fallback | None = Field(default=None, description="Refused: the pinned gateway cannot fail a model over "
                                      "(docs/gateway.md); whole clusters fail over by DNS.")

    def weight_bytes(self) -> float:
        """Bytes the weights take in GPU memory, all shards together."""
        return self.parameters_billions * 1e9 * BYTES_PER_PARAMETER[self.dtype]

    def kv_bytes_per_token(self) -> float:
        """KV-cache bytes one token takes on each GPU of a replica: a key and a value per layer, KV head and head
        dimension (vLLM's FullAttentionSpec page size per token). Tensor parallelism splits the KV heads over the
        GPUs, and replicates them where there are fewer heads than GPUs (vLLM's `get_num_kv_heads`:
        max(1, heads // tp))."""
        heads = max(1, self.architecture.kv_heads // self.engine.tensor_parallel_size)
        value = FP8_KV_BYTES_PER_VALUE if self.engine.kv_cache_dtype == "fp8" else KV_CACHE_BYTES_PER_VALUE[self.dtype]
        return 2 * self.architecture.layers * heads * self.architecture.head_dim * value

    def kv_room_bytes(self, gpu_type: str) -> float:
        """Bytes each GPU of a replica has left for the KV cache on `gpu_type`: its share vLLM may use
        (gpuMemoryUtilization) less its shard of the weights. An upper bound: vLLM also keeps the activations'
        peak and CUDA graphs out of it."""
        engine = self.engine
        return GPU_MEMORY_GB[gpu_type] * 1e9 * engine.gpu_memory_utilization - \
            (self.weight_bytes() + self.extra_gpu_bytes()) / engine.tensor_parallel_size

    def extra_gpu_bytes(self) -> float:
        """GPU memory the engine features take beside the weights, all shards together: a slot per LoRA adapter
        in a batch (vLLM preallocates `maxLoras` slots of `maxLoraRank`) and the speculative draft's weights."""
        engine = self.engine
        lora = engine.lora.max_loras * engine.lora.slot_bytes() if engine.lora else 0.0
        draft = engine.speculative.draft if engine.speculative else None
        return lora + (draft.size_mib * 2**20 if draft else 0.0)

    def artifact(self, version: str) -> Artifact:
        """The catalog entry of `version` with its weights filled in from `weightsOf` (one level: the `catalog_registry`
        rule refuses chains and unknown targets)."""
        entry = self.catalog[version]
        if entry.weights_of is None or entry.weights_of not in self.catalog:
            return entry
        source = self.catalog[entry.weights_of]
        return entry.model_copy(update={"uri": source.uri, "sha256": source.sha256, "mirrors": source.mirrors,
                                        "files": source.files})

    def weights_version(self, version: str) -> str:
        """The catalog version that holds `version`'s weights: the node caches keep one copy under that name."""
        return self.catalog[version].weights_of or version

    def release_of(self, version: str) -> str:
        """The vLLM release a catalog version runs."""
        return self.catalog[version].engine_release or self.engine.release

    def generation_defaults_of(self, version: str) -> GenerationDefaults | None:
        """The sampling defaults a catalog version applies."""
        return self.catalog[version].generation_defaults or self.engine.generation_defaults

    def replicas_of(self, version: DeployedVersion) -> Bounds:
        """The replica bounds that apply to a deployed version."""
        return version.replicas or self.replicas

    def pool_in(self, cluster: Cluster) -> GpuPool | None:
        """The model's pool in `cluster` (None where the cluster lacks it: the `placement` rule refuses that)."""
        return next((p for p in cluster.pools if p.name == self.pool), None)

    def uses_node_cache(self, pool: GpuPool) -> bool:
        """Whether replicas on `pool` load through its node cache: the pool keeps one and the model asks for it."""
        return pool.node_cache is not None and self.weights.node_cache

    def streams_weights(self) -> bool:
        """Whether replicas stream the weights file by file (Run:ai streamer) rather than download an archive."""
        return self.weights.load_format == "runai_streamer"

    def startup_on(self, cloud: str, pool: GpuPool) -> Startup:
        """A replica's start-up on `pool` in a `cloud` cluster, derived from the configuration: what the planner
        replays and what the deployed probes and held-request timeouts are sized to."""
        cached = self.uses_node_cache(pool)
        shape = machine_shape(cloud, pool.gpu_type, pool.gpus_per_node)
        return derive(StartupConfig(
            weight_bytes=self.weight_bytes(), load_format=self.weights.load_format, load_seconds=self.load_seconds,
            node_seconds=self.cold_start.node_seconds, image_pull_seconds=self.cold_start.image_pull_seconds,
            image_prepull=pool.image_prepull, cache_medium=pool.node_cache.medium if cached else None,
            machine_type=shape.machine_type if shape else None, engine_start_seconds=self.engine_start_seconds,
            compile_cache=self.compile_cache and cached))


ImageRef = Annotated[str, StringConstraints(pattern=r"^[a-z0-9./_:-]+@sha256:[0-9a-f]{64}$")]
"""An image as registry/name[:tag]@sha256:digest."""


class Images(Section):
    """Container images, referenced by digest only."""

    vllm: dict[EngineRelease, ImageRef] = Field(
        default_factory=dict,
        description="Per engine release, the image to run where the stack builds none (clusters without a registry "
                    "of ours, e.g. an on-prem mirror); the release's official image by digest (facts/engines.py) "
                    "when omitted.")

    def vllm_for(self, release: str) -> str | None:
        """The image a cluster without a registry of ours runs for `release`, or None if the release has no
        pinned image (the `engine_releases` rule refuses deploying it)."""
        return self.vllm.get(release) or RELEASES[release].image


class Observability(Section):
    """Metrics, logs and dashboards per cluster."""

    enabled: bool = Field(default=True, description="Install the monitoring stack.")
    metrics_retention_days: int = Field(default=15, ge=1, le=400, description="Prometheus retention.")
    log_retention_days: int = Field(default=30, ge=1, le=3650, description="Loki retention.")
    remote_write_url: str | None = Field(default=None, description="Global metrics store to remote-write to.")
    prometheus_url: str | None = Field(
        default=None, pattern=r"^https?://[^\s/]+(:\d+)?/?$",
        description="Prometheus the autoscalers query; default: the cluster's own kube-prometheus-stack. The local "
                    "environment names the one `llmplane cluster up` runs beside the embedded cluster.",
    )


class Routing(Section):
    """How users reach the models."""

    hostname: str = Field(
        pattern=r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$", description="Public hostname of the inference API."
    )
    hosted_zone: str | None = Field(default=None, description="Route 53 hosted zone for global routing.")
    failover_order: list[Name] = Field(default_factory=list, description="Clusters to fail over to, in order.")


SecretKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")]
"""A key of `llmplane:secrets`, e.g. `acmeApiKey`."""


class Tenant(Section):
    """A team or customer that calls models through the gateway with its own API keys and token budget."""

    name: Name = Field(description="Tenant name; it appears in access logs, metrics and rate-limit counters.")
    api_key_secrets: list[SecretKey] = Field(
        min_length=1, description="Keys in `llmplane:secrets` holding the tenant's API keys (Pulumi secrets).")
    models: list[Name] = Field(min_length=1, description="Models the tenant may call.")
    tokens_per_minute: int | None = Field(default=None, ge=1, le=10**12,
                                          description="Prompt plus output tokens allowed per minute.")
    tokens_per_day: int | None = Field(default=None, ge=1, le=10**15,
                                       description="Prompt plus output tokens allowed per day.")
    priority: int = Field(
        default=0, ge=-1000, le=1000,
        description="Scheduling priority when pools are saturated: higher is served first, negative allowed, 0 by "
                    "default (the InferenceObjective `priority` of the inference extension's endpoint picker).")


TlsIssuer = Literal["acme-dns01", "private-ca"]


class Gateway(Section):
    """The inference gateway on every cluster: implementation, certificates, audit and tracing."""

    implementation: Literal["envoy-gateway"] = Field(
        default="envoy-gateway", description="Gateway API implementation installed on every cluster.")
    tls_issuer: dict[Cloud, TlsIssuer] = Field(
        default_factory=lambda: {"aws": "acme-dns01", "gcp": "acme-dns01", "onprem": "private-ca"},
        description="cert-manager issuer per cloud: ACME DNS-01 through the cloud's DNS, or a private CA.")
    acme_email: str | None = Field(
        default=None, pattern=r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$",
        description="Contact address registered with the ACME CA (needed when an issuer is acme-dns01).")
    dns_zone: str | None = Field(
        default=None, pattern=r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$",
        description="DNS zone external-dns and ACME DNS-01 write to; routing.hostedZone when omitted.")
    gcp_managed_zone: str | None = Field(
        default=None, pattern=r"^[a-z]([a-z0-9-]*[a-z0-9])?$",
        description="Cloud DNS managed zone (its resource name) serving that zone, for the GCP clusters.")
    access_log_retention_days: int = Field(default=90, ge=1, le=3650,
                                           description="Days the gateway's access logs are kept (audit).")
    tracing: bool = Field(default=True, description="Send OpenTelemetry traces from the gateway and vLLM.")
    tracing_sample_percent: float = Field(default=1.0, gt=0, le=100,
                                          description="Share of requests traced, in percent.")


class HybridLink(Section):
    """An encrypted link from cloud clusters to an on-prem site."""

    name: Name = Field(description="Link name.")
    onprem_cluster: Name = Field(description="The on-prem cluster at the far end.")
    cloud_clusters: list[Name] = Field(min_length=1, description="Cloud clusters linked to the site.")
    public_ip: Ipv4 = Field(description="On-prem VPN endpoint address.")
    bgp_asn: int = Field(description="On-prem BGP ASN (private range).")
    onprem_cidrs: list[Cidr] = Field(min_length=1, description="On-prem networks announced over BGP.")
    tunnel_inside_cidrs: list[str] = Field(
        default_factory=list,
        description="Tunnel inside /30s in 169.254.0.0/16, two per cloud cluster; allocated when omitted.",
    )
    preshared_key_secrets: bool = Field(
        default=False,
        description="Take pre-shared keys from `llmplane:secrets.<link>-psk-<n>` instead of generating them.",
    )


class Autoscaling(Section):
    """How replicas follow load (KEDA on vLLM signals)."""

    keda: bool = Field(default=True, description="Use KEDA; an HPA on custom metrics otherwise.")
    queue_per_replica: float = Field(default=4, gt=0, description="Waiting requests per replica that add a replica.")
    kv_cache_target: float = Field(default=0.8, gt=0, le=1, description="KV-cache usage that adds a replica.")
    scale_up_seconds: int = Field(default=30, ge=0, le=3600, description="Stabilisation window before adding replicas.")
    scale_down_seconds: int = Field(default=600, ge=0, le=7200, description="Stabilisation window before removing.")
    scale_to_zero: bool = Field(default=False, description="Allow zero replicas when idle (models with min 0).")
    activation_queue: float = Field(default=1, ge=0, description="Waiting requests that wake a model from zero.")
    polling_seconds: int = Field(default=15, ge=1, le=300, description="How often the autoscaler reads metrics.")
    cooldown_seconds: int = Field(default=900, ge=0, le=86400, description="Idle time before scaling to zero.")


class Policy(Section):
    """How the policy pack judges this environment."""

    enforcement: Literal["mandatory", "advisory"] = Field(description="Default level of every policy.")
    overrides: dict[str, Enforcement] = Field(default_factory=dict, description="Per-policy levels.")


class PlatformSpec(Section):
    """One environment: everything `compose` needs, validated."""

    model_config = ConfigDict(coerce_numbers_to_str=True, strict=False)
    """Top-level scalars reach the program as strings (`costCenter: 4711` arrives as "4711" and is read back as a
    number), so a number given for a text setting is taken as its text."""

    environment: Name = Field(description="Stack name: local, dev, staging or prod.")
    owner: str = Field(min_length=1, description="Team that owns the environment (tag).")
    cost_center: str = Field(min_length=1, description="Cost center billed (tag).")
    protect: bool = Field(default=False, description="Protect stateful resources from deletion.")
    clusters: list[Cluster] = Field(min_length=1, description="Clusters in the environment.")
    models: dict[Name, Model] = Field(min_length=1, description="Models by name.")
    images: Images = Field(default_factory=Images, description="Container images by digest.")
    observability: Observability = Field(default_factory=Observability, description="Monitoring stack.")
    routing: Routing = Field(description="Hostnames and failover.")
    hybrid: list[HybridLink] = Field(default_factory=list, description="On-prem links.")
    autoscaling: Autoscaling = Field(default_factory=Autoscaling, description="Replica autoscaling.")
    policy: Policy = Field(description="Policy enforcement.")
    tenants: list[Tenant] = Field(default_factory=list, description="Who may call which models, with what budget.")
    gateway: Gateway = Field(default_factory=Gateway, description="The inference gateway on every cluster.")

    def cluster(self, name: str) -> Cluster:
        """The cluster of that name."""
        return next(c for c in self.clusters if c.name == name)

    def clusters_of(self, model: Model) -> list[Cluster]:
        """The clusters a model is deployed to."""
        if model.clusters is None:
            return list(self.clusters)
        return [c for c in self.clusters if c.name in model.clusters]

    def autoscaling_policy(self, name: str, version: DeployedVersion | str) -> AutoscalingPolicy:
        """The one reading of a deployed version's autoscaling thresholds (a DeployedVersion or its version
        string): the ScaledObject compose() deploys and the trace the capacity planner replays both take it."""
        model = self.models[name]
        if isinstance(version, str):
            matches = [v for v in model.versions if v.version == version]
            if not matches:
                deployed = ", ".join(v.version for v in model.versions)
                raise ValueError(f"model '{name}' does not deploy version '{version}' (deployed: {deployed})")
            version = matches[0]
        bounds = model.replicas_of(version)
        autoscaling = self.autoscaling
        return AutoscalingPolicy(
            served_model_name=f"{name}:{version.version}",
            min_replicas=bounds.min,
            max_replicas=bounds.max,
            keda=autoscaling.keda,
            queue_per_replica=autoscaling.queue_per_replica,
            kv_cache_target=autoscaling.kv_cache_target,
            scale_up_seconds=autoscaling.scale_up_seconds,
            scale_down_seconds=autoscaling.scale_down_seconds,
            polling_seconds=autoscaling.polling_seconds,
            scale_to_zero=autoscaling.scale_to_zero and bounds.min == 0,
            activation_queue=autoscaling.activation_queue,
            cooldown_seconds=autoscaling.cooldown_seconds,
        )
