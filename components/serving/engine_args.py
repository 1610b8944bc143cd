"""The `vllm serve` command line for one model version, from its engine settings."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

VLLM_PORT = 8000
"""Port vLLM listens on: OpenAI API under /v1, /health and /metrics."""

MODEL_DIR = "/models/weights"
"""Where the entrypoint unpacks the verified weights inside the model cache volume."""
EXTRAS_DIR = "/models/extra"
"""Where the entrypoint unpacks a version's verified extra weights: LoRA adapters and a speculative draft."""


@dataclass(frozen=True)
class LoraSettings:
    """Adapters served beside the base weights (`--enable-lora`), each under the name clients request."""

    adapters: tuple[str, ...]
    """Adapter names; each is unpacked into `<EXTRAS_DIR>/lora-<name>`."""
    max_loras: int = 1
    max_lora_rank: int = 16
    max_cpu_loras: int | None = None


def extra_dir(name: str) -> str:
    """The folder a verified extra (an adapter `lora-<name>`, the `draft`) is unpacked into."""
    return f"{EXTRAS_DIR}/{name}"


@dataclass(frozen=True)
class EngineSettings:
    """vLLM engine settings of a model (each one a `vllm serve` flag)."""

    tensor_parallel_size: int = 1
    """GPUs one replica shards the model over (`--tensor-parallel-size`); also the GPUs a pod requests."""
    gpu_memory_utilization: float = 0.9
    """Share of GPU memory vLLM may use (`--gpu-memory-utilization`)."""
    max_model_len: int = 8192
    """Longest prompt plus output, in tokens (`--max-model-len`)."""
    max_num_seqs: int = 128
    """Sequences batched at once per replica (`--max-num-seqs`)."""
    max_num_batched_tokens: int | None = None
    """Tokens one engine step carries (`--max-num-batched-tokens`); None: vLLM's default for the GPU."""
    quantization: Literal["awq", "gptq", "fp8", "bitsandbytes"] | None = None
    """Quantization method (`--quantization`), or none."""
    enable_prefix_caching: bool = True
    """Reuse KV cache across shared prompt prefixes (`--enable-prefix-caching`)."""
    kv_cache_dtype: Literal["auto", "fp8"] = "auto"
    """KV-cache element type (`--kv-cache-dtype`)."""
    calculate_kv_scales: bool = False
    """Compute fp8 KV scales at start (`--calculate-kv-scales`)."""
    kv_offload_gib: float | None = None
    """Host memory for offloaded KV cache per replica (`--kv-offloading-size`), or no offload."""
    kv_offload_backend: Literal["native", "lmcache"] = "native"
    """Who offloads (`--kv-offloading-backend`)."""
    lora: LoraSettings | None = None
    """LoRA adapters, or none."""
    speculative: dict[str, object] | None = None
    """vLLM's speculative config (`--speculative-config`, JSON), or none."""
    generation_overrides: dict[str, float | int] = field(default_factory=dict)
    """Sampling defaults over the model's generation_config.json (`--override-generation-config`, JSON)."""


def served_name(model: str, version: str) -> str:
    """The name metrics carry (`model_name` label) and clients can pin: `<model>:<version>`."""
    return f"{model}:{version}"


def serve_args(model: str, version: str, engine: EngineSettings) -> list[str]:
    """Arguments after `vllm serve`: the weights folder, then engine flags.

    The versioned name comes first because vLLM labels metrics with the first served name; the bare model
    name follows so clients that do not pin a version are served too.
    """
    args = [
        MODEL_DIR,
        "--served-model-name", served_name(model, version), model,
        "--port", str(VLLM_PORT),
        "--tensor-parallel-size", str(engine.tensor_parallel_size),
        "--gpu-memory-utilization", str(engine.gpu_memory_utilization),
        "--max-model-len", str(engine.max_model_len),
        "--max-num-seqs", str(engine.max_num_seqs),
        "--enable-prefix-caching" if engine.enable_prefix_caching else "--no-enable-prefix-caching",
    ]
    if engine.max_num_batched_tokens is not None:
        args += ["--max-num-batched-tokens", str(engine.max_num_batched_tokens)]
    if engine.quantization:
        args += ["--quantization", engine.quantization]
    return args + feature_args(engine)


def feature_args(engine: EngineSettings) -> list[str]:
    """The flags of the engine features a version turns on: fp8 KV cache, KV offload, LoRA, speculative decoding
    and generation defaults (vLLM's defaults when off, so nothing is passed for them)."""
    args: list[str] = []
    if engine.kv_cache_dtype != "auto":
        args += ["--kv-cache-dtype", engine.kv_cache_dtype]
    if engine.calculate_kv_scales:
        args.append("--calculate-kv-scales")
    if engine.kv_offload_gib is not None:
        args += ["--kv-offloading-size", f"{engine.kv_offload_gib:g}", "--kv-offloading-backend",
                 engine.kv_offload_backend]
    if engine.lora is not None:
        lora = engine.lora
        args += ["--enable-lora", "--max-loras", str(lora.max_loras), "--max-lora-rank", str(lora.max_lora_rank)]
        if lora.max_cpu_loras is not None:
            args += ["--max-cpu-loras", str(lora.max_cpu_loras)]
        args += ["--lora-modules", *(f"{name}={extra_dir(f'lora-{name}')}" for name in lora.adapters)]
    if engine.speculative is not None:
        args += ["--speculative-config", json.dumps(engine.speculative, sort_keys=True)]
    if engine.generation_overrides:
        args += ["--override-generation-config", json.dumps(engine.generation_overrides, sort_keys=True)]
    return args
