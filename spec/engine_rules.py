"""Rules that hold a model's engine settings against the vLLM release each version runs and against the hardware.

What a release accepts comes from its own source (facts/engines.py, recorded by toolchain/vllm_source.py and
re-read by the tests), so a flag a release dropped fails here with its name and the release, before any pod
starts and exits on `vllm serve: error: unrecognized arguments`.
"""

from __future__ import annotations

from collections.abc import Iterable

from llmplane.facts.clouds import machine_shape
from llmplane.facts.engines import RELEASES, surface
from llmplane.facts.gpus import COMPUTE_CAPABILITY, FP8_KV_MIN_CAPABILITY
from llmplane.facts.hosts import HOST_MEMORY_GIB, OFFLOAD_HOST_SHARE
from llmplane.monitoring.vllm_metrics import VLLM

from .errors import Problem
from .models import Model, PlatformSpec


def engine_flags(model: Model, version: str) -> dict[str, str]:
    """The `vllm serve` options a version is started with, each with the spec field that asks for it. The serving
    component builds the command line from the same settings; tests/test_engine_releases.py checks that every
    option it passes for any spec is listed here, so this list cannot fall behind it."""
    engine = model.engine
    base = "engine"
    flags = {flag: f"{base}.{field}" for flag, field in (
        ("served-model-name", "(always)"), ("port", "(always)"), ("tensor-parallel-size", "tensorParallelSize"),
        ("gpu-memory-utilization", "gpuMemoryUtilization"), ("max-model-len", "maxModelLen"),
        ("max-num-seqs", "maxNumSeqs"))}
    flags["enable-prefix-caching" if engine.enable_prefix_caching else "no-enable-prefix-caching"] = \
        f"{base}.enablePrefixCaching"
    optional = (
        ("max-num-batched-tokens", engine.max_num_batched_tokens is not None, "maxNumBatchedTokens"),
        ("quantization", engine.quantization is not None, "quantization"),
        ("kv-cache-dtype", engine.kv_cache_dtype != "auto", "kvCacheDtype"),
        ("calculate-kv-scales", engine.calculate_kv_scales, "calculateKvScales"),
        ("kv-offloading-size", engine.kv_offload is not None, "kvOffload"),
        ("kv-offloading-backend", engine.kv_offload is not None, "kvOffload.backend"),
        ("enable-lora", engine.lora is not None, "lora"),
        ("max-loras", engine.lora is not None, "lora.maxLoras"),
        ("max-lora-rank", engine.lora is not None, "lora.maxLoraRank"),
        ("max-cpu-loras", engine.lora is not None and engine.lora.max_cpu_loras is not None, "lora.maxCpuLoras"),
        ("lora-modules", engine.lora is not None, "lora.adapters"),
        ("speculative-config", engine.speculative is not None, "speculative"),
        ("override-generation-config", model.generation_defaults_of(version) is not None, "generationDefaults"),
        ("load-format", model.streams_weights(), "weights.loadFormat"),
        ("model-loader-extra-config", model.streams_weights(), "weights.loadFormat"),
    )
    flags |= {flag: f"{base}.{field}" if not field.startswith("weights") else field
              for flag, wanted, field in optional if wanted}
    return flags


def _deployed(spec: PlatformSpec) -> Iterable[tuple[str, Model, str, str]]:
    """(model name, model, version, release) of every deployed version that is in its catalog."""
    for name, model in spec.models.items():
        for v in model.versions:
            if v.version in model.catalog:
                yield name, model, v.version, model.release_of(v.version)


def _release_path(name: str, model: Model, version: str) -> str:
    if model.catalog[version].engine_release:
        return f"models.{name}.catalog.{version}.engineRelease"
    return f"models.{name}.engine.release"


def engine_releases(spec: PlatformSpec) -> Iterable[Problem]:
    """Every deployed version runs a release with an image pinned by digest: in the catalog of releases, or given
    for it in `images.vllm`."""
    for name, model, version, release in _deployed(spec):
        if spec.images.vllm_for(release) is None:
            pinned = [r for r, entry in RELEASES.items() if entry.image]
            yield Problem(_release_path(name, model, version), f"vLLM {release} has no image pinned by digest, so "
                          f"version {version} cannot be deployed on it", release,
                          f"set images.vllm.\"{release}\" to vllm/vllm-openai:v{release}@sha256:<digest you read>, "
                          f"or run a release with a pinned image ({', '.join(pinned)})")


def release_flags(spec: PlatformSpec) -> Iterable[Problem]:
    """Every option a version is started with exists in its release, and every value it takes there is one the
    release knows (KV-cache dtype, speculative method, offload backend, load format)."""
    for name, model, version, release in _deployed(spec):
        known = surface(release)
        for flag, field in sorted(engine_flags(model, version).items()):
            if known.accepts(flag):
                continue
            having = [r for r in RELEASES if surface(r).accepts(flag)]
            yield Problem(f"models.{name}.{field}", f"vLLM {release} (version {version}) has no --{flag}",
                          f"--{flag}", f"turn {field} off for this release, or run a release that has it "
                          f"({', '.join(having) or 'none supported'})")
        engine = model.engine
        values = (
            ("kvCacheDtype", engine.kv_cache_dtype if engine.kv_cache_dtype != "auto" else None,
             known.kv_cache_dtypes),
            ("speculative.method", engine.speculative.method if engine.speculative else None,
             known.speculative_methods),
            ("kvOffload.backend", engine.kv_offload.backend if engine.kv_offload else None,
             known.kv_offloading_backends),
        )
        for field, value, allowed in values:
            if value is not None and value not in allowed:
                yield Problem(f"models.{name}.engine.{field}", f"vLLM {release} (version {version}) does not know "
                              f"{value!r}", value, f"use one of {', '.join(sorted(allowed))}, or another release")
        if model.streams_weights() and "runai_streamer" not in known.load_formats:
            yield Problem(f"models.{name}.weights.loadFormat", f"vLLM {release} has no runai_streamer load format",
                          "runai_streamer", "use loadFormat: download, or another release")


