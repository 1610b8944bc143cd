"""The `vllm serve` command line for one model version, from its engine settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

VLLM_PORT = 8000
"""Port vLLM listens on: OpenAI API under /v1, /health and /metrics."""

MODEL_DIR = "/models/weights"
"""Where the entrypoint unpacks the verified weights inside the model cache volume."""


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
    return args