def engine_features(spec: PlatformSpec) -> Iterable[Problem]:
    """Engine features the hardware and the settings can carry: fp8 KV cache on GPUs with FP8 (vLLM's Triton
    attention refuses it below compute capability 8.9: vllm/v1/attention/backends/triton_attn.py, 0.34.0), KV
    offload within the replica's share of its machine's memory, a draft for the speculative methods that need one,
    and fp8 KV scales only with an fp8 cache."""
    for name, model in spec.models.items():
        engine, path = model.engine, f"models.{name}.engine"
        pools = [(c, p) for c in spec.clusters_of(model) for p in c.pools if p.name == model.pool]
        if engine.kv_cache_dtype == "fp8":
            weak = sorted({p.gpu_type for _, p in pools
                           if COMPUTE_CAPABILITY[p.gpu_type] < FP8_KV_MIN_CAPABILITY})
            if weak:
                yield Problem(f"{path}.kvCacheDtype", f"an fp8 KV cache needs compute capability "
                              f"{FP8_KV_MIN_CAPABILITY} or more; {', '.join(weak)} has "
                              f"{min(COMPUTE_CAPABILITY[g] for g in weak)}", "fp8",
                              "use kvCacheDtype: auto on these GPUs, or a pool of L4, L40S, H100 or H200")
        if engine.calculate_kv_scales and engine.kv_cache_dtype != "fp8":
            yield Problem(f"{path}.calculateKvScales", "KV scales are only used by an fp8 KV cache", "true",
                          "remove calculateKvScales, or set kvCacheDtype: fp8")
        speculative = engine.speculative
        if speculative is not None:
            needs_draft = speculative.method != "ngram"
            if needs_draft and speculative.draft is None:
                yield Problem(f"{path}.speculative.draft", f"method {speculative.method} proposes with its own "
                              "weights", "(missing)", "give draft: {uri, sha256, rank: 1, sizeMib}, or use "
                              "method: ngram")
            if not needs_draft and speculative.draft is not None:
                yield Problem(f"{path}.speculative.draft", "ngram proposes from the prompt and takes no weights",
                              speculative.draft.uri, "remove draft, or pick eagle, eagle3 or draft_model")
        lora = engine.lora
        if lora is not None:
            too_wide = sorted(n for n, a in lora.adapters.items() if a.rank > lora.max_lora_rank)
            if too_wide:
                yield Problem(f"{path}.lora.maxLoraRank", f"adapters {', '.join(too_wide)} have a rank above "
                              f"{lora.max_lora_rank}; vLLM refuses to load them", str(lora.max_lora_rank),
                              f"raise maxLoraRank to {max(lora.adapters[n].rank for n in too_wide)}")
        if engine.kv_offload is not None:
            yield from _offload_fits(name, model, pools)


def _offload_fits(name: str, model: Model, pools) -> Iterable[Problem]:
    """The offload buffer fits the replica's share of its machine's memory (on clouds, where the machine is
    known); vLLM pins it in host memory at start."""
    offload = model.engine.kv_offload
    tp = model.engine.tensor_parallel_size
    for cluster, pool in pools:
        shape = machine_shape(cluster.cloud, pool.gpu_type, pool.gpus_per_node)
        if shape is None or shape.machine_type not in HOST_MEMORY_GIB:
            continue
        share = HOST_MEMORY_GIB[shape.machine_type] * tp / pool.gpus_per_node * OFFLOAD_HOST_SHARE
        if offload.cpu_gib > share:
            yield Problem(f"models.{name}.engine.kvOffload.cpuGib", f"{offload.cpu_gib:g} GiB of KV cache per "
                          f"replica exceed {share:.0f} GiB, {OFFLOAD_HOST_SHARE:.0%} of a replica's share of "
                          f"{shape.machine_type} ({HOST_MEMORY_GIB[shape.machine_type]} GiB, "
                          f"{pool.gpus_per_node} GPUs) in {cluster.name}", f"{offload.cpu_gib:g}",
                          f"use at most {share:.0f} GiB")
            return


def metric_warnings(spec: PlatformSpec) -> list[Problem]:
    """Metrics the dashboards, alerts, autoscalers and the picker read that a deployed release hides (only behind
    `--show-hidden-metrics-for-version`) or no longer exports: not an error, since the rest still works, but
    those panels, alerts and triggers see no series from the versions on that release."""
    warnings = []
    releases = sorted({release for *_, release in _deployed(spec)})
    for release in releases:
        known = surface(release)
        users = sorted({f"{name}:{version}" for name, _, version, r in _deployed(spec) if r == release})
        for metric in VLLM:
            family = metric.name.removesuffix("_total")
            if family in known.metrics:
                continue
            state = "hides" if family in known.hidden_metrics else "does not export"
            warnings.append(Problem(
                "models", f"vLLM {release} {state} {metric.name}, which the dashboards, alerts and autoscalers "
                f"read: {', '.join(users)} will show no {metric.name} series", release,
                "move these versions to a release that exports it, or read the metric's new name "
                "(monitoring/vllm_metrics.py)"))
    return warnings


ENGINE_RULES = (engine_releases, release_flags, engine_features)
